//! The live board (`/console/board`), the reports page (`/console/reports`), the report API
//! (`/api/v1/reports/summary`, `/api/v1/reports/tickets.csv`) and `/metrics`.

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AdminPage, ApiUser, Caller, PageUser};
use super::ops::blocking;
use super::pages::{render, user_view};
use super::views::{Flash, UserView};
use crate::dashboard::charts::{self, category_label};
use crate::dashboard::weekly::{human, trend};
use crate::dashboard::{Board, CATEGORY_KEYS, Period, Summary, export};
use crate::http::AppState;
use crate::http::error::{ApiError, ConsoleError};

/// Handlers and admins see reports (a viewer role, if one is added, would not).
fn may_see_reports(c: &Caller) -> Result<(), ConsoleError> {
    match c.role {
        crate::accounts::Role::Admin | crate::accounts::Role::Handler => Ok(()),
    }
}

// --- period ----------------------------------------------------------------------------------

/// The period picker: `period` = `this_week` (default), `last_week`, `this_month`,
/// `last_month`, `custom` (with `from`, `to`), or `from`/`to` alone.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct PeriodQuery {
    pub period: String,
    pub from: String,
    pub to: String,
    pub msg: String,
    /// The CSV export: whole identifiers (admins; audited).
    pub whole: String,
}

fn period_of(q: &PeriodQuery, state: &AppState, now: i64) -> Result<Period, ConsoleError> {
    let offset = state.cfg.utc_offset();
    let bad = |e: crate::dashboard::PeriodError| ConsoleError::BadInput(e.to_string());
    if !q.from.is_empty() || !q.to.is_empty() {
        return Period::parse(&q.from, &q.to, offset).map_err(bad);
    }
    let today = Period::day_of(now, offset);
    Ok(match q.period.as_str() {
        "" | "this_week" => Period::week_of(now, offset),
        "last_week" => Period::last_week(now, offset),
        "this_month" => {
            Period::month(&today.from.format("%Y-%m").to_string(), offset).map_err(bad)?
        }
        "last_month" => {
            let first =
                Period::month(&today.from.format("%Y-%m").to_string(), offset).map_err(bad)?;
            let before = first.from - chrono::Duration::days(1);
            Period::month(&before.format("%Y-%m").to_string(), offset).map_err(bad)?
        }
        "custom" => {
            return Err(ConsoleError::BadInput(
                "自定义时间段请填写开始和结束日期".into(),
            ));
        }
        _ => return Err(ConsoleError::BadInput("未知的时间段".into())),
    })
}

// --- board -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "board_live.html", config = "src/http/console/askama.toml")]
pub struct BoardLive {
    pub b: Board,
}

#[derive(Template)]
#[template(path = "board.html", config = "src/http/console/askama.toml")]
pub struct BoardPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub b: Board,
}

async fn board_now(state: &AppState) -> Result<Board, ConsoleError> {
    let d = state.dashboard.clone();
    blocking(move || Ok(d.board(crate::util::unix_millis())?)).await
}

pub async fn board(
    State(state): State<AppState>,
    PageUser(c): PageUser,
) -> Result<Html<String>, ConsoleError> {
    render(BoardPage {
        user: user_view(&c),
        csrf: c.csrf.clone().unwrap_or_default(),
        flash: None,
        b: board_now(&state).await?,
    })
}

pub async fn board_live(
    State(state): State<AppState>,
    PageUser(_): PageUser,
) -> Result<Html<String>, ConsoleError> {
    render(BoardLive {
        b: board_now(&state).await?,
    })
}

// --- reports page ----------------------------------------------------------------------------

/// One figure of the report: now, before, the change, and the queue it counts.
pub struct FigureView {
    pub label: &'static str,
    pub value: String,
    pub previous: String,
    pub change: String,
    pub href: String,
}

pub struct CountView {
    pub label: String,
    pub count: usize,
    pub href: String,
}

#[derive(Template)]
#[template(path = "reports.html", config = "src/http/console/askama.toml")]
pub struct ReportsPage {
    pub user: UserView,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub period: String,
    pub from: String,
    pub to: String,
    pub figures: Vec<FigureView>,
    pub categories: Vec<CountView>,
    pub systems: Vec<CountView>,
    pub charts: Vec<(String, String, String)>,
    pub hot: Vec<(String, usize)>,
    pub unanswered: Vec<(String, usize)>,
    pub incidents: Vec<(String, String)>,
    pub csv: String,
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

fn change(cur: Option<f64>, prev: Option<f64>) -> String {
    match (cur, prev) {
        (Some(c), Some(p)) => trend(c, p),
        _ => "—".into(),
    }
}

/// The queue of the tickets a figure counts.
fn queue(period: &Period, by_resolved: bool, extra: &str) -> String {
    format!(
        "/console/?status=all&from={}&to={}{}{}",
        period.from,
        period.to,
        if by_resolved { "&by=resolved" } else { "" },
        extra
    )
}

fn figures(p: &Period, s: &Summary, prev: &Summary) -> Vec<FigureView> {
    let count = |v: usize| Some(v as f64);
    let filed = queue(p, false, "");
    let resolved = queue(p, true, "");
    let row = |label, value: String, previous: String, ch: String, href: &str| FigureView {
        label,
        value,
        previous,
        change: ch,
        href: href.to_owned(),
    };
    vec![
        row(
            "提交工单",
            s.filed.to_string(),
            prev.filed.to_string(),
            change(count(s.filed), count(prev.filed)),
            &filed,
        ),
        row(
            "已解决",
            s.resolved.to_string(),
            prev.resolved.to_string(),
            change(count(s.resolved), count(prev.resolved)),
            &resolved,
        ),
        row(
            "解决率（本期解决 ÷ 本期提交）",
            pct(s.resolution_rate),
            pct(prev.resolution_rate),
            change(s.resolution_rate, prev.resolution_rate),
            &resolved,
        ),
        row(
            "本期工单已解决占比",
            pct(s.resolved_share),
            pct(prev.resolved_share),
            change(s.resolved_share, prev.resolved_share),
            &filed,
        ),
        row(
            "及时率（SLA 内解决）",
            pct(s.timely_rate),
            pct(prev.timely_rate),
            change(s.timely_rate, prev.timely_rate),
            &resolved,
        ),
        row(
            "首次响应达标率",
            pct(s.first_response_sla_rate),
            pct(prev.first_response_sla_rate),
            change(s.first_response_sla_rate, prev.first_response_sla_rate),
            &filed,
        ),
        row(
            "首次响应 平均 / 中位 / P90",
            format!(
                "{} / {} / {}",
                human(s.first_response.avg),
                human(s.first_response.median),
                human(s.first_response.p90)
            ),
            human(prev.first_response.median),
            change(s.first_response.median, prev.first_response.median),
            &filed,
        ),
        row(
            "解决时长 平均 / 中位 / P90",
            format!(
                "{} / {} / {}",
                human(s.resolution.avg),
                human(s.resolution.median),
                human(s.resolution.p90)
            ),
            human(prev.resolution.median),
            change(s.resolution.median, prev.resolution.median),
            &resolved,
        ),
        row(
            "解决时长（工作时间）中位 / P90",
            format!(
                "{} / {}",
                human(s.resolution.business.median),
                human(s.resolution.business.p90)
            ),
            human(prev.resolution.business.median),
            change(
                s.resolution.business.median,
                prev.resolution.business.median,
            ),
            &resolved,
        ),
        row(
            "重开率",
            pct(s.reopen_rate),
            pct(prev.reopen_rate),
            change(s.reopen_rate, prev.reopen_rate),
            &resolved,
        ),
        row(
            "满意度（4–5 分占比）",
            pct(s.csat),
            pct(prev.csat),
            change(s.csat, prev.csat),
            &resolved,
        ),
        row(
            "评价回复率",
            pct(s.rating_response_rate),
            pct(prev.rating_response_rate),
            change(s.rating_response_rate, prev.rating_response_rate),
            &resolved,
        ),
        row(
            "FAQ 拦截率",
            pct(s.deflection),
            pct(prev.deflection),
            change(s.deflection, prev.deflection),
            "/console/admin",
        ),
    ]
}

pub async fn reports(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Query(q): Query<PeriodQuery>,
) -> Result<Html<String>, ConsoleError> {
    may_see_reports(&c)?;
    let p = period_of(&q, &state, crate::util::unix_millis())?;
    let d = state.dashboard.clone();
    let (s, prev) = blocking(move || Ok(d.summary_with_previous(&p)?)).await?;
    let categories = CATEGORY_KEYS
        .iter()
        .map(|k| CountView {
            label: category_label(k).to_owned(),
            count: s.by_category.get(k).copied().unwrap_or(0),
            href: queue(
                &p,
                false,
                &format!(
                    "&category={}",
                    if *k == "uncategorised" { "none" } else { k }
                ),
            ),
        })
        .collect();
    let mut systems: Vec<CountView> = s
        .by_system
        .iter()
        .map(|(name, n)| CountView {
            label: name.clone(),
            count: *n,
            href: queue(&p, false, &format!("&system={}", urlencode(name))),
        })
        .collect();
    systems.sort_by_key(|c| std::cmp::Reverse(c.count));
    let charts = vec![
        (
            "每日提交（按分类）".to_owned(),
            charts::daily_by_category(&s),
            queue(&p, false, ""),
        ),
        (
            "按系统".to_owned(),
            charts::by_system(&s),
            queue(&p, false, ""),
        ),
        (
            "解决时长分布".to_owned(),
            charts::resolution_distribution(&s),
            queue(&p, true, ""),
        ),
        (
            "及时率趋势".to_owned(),
            charts::sla_trend(&s),
            queue(&p, true, ""),
        ),
        (
            "提交时段".to_owned(),
            charts::heatmap(&s),
            queue(&p, false, ""),
        ),
    ];
    let i = &s.incidents;
    let incidents = vec![
        ("开启".to_owned(), i.opened.to_string()),
        ("已恢复".to_owned(), i.resolved.to_string()),
        ("重大事件".to_owned(), i.major.to_string()),
        ("由报告聚集发现".to_owned(), i.from_outbreaks.to_string()),
        (
            "MTTR 平均 / 中位 / P90".to_owned(),
            format!(
                "{} / {} / {}",
                human(i.mttr.avg),
                human(i.mttr.median),
                human(i.mttr.p90)
            ),
        ),
        ("确认用时 中位".to_owned(), human(i.tta.median)),
    ];
    let flash = (q.msg == "weekly_sent").then(|| Flash {
        kind: "ok",
        text: "周报已推送到处理群".into(),
    });
    render(ReportsPage {
        user: user_view(&c),
        csrf: c.csrf.clone().unwrap_or_default(),
        flash,
        period: if q.period.is_empty() && q.from.is_empty() {
            "this_week".into()
        } else if !q.from.is_empty() {
            "custom".into()
        } else {
            q.period.clone()
        },
        from: p.from.to_string(),
        to: p.to.to_string(),
        figures: figures(&p, &s, &prev),
        categories,
        systems,
        charts,
        hot: s
            .faq_hot
            .iter()
            .map(|(id, n)| {
                let q = state.kb.current().get(id).map(|e| e.question.clone());
                (q.unwrap_or_else(|| id.clone()), *n)
            })
            .collect(),
        unanswered: s.faq_unanswered.clone(),
        incidents,
        csv: format!("/api/v1/reports/tickets.csv?from={}&to={}", p.from, p.to),
    })
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .to_owned()
}

#[derive(Debug, Default, Deserialize)]
pub struct SendForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// An admin sends last week's report to the handler group now.
pub async fn send_weekly(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Form(form): Form<SendForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    let weekly = state.weekly.clone();
    blocking(move || Ok(weekly.send_now(crate::util::unix_millis())?)).await?;
    Ok(Redirect::to("/console/reports?msg=weekly_sent").into_response())
}

// --- API -------------------------------------------------------------------------------------

/// `from`/`to` are required by the API (no default period for scripts).
fn api_period(q: &PeriodQuery, state: &AppState) -> Result<Period, ConsoleError> {
    if q.from.is_empty() || q.to.is_empty() {
        return Err(ConsoleError::BadInput(
            "请提供 from 和 to（YYYY-MM-DD）".into(),
        ));
    }
    period_of(q, state, crate::util::unix_millis())
}

pub async fn api_summary(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    Query(q): Query<PeriodQuery>,
) -> Result<Json<Value>, ApiError> {
    may_see_reports(&c)?;
    let p = api_period(&q, &state)?;
    let d = state.dashboard.clone();
    let s = blocking(move || Ok(d.summary(&p)?)).await?;
    Ok(Json(serde_json::to_value(&s).unwrap_or(json!({}))))
}

pub async fn api_csv(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    may_see_reports(&c)?;
    let p = api_period(&q, &state)?;
    let whole = matches!(q.whole.as_str(), "1" | "true");
    if whole && !c.is_admin() {
        return Err(ConsoleError::Forbidden.into());
    }
    let (tickets, sla, audit, login) = (
        state.tickets.clone(),
        state.cfg.sla.clone(),
        state.audit.clone(),
        c.login.clone(),
    );
    let bytes = blocking(move || {
        if whole {
            audit.record(&login, &format!("tickets.csv {}..{} 含完整客户标识", p.from, p.to))?;
            tracing::warn!(login, from = %p.from, to = %p.to, "export with whole customer identifiers");
        }
        let all = tickets.list()?;
        export::tickets_csv(&p, &all, &sla, whole).map_err(ConsoleError::internal)
    })
    .await?;
    let name = format!("tickets-{}-{}.csv", p.from, p.to);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

// --- /metrics --------------------------------------------------------------------------------

/// Prometheus text format: with `Authorization: Bearer <console.api_token>`, or from a
/// loopback address while `reports.metrics_loopback_only` (default) allows it.
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    super::pages::ClientAddr(peer): super::pages::ClientAddr,
) -> Response {
    let token = state.cfg.console.api_token.expose();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let by_token = !token.is_empty()
        && bearer.is_some_and(|b| crate::util::constant_time_eq(b.as_bytes(), token.as_bytes()));
    // In-process tests have no peer address: they are local.
    let local = peer == "local"
        || peer
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !(by_token || (state.cfg.reports.metrics_loopback_only && local)) {
        return (StatusCode::UNAUTHORIZED, "metrics need the API token").into_response();
    }
    let st = state.clone();
    let gauges = blocking(move || {
        for (s, n) in st.tickets.status_counts()? {
            metrics::gauge!("helpdesk_tickets", "status" => s.key()).set(n as f64);
        }
        metrics::gauge!("helpdesk_incidents_open").set(st.incidents.active()?.len() as f64);
        metrics::gauge!("helpdesk_inbox_pending").set(st.inbox.pending_count() as f64);
        metrics::gauge!("helpdesk_inbox_dead").set(st.inbox.dead_count() as f64);
        let log = st.inbox.log_stats();
        metrics::counter!("helpdesk_inbox_log_syncs_total").absolute(log.syncs);
        metrics::counter!("helpdesk_inbox_log_messages_total").absolute(log.messages);
        metrics::gauge!("helpdesk_outbox_pending").set(st.outbox.pending_count() as f64);
        metrics::gauge!("helpdesk_outbox_dead").set(st.outbox.dead_count() as f64);
        Ok(())
    })
    .await;
    if let Err(e) = gauges {
        return e.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::prometheus().render(),
    )
        .into_response()
}
