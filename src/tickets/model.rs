//! The ticket records: the ticket, its thread of events, who acted, and why an operation was
//! refused.

use serde::{Deserialize, Serialize};

use super::{Category, Priority, Status};
use crate::ident::CustomerId;
use crate::store::{self, Record};
use crate::wecom::{Channel, ChatType};

/// Who did something to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// The agent who reported it (WeCom userid).
    Reporter(String),
    /// A console user (login name).
    Handler(String),
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Reporter(u) => format!("报告人 {u}"),
            Actor::Handler(h) => h.clone(),
            Actor::System => "系统".into(),
        }
    }
}

/// A member as handlers see them: "张三（zhangsan）", or the userid when the name is unknown.
pub fn member_label(userid: &str, name: &str) -> String {
    if name.is_empty() || name == userid {
        userid.to_owned()
    } else {
        format!("{name}（{userid}）")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    pub solved: bool,
    pub score: Option<u8>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: u64,
    /// `IT20261121-0042`
    pub number: String,
    pub reporter: String,
    pub reporter_name: String,
    pub channel: Channel,
    pub chat_type: ChatType,
    pub chat_id: String,
    /// Whole, only here and on the console's ticket page.
    pub customer_id: CustomerId,
    pub system: String,
    pub description: String,
    /// sha256 of stored screenshots.
    pub screenshots: Vec<String>,
    pub status: Status,
    pub category: Option<Category>,
    pub priority: Priority,
    pub assignee: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub first_response_at: Option<i64>,
    #[serde(default)]
    pub resolved_at: Option<i64>,
    #[serde(default)]
    pub closed_at: Option<i64>,
    #[serde(default)]
    pub rating: Option<Rating>,
    /// Time spent in 待补充 so far (the SLA clock pauses there), ms.
    #[serde(default)]
    pub paused_ms: i64,
    /// When the current 待补充 began.
    #[serde(default)]
    pub paused_since: Option<i64>,
    /// SLA clocks already announced as overdue (`first_response`, `resolution`).
    #[serde(default)]
    pub sla_alerts: Vec<String>,
    /// When a handler last spoke to the agent (a reply, or a status change pushed to them):
    /// the agent's free text in that chat is then a follow-up of this ticket for a while.
    #[serde(default)]
    pub handler_contact_at: Option<i64>,
    /// When the agent last added to the ticket.
    #[serde(default)]
    pub agent_follow_up_at: Option<i64>,
    /// The agent asked for a person (人工) and no handler has taken it yet.
    #[serde(default)]
    pub human_requested_at: Option<i64>,
    /// The incident this ticket is part of (`INC20261130-003`), while linked.
    #[serde(default)]
    pub incident: Option<String>,
    /// Filed → first handler response, calendar and business time (ms), stored then.
    #[serde(default)]
    pub first_response_ms: Option<i64>,
    #[serde(default)]
    pub first_response_business_ms: Option<i64>,
    /// Filed → (last) 已解决, calendar and business time (ms), stored then.
    #[serde(default)]
    pub resolution_ms: Option<i64>,
    #[serde(default)]
    pub resolution_business_ms: Option<i64>,
    /// Times it left 已解决 for more work.
    #[serde(default)]
    pub reopens: u32,
    /// Closed as a duplicate of this ticket (which carries on; follow-ups go there).
    #[serde(default)]
    pub merged_into: Option<String>,
    /// Related tickets (linked both ways).
    #[serde(default)]
    pub links: Vec<String>,
}

impl Record for Ticket {}

impl Ticket {
    /// Whether the agent's free text in this ticket's chat is a follow-up of it at `now`:
    /// the ticket is still being worked, a handler has spoken to the agent, and neither side
    /// has been silent for `window` since.
    pub fn in_conversation(&self, now: i64, window: std::time::Duration) -> bool {
        let Some(handler) = self.handler_contact_at else {
            return false;
        };
        let last = self.agent_follow_up_at.map_or(handler, |a| a.max(handler));
        self.status.is_open() && now - last < window.as_millis() as i64
    }

    /// The agent has not answered the handler's last words yet.
    pub fn awaits_agent(&self) -> bool {
        self.handler_contact_at
            .is_some_and(|h| self.agent_follow_up_at.is_none_or(|a| a < h))
    }

    /// A ticket as filed: 待处理, priority P3, nothing set by handlers yet.
    pub fn filed(id: u64, number: String, new: NewTicket, now: i64) -> Ticket {
        Ticket {
            id,
            number,
            reporter: new.reporter,
            reporter_name: new.reporter_name,
            channel: new.channel,
            chat_type: new.chat_type,
            chat_id: new.chat_id,
            customer_id: new.customer_id,
            system: new.system,
            description: new.description,
            screenshots: new.screenshots,
            status: Status::New,
            category: None,
            priority: Priority::P3,
            assignee: None,
            created_at: now,
            updated_at: now,
            first_response_at: None,
            resolved_at: None,
            closed_at: None,
            rating: None,
            paused_ms: 0,
            paused_since: None,
            sla_alerts: Vec::new(),
            handler_contact_at: None,
            agent_follow_up_at: None,
            human_requested_at: None,
            incident: None,
            first_response_ms: None,
            first_response_business_ms: None,
            resolution_ms: None,
            resolution_business_ms: None,
            reopens: 0,
            merged_into: None,
            links: Vec::new(),
        }
    }

    /// "张三（zhangsan）"
    pub fn reporter_label(&self) -> String {
        member_label(&self.reporter, &self.reporter_name)
    }

    /// Waiting for the agent's rating after 已解决.
    pub fn awaits_rating(&self) -> bool {
        self.status == Status::Resolved && self.rating.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Created,
    /// Text and/or screenshots the agent added.
    AgentMessage {
        text: String,
        #[serde(default)]
        images: Vec<String>,
    },
    /// A handler's reply, pushed to the agent by these outbox jobs (text first, then the
    /// attachments).
    Reply {
        text: String,
        jobs: Vec<u64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// Internal note, never pushed.
    Note {
        text: String,
    },
    Status {
        from: Status,
        to: Status,
        reason: String,
    },
    Assigned {
        to: Option<String>,
    },
    CategorySet {
        category: Category,
    },
    PrioritySet {
        priority: Priority,
    },
    Rated {
        solved: bool,
        score: Option<u8>,
    },
    /// The agent asked for a person (人工).
    HumanRequested,
    /// Linked to an incident (its updates reach the reporter).
    IncidentLinked {
        incident: String,
    },
    IncidentUnlinked {
        incident: String,
    },
    /// Closed as a duplicate of `into`.
    MergedInto {
        into: String,
    },
    /// `from` was merged into this ticket.
    MergedFrom {
        from: String,
    },
    /// Linked with a related ticket (or unlinked).
    Linked {
        ticket: String,
    },
    Unlinked {
        ticket: String,
    },
}

/// An image or file a handler attached to a reply (its bytes in the media store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// sha256 of the bytes.
    pub media: String,
    pub name: String,
    pub image: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub seq: u64,
    pub at: i64,
    pub actor: Actor,
    pub kind: EventKind,
}

impl Record for TicketEvent {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub name: String,
    pub fetched_at: i64,
    /// The lookup failed (the name is the userid): tried again after a few minutes.
    #[serde(default)]
    pub failed: bool,
}

impl Record for MemberInfo {}

/// Everything the intake collected.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub reporter: String,
    pub reporter_name: String,
    pub channel: Channel,
    pub chat_type: ChatType,
    pub chat_id: String,
    pub customer_id: CustomerId,
    pub system: String,
    pub description: String,
    pub screenshots: Vec<String>,
}

/// Why a ticket operation was refused. The texts are shown to handlers and agents.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TicketError {
    #[error("工单不存在")]
    NotFound,
    #[error("工单状态不能从“{}”变为“{}”", .from.label(), .to.label())]
    IllegalTransition { from: Status, to: Status },
    #[error("工单已关闭，不能再操作")]
    Closed,
    #[error("只能操作您本人提交的工单")]
    NotOwner,
    #[error("内容不能为空")]
    Empty,
    #[error("内容太长（最多 {0} 个字）")]
    TooLong(usize),
    #[error("解决工单前请先设置问题分类")]
    CategoryRequired,
    #[error("不能合并或关联到工单自身")]
    SelfReference,
    #[error("工单 {0} 已关闭或已被合并，不能合并到它")]
    MergeTarget(String),
    /// The cause is kept for the log (the HTTP edge logs it); the agent or handler sees only
    /// this sentence.
    #[error("存储错误，请稍后重试")]
    Storage(#[source] std::sync::Arc<store::Error>),
}

impl From<store::Error> for TicketError {
    fn from(e: store::Error) -> Self {
        TicketError::Storage(std::sync::Arc::new(e))
    }
}
