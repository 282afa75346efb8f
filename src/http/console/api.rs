//! The JSON API (`/api/v1`): what the console does, for scripts and integrations. Same
//! sessions as the console (CSRF token in `X-CSRF-Token` for writes) or a bearer token
//! (`console.api_token`). Errors are `{"error": code, "message": text}` with the status of
//! the error table.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AdminApi, ApiUser};
use super::ops::{self, ActionInput, blocking};
use super::views::Filters;
use crate::http::AppState;
use crate::http::error::{ApiError, ConsoleError};
use crate::tickets::Ticket;
use crate::tickets::sla::{self, SlaState};

fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

fn ticket_json(t: &Ticket, state: &AppState, now: i64) -> Value {
    let s = sla::state(t, &state.cfg.sla, now);
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    v["status_label"] = t.status.label().into();
    v["sla"] = json!({
        "first_response": s.first_response.label(),
        "resolution": s.resolution.label(),
        "overdue": t.status.is_open() && s.is_overdue(),
    });
    v
}

pub async fn me(ApiUser(c): ApiUser) -> Json<Value> {
    Json(json!({ "login": c.login, "role": c.role, "csrf": c.csrf }))
}

pub async fn tickets(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    Query(filters): Query<Filters>,
) -> Result<Json<Value>, ApiError> {
    let mut filters = filters.normalized();
    filters.utc_offset_secs = state.cfg.utc_offset().local_minus_utc();
    let now = crate::util::unix_millis();
    let (st, f) = (state.clone(), filters.clone());
    let selected = ops::blocking(move || {
        let loaded = st.tickets.in_statuses(&f.statuses())?;
        Ok(f.select(loaded, &c.login, &st.cfg.sla, now))
    })
    .await?;
    let json_of = |tickets: &[(Ticket, SlaState)]| -> Vec<Value> {
        tickets
            .iter()
            .map(|(t, _)| ticket_json(t, &state, now))
            .collect()
    };
    // Paged when the caller asks (`page`, `per_page`: 100 by default, 500 at most);
    // everything otherwise.
    if filters.page == 0 && filters.per_page == 0 {
        let list = json_of(&selected);
        return Ok(Json(json!({ "count": list.len(), "tickets": list })));
    }
    let page = filters.page_of(selected, 100);
    let list = json_of(&page.items);
    Ok(Json(json!({
        "count": list.len(),
        "tickets": list,
        "total": page.total,
        "page": page.page,
        "pages": page.pages,
    })))
}

pub async fn ticket(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = state
        .tickets
        .by_number(&number)?
        .ok_or(ConsoleError::NotFound)?;
    let events = state.tickets.events(t.id)?;
    let deliveries: Vec<Value> = ops::deliveries(&state, &events)?
        .into_iter()
        .map(|(id, d)| json!({ "job": id, "delivery": d }))
        .collect();
    Ok(Json(json!({
        "ticket": ticket_json(&t, &state, crate::util::unix_millis()),
        "events": events,
        "deliveries": deliveries,
    })))
}

pub async fn act(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path((number, action)): Path<(String, String)>,
    body: Result<Json<ActionInput>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    c.check_csrf(csrf_header(&headers))?;
    let Json(input) = body
        .map_err(|e| ConsoleError::BadInput(format!("请求体不是有效的 JSON：{}", e.body_text())))?;
    let code = ops::act(&state, &c, &number, &action, input).await?;
    let t = state
        .tickets
        .by_number(&number)?
        .ok_or(ConsoleError::NotFound)?;
    Ok(Json(
        json!({ "ok": code, "ticket": ticket_json(&t, &state, crate::util::unix_millis()) }),
    ))
}

pub async fn retry(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    c.check_csrf(csrf_header(&headers))?;
    let outbox = state.outbox.clone();
    if !blocking(move || outbox.retry_dead(id).map_err(ConsoleError::from)).await? {
        return Err(ConsoleError::NotFound.into());
    }
    Ok(Json(json!({ "ok": "retried", "job": id })))
}

pub async fn faq_search(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Query(q): Query<super::pages::SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "hits": super::pages::faq_hits(&state, &q.q).await? }),
    ))
}

pub async fn dead_letters(
    State(state): State<AppState>,
    AdminApi(_): AdminApi,
) -> Result<Json<Value>, ApiError> {
    let dead = state.outbox.dead_letters()?;
    Ok(Json(json!({ "dead": dead })))
}

#[derive(Debug, Deserialize)]
pub struct Days {
    #[serde(default = "seven")]
    days: i64,
}

fn seven() -> i64 {
    7
}

pub async fn faq_report(
    State(state): State<AppState>,
    AdminApi(_): AdminApi,
    Query(d): Query<Days>,
) -> Result<Json<Value>, ApiError> {
    let since = crate::util::unix_millis() - d.days.clamp(1, 366) * 24 * 3600 * 1000;
    let log = state.faq_log.clone();
    let r = ops::blocking(move || Ok(log.report(since, 20)?)).await?;
    Ok(Json(
        json!({ "report": r, "deflection_rate": r.deflection_rate() }),
    ))
}

/// Write a snapshot of the database and the media into `storage.backup_dir`: admins, or a
/// script with the API token (scheduled backups of a running gateway).
pub async fn backup(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let token_caller = c.session_id.is_none();
    if !(c.is_admin() || token_caller) {
        return Err(ConsoleError::Forbidden.into());
    }
    c.check_csrf(csrf_header(&headers))?;
    let dir = state
        .cfg
        .storage
        .backup_dir
        .join(crate::store::Store::snapshot_name());
    let (store, target) = (state.store.clone(), dir.clone());
    let report = ops::blocking(move || Ok(store.snapshot(&target)?)).await?;
    Ok(Json(json!({
        "path": dir.display().to_string(),
        "entries": report.entries,
        "media_files": report.media_files,
    })))
}

/// `POST /api/v1/tickets/bulk`: one action on many tickets, each on its own (one
/// transaction each): `{"numbers": […], "action": "assign|status|category|priority|merge",
/// …the action's fields}`; answers which succeeded and why the others did not.
#[derive(Debug, Deserialize)]
pub struct BulkBody {
    numbers: Vec<String>,
    action: String,
    #[serde(flatten)]
    input: ActionInput,
}

/// The most tickets one bulk call takes.
pub const MAX_BULK: usize = 500;

pub async fn bulk(
    State(state): State<AppState>,
    ApiUser(c): ApiUser,
    headers: HeaderMap,
    body: Result<Json<BulkBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    c.check_csrf(csrf_header(&headers))?;
    let Json(b) = body
        .map_err(|e| ConsoleError::BadInput(format!("请求体不是有效的 JSON：{}", e.body_text())))?;
    if !matches!(
        b.action.as_str(),
        "assign" | "status" | "category" | "priority" | "merge"
    ) {
        return Err(ConsoleError::BadInput(
            "action 只能是 assign、status、category、priority 或 merge".into(),
        )
        .into());
    }
    if b.numbers.is_empty() || b.numbers.len() > MAX_BULK {
        return Err(ConsoleError::BadInput(format!("numbers 需要 1–{MAX_BULK} 个工单号")).into());
    }
    let mut results = Vec::with_capacity(b.numbers.len());
    let (mut ok, mut failed) = (0, 0);
    for number in &b.numbers {
        let number = number.trim().to_uppercase();
        match ops::act(&state, &c, &number, &b.action, b.input.clone()).await {
            Ok(code) => {
                ok += 1;
                results.push(json!({ "number": number, "ok": true, "result": code }));
            }
            Err(e) => {
                failed += 1;
                let (_, code) = e.status_and_code();
                results.push(json!({ "number": number, "ok": false, "error": code, "message": e.to_string() }));
            }
        }
    }
    Ok(Json(
        json!({ "ok": ok, "failed": failed, "results": results }),
    ))
}
