//! The ticket export (`GET /api/v1/reports/tickets.csv`): one row per ticket filed in the
//! period, UTF-8 with a BOM (Excel opens it as such), cells that a spreadsheet would run as
//! a formula neutralised, customer identifiers masked unless an admin asks for them whole
//! (that export is recorded in the audit log, `report_audit`).

use serde::{Deserialize, Serialize};

use super::Period;
use crate::config::SlaConfig;
use crate::store::{self, Record, Store, Tree, trees};
use crate::tickets::Ticket;

/// One whole-identifier export: who, when, which period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: i64,
    pub login: String,
    pub what: String,
}

impl Record for AuditEntry {}

/// The audit log of exports with whole identifiers.
#[derive(Clone)]
pub struct Audit {
    tree: Tree<u64, AuditEntry>,
    store: Store,
}

impl Audit {
    pub fn open(store: &Store) -> store::Result<Audit> {
        Ok(Audit {
            tree: store.tree(&trees::REPORT_AUDIT)?,
            store: store.clone(),
        })
    }

    pub fn record(&self, login: &str, what: &str) -> store::Result<()> {
        let entry = AuditEntry {
            at: crate::util::unix_millis(),
            login: login.to_owned(),
            what: what.to_owned(),
        };
        self.tree.insert(&self.store.generate_id()?, &entry)
    }

    /// Newest first.
    pub fn entries(&self, limit: usize) -> store::Result<Vec<AuditEntry>> {
        self.tree
            .iter()
            .rev()
            .take(limit)
            .map(|r| r.map(|(_, e)| e))
            .collect()
    }
}

/// A cell a spreadsheet would evaluate (`= + - @`, or a leading tab or CR) gets a leading
/// apostrophe, so it stays text.
pub fn neutralise(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

fn minutes(ms: Option<i64>) -> String {
    ms.map(|m| format!("{:.1}", m as f64 / 60_000.0))
        .unwrap_or_default()
}

/// The CSV of the tickets filed in `period` (any order in, oldest first out).
pub fn tickets_csv(
    period: &Period,
    tickets: &[Ticket],
    sla_cfg: &SlaConfig,
    whole_identifiers: bool,
) -> Result<Vec<u8>, csv::Error> {
    let mut rows: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| period.contains(t.created_at))
        .collect();
    rows.sort_by_key(|t| (t.created_at, t.id));
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record([
            "工单号",
            "提交时间",
            "系统",
            "问题分类",
            "优先级",
            "状态",
            "处理人",
            "首次响应(分钟)",
            "解决时长(分钟)",
            "SLA达标",
            "评价",
            "所属事件",
            "报告人",
            "客户标识",
            "问题描述",
        ])?;
        for t in rows {
            let time = period
                .local(t.created_at)
                .format("%Y-%m-%d %H:%M")
                .to_string();
            let resolved = t
                .resolved_at
                .map(|at| t.resolution_ms.unwrap_or(at - t.created_at));
            let sla_met = match t.resolved_at {
                Some(_) => {
                    if super::timely(t, sla_cfg) {
                        "是"
                    } else {
                        "否"
                    }
                }
                None => "",
            };
            let rating = t
                .rating
                .as_ref()
                .map(|r| {
                    format!(
                        "{}{}",
                        if r.solved { "已解决" } else { "未解决" },
                        r.score.map(|s| format!(" {s}分")).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let customer = if whole_identifiers {
                format!("{} {}", t.customer_id.kind.label(), t.customer_id.value)
            } else {
                t.customer_id.masked_label()
            };
            let record = [
                t.number.clone(),
                time,
                t.system.clone(),
                t.category
                    .map(|c| c.label().to_owned())
                    .unwrap_or_else(|| "未分类".into()),
                t.priority.key().to_owned(),
                t.status.label().to_owned(),
                t.assignee.clone().unwrap_or_default(),
                minutes(
                    t.first_response_ms
                        .or(t.first_response_at.map(|a| a - t.created_at)),
                ),
                minutes(resolved),
                sla_met.to_owned(),
                rating,
                t.incident.clone().unwrap_or_default(),
                t.reporter_label(),
                customer,
                if whole_identifiers {
                    t.description.clone()
                } else {
                    crate::ident::mask_text(&t.description)
                },
            ];
            w.write_record(record.iter().map(|c| neutralise(c)))?;
        }
        w.flush()?;
    }
    Ok(out)
}
