//! View models of the console pages and their askama templates (`templates/`, escaped by
//! default). Building a view is pure: given tickets, events, delivery states and `now`, the
//! same page renders byte for byte (the snapshot tests rely on it).

use askama::Template;

use crate::config::SlaConfig;
use crate::kb::log::Report;
use crate::outbox::Status as Delivery;
pub use crate::tickets::query::{Filters, Page};
use crate::tickets::sla::{self, SlaState};
use crate::tickets::{Category, EventKind, Priority, Status, Ticket, TicketEvent};

/// Formats instants in the desk's local time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: i64,
    pub offset: chrono::FixedOffset,
}

impl Clock {
    pub fn time(&self, ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&self.offset)
            .format("%m-%d %H:%M")
            .to_string()
    }

    /// "刚刚", "12分钟前", "3小时前", "2天前".
    pub fn ago(&self, ms: i64) -> String {
        let mins = (self.now - ms).max(0) / 60_000;
        match mins {
            0 => "刚刚".into(),
            m if m < 60 => format!("{m}分钟前"),
            m if m < 1440 => format!("{}小时前", m / 60),
            m => format!("{}天前", m / 1440),
        }
    }
}

pub struct UserView {
    pub login: String,
    pub role: &'static str,
    pub admin: bool,
}

pub struct Flash {
    pub kind: &'static str,
    pub text: String,
}

/// What every logged-in page shows around its content.
pub struct Chrome {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
}

/// An `<option>`.
pub struct OptionView {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn options<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
    current: &str,
) -> Vec<OptionView> {
    items
        .into_iter()
        .map(|(v, l)| OptionView {
            value: v.to_owned(),
            label: l.to_owned(),
            selected: v == current,
        })
        .collect()
}

pub struct CountView {
    pub key: &'static str,
    pub label: &'static str,
    pub count: usize,
}

pub fn counts(counts: &[(Status, usize)]) -> Vec<CountView> {
    counts
        .iter()
        .map(|(s, n)| CountView {
            key: s.key(),
            label: s.label(),
            count: *n,
        })
        .collect()
}

pub struct RowView {
    pub number: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub system: String,
    pub summary: String,
    pub category: String,
    pub reporter: String,
    pub priority: &'static str,
    pub assignee: String,
    pub sla: String,
    pub overdue: bool,
    pub age: String,
    /// The agent asked for a person and nobody has taken the ticket yet.
    pub human: bool,
    /// The agent has written since a handler last did (a follow-up waits to be read).
    pub agent_wrote: bool,
    /// The open incident the ticket belongs to (the page handler clears resolved ones).
    pub incident: String,
    /// Changed since the viewer last opened it (set by the page handler).
    pub updated: bool,
    pub updated_at: i64,
    pub id: u64,
}

fn sla_label(s: &SlaState, t: &Ticket) -> String {
    if !t.status.is_open() {
        return "—".into();
    }
    if t.first_response_at.is_none() {
        format!("响应{}", s.first_response.label())
    } else {
        format!("解决{}", s.resolution.label())
    }
}

pub fn row(t: &Ticket, s: &SlaState, clock: &Clock) -> RowView {
    RowView {
        number: t.number.clone(),
        status_key: t.status.key(),
        status_label: t.status.label(),
        system: t.system.clone(),
        summary: crate::ident::mask_truncate(&t.description, 40),
        category: t.category.map(|c| c.label().to_owned()).unwrap_or_default(),
        reporter: t.reporter_label(),
        priority: t.priority.key(),
        assignee: t.assignee.clone().unwrap_or_else(|| "—".into()),
        sla: sla_label(s, t),
        overdue: t.status.is_open() && s.is_overdue(),
        age: clock.ago(t.created_at),
        human: t.human_requested_at.is_some(),
        agent_wrote: t.status.is_open()
            && t.agent_follow_up_at
                .is_some_and(|a| t.handler_contact_at.is_none_or(|h| a > h)),
        incident: t.incident.clone().unwrap_or_default(),
        updated: false,
        updated_at: t.updated_at,
        id: t.id,
    }
}

#[derive(Template)]
#[template(path = "login.html", config = "src/http/console/askama.toml")]
pub struct LoginPage {
    pub csrf: String,
    pub error: Option<String>,
    pub login: String,
    /// The console page to return to after the login (validated), or empty.
    pub next: String,
}

#[derive(Template)]
#[template(path = "queue.html", config = "src/http/console/askama.toml")]
pub struct QueuePage {
    /// Saved views: (name, query string, shared).
    pub views: Vec<(String, String, bool)>,
    pub pager: PagerView,
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub filters: Filters,
    pub status_options: Vec<OptionView>,
    pub systems: Vec<OptionView>,
    pub categories: Vec<OptionView>,
    pub assignees: Vec<OptionView>,
    pub counts: Vec<CountView>,
    pub rows: Vec<RowView>,
}

#[derive(Template)]
#[template(path = "queue_rows.html", config = "src/http/console/askama.toml")]
pub struct QueueRows {
    pub counts: Vec<CountView>,
    pub rows: Vec<RowView>,
    pub pager: PagerView,
}

/// "共 N 条 · 第 p/P 页" with links to the pages around.
pub struct PagerView {
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    /// `?…` of the previous and next pages, when there are.
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl PagerView {
    fn new<T>(page: &Page<T>, filters: &Filters) -> PagerView {
        let link = |p: usize| format!("?{}", filters.query_for_page(p));
        PagerView {
            total: page.total,
            page: page.page,
            pages: page.pages,
            prev: (page.page > 1).then(|| link(page.page - 1)),
            next: (page.page < page.pages).then(|| link(page.page + 1)),
        }
    }
}

/// The systems the queue's filter offers: the running script's, plus those of `loaded`
/// tickets filed under older scripts.
pub fn systems_offered<'a>(script: &'a [String], loaded: &'a [Ticket]) -> Vec<&'a str> {
    let mut systems: Vec<&str> = script.iter().map(String::as_str).collect();
    for t in loaded {
        if !systems.contains(&t.system.as_str()) {
            systems.push(&t.system);
        }
    }
    systems
}

/// The live part of the queue: counts per status, the rows of this page, the pager.
pub fn queue_rows(
    status_counts: &[(Status, usize)],
    page: &Page<(Ticket, SlaState)>,
    filters: &Filters,
    clock: &Clock,
) -> QueueRows {
    QueueRows {
        counts: counts(status_counts),
        rows: page.items.iter().map(|(t, s)| row(t, s, clock)).collect(),
        pager: PagerView::new(page, filters),
    }
}

/// `systems`: those the intake offers; systems found only on older tickets are added.
pub fn queue_page(
    chrome: Chrome,
    filters: Filters,
    systems: &[&str],
    logins: &[String],
    status_counts: &[(Status, usize)],
    page: &Page<(Ticket, SlaState)>,
    clock: &Clock,
) -> QueuePage {
    let rows = queue_rows(status_counts, page, &filters, clock);
    let mut status_opts: Vec<(&str, &str)> = vec![("open", "未完成"), ("all", "全部")];
    status_opts.extend(Status::ALL.iter().map(|s| (s.key(), s.label())));
    QueuePage {
        views: Vec::new(),
        status_options: options(status_opts, &filters.status),
        systems: options(systems.iter().map(|s| (*s, *s)), &filters.system),
        categories: options(
            Category::ALL.iter().map(|c| (c.key(), c.label())),
            &filters.category,
        ),
        assignees: options(
            logins.iter().map(|l| (l.as_str(), l.as_str())),
            &filters.assignee,
        ),
        counts: rows.counts,
        rows: rows.rows,
        pager: rows.pager,
        user: chrome.user,
        csrf: chrome.csrf,
        flash: chrome.flash,
        filters,
    }
}

pub struct DeliveryView {
    pub id: u64,
    pub state: &'static str,
    pub label: String,
}

pub struct EventView {
    pub at: String,
    pub actor: String,
    pub kind: &'static str,
    pub title: String,
    pub text: String,
    pub images: Vec<String>,
    pub deliveries: Vec<DeliveryView>,
}

/// The ticket's fields as shown (the whole customer identifier only here).
pub struct TicketView {
    pub id: u64,
    pub number: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub reporter: String,
    pub source: String,
    pub customer_kind: &'static str,
    pub customer_full: String,
    pub system: String,
    pub category: String,
    pub priority: &'static str,
    pub assignee_label: String,
    pub created: String,
    pub sla_first: String,
    pub sla_resolution: String,
    pub first_overdue: bool,
    pub resolution_overdue: bool,
    pub rating: Option<String>,
    pub description: String,
    pub screenshots: Vec<String>,
    pub closed: bool,
    pub publishable: bool,
    /// The incident it is linked to, or empty.
    pub incident: String,
    /// Merged into this ticket, or empty.
    pub merged_into: String,
    pub links: Vec<String>,
}

#[derive(Template)]
#[template(path = "ticket.html", config = "src/http/console/askama.toml")]
pub struct TicketPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// What the handler typed into the reply box and the reason field, kept when an action
    /// was refused.
    pub typed_text: String,
    pub typed_reason: String,
    pub t: TicketView,
    pub thread: Vec<EventView>,
    pub next_statuses: Vec<OptionView>,
    pub categories: Vec<OptionView>,
    /// The ticket has a category (else the category list starts at "未分类").
    pub categorized: bool,
    pub priorities: Vec<OptionView>,
    pub assignees: Vec<OptionView>,
    /// Active incidents the ticket can be linked to (filled by the page handler).
    pub incidents: Vec<OptionView>,
    /// The reporter's other tickets, and the same customer's (filled by the page handler).
    pub by_reporter: Vec<HistoryRow>,
    pub by_customer: Vec<HistoryRow>,
    /// Reply templates (name, text with the variables filled in) and macros (id, name).
    pub templates: Vec<(String, String)>,
    pub macros: Vec<(u64, String)>,
    /// The last event when the page was made (collision check), and whether the next send
    /// is the confirmation of one.
    pub last_seq: u64,
    pub confirm: bool,
}

/// Another ticket in a ticket page's history panels.
pub struct HistoryRow {
    pub number: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub summary: String,
    pub reporter: String,
    pub filed: String,
}

pub fn history_row(t: &Ticket, clock: &Clock) -> HistoryRow {
    HistoryRow {
        number: t.number.clone(),
        status_key: t.status.key(),
        status_label: t.status.label(),
        summary: crate::ident::mask_truncate(&t.description, 30),
        reporter: t.reporter_label(),
        filed: clock.time(t.created_at),
    }
}

#[derive(Template)]
#[template(path = "ticket_live.html", config = "src/http/console/askama.toml")]
pub struct TicketLive {
    pub csrf: String,
    pub t: TicketView,
    pub thread: Vec<EventView>,
}

pub fn rating_label(t: &Ticket) -> Option<String> {
    t.rating.as_ref().map(|r| {
        format!(
            "{}{}",
            if r.solved { "已解决" } else { "未解决" },
            r.score
                .map(|s| format!(" · 满意度 {s} 分"))
                .unwrap_or_default()
        )
    })
}

pub fn ticket_view(t: &Ticket, cfg: &SlaConfig, clock: &Clock) -> TicketView {
    let s = sla::state(t, cfg, clock.now);
    TicketView {
        id: t.id,
        number: t.number.clone(),
        status_key: t.status.key(),
        status_label: t.status.label(),
        reporter: t.reporter_label(),
        source: match (t.channel, t.chat_type) {
            (crate::wecom::Channel::App, _) => "应用单聊".into(),
            (_, crate::wecom::ChatType::Group) => format!("群聊 {}", t.chat_id),
            _ => "机器人单聊".into(),
        },
        customer_kind: t.customer_id.kind.label(),
        customer_full: t.customer_id.value.clone(),
        system: t.system.clone(),
        category: t.category.map_or("未分类", Category::label).to_owned(),
        priority: t.priority.label(),
        assignee_label: t.assignee.clone().unwrap_or_else(|| "未分配".into()),
        created: clock.time(t.created_at),
        sla_first: s.first_response.label(),
        sla_resolution: s.resolution.label(),
        first_overdue: t.status.is_open() && s.first_response.is_overdue(),
        resolution_overdue: t.status.is_open() && s.resolution.is_overdue(),
        rating: rating_label(t),
        description: t.description.clone(),
        screenshots: t.screenshots.clone(),
        closed: t.status == Status::Closed,
        publishable: matches!(t.status, Status::Resolved | Status::Closed),
        incident: t.incident.clone().unwrap_or_default(),
        merged_into: t.merged_into.clone().unwrap_or_default(),
        links: t.links.clone(),
    }
}

fn delivery_view(id: u64, d: &Delivery, clock: &Clock) -> DeliveryView {
    let (state, label) = match d {
        Delivery::Queued { attempts: 0, .. } => ("queued", "排队中".to_owned()),
        Delivery::Queued {
            attempts,
            last_error,
        } => (
            "queued",
            format!(
                "重试中（第{}次，{}）",
                attempts,
                last_error.clone().unwrap_or_default()
            ),
        ),
        Delivery::Sent { at } => ("sent", format!("已送达 {}", clock.time(*at))),
        Delivery::Failed { error } => ("failed", format!("失败：{error}")),
        Delivery::Unknown => ("unknown", "状态未知".to_owned()),
    };
    DeliveryView { id, state, label }
}

pub fn event_view(
    e: &TicketEvent,
    t: &Ticket,
    deliveries: &[(u64, Delivery)],
    clock: &Clock,
) -> EventView {
    let actor = match &e.actor {
        crate::tickets::Actor::Reporter(_) => t.reporter_label(),
        crate::tickets::Actor::Handler(h) => h.clone(),
        crate::tickets::Actor::System => "系统".into(),
    };
    let (kind, title, text, images, deliveries) = match &e.kind {
        EventKind::Created => (
            "agent",
            "提交工单".to_owned(),
            format!(
                "客户标识：{} {}\n系统：{}\n问题描述：{}\n截图：{} 张",
                t.customer_id.kind.label(),
                t.customer_id.value,
                t.system,
                t.description,
                t.screenshots.len()
            ),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::AgentMessage { text, images } => (
            "agent",
            "报告人补充".to_owned(),
            text.clone(),
            images.clone(),
            Vec::new(),
        ),
        EventKind::Reply {
            text,
            jobs,
            attachments,
        } => (
            "reply",
            "回复报告人".to_owned(),
            {
                let files: Vec<&str> = attachments
                    .iter()
                    .filter(|a| !a.image)
                    .map(|a| a.name.as_str())
                    .collect();
                if files.is_empty() {
                    text.clone()
                } else {
                    format!("{text}\n附件：{}", files.join("、"))
                }
            },
            attachments
                .iter()
                .filter(|a| a.image)
                .map(|a| a.media.clone())
                .collect(),
            jobs.iter()
                .filter_map(|j| deliveries.iter().find(|(id, _)| id == j))
                .map(|(id, d)| delivery_view(*id, d, clock))
                .collect(),
        ),
        EventKind::Note { text } => (
            "note",
            "内部备注".to_owned(),
            text.clone(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::Status { from, to, reason } => (
            "status",
            format!("状态：{} → {}", from.label(), to.label()),
            reason.clone(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::Assigned { to } => (
            "meta-change",
            to.as_ref()
                .map_or_else(|| "取消分配".to_owned(), |a| format!("分配给 {a}")),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::CategorySet { category } => (
            "meta-change",
            format!("问题分类：{}", category.label()),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::PrioritySet { priority } => (
            "meta-change",
            format!("优先级：{}", priority.label()),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::Rated { solved, score } => (
            "rating",
            format!(
                "报告人评价：{}{}",
                if *solved { "已解决" } else { "未解决" },
                score
                    .map(|s| format!(" · 满意度 {s} 分"))
                    .unwrap_or_default()
            ),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::HumanRequested => (
            "human",
            "报告人请求人工协助（接手即告知报告人）".to_owned(),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::IncidentLinked { incident } => (
            "meta-change",
            format!("关联到事件 {incident}（事件进展会推送给报告人）"),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::MergedInto { into } => (
            "status",
            format!("已合并到工单 {into}（后续由它跟进）"),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::MergedFrom { from } => (
            "meta-change",
            format!("工单 {from} 已合并到此"),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::Linked { ticket } => (
            "meta-change",
            format!("关联工单 {ticket}"),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::Unlinked { ticket } => (
            "meta-change",
            format!("取消关联工单 {ticket}"),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
        EventKind::IncidentUnlinked { incident } => (
            "meta-change",
            format!("取消关联事件 {incident}"),
            String::new(),
            Vec::new(),
            Vec::new(),
        ),
    };
    EventView {
        at: clock.time(e.at),
        actor,
        kind,
        title,
        text,
        images,
        deliveries,
    }
}

pub fn ticket_page(
    chrome: Chrome,
    t: &Ticket,
    events: &[TicketEvent],
    deliveries: &[(u64, Delivery)],
    logins: &[String],
    cfg: &SlaConfig,
    clock: &Clock,
) -> TicketPage {
    let thread = events
        .iter()
        .map(|e| event_view(e, t, deliveries, clock))
        .collect();
    let next: Vec<(&str, &str)> = Status::ALL
        .iter()
        .filter(|s| t.status.can_become(**s))
        .map(|s| (s.key(), s.label()))
        .collect();
    TicketPage {
        user: chrome.user,
        csrf: chrome.csrf,
        flash: chrome.flash,
        typed_text: String::new(),
        typed_reason: String::new(),
        t: ticket_view(t, cfg, clock),
        thread,
        next_statuses: options(next, ""),
        categories: options(
            Category::ALL.iter().map(|c| (c.key(), c.label())),
            t.category.map_or("", Category::key),
        ),
        categorized: t.category.is_some(),
        priorities: options(
            Priority::ALL.iter().map(|p| (p.key(), p.label())),
            t.priority.key(),
        ),
        assignees: options(
            logins.iter().map(|l| (l.as_str(), l.as_str())),
            t.assignee.as_deref().unwrap_or(""),
        ),
        incidents: Vec::new(),
        by_reporter: Vec::new(),
        by_customer: Vec::new(),
        templates: Vec::new(),
        macros: Vec::new(),
        last_seq: events.iter().map(|e| e.seq).max().unwrap_or(0),
        confirm: false,
    }
}

pub struct DraftView {
    pub id: String,
    pub question: String,
    pub similar: String,
    pub answer: String,
    pub system: String,
    pub path: String,
}

pub struct DeadView {
    pub id: u64,
    pub lane: String,
    pub kind: &'static str,
    pub origin: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "admin.html", config = "src/http/console/askama.toml")]
pub struct AdminPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// The login typed into the new-account form, kept when it was refused.
    pub typed_login: String,
    pub users: Vec<(String, &'static str)>,
    pub drafts: Vec<DraftView>,
    pub kb_errors: Vec<String>,
    pub dead: Vec<DeadView>,
    pub faq: Report,
    pub faq_rate: String,
    /// Hot entries by their question (an entry no longer in kb/ by its id), with the count.
    pub hot: Vec<(String, usize)>,
}
