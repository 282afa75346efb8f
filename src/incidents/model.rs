//! The incident records: the incident, its timeline, the alerts it stands for, and why an
//! operation was refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{self, Record};
use crate::tickets::{Priority, TicketError};

/// `open` → `acknowledged` → `resolved`; a resolved incident can be reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn label(self) -> &'static str {
        match self {
            IncidentStatus::Open => "待响应",
            IncidentStatus::Acknowledged => "处理中",
            IncidentStatus::Resolved => "已恢复",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn is_active(self) -> bool {
        self != IncidentStatus::Resolved
    }
}

/// How bad an alert says things are (PagerDuty's four levels; other senders' words map
/// onto them, see [`Severity::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    /// Read a sender's severity word. Alertmanager and Grafana have no fixed set: the
    /// common words are mapped and anything else counts as a warning.
    pub fn parse(s: &str) -> Severity {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "disaster" | "fatal" | "page" | "emergency" | "p1" => {
                Severity::Critical
            }
            "error" | "err" | "high" | "major" | "average" | "p2" => Severity::Error,
            "info" | "information" | "informational" | "low" | "none" | "ok" | "p4" => {
                Severity::Info
            }
            _ => Severity::Warning,
        }
    }

    /// The strict PagerDuty Events v2 set.
    pub fn parse_strict(s: &str) -> Option<Severity> {
        match s {
            "critical" => Some(Severity::Critical),
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Severity::Critical => "严重",
            Severity::Error => "错误",
            Severity::Warning => "警告",
            Severity::Info => "提示",
        }
    }

    /// critical → P1, error → P2, warning → P3, info → P4.
    pub fn priority(self) -> Priority {
        match self {
            Severity::Critical => Priority::P1,
            Severity::Error => Priority::P2,
            Severity::Warning => Priority::P3,
            Severity::Info => Priority::P4,
        }
    }

    /// The severity a handler's priority stands for (declared incidents).
    pub fn of_priority(p: Priority) -> Severity {
        match p {
            Priority::P1 => Severity::Critical,
            Priority::P2 => Severity::Error,
            Priority::P3 => Severity::Warning,
            Priority::P4 => Severity::Info,
        }
    }
}

/// Where an incident or alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Alertmanager,
    Grafana,
    /// `/hooks/events` (PagerDuty Events v2 shaped; Zabbix, Alertmanager's pagerduty_config).
    Events,
    /// Declared by a handler.
    Manual,
    /// A burst of similar reports from agents.
    Outbreak,
}

impl Source {
    pub fn key(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Grafana => "grafana",
            Source::Events => "events",
            Source::Manual => "manual",
            Source::Outbreak => "outbreak",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Source::Alertmanager => "Alertmanager",
            Source::Grafana => "Grafana",
            Source::Events => "事件接口",
            Source::Manual => "人工声明",
            Source::Outbreak => "报告聚集",
        }
    }
}

/// The 重大事件 flag: when and why (announced once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Major {
    pub at: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: u64,
    /// `INC20261130-003`
    pub number: String,
    pub title: String,
    pub system: String,
    pub severity: Severity,
    pub priority: Priority,
    pub status: IncidentStatus,
    pub sources: Vec<Source>,
    /// The alert group it stands for (`alertmanager/{groupKey}`, `events/{dedup_key}`).
    pub group: Option<String>,
    /// Who opened it: a sender's name or a handler's login.
    pub opened_by: String,
    /// Unix ms.
    pub opened_at: i64,
    pub acknowledged_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub updated_at: i64,
    /// When an alert of it was last received (fired, repeated or resolved).
    pub last_alert_at: Option<i64>,
    /// Alerts attached, and how many of them fire now.
    pub alerts: u32,
    pub alerts_firing: u32,
    /// Linked ticket numbers, in linking order.
    pub tickets: Vec<String>,
    pub major: Option<Major>,
    /// The handler's resolution note (or why it resolved by itself).
    pub resolution: Option<String>,
    /// Opened → resolved and opened → acknowledged, stored when it resolves (ms).
    pub mttr_ms: Option<i64>,
    pub tta_ms: Option<i64>,
    /// Alertmanager's or Grafana's own page of the group.
    #[serde(default)]
    pub external_url: String,
    /// Members who reported it by a question (no ticket): they hear its progress too.
    #[serde(default)]
    pub subscribers: Vec<String>,
    /// What it is about, for matching new reports: its title and reports' texts (masked,
    /// the latest few).
    #[serde(default)]
    pub texts: Vec<String>,
    /// Merged into this incident (its number), when it was.
    #[serde(default)]
    pub merged_into: Option<String>,
}

impl Record for Incident {}

/// What happened to an incident, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Opened {
        source: Source,
    },
    AlertFired {
        alert: String,
        name: String,
    },
    AlertResolved {
        alert: String,
        name: String,
    },
    Acknowledged,
    /// A handler's update, sent to `reporters` linked reporters by these outbox jobs.
    Update {
        text: String,
        reporters: usize,
        #[serde(default)]
        jobs: Vec<u64>,
    },
    Resolved {
        note: String,
        #[serde(default)]
        jobs: Vec<u64>,
    },
    /// Agents' reports about the same fault reached the outbreak threshold.
    Reports {
        reporters: usize,
    },
    /// Another incident was merged into this one.
    MergedFrom {
        incident: String,
    },
    /// This incident was merged into another.
    MergedInto {
        incident: String,
    },
    /// A reporter said their report is a different problem.
    Detached {
        ticket: Option<String>,
        reporter: String,
    },
    /// The similarity cut-off of the incident's system was changed.
    CutoffSet {
        cutoff: f32,
    },
    Reopened {
        reason: String,
    },
    TicketLinked {
        ticket: String,
    },
    TicketUnlinked {
        ticket: String,
    },
    Major {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub seq: u64,
    pub at: i64,
    /// A handler's login, a sender's name (Alertmanager) or 系统.
    pub actor: String,
    pub kind: EventKind,
}

impl Record for IncidentEvent {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// One alert as last received, under its id (`source/fingerprint`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub source: Source,
    /// The incident it belongs to; `None` for a resolve of an alert never seen firing.
    pub incident: Option<u64>,
    pub status: AlertStatus,
    pub name: String,
    pub summary: String,
    pub severity: Severity,
    pub system: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// When the sender says it started (its firing episode), unix ms.
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub generator_url: String,
    pub silence_url: String,
    /// Further links (PagerDuty `links`, Grafana dashboard/panel).
    pub links: Vec<Link>,
    /// Grafana's per-alert `values`, PagerDuty's `custom_details`.
    pub details: Option<serde_json::Value>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Repeats received while firing (Alertmanager's `repeat_interval`).
    pub repeats: u32,
}

impl Record for Alert {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    pub text: String,
}

/// Why an incident operation was refused. The texts are shown to handlers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IncidentError {
    #[error("事件不存在")]
    NotFound,
    #[error("事件状态为“{}”，不能{}", .0.label(), .1)]
    Illegal(IncidentStatus, &'static str),
    #[error("内容不能为空")]
    Empty,
    #[error("内容太长（最多 {0} 个字）")]
    TooLong(usize),
    #[error("标题不能为空")]
    TitleRequired,
    #[error("系统不能为空")]
    SystemRequired,
    #[error("工单 {0} 不存在")]
    NoTicket(String),
    #[error("工单 {0} 已关联事件 {1}，请先取消关联")]
    LinkedElsewhere(String, String),
    #[error("工单 {0} 没有关联这个事件")]
    NotLinked(String),
    #[error("不能把事件合并到它自己")]
    MergeSelf,
    #[error("相似度阈值必须在 0.05 到 0.95 之间")]
    BadCutoff,
    #[error("{0}")]
    Ticket(TicketError),
    #[error("存储错误，请稍后重试")]
    Storage(#[source] std::sync::Arc<store::Error>),
}

impl From<store::Error> for IncidentError {
    fn from(e: store::Error) -> Self {
        IncidentError::Storage(std::sync::Arc::new(e))
    }
}

impl From<TicketError> for IncidentError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::Storage(e) => IncidentError::Storage(e),
            TicketError::NotFound => IncidentError::NoTicket(String::new()),
            e => IncidentError::Ticket(e),
        }
    }
}

/// One report in an outbreak cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMember {
    pub reporter: String,
    /// The ticket it filed; `None` for a question the FAQ could not answer.
    pub ticket: Option<String>,
    /// The report's text, masked and cut short.
    pub text: String,
    pub at: i64,
}

/// Similar reports about one system within the outbreak window (rolling: it stays open
/// while matches arrive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: u64,
    pub system: String,
    pub opened_at: i64,
    pub last_at: i64,
    pub members: Vec<ClusterMember>,
    /// The incident it became (or joined).
    pub incident: Option<u64>,
}

impl Record for Cluster {}

impl Cluster {
    /// Distinct reporters.
    pub fn reporters(&self) -> usize {
        let mut seen: Vec<&str> = self.members.iter().map(|m| m.reporter.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }
}
