//! The WeCom simulator: a fake WeCom server API plus a browser chat page where a person plays
//! an agent. It speaks the documented protocol, nothing private:
//!
//! - **Callbacks out.** A member's message is built as WeCom builds it (app XML or AI-bot
//!   JSON), encrypted and signed with the configured Token/EncodingAESKey, and POSTed to the
//!   gateway; no 200 within 5 s (or a non-200) is retried with the same request, 3 attempts
//!   in all.
//! - **Server API in** (`/sim/cgi-bin/…`): gettoken, message/send, update_template_card,
//!   media/upload, media/get, user/get, webhook/send and the AI-bot response_url. Requests are
//!   checked as WeCom documents (unknown token 40014, expired 42001, missing 41001, missing
//!   agentid 41011, text over 2048 bytes truncated, 30 messages/min per member — excess
//!   silently dropped, 20/min per robot — 45009, duplicate check honoured, single-use
//!   response_url) and every request is recorded.
//! - **Test hooks** (`/sim/api/…`): send as a member, click a card, read chats and the API
//!   log, inject errcodes, expire tokens.
//!
//! State is in memory: the simulator stands in for WeCom, which is not ours to persist.

mod api;
mod hooks;
mod member;
mod page;
mod poster;
mod server_api;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, Secret};
use crate::wecom::MsgCrypt;
use poster::CallbackPoster;

pub use api::{mount, router};

/// How long WeCom waits for a callback answer before retrying.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per callback, in all.
pub const CALLBACK_ATTEMPTS: u32 = 3;
/// The simulated group chat's id.
pub const GROUP_CHAT_ID: &str = "wrSimGroup01";

/// What the simulator needs to know; derived from the gateway's [`Config`].
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub corp_id: String,
    pub agent_id: i64,
    pub secret: Secret,
    pub app_crypt: MsgCrypt,
    pub bot_crypt: MsgCrypt,
    pub webhook_key: Secret,
    pub bot_name: String,
    pub members: Vec<(String, String)>,
    pub group_name: String,
    pub handler_group_name: String,
    pub token_ttl: Duration,
    /// Base URL of the gateway the callbacks go to, e.g. `http://127.0.0.1:8080`.
    pub gateway_url: String,
    /// This simulator's own base URL, e.g. `http://127.0.0.1:8080/sim`.
    pub public_base: String,
    /// The gateway's hook token (the monitoring panel posts alerts as Alertmanager would).
    pub hooks_token: Secret,
}

impl SimSettings {
    pub fn from_config(
        cfg: &Config,
        gateway_url: String,
        public_base: String,
    ) -> crate::Result<SimSettings> {
        let w = &cfg.wecom;
        Ok(SimSettings {
            corp_id: w.corp_id.clone(),
            agent_id: w.agent_id,
            secret: w.secret.clone(),
            app_crypt: MsgCrypt::new(
                w.app.token.expose(),
                w.app.encoding_aes_key.expose(),
                &w.corp_id,
            )?,
            bot_crypt: MsgCrypt::new(w.bot.token.expose(), w.bot.encoding_aes_key.expose(), "")?,
            webhook_key: w.robot_webhook_key.clone(),
            bot_name: w.bot_name.clone(),
            members: cfg.sim.members.clone(),
            group_name: cfg.sim.group_name.clone(),
            handler_group_name: cfg.sim.handler_group_name.clone(),
            token_ttl: cfg.sim.token_ttl,
            gateway_url,
            public_base,
            hooks_token: cfg.hooks.token.clone(),
        })
    }

    pub fn member_name(&self, userid: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(id, _)| id == userid)
            .map(|(_, n)| n.as_str())
    }
}

/// A chat as the simulator shows it. Ids: `app:<userid>` (member ↔ app), `bot:<userid>`
/// (member ↔ AI bot), `group:<chatid>` (group with the AI bot), `robot` (the handler group
/// where the webhook robot posts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    App(String),
    Bot(String),
    Group(String),
    Robot,
}

impl ChatId {
    pub fn parse(s: &str) -> Option<ChatId> {
        if s == "robot" {
            return Some(ChatId::Robot);
        }
        let (kind, id) = s.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        match kind {
            "app" => Some(ChatId::App(id.to_owned())),
            "bot" => Some(ChatId::Bot(id.to_owned())),
            "group" => Some(ChatId::Group(id.to_owned())),
            _ => None,
        }
    }
}

impl std::fmt::Display for ChatId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatId::App(u) => write!(f, "app:{u}"),
            ChatId::Bot(u) => write!(f, "bot:{u}"),
            ChatId::Group(g) => write!(f, "group:{g}"),
            ChatId::Robot => f.write_str("robot"),
        }
    }
}

/// One message in a simulated chat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub seq: u64,
    pub chat: String,
    /// A member's userid, or `app`, `bot`, `robot`.
    pub from: String,
    /// text, markdown, image, mixed, textcard, template_card, event
    pub kind: String,
    pub text: String,
    /// Image URLs (simulator-local, viewable in the page).
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub card: Option<Value>,
    pub at_ms: i64,
    /// Members' messages: how the callback went ("已送达", "失败 …").
    #[serde(default)]
    pub delivery: String,
    /// WeCom would have dropped this message silently (per-member rate limit).
    #[serde(default)]
    pub dropped: bool,
    /// Text was cut at the byte limit.
    #[serde(default)]
    pub truncated: bool,
    /// For interactive cards: the code that identifies the card for updates and clicks.
    #[serde(default)]
    pub response_code: String,
    /// The label that replaced the card's buttons after an update.
    #[serde(default)]
    pub replaced: Option<String>,
}

impl ChatMessage {
    /// A message with nothing but its chat, sender, kind and text set.
    pub(super) fn blank(chat: String, from: &str, kind: &str, text: String) -> ChatMessage {
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
}

/// One request to the fake server API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiCall {
    pub seq: u64,
    pub at_ms: i64,
    pub endpoint: String,
    pub errcode: i64,
    /// The request body (JSON endpoints) or the query (GET endpoints).
    pub body: Value,
    /// Recorded but not shown: a duplicate-check hit or a silently dropped message.
    #[serde(default)]
    pub suppressed: bool,
}

#[derive(Debug)]
struct StoredMedia {
    bytes: Vec<u8>,
    content_type: String,
    created: Instant,
}

#[derive(Debug)]
struct ResponseSlot {
    chat: ChatId,
    created: Instant,
    used: bool,
}

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<String, Instant>,
    seq: u64,
    messages: Vec<ChatMessage>,
    calls: Vec<ApiCall>,
    /// errcodes to answer instead of success, per endpoint ("" = any endpoint).
    faults: VecDeque<(String, i64)>,
    /// Endpoints that hang this long before answering (a WeCom API that does not respond).
    hangs: HashMap<String, Duration>,
    media: HashMap<String, StoredMedia>,
    response_urls: HashMap<String, ResponseSlot>,
    duplicates: HashMap<String, Instant>,
    member_sends: HashMap<String, VecDeque<Instant>>,
    robot_sends: VecDeque<Instant>,
    next_msg_no: u64,
    /// When the monitoring panel's sample alert started firing (RFC 3339), while it fires.
    sample_alert_since: Option<String>,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn take_fault(&mut self, endpoint: &str) -> Option<i64> {
        let pos = self
            .faults
            .iter()
            .position(|(e, _)| e.is_empty() || e == endpoint)?;
        self.faults.remove(pos).map(|(_, c)| c)
    }
}

/// What happened to a callback the simulator posted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallbackOutcome {
    pub ok: bool,
    pub attempts: u32,
    pub status: u16,
    /// The gateway's answer body (a passive reply, or empty).
    pub body: String,
    pub msg_id: String,
    /// Sequence of the member's message in the chat.
    pub seq: u64,
}

/// The simulator. Share it as `Arc<Sim>`.
pub struct Sim {
    pub settings: SimSettings,
    state: Mutex<State>,
    poster: CallbackPoster,
    changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("gateway", &self.settings.gateway_url)
            .finish()
    }
}

/// A media file a member sends.
#[derive(Debug, Clone)]
pub struct Upload {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// The monitoring panel's sample alert: one Alertmanager group with one alert.
pub const SAMPLE_ALERT_GROUP: &str = "{}:{alertname=\"TradeGatewayLatency\"}";

impl Sim {
    /// Fire (`true`) or resolve the sample alert: post it to the gateway's
    /// `/hooks/alertmanager` as Alertmanager would (v4 body, bearer token). Firing again
    /// while it fires is Alertmanager's repeat. Returns the gateway's status and answer.
    pub async fn sample_alert(&self, fire: bool, system: &str) -> Result<(u16, String), String> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let starts_at = {
            let mut st = self.lock();
            if fire {
                st.sample_alert_since
                    .get_or_insert_with(|| now.clone())
                    .clone()
            } else {
                st.sample_alert_since
                    .take()
                    .ok_or("示例告警没有在触发，无需恢复")?
            }
        };
        let status = if fire { "firing" } else { "resolved" };
        let ends_at = if fire {
            "0001-01-01T00:00:00Z".to_owned()
        } else {
            now
        };
        let external = format!("{}/", self.settings.public_base);
        let body = serde_json::json!({
            "version": "4",
            "receiver": "helpdesk",
            "status": status,
            "groupKey": SAMPLE_ALERT_GROUP,
            "truncatedAlerts": 0,
            "groupLabels": { "alertname": "TradeGatewayLatency" },
            "commonLabels": { "alertname": "TradeGatewayLatency", "severity": "error", "system": system },
            "commonAnnotations": { "summary": "交易网关委托响应超时（示例告警）" },
            "externalURL": external,
            "alerts": [{
                "status": status,
                "labels": { "alertname": "TradeGatewayLatency", "severity": "error", "system": system, "instance": "trade-gw-01" },
                "annotations": { "summary": "交易网关委托响应超时（示例告警）", "description": "p99 委托响应时间超过 5 秒" },
                "startsAt": starts_at,
                "endsAt": ends_at,
                "generatorURL": external,
                "fingerprint": "5a1e0c0ffee00001",
            }],
        });
        let url = format!("{}/hooks/alertmanager", self.settings.gateway_url);
        let auth = format!("Bearer {}", self.settings.hooks_token.expose());
        let answer = self
            .poster
            .post_with(
                &url,
                "application/json",
                body.to_string(),
                &[("authorization", &auth)],
            )
            .await
            .map_err(|e| format!("告警发送失败：{e}"))?;
        Ok((answer.status, answer.body))
    }

    pub fn new(settings: SimSettings) -> crate::Result<Arc<Sim>> {
        Ok(Arc::new(Sim {
            settings,
            state: Mutex::new(State {
                next_msg_no: 7_000_000_000_000_000_000
                    + (crate::util::unix_millis() as u64 % 1_000_000_000) * 1000,
                ..State::default()
            }),
            poster: CallbackPoster::new(CALLBACK_TIMEOUT).map_err(std::io::Error::other)?,
            changed: tokio::sync::Notify::new(),
        }))
    }

    /// The next injected errcode for `endpoint`, if any (the lock is released on return, so
    /// callers may record the call).
    fn take_fault(&self, endpoint: &str) -> Option<i64> {
        self.lock().take_fault(endpoint)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_message(&self, mut m: ChatMessage) -> u64 {
        let seq = {
            let mut st = self.lock();
            m.seq = st.next_seq();
            let seq = m.seq;
            st.messages.push(m);
            seq
        };
        self.changed.notify_waiters();
        seq
    }

    fn record_call(&self, endpoint: &str, errcode: i64, body: Value, suppressed: bool) {
        let mut st = self.lock();
        let seq = st.next_seq();
        st.calls.push(ApiCall {
            seq,
            at_ms: crate::util::unix_millis(),
            endpoint: endpoint.to_owned(),
            errcode,
            body,
            suppressed,
        });
    }

    /// Messages of `chat` (all chats when `None`) with seq > `after`.
    pub fn messages(&self, chat: Option<&str>, after: u64) -> Vec<ChatMessage> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.seq > after && chat.is_none_or(|c| m.chat == c))
            .cloned()
            .collect()
    }

    /// Recorded API calls with seq > `after`.
    pub fn calls(&self, after: u64) -> Vec<ApiCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.seq > after)
            .cloned()
            .collect()
    }

    /// Answer the next calls (to `endpoint`, or any when empty) with these errcodes.
    pub fn inject_faults(&self, endpoint: &str, codes: &[i64]) {
        let mut st = self.lock();
        for c in codes {
            st.faults.push_back((endpoint.to_owned(), *c));
        }
    }

    /// Make `endpoint` hang for `delay` before answering (zero: answer at once again).
    pub fn hang(&self, endpoint: &str, delay: Duration) {
        let mut st = self.lock();
        if delay.is_zero() {
            st.hangs.remove(endpoint);
        } else {
            st.hangs.insert(endpoint.to_owned(), delay);
        }
    }

    /// Wait as long as `endpoint` is set to hang.
    async fn maybe_hang(&self, endpoint: &str) {
        let delay = self.lock().hangs.get(endpoint).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }

    /// Make every issued access_token expired (the next use gets 42001).
    pub fn expire_tokens(&self) {
        let past = Instant::now() - Duration::from_secs(1);
        for exp in self.lock().tokens.values_mut() {
            *exp = past;
        }
    }

    /// Wait until something changes (or `timeout`).
    pub async fn wait_change(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
    }

    /// Messages of `chat` after `after`, waiting up to `timeout` for one when there is none.
    /// The wake-up is registered before looking, so a message stored in between is never
    /// missed (the chat page's long poll once waited out its 20 s that way).
    pub async fn messages_after(
        &self,
        chat: Option<&str>,
        after: u64,
        timeout: Duration,
    ) -> Vec<ChatMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let out = self.messages(chat, after);
            if !out.is_empty() {
                return out;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.messages(chat, after);
            }
        }
    }

    fn store_media(&self, upload: &Upload) -> String {
        let id = format!("sim{}", crate::util::random_hex(12));
        self.lock().media.insert(
            id.clone(),
            StoredMedia {
                bytes: upload.bytes.clone(),
                content_type: upload.content_type.clone(),
                created: Instant::now(),
            },
        );
        id
    }

    fn next_app_msg_no(&self) -> u64 {
        let mut st = self.lock();
        st.next_msg_no += 1;
        st.next_msg_no
    }

    fn new_response_url(&self, chat: &ChatId) -> String {
        let code = crate::util::random_hex(16);
        self.lock().response_urls.insert(
            code.clone(),
            ResponseSlot {
                chat: chat.clone(),
                created: Instant::now(),
                used: false,
            },
        );
        format!(
            "{}/cgi-bin/aibot/response?response_code={code}",
            self.settings.public_base
        )
    }
}

/// Percent-encode for a query value (what WeCom does to echostr's `+ / =`).
/// The image type of `bytes` by their magic number (PNG, JPEG, GIF, WebP), if an image.
pub(crate) fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF8") {
        Some("image/gif")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
