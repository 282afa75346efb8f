//! The chat page and the test hooks (`/api/…`): send as a member, click a card, read chats
//! and the API log, inject errcodes, expire tokens.

use std::time::Duration;

use axum::Json;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCall, ChatId, ChatMessage, Upload};
use crate::wecom::{Channel, Event, SelectedItem};

use super::api::Shared;

pub(super) async fn page() -> Html<&'static str> {
    Html(super::page::PAGE)
}

pub(super) async fn api_state(State(sim): Shared) -> Json<Value> {
    let s = &sim.settings;
    Json(json!({
        "members": s.members.iter().map(|(id, name)| json!({"userid": id, "name": name})).collect::<Vec<_>>(),
        "group": { "chat": ChatId::Group(super::GROUP_CHAT_ID.into()).to_string(), "name": s.group_name },
        "handler_group": { "chat": "robot", "name": s.handler_group_name },
        "bot_name": s.bot_name,
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct SendReq {
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

fn bad(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": msg.into() })),
    )
        .into_response()
}

pub(super) async fn api_send(State(sim): Shared, Json(req): Json<SendReq>) -> Response {
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
                content_type: super::sniff_image(&bytes)
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
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
pub(super) async fn api_upload(State(sim): Shared, mut multipart: Multipart) -> Response {
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
                // The type is read from the bytes, never taken from the sender.
                if let Ok(bytes) = field.bytes().await
                    && !bytes.is_empty()
                {
                    uploads.push(Upload {
                        content_type: super::sniff_image(&bytes)
                            .unwrap_or("application/octet-stream")
                            .to_owned(),
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
pub(super) struct EventReq {
    chat: String,
    from: String,
    event: String,
    #[serde(default)]
    key: String,
}

pub(super) async fn api_event(State(sim): Shared, Json(req): Json<EventReq>) -> Response {
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
pub(super) struct CardReq {
    seq: u64,
    from: String,
    key: String,
    #[serde(default)]
    selected: Vec<SelectedItem>,
}

pub(super) async fn api_card(State(sim): Shared, Json(req): Json<CardReq>) -> Response {
    match sim
        .click_card(req.seq, &req.from, &req.key, req.selected)
        .await
    {
        Ok(o) => Json(o).into_response(),
        Err(e) => bad(e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct MessagesQuery {
    #[serde(default)]
    chat: Option<String>,
    #[serde(default)]
    after: u64,
    /// Long-poll: wait up to this many ms for something new.
    #[serde(default)]
    wait_ms: u64,
}

pub(super) async fn api_messages(
    State(sim): Shared,
    Query(q): Query<MessagesQuery>,
) -> Json<Vec<ChatMessage>> {
    let wait = Duration::from_millis(q.wait_ms.min(25_000));
    Json(sim.messages_after(q.chat.as_deref(), q.after, wait).await)
}

#[derive(Debug, Deserialize)]
pub(super) struct CallsQuery {
    #[serde(default)]
    after: u64,
}

pub(super) async fn api_calls(
    State(sim): Shared,
    Query(q): Query<CallsQuery>,
) -> Json<Vec<ApiCall>> {
    Json(sim.calls(q.after))
}

#[derive(Debug, Deserialize)]
pub(super) struct FaultsReq {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    codes: Vec<i64>,
    /// Make the endpoint hang this long before every answer (0: stop hanging).
    hang_ms: Option<u64>,
}

pub(super) async fn api_faults(State(sim): Shared, Json(req): Json<FaultsReq>) -> StatusCode {
    sim.inject_faults(&req.endpoint, &req.codes);
    if let Some(ms) = req.hang_ms {
        sim.hang(&req.endpoint, Duration::from_millis(ms));
    }
    StatusCode::NO_CONTENT
}

pub(super) async fn api_expire_tokens(State(sim): Shared) -> StatusCode {
    sim.expire_tokens();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
pub(super) struct VerifyReq {
    surface: String,
}

pub(super) async fn api_verify(State(sim): Shared, Json(req): Json<VerifyReq>) -> Response {
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

#[derive(Debug, Deserialize)]
pub(super) struct AlertReq {
    /// `fire` or `resolve`.
    action: String,
    #[serde(default)]
    system: String,
}

/// The monitoring panel: fire or resolve the sample alert (posted to the gateway's
/// Alertmanager hook). Answers the gateway's status and body.
pub(super) async fn api_alert(State(sim): Shared, Json(req): Json<AlertReq>) -> Response {
    let fire = match req.action.as_str() {
        "fire" => true,
        "resolve" => false,
        _ => return bad("action must be fire or resolve"),
    };
    // The label value; the gateway's `hooks.system_names` reads it as the agents' name.
    let system = if req.system.trim().is_empty() {
        "trading"
    } else {
        req.system.trim()
    };
    match sim.sample_alert(fire, system).await {
        Ok((status, body)) => Json(serde_json::json!({
            "gateway_status": status,
            "gateway": serde_json::from_str::<serde_json::Value>(&body).unwrap_or(body.into()),
        }))
        .into_response(),
        Err(e) => bad(&e),
    }
}
