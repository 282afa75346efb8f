//! The weekly report in WeCom: on `reports.weekly_cron` (local time; default Monday 09:00)
//! the handler group robot gets the last week's figures as markdown, exactly once per week —
//! the "sent" mark is written in the transaction that stages the message, and a slot missed
//! while the gateway was down is caught up at the next check (start included).

use std::str::FromStr;

use chrono::TimeZone;

use super::{Dashboard, Period, Stats, Summary};
use crate::outbox::Outbox;
use crate::store::{self, AnyTree, Store, Tree, TxError, trees};
use crate::wecom::outbound::{Destination, Message};

pub struct Weekly {
    pub dashboard: Dashboard,
    cron: croner::Cron,
    sent: Tree<String, i64>,
    outbox: Outbox,
    store: Store,
    /// Base URL of the console, for the link to the reports page.
    public_url: String,
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

/// A duration in seconds, read aloud: "12 分钟", "3.2 小时", "1.5 天".
pub fn human(secs: Option<f64>) -> String {
    match secs {
        None => "—".to_owned(),
        Some(s) if s < 3600.0 => format!("{:.0} 分钟", s / 60.0),
        Some(s) if s < 86_400.0 => format!("{:.1} 小时", s / 3600.0),
        Some(s) => format!("{:.1} 天", s / 86_400.0),
    }
}

/// Week-over-week change `(cur − prev) / prev` with an arrow; "—" without a previous value.
pub fn trend(cur: f64, prev: f64) -> String {
    if prev == 0.0 {
        return "—".to_owned();
    }
    let change = (cur - prev) / prev * 100.0;
    let arrow = if change > 0.5 {
        "↑"
    } else if change < -0.5 {
        "↓"
    } else {
        "→"
    };
    format!("{arrow}{:.0}%", change.abs())
}

fn median(s: &Stats) -> String {
    human(s.median)
}

/// The report as robot markdown (identifiers masked: questions are stored masked).
pub fn markdown(period: &Period, cur: &Summary, prev: &Summary, link: &str) -> String {
    let cats = [
        ("consulting", "咨询类"),
        ("data", "数据类"),
        ("program", "程序类"),
        ("other", "其他类"),
        ("uncategorised", "未分类"),
    ]
    .iter()
    .map(|(k, l)| format!("{l} {}", cur.by_category.get(k).copied().unwrap_or(0)))
    .collect::<Vec<_>>()
    .join(" · ");
    let mut systems: Vec<(&String, &usize)> = cur.by_system.iter().collect();
    systems.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let systems = systems
        .iter()
        .take(3)
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(" · ");
    let mut s = format!(
        "**事件助手周报 {}（{} 至 {}）**\n\
         >提交 **{}** 件（环比 {}）· 解决 **{}** 件（环比 {}）\n\
         >解决率 **{}** · 及时率 **{}** · 首响达标 **{}**\n\
         >首次响应中位 **{}** · 解决中位 **{}**（P90 {}）\n\
         >满意度 **{}**（{} 条评价）· FAQ 拦截 **{}**\n\
         >分类：{cats}\n",
        period.week_label(),
        period.from.format("%m-%d"),
        period.to.format("%m-%d"),
        cur.filed,
        trend(cur.filed as f64, prev.filed as f64),
        cur.resolved,
        trend(cur.resolved as f64, prev.resolved as f64),
        pct(cur.resolution_rate),
        pct(cur.timely_rate),
        pct(cur.first_response_sla_rate),
        human(cur.first_response.median),
        human(cur.resolution.median),
        human(cur.resolution.p90),
        pct(cur.csat),
        cur.ratings,
        pct(cur.deflection),
    );
    if !systems.is_empty() {
        s.push_str(&format!(">系统：{systems}\n"));
    }
    s.push_str(&format!(
        ">事件：{} 起（重大 {}）· MTTR 中位 {}\n",
        cur.incidents.opened,
        cur.incidents.major,
        median(&cur.incidents.mttr)
    ));
    if !cur.faq_unanswered.is_empty() {
        s.push_str(">未解答问题：");
        let top: Vec<String> = cur
            .faq_unanswered
            .iter()
            .take(3)
            .map(|(q, n)| format!("{}（{n}）", crate::ident::mask_truncate(q, 20)))
            .collect();
        s.push_str(&top.join("；"));
        s.push('\n');
    }
    s.push_str(&format!("[查看报表]({link})"));
    s
}

impl Weekly {
    /// `cron` is `reports.weekly_cron` (validated with the configuration).
    pub fn open(
        store: &Store,
        dashboard: Dashboard,
        outbox: Outbox,
        cron: &str,
        public_url: String,
    ) -> store::Result<Weekly> {
        let cron = croner::Cron::from_str(cron).unwrap_or_else(|e| {
            tracing::error!(error = %e, "reports.weekly_cron does not parse; Monday 09:00 instead");
            croner::Cron::from_str("0 9 * * MON").expect("the default schedule parses")
        });
        Ok(Weekly {
            dashboard,
            cron,
            sent: store.tree(&trees::REPORTS_SENT)?,
            outbox,
            store: store.clone(),
            public_url,
        })
    }

    /// The latest scheduled slot at or before `now` (unix ms).
    pub fn last_slot(&self, now: i64) -> Option<i64> {
        let offset = self.dashboard.utc_offset;
        let local = offset.timestamp_millis_opt(now).single()?;
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    fn link(&self, period: &Period) -> String {
        format!(
            "{}/console/reports?from={}&to={}",
            self.public_url, period.from, period.to
        )
    }

    /// The report of `period`, as sent.
    pub fn render(&self, period: &Period) -> store::Result<String> {
        let (cur, prev) = self.dashboard.summary_with_previous(period)?;
        Ok(markdown(period, &cur, &prev, &self.link(period)))
    }

    /// Send the report due at `now`, if its week's report has not been sent: the week
    /// before the latest slot. Returns the week sent. Slots before the desk's first check
    /// (a new install) are not caught up.
    pub fn send_due(&self, now: i64) -> store::Result<Option<String>> {
        let since_key = "weekly/since".to_owned();
        let since = match self.sent.get(&since_key)? {
            Some(since) => since,
            None => {
                self.sent.insert(&since_key, &now)?;
                now
            }
        };
        let Some(slot) = self.last_slot(now).filter(|slot| *slot >= since) else {
            return Ok(None);
        };
        let period = Period::last_week(slot, self.dashboard.utc_offset);
        let key = format!("weekly/{}", period.week_label());
        if self.sent.contains(&key)? {
            return Ok(None);
        }
        let content = self.render(&period)?;
        let mut trees: Vec<&dyn AnyTree> = vec![&self.sent];
        trees.extend(self.outbox.trees());
        let staged = self
            .store
            .transaction::<_, std::convert::Infallible>(&trees, |tx| {
                if tx.get(&self.sent, &key)?.is_some() {
                    return Ok(false);
                }
                self.outbox.stage(
                    tx,
                    &Destination::Robot,
                    Message::Markdown {
                        content: content.clone(),
                    },
                    &key,
                )?;
                tx.insert(&self.sent, &key, &now)?;
                Ok(true)
            })
            .map_err(TxError::into_store)?;
        if !staged {
            return Ok(None);
        }
        self.outbox.wake();
        Ok(Some(period.week_label()))
    }

    /// An admin's "send now": last week's report, whatever the schedule (it does not count
    /// as the scheduled one).
    pub fn send_now(&self, now: i64) -> store::Result<String> {
        let period = Period::last_week(now, self.dashboard.utc_offset);
        let content = self.render(&period)?;
        let origin = format!("weekly-manual/{}", period.week_label());
        self.store
            .transaction::<_, std::convert::Infallible>(&self.outbox.trees(), |tx| {
                self.outbox.stage(
                    tx,
                    &Destination::Robot,
                    Message::Markdown {
                        content: content.clone(),
                    },
                    &origin,
                )?;
                Ok(())
            })
            .map_err(TxError::into_store)?;
        self.outbox.wake();
        Ok(period.week_label())
    }
}
