//! The incident pages (`/console/incidents…`) and their JSON API (`/api/v1/incidents…`):
//! the list (active first, then recent), the incident page (timeline, alerts with their
//! links back, linked tickets) and the actions: acknowledge, update (broadcast to the
//! linked reporters), resolve, reopen, link and unlink a ticket, declare.

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ApiUser, Caller, PageUser};
use super::ops::blocking;
use super::pages::{render, user_view};
use super::views::{Clock, Flash, OptionView, UserView};
use crate::http::AppState;
use crate::http::error::{ApiError, ConsoleError};
use crate::incidents::{
    Alert, AlertStatus, Declare, EventKind, Incident, IncidentEvent, IncidentStatus, Op,
};
use crate::outbox::Status as Delivery;
use crate::tickets::{Priority, Ticket};

/// How many resolved incidents the list shows after the active ones.
const RECENT: usize = 50;

// --- views -----------------------------------------------------------------------------------

pub struct IncidentRow {
    pub number: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub title: String,
    pub system: String,
    pub priority: &'static str,
    pub severity: &'static str,
    pub major: bool,
    pub alerts_firing: u32,
    pub alerts: u32,
    pub tickets: usize,
    pub opened: String,
    pub age: String,
    /// 报告聚集 when agents' reports made it.
    pub outbreak: bool,
}

fn row(i: &Incident, clock: &Clock) -> IncidentRow {
    IncidentRow {
        number: i.number.clone(),
        status_key: i.status.key(),
        status_label: i.status.label(),
        title: i.title.clone(),
        system: i.system.clone(),
        priority: i.priority.key(),
        severity: i.severity.label(),
        major: i.major.is_some(),
        alerts_firing: i.alerts_firing,
        alerts: i.alerts,
        tickets: i.tickets.len(),
        opened: clock.time(i.opened_at),
        age: clock.ago(i.opened_at),
        outbreak: i.sources.contains(&crate::incidents::Source::Outbreak),
    }
}

#[derive(Template)]
#[template(path = "incidents_rows.html", config = "src/http/console/askama.toml")]
pub struct IncidentRows {
    pub active: Vec<IncidentRow>,
    pub recent: Vec<IncidentRow>,
}

#[derive(Template)]
#[template(path = "incidents.html", config = "src/http/console/askama.toml")]
pub struct IncidentsPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub active: Vec<IncidentRow>,
    pub recent: Vec<IncidentRow>,
    pub systems: Vec<String>,
    pub priorities: Vec<OptionView>,
}

pub struct IncidentView {
    pub id: u64,
    pub number: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub active: bool,
    pub open: bool,
    pub title: String,
    pub system: String,
    pub severity: &'static str,
    pub priority: &'static str,
    pub sources: String,
    pub major: Option<String>,
    pub opened: String,
    pub acknowledged: String,
    pub resolved: String,
    pub mttr: String,
    pub resolution: String,
    pub external_url: String,
}

pub struct TimelineView {
    pub kind: &'static str,
    pub actor: String,
    pub title: String,
    pub text: String,
    pub at: String,
    /// For a broadcast: how far its delivery is ("已送达 3/4 · 排队 1").
    pub progress: String,
}

/// Delivery of one broadcast's messages.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Fanout {
    pub total: usize,
    pub sent: usize,
    pub queued: usize,
    pub failed: usize,
}

impl Fanout {
    fn label(&self) -> String {
        if self.total == 0 {
            return String::new();
        }
        let mut s = format!("推送：已送达 {}/{}", self.sent, self.total);
        if self.queued > 0 {
            s.push_str(&format!(" · 排队 {}", self.queued));
        }
        if self.failed > 0 {
            s.push_str(&format!(" · 失败 {}", self.failed));
        }
        s
    }
}

/// The outbox jobs of a broadcast event.
fn jobs_of(e: &IncidentEvent) -> &[u64] {
    match &e.kind {
        EventKind::Update { jobs, .. } | EventKind::Resolved { jobs, .. } => jobs,
        _ => &[],
    }
}

pub struct AlertView {
    pub name: String,
    pub firing: bool,
    pub summary: String,
    pub severity: &'static str,
    pub labels: Vec<(String, String)>,
    pub generator_url: String,
    pub silence_url: String,
    pub links: Vec<(String, String)>,
    pub since: String,
    pub last_seen: String,
    pub repeats: u32,
}

pub struct LinkedTicket {
    pub number: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub reporter: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "incident_live.html", config = "src/http/console/askama.toml")]
pub struct IncidentLive {
    pub csrf: String,
    pub i: IncidentView,
    pub timeline: Vec<TimelineView>,
    pub alerts: Vec<AlertView>,
    pub tickets: Vec<LinkedTicket>,
    /// The system's similarity cut-off.
    pub cutoff: String,
    /// Members following it without a ticket.
    pub subscribers: usize,
    /// Other active incidents (merge targets).
    pub others: Vec<OptionView>,
}

#[derive(Template)]
#[template(path = "incident.html", config = "src/http/console/askama.toml")]
pub struct IncidentPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub typed_text: String,
    pub i: IncidentView,
    pub timeline: Vec<TimelineView>,
    pub alerts: Vec<AlertView>,
    pub tickets: Vec<LinkedTicket>,
    pub cutoff: String,
    pub subscribers: usize,
    pub others: Vec<OptionView>,
}

impl IncidentPage {
    fn new(c: &Caller, live: IncidentLive, flash: Option<Flash>, typed_text: String) -> Self {
        IncidentPage {
            user: user_view(c),
            csrf: live.csrf,
            flash,
            typed_text,
            i: live.i,
            timeline: live.timeline,
            alerts: live.alerts,
            tickets: live.tickets,
            cutoff: live.cutoff,
            subscribers: live.subscribers,
            others: live.others,
        }
    }
}

fn minutes(ms: i64) -> String {
    let m = ms.max(0) / 60_000;
    if m >= 60 {
        format!("{}小时{}分", m / 60, m % 60)
    } else {
        format!("{m}分钟")
    }
}

fn incident_view(i: &Incident, clock: &Clock) -> IncidentView {
    let at = |t: Option<i64>| t.map_or_else(|| "—".to_owned(), |t| clock.time(t));
    IncidentView {
        id: i.id,
        number: i.number.clone(),
        status_key: i.status.key(),
        status_label: i.status.label(),
        active: i.status.is_active(),
        open: i.status == IncidentStatus::Open,
        title: i.title.clone(),
        system: i.system.clone(),
        severity: i.severity.label(),
        priority: i.priority.label(),
        sources: i
            .sources
            .iter()
            .map(|s| s.label())
            .collect::<Vec<_>>()
            .join("、"),
        major: i
            .major
            .as_ref()
            .map(|m| format!("{}（{}）", m.reason, clock.time(m.at))),
        opened: format!("{}（{}）", clock.time(i.opened_at), i.opened_by),
        acknowledged: at(i.acknowledged_at),
        resolved: at(i.resolved_at),
        mttr: match (i.mttr_ms, i.resolved_at) {
            (Some(ms), _) => minutes(ms),
            (None, None) => format!("已持续 {}", minutes(clock.now - i.opened_at)),
            (None, Some(_)) => "—".into(),
        },
        resolution: i.resolution.clone().unwrap_or_default(),
        external_url: safe_url(&i.external_url),
    }
}

/// Only http(s) links are rendered as links (a label could carry `javascript:`).
fn safe_url(u: &str) -> String {
    if u.starts_with("http://") || u.starts_with("https://") {
        u.to_owned()
    } else {
        String::new()
    }
}

fn timeline_view(e: &IncidentEvent, fanout: Option<&Fanout>, clock: &Clock) -> TimelineView {
    let (kind, title, text) = match &e.kind {
        EventKind::Opened { source } => (
            "status",
            format!("事件开启（{}）", source.label()),
            String::new(),
        ),
        EventKind::AlertFired { name, .. } => ("alert", format!("告警触发：{name}"), String::new()),
        EventKind::AlertResolved { name, .. } => {
            ("resolved-alert", format!("告警恢复：{name}"), String::new())
        }
        EventKind::Acknowledged => ("status", "已确认，处理中".into(), String::new()),
        EventKind::Update {
            text, reporters, ..
        } => (
            "reply",
            format!("进展通报（推送给 {reporters} 名报告人）"),
            text.clone(),
        ),
        EventKind::Resolved { note, .. } => ("status", "事件已恢复".into(), note.clone()),
        EventKind::Reports { reporters } => (
            "human",
            format!("报告聚集：{reporters} 名报告人反馈同一问题"),
            String::new(),
        ),
        EventKind::MergedFrom { incident } => (
            "meta-change",
            format!("事件 {incident} 已合并到此"),
            String::new(),
        ),
        EventKind::MergedInto { incident } => {
            ("status", format!("已合并到事件 {incident}"), String::new())
        }
        EventKind::Detached { ticket, .. } => (
            "meta-change",
            match ticket {
                Some(t) => format!("报告人表示不是同一问题，工单 {t} 已取消关联"),
                None => "报告人表示不是同一问题，已取消通知".to_owned(),
            },
            String::new(),
        ),
        EventKind::CutoffSet { cutoff } => (
            "meta-change",
            format!("本系统相似度阈值设为 {cutoff:.2}"),
            String::new(),
        ),
        EventKind::Reopened { reason } => ("status", "重新打开".into(), reason.clone()),
        EventKind::TicketLinked { ticket } => {
            ("meta-change", format!("关联工单 {ticket}"), String::new())
        }
        EventKind::TicketUnlinked { ticket } => (
            "meta-change",
            format!("取消关联工单 {ticket}"),
            String::new(),
        ),
        EventKind::Major { reason } => ("human", "升级为重大事件".into(), reason.clone()),
    };
    TimelineView {
        kind,
        actor: e.actor.clone(),
        title,
        text,
        at: clock.time(e.at),
        progress: fanout.map(Fanout::label).unwrap_or_default(),
    }
}

fn alert_view(a: &Alert, clock: &Clock) -> AlertView {
    AlertView {
        name: a.name.clone(),
        firing: a.status == AlertStatus::Firing,
        summary: a.summary.clone(),
        severity: a.severity.label(),
        labels: a
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        generator_url: safe_url(&a.generator_url),
        silence_url: safe_url(&a.silence_url),
        links: a
            .links
            .iter()
            .filter(|l| !safe_url(&l.href).is_empty())
            .map(|l| (l.href.clone(), l.text.clone()))
            .collect(),
        since: a
            .starts_at
            .map_or_else(|| clock.time(a.first_seen), |t| clock.time(t)),
        last_seen: clock.ago(a.last_seen),
        repeats: a.repeats,
    }
}

fn linked_view(t: &Ticket) -> LinkedTicket {
    LinkedTicket {
        number: t.number.clone(),
        status_key: t.status.key(),
        status_label: t.status.label(),
        reporter: t.reporter_label(),
        summary: crate::ident::mask_truncate(&t.description, 40),
    }
}

// --- JSON ------------------------------------------------------------------------------------

/// A list item of the API (and the head of the detail).
pub fn incident_json(i: &Incident) -> Value {
    json!({
        "number": i.number,
        "status": i.status.key(),
        "status_label": i.status.label(),
        "title": i.title,
        "system": i.system,
        "severity": i.severity.key(),
        "priority": i.priority.key(),
        "major": i.major.is_some(),
        "major_reason": i.major.as_ref().map(|m| m.reason.clone()),
        "sources": i.sources.iter().map(|s| s.key()).collect::<Vec<_>>(),
        "opened_by": i.opened_by,
        "opened_at": i.opened_at,
        "acknowledged_at": i.acknowledged_at,
        "resolved_at": i.resolved_at,
        "updated_at": i.updated_at,
        "last_alert_at": i.last_alert_at,
        "alerts": i.alerts,
        "alerts_firing": i.alerts_firing,
        "tickets": i.tickets,
        "resolution": i.resolution,
        "mttr_ms": i.mttr_ms,
        "tta_ms": i.tta_ms,
        "external_url": i.external_url,
        "subscribers": i.subscribers.len(),
        "merged_into": i.merged_into,
    })
}

// --- loading ---------------------------------------------------------------------------------

struct Loaded {
    incident: Incident,
    events: Vec<IncidentEvent>,
    /// Delivery of each broadcast event, by its seq.
    fanouts: Vec<(u64, Fanout)>,
    alerts: Vec<Alert>,
    tickets: Vec<Ticket>,
    cutoff: f32,
    /// Other active incidents (merge targets).
    others: Vec<(String, String)>,
}

async fn load(state: &AppState, number: &str) -> Result<Loaded, ConsoleError> {
    let (st, number) = (state.clone(), number.to_owned());
    blocking(move || {
        let incident = st
            .incidents
            .by_number(&number)?
            .ok_or(ConsoleError::NotFound)?;
        let mut tickets = Vec::new();
        for n in &incident.tickets {
            if let Some(t) = st.tickets.by_number(n)? {
                tickets.push(t);
            }
        }
        let events = st.incidents.events(incident.id)?;
        let mut fanouts = Vec::new();
        for e in &events {
            let jobs = jobs_of(e);
            if jobs.is_empty() {
                continue;
            }
            let mut f = Fanout {
                total: jobs.len(),
                ..Fanout::default()
            };
            for id in jobs {
                match st.outbox.status(*id)? {
                    Delivery::Sent { .. } | Delivery::Unknown => f.sent += 1,
                    Delivery::Queued { .. } => f.queued += 1,
                    Delivery::Failed { .. } => f.failed += 1,
                }
            }
            fanouts.push((e.seq, f));
        }
        let others = st
            .incidents
            .active()?
            .into_iter()
            .filter(|i| i.id != incident.id)
            .map(|i| (i.number, i.title))
            .collect();
        Ok(Loaded {
            cutoff: st.incidents.cutoff(&incident.system)?,
            events,
            fanouts,
            alerts: st.incidents.alerts_of(incident.id)?,
            tickets,
            others,
            incident,
        })
    })
    .await
}

/// Active incidents (newest first), then the most recent resolved ones.
async fn list(state: &AppState, status: &str) -> Result<Vec<Incident>, ConsoleError> {
    let (st, status) = (state.clone(), status.to_owned());
    blocking(move || {
        let active = st.incidents.active()?;
        let resolved = || -> Result<Vec<Incident>, ConsoleError> {
            Ok(st
                .incidents
                .recent(RECENT + active.len())?
                .into_iter()
                .filter(|i| !i.status.is_active())
                .take(RECENT)
                .collect())
        };
        Ok(match status.as_str() {
            "open" => active.clone(),
            "resolved" => resolved()?,
            "all" | "" => {
                let mut all = active.clone();
                all.extend(resolved()?);
                all
            }
            _ => {
                return Err(ConsoleError::BadInput(
                    "status 只能是 open、resolved 或 all".into(),
                ));
            }
        })
    })
    .await
}

fn live(state: &AppState, csrf: String, l: &Loaded) -> IncidentLive {
    let clock = super::pages::clock(state);
    IncidentLive {
        csrf,
        i: incident_view(&l.incident, &clock),
        timeline: l
            .events
            .iter()
            .rev()
            .map(|e| {
                let fanout = l
                    .fanouts
                    .iter()
                    .find(|(seq, _)| *seq == e.seq)
                    .map(|(_, f)| f);
                timeline_view(e, fanout, &clock)
            })
            .collect(),
        cutoff: format!("{:.2}", l.cutoff),
        subscribers: l.incident.subscribers.len(),
        others: l
            .others
            .iter()
            .map(|(n, t)| OptionView {
                value: n.clone(),
                label: format!("{n} {t}"),
                selected: false,
            })
            .collect(),
        alerts: l.alerts.iter().map(|a| alert_view(a, &clock)).collect(),
        tickets: l.tickets.iter().map(linked_view).collect(),
    }
}

fn flash(code: &str) -> Option<Flash> {
    let text = match code {
        "acknowledged" => "已确认事件",
        "updated" => "进展已发布，正在推送给关联的报告人",
        "resolved" => "事件已解决，已通知处理群和关联的报告人",
        "reopened" => "事件已重新打开",
        "linked" => "工单已关联，报告人会收到事件进展",
        "unlinked" => "已取消关联",
        "declared" => "事件已声明，已通知处理群",
        "split" => "已拆分为新事件",
        "merged" => "事件已合并",
        "cutoff" => "相似度阈值已更新",
        _ => return None,
    };
    Some(Flash {
        kind: "ok",
        text: text.to_owned(),
    })
}

// --- pages -----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    msg: String,
}

fn rows(state: &AppState, incidents: &[Incident]) -> IncidentRows {
    let clock = super::pages::clock(state);
    let (active, recent): (Vec<&Incident>, Vec<&Incident>) =
        incidents.iter().partition(|i| i.status.is_active());
    IncidentRows {
        active: active.into_iter().map(|i| row(i, &clock)).collect(),
        recent: recent.into_iter().map(|i| row(i, &clock)).collect(),
    }
}

pub async fn page(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, ConsoleError> {
    let incidents = list(&state, "all").await?;
    let rows = rows(&state, &incidents);
    render(IncidentsPage {
        user: user_view(&c),
        csrf: c.csrf.clone().unwrap_or_default(),
        flash: flash(&q.msg),
        active: rows.active,
        recent: rows.recent,
        systems: state.scripts.current().systems().to_vec(),
        priorities: Priority::ALL
            .iter()
            .map(|p| OptionView {
                value: p.key().to_owned(),
                label: p.label().to_owned(),
                selected: *p == Priority::P2,
            })
            .collect(),
    })
}

pub async fn rows_part(
    State(state): State<AppState>,
    PageUser(_): PageUser,
) -> Result<Html<String>, ConsoleError> {
    let incidents = list(&state, "all").await?;
    render(rows(&state, &incidents))
}

#[derive(Debug, Default, Deserialize)]
pub struct FlashQuery {
    #[serde(default)]
    msg: String,
}

pub async fn incident(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path(number): Path<String>,
    Query(q): Query<FlashQuery>,
) -> Result<Html<String>, ConsoleError> {
    let l = load(&state, &number).await?;
    let live = live(&state, c.csrf.clone().unwrap_or_default(), &l);
    render(IncidentPage::new(&c, live, flash(&q.msg), String::new()))
}

pub async fn incident_live(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path(number): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    let l = load(&state, &number).await?;
    render(live(&state, c.csrf.clone().unwrap_or_default(), &l))
}

/// Fields of an incident action (form fields or JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IncidentInput {
    pub text: String,
    pub ticket: String,
    /// `merge`: the incident to merge into.
    pub into: String,
    /// `cutoff`: the system's new similarity cut-off (a number, or text from a form).
    pub cutoff: Option<serde_json::Value>,
}

fn op_of(action: &str, input: IncidentInput) -> Result<(Op, &'static str), ConsoleError> {
    let ticket = || {
        let t = input.ticket.trim().to_uppercase();
        if t.is_empty() {
            Err(ConsoleError::BadInput("请填写工单号".into()))
        } else {
            Ok(t)
        }
    };
    Ok(match action {
        "ack" => (Op::Acknowledge, "acknowledged"),
        "update" => (Op::Update(input.text.clone()), "updated"),
        "resolve" => (Op::Resolve(input.text.clone()), "resolved"),
        "reopen" => (Op::Reopen(input.text.clone()), "reopened"),
        "link" => (Op::Link(ticket()?), "linked"),
        "unlink" => (Op::Unlink(ticket()?), "unlinked"),
        "split" => (Op::Split(ticket()?), "split"),
        "merge" => {
            let into = input.into.trim().to_uppercase();
            if into.is_empty() {
                return Err(ConsoleError::BadInput("请选择要合并到的事件".into()));
            }
            (Op::Merge(into), "merged")
        }
        _ => return Err(ConsoleError::NotFound),
    })
}

async fn act(
    state: &AppState,
    caller: &Caller,
    number: &str,
    action: &str,
    input: IncidentInput,
) -> Result<(Incident, &'static str), ConsoleError> {
    if action == "cutoff" {
        let cutoff = match &input.cutoff {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| ConsoleError::BadInput("请填写 0.05 到 0.95 之间的相似度阈值".into()))?;
        let (incidents, number, me) = (
            state.incidents.clone(),
            number.to_owned(),
            caller.login.clone(),
        );
        return blocking(move || {
            incidents.set_cutoff(&number, &me, cutoff as f32)?;
            let i = incidents
                .by_number(&number)?
                .ok_or(ConsoleError::NotFound)?;
            Ok((i, "cutoff"))
        })
        .await;
    }
    let (op, code) = op_of(action, input)?;
    let (incidents, number, me) = (
        state.incidents.clone(),
        number.to_owned(),
        caller.login.clone(),
    );
    blocking(move || Ok((incidents.act(&number, &me, &op)?, code))).await
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(flatten)]
    input: IncidentInput,
    /// The page to return to: `ticket` for the ticket page's link/unlink forms.
    #[serde(default)]
    back: String,
}

pub async fn act_form(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path((number, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    let typed = form.input.text.clone();
    let ticket = form.input.ticket.trim().to_uppercase();
    match act(&state, &c, &number, &action, form.input).await {
        Ok((_, code)) if form.back == "ticket" && !ticket.is_empty() => Ok(Redirect::to(&format!(
            "/console/tickets/{ticket}?msg=incident_{code}"
        ))
        .into_response()),
        Ok((i, code)) => {
            // A merge goes on at the incident merged into.
            let shown = i.merged_into.unwrap_or(i.number);
            Ok(Redirect::to(&format!("/console/incidents/{shown}?msg={code}")).into_response())
        }
        Err(
            e @ (ConsoleError::Incident(_) | ConsoleError::BadInput(_) | ConsoleError::Ticket(_)),
        ) => {
            let (status, _) = e.status_and_code();
            let l = load(&state, &number).await?;
            let live = live(&state, c.csrf.clone().unwrap_or_default(), &l);
            let shown = Some(Flash {
                kind: "error",
                text: e.to_string(),
            });
            let page = IncidentPage::new(&c, live, shown, typed);
            Ok((status, render(page)?).into_response())
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LinkForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    incident: String,
    #[serde(default)]
    ticket: String,
}

/// The ticket page's "关联到事件" form: link the ticket, back to the ticket.
pub async fn link_form(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Form(form): Form<LinkForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    let input = IncidentInput {
        ticket: form.ticket.clone(),
        ..IncidentInput::default()
    };
    act(&state, &c, &form.incident, "link", input).await?;
    let ticket = form.ticket.trim().to_uppercase();
    Ok(Redirect::to(&format!("/console/tickets/{ticket}?msg=incident_linked")).into_response())
}

/// Active incidents as choices for a ticket page's link form.
pub fn active_options(state: &AppState) -> Result<Vec<OptionView>, ConsoleError> {
    Ok(state
        .incidents
        .active()?
        .into_iter()
        .map(|i| OptionView {
            label: format!("{} {}（{}）", i.number, i.title, i.system),
            value: i.number,
            selected: false,
        })
        .collect())
}

/// A declaration (form or JSON): title, system, priority, tickets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeclareInput {
    pub title: String,
    pub system: String,
    pub priority: String,
    /// JSON: a list of ticket numbers.
    pub tickets: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeclareForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    system: String,
    #[serde(default)]
    priority: String,
    /// Form: ticket numbers separated by spaces, commas or lines.
    #[serde(default)]
    tickets: String,
}

async fn declare(
    state: &AppState,
    caller: &Caller,
    input: DeclareInput,
) -> Result<Incident, ConsoleError> {
    let priority = if input.priority.trim().is_empty() {
        Priority::P3
    } else {
        Priority::parse(input.priority.trim())
            .ok_or_else(|| ConsoleError::BadInput("优先级只能是 P1–P4".into()))?
    };
    let d = Declare {
        title: input.title,
        system: input.system,
        priority,
        tickets: input
            .tickets
            .iter()
            .map(|t| t.trim().to_uppercase())
            .filter(|t| !t.is_empty())
            .collect(),
    };
    let (incidents, me) = (state.incidents.clone(), caller.login.clone());
    blocking(move || Ok(incidents.declare(&me, &d)?)).await
}

pub async fn declare_form(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Form(form): Form<DeclareForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    let input = DeclareInput {
        title: form.title,
        system: form.system,
        priority: form.priority,
        tickets: form
            .tickets
            .split(|ch: char| ch.is_whitespace() || ch == ',' || ch == '，')
            .map(str::to_owned)
            .collect(),
    };
    let i = declare(&state, &c, input).await?;
    Ok(Redirect::to(&format!("/console/incidents/{}?msg=declared", i.number)).into_response())
}

// --- API -------------------------------------------------------------------------------------

fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

pub async fn api_list(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = if q.status.is_empty() {
        "all"
    } else {
        &q.status
    };
    let incidents = list(&state, status).await?;
    Ok(Json(json!({
        "incidents": incidents.iter().map(incident_json).collect::<Vec<_>>(),
    })))
}

pub async fn api_get(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let l = load(&state, &number).await?;
    let mut v = incident_json(&l.incident);
    v["timeline"] = serde_json::to_value(&l.events).unwrap_or_default();
    v["alerts"] = serde_json::to_value(&l.alerts).unwrap_or_default();
    v["fanout"] = l
        .fanouts
        .iter()
        .map(|(seq, f)| json!({ "event": seq, "total": f.total, "sent": f.sent, "queued": f.queued, "failed": f.failed }))
        .collect();
    v["similarity_cutoff"] = l.cutoff.into();
    v["linked_tickets"] = l
        .tickets
        .iter()
        .map(|t| {
            json!({
                "number": t.number,
                "status": t.status.key(),
                "reporter": t.reporter,
                "system": t.system,
            })
        })
        .collect();
    // `alerts` is a count in the list; the detail carries the alerts themselves, and the
    // count stays available.
    v["alert_count"] = l.incident.alerts.into();
    Ok(Json(json!({ "incident": v })))
}

pub async fn api_declare(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    body: Result<Json<DeclareInput>, JsonRejection>,
) -> Result<Response, ApiError> {
    c.check_csrf(csrf_header(&headers))?;
    let Json(input) = body
        .map_err(|e| ConsoleError::BadInput(format!("请求体不是有效的 JSON：{}", e.body_text())))?;
    let i = declare(&state, &c, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "incident": incident_json(&i) })),
    )
        .into_response())
}

pub async fn api_act(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path((number, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    c.check_csrf(csrf_header(&headers))?;
    // `ack` needs no body; the others carry `{"text"}` or `{"ticket"}`.
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        IncidentInput::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ConsoleError::BadInput(format!("请求体不是有效的 JSON：{e}")))?
    };
    let (i, code) = act(&state, &c, &number, &action, input).await?;
    Ok(Json(json!({ "ok": code, "incident": incident_json(&i) })))
}
