//! The fake WeCom server API (`/cgi-bin/…`) and media URLs: requests are checked as WeCom
//! documents them and every one is recorded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ChatId, ChatMessage, StoredMedia, Upload};
use crate::wecom::outbound::{APP_TEXT_LIMIT, ROBOT_MARKDOWN_LIMIT, ROBOT_TEXT_LIMIT};

use super::api::{
    BOT_MEDIA_TTL, MEDIA_TTL, MEMBER_PER_MINUTE, RESPONSE_URL_TTL, ROBOT_PER_MINUTE, Shared,
    check_token, err, ok, over_limit, truncate_bytes,
};

pub(super) async fn gettoken(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
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

pub(super) async fn message_send(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Json<Value> {
    const EP: &str = "message/send";
    sim.maybe_hang(EP).await;
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
        "image" | "file" => {
            let id = req
                .pointer(&format!("/{msgtype}/media_id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if !sim.lock().media.contains_key(&id) {
                return fail(40007, "invalid media_id");
            }
            let label = if msgtype == "image" {
                "[图片]"
            } else {
                "[文件]"
            };
            (msgtype, format!("{label} {id}"), false, None)
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
        let mut m = ChatMessage::blank(
            ChatId::App((*user).to_owned()).to_string(),
            "app",
            kind,
            text.clone(),
        );
        m.truncated = truncated;
        m.card = card.clone();
        m.dropped = dropped;
        m.response_code = response_code.clone();
        if kind == "image"
            && let Some(id) = text.split_whitespace().nth(1)
        {
            m.images = vec![format!("{}/media/view/{id}", sim.settings.public_base)];
        }
        sim.push_message(m);
    }
    sim.record_call(EP, 0, req.clone(), dropped_any);
    ok(json!({
        "invaliduser": invalid.join("|"),
        "msgid": format!("simmsg{}", crate::util::random_hex(8)),
        "response_code": response_code,
    }))
}

pub(super) async fn update_card(
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

pub(super) async fn media_upload(
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

pub(super) async fn media_get(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
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

pub(super) async fn user_get(
    State(sim): Shared,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    const EP: &str = "user/get";
    sim.maybe_hang(EP).await;
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

pub(super) async fn webhook_send(
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
    let mut m = ChatMessage::blank("robot".into(), "robot", msgtype, text);
    m.truncated = truncated;
    m.card = card;
    sim.push_message(m);
    sim.record_call(EP, 0, req, false);
    ok(json!({}))
}

pub(super) async fn aibot_response(
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
    let mut m = ChatMessage::blank(chat.to_string(), "bot", msgtype, text);
    m.card = card;
    sim.push_message(m);
    sim.record_call(EP, 0, req, false);
    ok(json!({}))
}

/// The chat page's view of an uploaded file. It is served on the console's origin, so only
/// as an image sniffed from its bytes (anything else is a download), never sniffed again by
/// the browser, and sandboxed.
pub(super) async fn media_view(State(sim): Shared, Path(id): Path<String>) -> Response {
    let found = sim
        .lock()
        .media
        .get(&id)
        .map(|m: &StoredMedia| m.bytes.clone());
    let Some(bytes) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let guard = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ),
    ];
    match super::sniff_image(&bytes) {
        Some(ct) => (guard, [(header::CONTENT_TYPE, ct)], bytes).into_response(),
        None => (
            guard,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment"),
            ],
            bytes,
        )
            .into_response(),
    }
}

/// AI-bot media URLs: valid five minutes, content AES-encrypted with the bot's key.
pub(super) async fn media_aibot(State(sim): Shared, Path(id): Path<String>) -> Response {
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
