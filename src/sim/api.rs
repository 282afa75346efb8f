//! The simulator's HTTP surface, mounted under `/sim`: the routes, and the helpers the fake
//! server API (`server_api.rs`: `/cgi-bin/…`, media URLs) and the page and test hooks
//! (`hooks.rs`: `/`, `/api/…`) share.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::Sim;
use super::hooks::{
    api_alert, api_calls, api_card, api_event, api_expire_tokens, api_faults, api_messages,
    api_send, api_state, api_upload, api_verify, page,
};
use super::server_api::{
    aibot_response, gettoken, media_aibot, media_get, media_upload, media_view, message_send,
    update_card, user_get, webhook_send,
};

pub(super) const MEDIA_TTL: Duration = Duration::from_secs(3 * 24 * 3600);
pub(super) const BOT_MEDIA_TTL: Duration = Duration::from_secs(5 * 60);
pub(super) const RESPONSE_URL_TTL: Duration = Duration::from_secs(3600);
pub(super) const MEMBER_PER_MINUTE: usize = 30;
pub(super) const ROBOT_PER_MINUTE: usize = 20;

pub(super) type Shared = State<Arc<Sim>>;

/// Mount the simulator under `/sim` of `app` (the chat page answers at `/sim` and `/sim/`).
pub fn mount(app: Router, sim: Arc<Sim>) -> Router {
    app.route("/sim/", get(page)).nest("/sim", router(sim))
}

/// All simulator routes, relative to its mount point (`/sim`).
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/message/send", post(message_send))
        .route("/cgi-bin/message/update_template_card", post(update_card))
        .route("/cgi-bin/media/upload", post(media_upload))
        .route("/cgi-bin/media/get", get(media_get))
        .route("/cgi-bin/user/get", get(user_get))
        .route("/cgi-bin/webhook/send", post(webhook_send))
        .route("/cgi-bin/aibot/response", post(aibot_response))
        .route("/media/view/{id}", get(media_view))
        .route("/media/aibot/{id}", get(media_aibot))
        .route("/api/state", get(api_state))
        .route("/api/send", post(api_send))
        .route("/api/upload", post(api_upload))
        .route("/api/event", post(api_event))
        .route("/api/card", post(api_card))
        .route("/api/messages", get(api_messages))
        .route("/api/calls", get(api_calls))
        .route("/api/faults", post(api_faults))
        .route("/api/expire_tokens", post(api_expire_tokens))
        .route("/api/verify", post(api_verify))
        .route("/api/alert", post(api_alert))
        .layer(DefaultBodyLimit::max(24 * 1024 * 1024))
        .with_state(sim)
}

pub(super) fn err(code: i64, msg: &str) -> Json<Value> {
    Json(json!({ "errcode": code, "errmsg": msg }))
}

pub(super) fn ok(mut extra: Value) -> Json<Value> {
    if let Some(o) = extra.as_object_mut() {
        o.insert("errcode".into(), 0.into());
        o.insert("errmsg".into(), "ok".into());
    }
    Json(extra)
}

/// Check the access_token as WeCom does: missing 41001, unknown 40014, expired 42001.
pub(super) fn check_token(
    sim: &Sim,
    q: &HashMap<String, String>,
) -> Result<(), (i64, &'static str)> {
    let Some(token) = q.get("access_token").filter(|t| !t.is_empty()) else {
        return Err((41001, "access_token missing"));
    };
    match sim.lock().tokens.get(token) {
        None => Err((40014, "invalid access_token")),
        Some(exp) if Instant::now() >= *exp => Err((42001, "access_token expired")),
        Some(_) => Ok(()),
    }
}

/// Cut `s` to at most `limit` bytes on a character boundary.
pub(super) fn truncate_bytes(s: &str, limit: usize) -> (String, bool) {
    if s.len() <= limit {
        return (s.to_owned(), false);
    }
    let mut cut = limit;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    (s[..cut].to_owned(), true)
}

/// Within the last minute, has `q` reached `limit`? Records `now` when not.
pub(super) fn over_limit(q: &mut std::collections::VecDeque<Instant>, limit: usize) -> bool {
    let now = Instant::now();
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
    {
        q.pop_front();
    }
    if q.len() >= limit {
        return true;
    }
    q.push_back(now);
    false
}
