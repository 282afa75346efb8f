//! The simulator's HTTP surface: the fake WeCom server API (`/cgi-bin/…`), media URLs, the
//! test and page hooks (`/api/…`) and the chat page (`/`). Mounted under `/sim`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCall, ChatId, ChatMessage, Sim, StoredMedia, Upload};
use crate::wecom::outbound::{APP_TEXT_LIMIT, ROBOT_MARKDOWN_LIMIT, ROBOT_TEXT_LIMIT};
use crate::wecom::{Channel, Event, SelectedItem};

const MEDIA_TTL: Duration = Duration::from_secs(3 * 24 * 3600);
const BOT_MEDIA_TTL: Duration = Duration::from_secs(5 * 60);
const RESPONSE_URL_TTL: Duration = Duration::from_secs(3600);
const MEMBER_PER_MINUTE: usize = 30;
const ROBOT_PER_MINUTE: usize = 20;

type Shared = State<Arc<Sim>>;

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
        .layer(DefaultBodyLimit::max(24 * 1024 * 1024))
        .with_state(sim)
}

fn err(code: i64, msg: &str) -> Json<Value> {
    Json(json!({ "errcode": code, "errmsg": msg }))
}

fn ok(mut extra: Value) -> Json<Value> {
    if let Some(o) = extra.as_object_mut() {
        o.insert("errcode".into(), 0.into());
        o.insert("errmsg".into(), "ok".into());
    }
    Json(extra)
}

/// Check the access_token as WeCom does: missing 41001, unknown 40014, expired 42001.
fn check_token(sim: &Sim, q: &HashMap<String, String>) -> Result<(), (i64, &'static str)> {
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
fn truncate_bytes(s: &str, limit: usize) -> (String, bool) {
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
fn over_limit(q: &mut std::collections::VecDeque<Instant>, limit: usize) -> bool {
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

fn blank(chat: String, from: &str, kind: &str, text: String) -> ChatMessage {
    ChatMessage {
        seq: 0,
        chat,
        from: from.to_owned(),
        kind: kind.to_owned(),
        text,
        images: Vec::new(),
        card: None,
        at_ms: crate::util::unix_millis(),
        delivery: String::new(),
        dropped: false,
        truncated: false,
        response_code: String::new(),
        replaced: None,
    }
}

// --- fake server API -------------------------------------------------------------------------

async fn gettoken(State(sim): Shared, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let s = &sim.settings;
    let redacted = json!({ "corpid": q.get("corpid") });
    if q.get("corpid") != Some(&s.corp_id) {
        sim.record_call("gettoken", 40013, redacted, false);
        return err(40013, "invalid corpid");
    }
    if q.get("corpsecret").map(String::as_str) != Some(s.secret.expose()) {
        sim.record_call("gettoken", 40001, redacted, false);
        return err(40001, "invalid credential");
    }
    if let Some(code) = sim.take_fault("gettoken") {
        sim.record_call("gettoken", code, redacted, false);
        return err(code, "injected fault");
    }
    let token = format!("simtok{}", crate::util::random_hex(24));
    sim.lock()
        .tokens
        .insert(token.clone(), Instant::now() + s.token_ttl);
    sim.record_call("gettoken", 0, redacted, false);
    ok(json!({ "access_token": token, "expires_in": s.token_ttl.as_secs() }))
}

async fn message_send(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Json<Value> {
    const EP: &str = "message/send";
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        sim.record_call(EP, 40058, Value::String(body), false);
        return err(40058, "Warning: wrong json format.");
    };
    let fail = |code: i64, msg: &str| {
        sim.record_call(EP, code, req.clone(), false);
        err(code, msg)
    };
    if let Err((code, msg)) = check_token(&sim, &q) {
        return fail(code, msg);
    }
    if let Some(code) = sim.take_fault(EP) {
        return fail(code, "injected fault");
    }
    let s = &sim.settings;
    match req.get("agentid").and_then(Value::as_i64) {
        None => return fail(41011, "missing agentid"),
        Some(a) if a != s.agent_id => return fail(40056, "invalid agentid"),
        Some(_) => {}
    }
    let touser = req
        .get("touser")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if touser.is_empty() {
        return fail(40031, "invalid user list");
    }
    let (valid, invalid): (Vec<&str>, Vec<&str>) =
        touser.split('|').partition(|u| s.member_name(u).is_some());
    if valid.is_empty() {
        return fail(81013, "user & party & tag all invalid");
    }
    let msgtype = req
        .get("msgtype")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (kind, text, truncated, card) = match msgtype {
        "text" | "markdown" => {
            let content = req
                .pointer(&format!("/{msgtype}/content"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if content.is_empty() {
                return fail(44004, "empty content");
            }
            let (t, cut) = truncate_bytes(content, APP_TEXT_LIMIT);
            (msgtype, t, cut, None)
        }
        "textcard" => {
            let c = req.get("textcard").cloned().unwrap_or(Value::Null);
            let title = c.get("title").and_then(Value::as_str).unwrap_or_default();
            let desc = c
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if title.is_empty() || desc.is_empty() || c.get("url").and_then(Value::as_str).is_none()
            {
                return fail(40058, "textcard needs title, description and url");
            }
            ("textcard", format!("{title}\n{desc}"), false, Some(c))
        }
        "template_card" => {
            let c = req.get("template_card").cloned().unwrap_or(Value::Null);
            let card_type = c
                .get("card_type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !matches!(
                card_type,
                "text_notice"
                    | "news_notice"
                    | "button_interaction"
                    | "vote_interaction"
                    | "multiple_interaction"
            ) {
                return fail(40058, "invalid card_type");
            }
            let interactive = card_type.ends_with("_interaction");
            if interactive
                && c.get("task_id")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                return fail(40058, "task_id required for interactive cards");
            }
            let title = c
                .pointer("/main_title/title")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            ("template_card", title, false, Some(c))
        }
        _ => return fail(40008, "invalid message type"),
    };
    // WeCom's duplicate check: a request that asks for it is not delivered again when an
    // identical message (same recipients, type and content) went out within the interval.
    let signature = {
        let mut sig = req.clone();
        if let Some(o) = sig.as_object_mut() {
            o.remove("enable_duplicate_check");
            o.remove("duplicate_check_interval");
        }
        sig.to_string()
    };
    {
        let mut st = sim.lock();
        let now = Instant::now();
        if req.get("enable_duplicate_check").and_then(Value::as_i64) == Some(1) {
            let interval = req
                .get("duplicate_check_interval")
                .and_then(Value::as_u64)
                .unwrap_or(1800);
            if st
                .duplicates
                .get(&signature)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(interval))
            {
                drop(st);
                sim.record_call(EP, 0, req.clone(), true);
                return ok(
                    json!({ "invaliduser": "", "msgid": format!("dup{}", crate::util::random_hex(6)) }),
                );
            }
        }
        st.duplicates.insert(signature, now);
    }
    let response_code = if card.as_ref().is_some_and(|c| {
        c.get("card_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with("_interaction"))
    }) {
        crate::util::random_hex(16)
    } else {
        String::new()
    };
    let mut dropped_any = false;
    for user in &valid {
        let dropped = {
            let mut st = sim.lock();
            let q = st.member_sends.entry((*user).to_owned()).or_default();
            over_limit(q, MEMBER_PER_MINUTE)
        };
        dropped_any |= dropped;
        let mut m = blank(
            ChatId::App((*user).to_owned()).to_string(),
            "app",
            kind,
            text.clone(),
        );
        m.truncated = truncated;
        m.card = card.clone();
        m.dropped = dropped;
        m.response_code = response_code.clone();
        sim.push_message(m);
    }
    sim.record_call(EP, 0, req.clone(), dropped_any);
    ok(json!({
        "invaliduser": invalid.join("|"),
        "msgid": format!("simmsg{}", crate::util::random_hex(8)),
        "response_code": response_code,
    }))
}

async fn update_card(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
    Json(req): Json<Value>,
) -> Json<Value> {
    const EP: &str = "message/update_template_card";
    if let Err((code, msg)) = check_token(&sim, &q) {
        sim.record_call(EP, code, req, false);
        return err(code, msg);
    }
    let code = req
        .get("response_code")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let label = req
        .pointer("/button/replace_name")
        .and_then(Value::as_str)
        .unwrap_or("已处理")
        .to_owned();
    let updated = {
        let mut st = sim.lock();
        match st
            .messages
            .iter_mut()
            .find(|m| !code.is_empty() && m.response_code == code && m.replaced.is_none())
        {
            Some(m) => {
                m.replaced = Some(label);
                true
            }
            None => false,
        }
    };
    if !updated {
        sim.record_call(EP, 42017, req, false);
        return err(42017, "response_code invalid or used");
    }
    sim.record_call(EP, 0, req, false);
    sim.changed.notify_waiters();
    ok(json!({}))
}

async fn media_upload(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
    mut multipart: Multipart,
) -> Json<Value> {
    const EP: &str = "media/upload";
    let meta = json!({ "type": q.get("type") });
    if let Err((code, msg)) = check_token(&sim, &q) {
        sim.record_call(EP, code, meta, false);
        return err(code, msg);
    }
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() != Some("media") {
            continue;
        }
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let Ok(bytes) = field.bytes().await else {
            break;
        };
        if bytes.len() <= 5 {
            sim.record_call(EP, 44001, meta, false);
            return err(44001, "empty media data");
        }
        let id = sim.store_media(&Upload {
            bytes: bytes.to_vec(),
            content_type,
        });
        sim.record_call(EP, 0, meta, false);
        return ok(
            json!({ "type": q.get("type"), "media_id": id, "created_at": crate::util::unix_now().to_string() }),
        );
    }
    sim.record_call(EP, 44001, meta, false);
    err(44001, "empty media data")
}

async fn media_get(State(sim): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    const EP: &str = "media/get";
    let meta = json!({ "media_id": q.get("media_id") });
    if let Err((code, msg)) = check_token(&sim, &q) {
        sim.record_call(EP, code, meta, false);
        return err(code, msg).into_response();
    }
    if let Some(code) = sim.take_fault(EP) {
        sim.record_call(EP, code, meta, false);
        return err(code, "injected fault").into_response();
    }
    let id = q.get("media_id").cloned().unwrap_or_default();
    let found = {
        let st = sim.lock();
        st.media
            .get(&id)
            .filter(|m| m.created.elapsed() < MEDIA_TTL)
            .map(|m| (m.bytes.clone(), m.content_type.clone()))
    };
    match found {
        Some((bytes, ct)) => {
            sim.record_call(EP, 0, meta, false);
            (
                [
                    (header::CONTENT_TYPE, ct),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{id}\""),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        None => {
            // WeCom answers an unknown media_id with a JSON error and HTTP 200.
            sim.record_call(EP, 40007, meta, false);
            err(40007, "invalid media_id").into_response()
        }
    }
}

async fn user_get(State(sim): Shared, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    const EP: &str = "user/get";
    let meta = json!({ "userid": q.get("userid") });
    if let Err((code, msg)) = check_token(&sim, &q) {
        sim.record_call(EP, code, meta, false);
        return err(code, msg);
    }
    let userid = q.get("userid").cloned().unwrap_or_default();
    match sim.settings.member_name(&userid) {
        Some(name) => {
            sim.record_call(EP, 0, meta, false);
            ok(json!({ "userid": userid, "name": name, "department": [1], "status": 1 }))
        }
        None => {
            sim.record_call(EP, 60111, meta, false);
            err(60111, "userid not found")
        }
    }
}

async fn webhook_send(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Json<Value> {
    const EP: &str = "webhook/send";
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        sim.record_call(EP, 40058, Value::String(body), false);
        return err(40058, "Warning: wrong json format.");
    };
    if q.get("key").map(String::as_str) != Some(sim.settings.webhook_key.expose()) {
        sim.record_call(EP, 93000, req, false);
        return err(93000, "invalid webhook url");
    }
    if let Some(code) = sim.take_fault(EP) {
        sim.record_call(EP, code, req, false);
        return err(code, "injected fault");
    }
    if over_limit(&mut sim.lock().robot_sends, ROBOT_PER_MINUTE) {
        sim.record_call(EP, 45009, req, false);
        return err(45009, "api freq out of limit");
    }
    let msgtype = req
        .get("msgtype")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (text, truncated, card) = match msgtype {
        "text" => {
            let c = req
                .pointer("/text/content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (t, cut) = truncate_bytes(c, ROBOT_TEXT_LIMIT);
            (t, cut, None)
        }
        "markdown" => {
            let c = req
                .pointer("/markdown/content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (t, cut) = truncate_bytes(c, ROBOT_MARKDOWN_LIMIT);
            (t, cut, None)
        }
        "news" => {
            let a = req
                .pointer("/news/articles/0")
                .cloned()
                .unwrap_or(Value::Null);
            let t = format!(
                "{}\n{}",
                a.get("title").and_then(Value::as_str).unwrap_or_default(),
                a.get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
            (t, false, Some(a))
        }
        "template_card" => {
            let c = req.get("template_card").cloned().unwrap_or(Value::Null);
            let t = c
                .pointer("/main_title/title")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (t, false, Some(c))
        }
        _ => {
            sim.record_call(EP, 40008, req, false);
            return err(40008, "invalid message type");
        }
    };
    if text.trim().is_empty() {
        sim.record_call(EP, 44004, req, false);
        return err(44004, "empty content");
    }
    let mut m = blank("robot".into(), "robot", msgtype, text);
    m.truncated = truncated;
    m.card = card;
    sim.push_message(m);
    sim.record_call(EP, 0, req, false);
    ok(json!({}))
}

async fn aibot_response(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Json<Value> {
    const EP: &str = "aibot/response";
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        sim.record_call(EP, 40058, Value::String(body), false);
        return err(40058, "Warning: wrong json format.");
    };
    let code = q.get("response_code").cloned().unwrap_or_default();
    let chat = {
        let mut st = sim.lock();
        match st.response_urls.get_mut(&code) {
            None => None,
            Some(slot) if slot.used || slot.created.elapsed() > RESPONSE_URL_TTL => Some(Err(())),
            Some(slot) => {
                slot.used = true;
                Some(Ok(slot.chat.clone()))
            }
        }
    };
    let chat = match chat {
        None => {
            sim.record_call(EP, 40001, req, false);
            return err(40001, "invalid response_code");
        }
        Some(Err(())) => {
            sim.record_call(EP, 846609, req, false);
            return err(846609, "response_url used or expired");
        }
        Some(Ok(c)) => c,
    };
    if let Some(code) = sim.take_fault(EP) {
        sim.record_call(EP, code, req, false);
        return err(code, "injected fault");
    }
    let msgtype = req
        .get("msgtype")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (text, card) = match msgtype {
        "markdown" => (
            req.pointer("/markdown/content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            None,
        ),
        "template_card" => {
            let c = req.get("template_card").cloned().unwrap_or(Value::Null);
            (
                c.pointer("/main_title/title")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                Some(c),
            )
        }
        _ => {
            sim.record_call(EP, 40008, req, false);
            return err(40008, "invalid message type");
        }
    };
    let mut m = blank(chat.to_string(), "bot", msgtype, text);
    m.card = card;
    sim.push_message(m);
    sim.record_call(EP, 0, req, false);
    ok(json!({}))
}

async fn media_view(State(sim): Shared, Path(id): Path<String>) -> Response {
    let found = sim
        .lock()
        .media
        .get(&id)
        .map(|m: &StoredMedia| (m.bytes.clone(), m.content_type.clone()));
    match found {
        Some((b, ct)) => ([(header::CONTENT_TYPE, ct)], b).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// AI-bot media URLs: valid five minutes, content AES-encrypted with the bot's key.
async fn media_aibot(State(sim): Shared, Path(id): Path<String>) -> Response {
    let found = sim
        .lock()
        .media
        .get(&id)
        .filter(|m| m.created.elapsed() < BOT_MEDIA_TTL)
        .map(|m| m.bytes.clone());
    match found {
        Some(bytes) => {
            let enc = crate::wecom::crypto::aes_encrypt(sim.settings.bot_crypt.aes_key(), bytes);
            ([(header::CONTENT_TYPE, "application/octet-stream")], enc).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

// --- page and test hooks -----------------------------------------------------------------------

async fn page() -> Html<&'static str> {
    Html(super::page::PAGE)
}

async fn api_state(State(sim): Shared) -> Json<Value> {
    let s = &sim.settings;
    Json(json!({
        "members": s.members.iter().map(|(id, name)| json!({"userid": id, "name": name})).collect::<Vec<_>>(),
        "group": { "chat": ChatId::Group(super::GROUP_CHAT_ID.into()).to_string(), "name": s.group_name },
        "handler_group": { "chat": "robot", "name": s.handler_group_name },
        "bot_name": s.bot_name,
    }))
}

#[derive(Debug, Deserialize)]
struct SendReq {
    chat: String,
    from: String,
    #[serde(default)]
    text: Option<String>,
    /// Base64 images (tests).
    #[serde(default)]
    images: Vec<String>,
    /// Base64 files (AI-bot one-to-one chats).
    #[serde(default)]
    files: Vec<String>,
}

fn sniff_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF8") {
        "image/gif"
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

fn bad(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": msg.into() })),
    )
        .into_response()
}

async fn api_send(State(sim): Shared, Json(req): Json<SendReq>) -> Response {
    let Some(chat) = ChatId::parse(&req.chat) else {
        return bad("unknown chat");
    };
    if !req.files.is_empty() {
        let mut last = None;
        for f in &req.files {
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(f) else {
                return bad("files must be base64");
            };
            let upload = Upload {
                content_type: "application/octet-stream".into(),
                bytes,
            };
            match sim.member_send_file(&chat, &req.from, &upload).await {
                Ok(o) => last = Some(o),
                Err(e) => return bad(e),
            }
        }
        return Json(last).into_response();
    }
    let mut uploads = Vec::new();
    for b in &req.images {
        match base64::engine::general_purpose::STANDARD.decode(b) {
            Ok(bytes) => uploads.push(Upload {
                content_type: sniff_type(&bytes).to_owned(),
                bytes,
            }),
            Err(_) => return bad("images must be base64"),
        }
    }
    match sim
        .member_send(&chat, &req.from, req.text.as_deref(), &uploads)
        .await
    {
        Ok(o) => Json(o).into_response(),
        Err(e) => bad(e),
    }
}

/// The page's form: fields `chat`, `from`, optional `text`, any number of `file`.
async fn api_upload(State(sim): Shared, mut multipart: Multipart) -> Response {
    let mut chat = String::new();
    let mut from = String::new();
    let mut text = None;
    let mut uploads = Vec::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "chat" => chat = field.text().await.unwrap_or_default(),
            "from" => from = field.text().await.unwrap_or_default(),
            "text" => text = Some(field.text().await.unwrap_or_default()),
            "file" => {
                let declared = field.content_type().map(str::to_owned);
                if let Ok(bytes) = field.bytes().await
                    && !bytes.is_empty()
                {
                    let sniffed = sniff_type(&bytes);
                    uploads.push(Upload {
                        content_type: declared.unwrap_or_else(|| sniffed.to_owned()),
                        bytes: bytes.to_vec(),
                    });
                }
            }
            _ => {}
        }
    }
    let Some(chat) = ChatId::parse(&chat) else {
        return bad("unknown chat");
    };
    match sim
        .member_send(&chat, &from, text.as_deref(), &uploads)
        .await
    {
        Ok(o) => Json(o).into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Debug, Deserialize)]
struct EventReq {
    chat: String,
    from: String,
    event: String,
    #[serde(default)]
    key: String,
}

async fn api_event(State(sim): Shared, Json(req): Json<EventReq>) -> Response {
    let Some(chat) = ChatId::parse(&req.chat) else {
        return bad("unknown chat");
    };
    let event = match req.event.as_str() {
        "enter_agent" => Event::EnterAgent,
        "enter_chat" => Event::EnterChat,
        "click" => Event::Click { key: req.key },
        _ => return bad("unknown event"),
    };
    match sim.member_event(&chat, &req.from, event).await {
        Ok(o) => Json(o).into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Debug, Deserialize)]
struct CardReq {
    seq: u64,
    from: String,
    key: String,
    #[serde(default)]
    selected: Vec<SelectedItem>,
}

async fn api_card(State(sim): Shared, Json(req): Json<CardReq>) -> Response {
    match sim
        .click_card(req.seq, &req.from, &req.key, req.selected)
        .await
    {
        Ok(o) => Json(o).into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Debug, Deserialize)]
struct MessagesQuery {
    #[serde(default)]
    chat: Option<String>,
    #[serde(default)]
    after: u64,
    /// Long-poll: wait up to this many ms for something new.
    #[serde(default)]
    wait_ms: u64,
}

async fn api_messages(
    State(sim): Shared,
    Query(q): Query<MessagesQuery>,
) -> Json<Vec<ChatMessage>> {
    let mut out = sim.messages(q.chat.as_deref(), q.after);
    if out.is_empty() && q.wait_ms > 0 {
        sim.wait_change(Duration::from_millis(q.wait_ms.min(25_000)))
            .await;
        out = sim.messages(q.chat.as_deref(), q.after);
    }
    Json(out)
}

#[derive(Debug, Deserialize)]
struct CallsQuery {
    #[serde(default)]
    after: u64,
}

async fn api_calls(State(sim): Shared, Query(q): Query<CallsQuery>) -> Json<Vec<ApiCall>> {
    Json(sim.calls(q.after))
}

#[derive(Debug, Deserialize)]
struct FaultsReq {
    #[serde(default)]
    endpoint: String,
    codes: Vec<i64>,
}

async fn api_faults(State(sim): Shared, Json(req): Json<FaultsReq>) -> StatusCode {
    sim.inject_faults(&req.endpoint, &req.codes);
    StatusCode::NO_CONTENT
}

async fn api_expire_tokens(State(sim): Shared) -> StatusCode {
    sim.expire_tokens();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct VerifyReq {
    surface: String,
}

async fn api_verify(State(sim): Shared, Json(req): Json<VerifyReq>) -> Response {
    let channel = match req.surface.as_str() {
        "app" => Channel::App,
        "bot" => Channel::Bot,
        _ => return bad("surface must be app or bot"),
    };
    match sim.verify_url(channel).await {
        Ok(ok) => Json(json!({ "verified": ok })).into_response(),
        Err(e) => bad(e),
    }
}
