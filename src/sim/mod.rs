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
mod page;
mod poster;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, Secret};
use crate::wecom::{self, Channel, ChatType, Content, Event, Inbound, MediaRef, MsgCrypt};
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
    media: HashMap<String, StoredMedia>,
    response_urls: HashMap<String, ResponseSlot>,
    duplicates: HashMap<String, Instant>,
    member_sends: HashMap<String, VecDeque<Instant>>,
    robot_sends: VecDeque<Instant>,
    next_msg_no: u64,
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

impl Sim {
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

    /// A member sends text and/or images into `chat`. Builds the callback exactly as WeCom
    /// would and posts it (with retries).
    pub async fn member_send(
        &self,
        chat: &ChatId,
        from: &str,
        text: Option<&str>,
        images: &[Upload],
    ) -> Result<CallbackOutcome, String> {
        if self.settings.member_name(from).is_none() {
            return Err(format!("unknown member {from}"));
        }
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        if text.is_none() && images.is_empty() {
            return Err("empty message".into());
        }
        let media_ids: Vec<String> = images.iter().map(|u| self.store_media(u)).collect();
        let view_urls: Vec<String> = media_ids
            .iter()
            .map(|id| format!("{}/media/view/{id}", self.settings.public_base))
            .collect();
        let now = crate::util::unix_now();
        let (channel, chat_type, chat_id) = match chat {
            ChatId::App(u) => (Channel::App, ChatType::Single, u.clone()),
            ChatId::Bot(u) => (Channel::Bot, ChatType::Single, u.clone()),
            ChatId::Group(g) => (Channel::Bot, ChatType::Group, g.clone()),
            ChatId::Robot => return Err("the handler group robot cannot receive messages".into()),
        };
        if let ChatId::App(u) | ChatId::Bot(u) = chat
            && u != from
        {
            return Err("a member can only write in their own one-to-one chat".into());
        }
        if chat_type == ChatType::Group && !images.is_empty() && text.is_none() {
            return Err("群聊中的图片需与@机器人的文字一起发送（图文混排）".into());
        }

        // One callback per WeCom message: the app cannot carry text and image together, so
        // each image is its own message there.
        let mut contents: Vec<Content> = Vec::new();
        match channel {
            Channel::App => {
                if let Some(t) = text {
                    contents.push(Content::Text { text: t.to_owned() });
                }
                for (id, url) in media_ids.iter().zip(&view_urls) {
                    contents.push(Content::Image {
                        media: MediaRef::MediaId {
                            media_id: id.clone(),
                            pic_url: url.clone(),
                        },
                    });
                }
            }
            Channel::Bot => {
                let urls: Vec<MediaRef> = media_ids
                    .iter()
                    .map(|id| MediaRef::Url {
                        url: format!("{}/media/aibot/{id}", self.settings.public_base),
                        aeskey: None,
                    })
                    .collect();
                match (text, urls.len()) {
                    (Some(t), 0) => contents.push(Content::Text { text: t.to_owned() }),
                    (Some(t), _) => contents.push(Content::Mixed {
                        text: t.to_owned(),
                        images: urls,
                    }),
                    (None, _) => {
                        contents.extend(urls.into_iter().map(|m| Content::Image { media: m }))
                    }
                }
            }
        }

        // Show the member's message in the chat first, as the phone would.
        let seq = self.push_message(ChatMessage {
            seq: 0,
            chat: chat.to_string(),
            from: from.to_owned(),
            kind: if images.is_empty() {
                "text"
            } else if text.is_some() {
                "mixed"
            } else {
                "image"
            }
            .to_owned(),
            text: text.unwrap_or_default().to_owned(),
            images: view_urls,
            card: None,
            at_ms: crate::util::unix_millis(),
            delivery: "发送中".into(),
            dropped: false,
            truncated: false,
            response_code: String::new(),
            replaced: None,
        });

        let mut last = None;
        for content in contents {
            let inbound = Inbound {
                channel,
                chat_type,
                chat_id: chat_id.clone(),
                sender: from.to_owned(),
                msg_id: String::new(),
                create_time: now,
                content,
                quote: None,
                response_url: None,
            };
            let outcome = self.post_inbound(chat, inbound, seq).await?;
            let ok = outcome.ok;
            last = Some(outcome);
            if !ok {
                break;
            }
        }
        let outcome = last.ok_or("nothing to send")?;
        self.set_delivery(seq, &outcome);
        Ok(outcome)
    }

    /// A member sends a file to the AI bot in a one-to-one chat (the only place WeCom
    /// delivers files to the bot).
    pub async fn member_send_file(
        &self,
        chat: &ChatId,
        from: &str,
        file: &Upload,
    ) -> Result<CallbackOutcome, String> {
        let ChatId::Bot(owner) = chat else {
            return Err("files reach the AI bot only in a one-to-one chat".into());
        };
        if owner != from || self.settings.member_name(from).is_none() {
            return Err("a member can only write in their own one-to-one chat".into());
        }
        let id = self.store_media(file);
        let seq = self.push_message(ChatMessage {
            seq: 0,
            chat: chat.to_string(),
            from: from.to_owned(),
            kind: "file".into(),
            text: format!("[文件 {} 字节]", file.bytes.len()),
            images: Vec::new(),
            card: None,
            at_ms: crate::util::unix_millis(),
            delivery: "发送中".into(),
            dropped: false,
            truncated: false,
            response_code: String::new(),
            replaced: None,
        });
        let inbound = Inbound {
            channel: Channel::Bot,
            chat_type: ChatType::Single,
            chat_id: from.to_owned(),
            sender: from.to_owned(),
            msg_id: String::new(),
            create_time: crate::util::unix_now(),
            content: Content::File {
                media: MediaRef::Url {
                    url: format!("{}/media/aibot/{id}", self.settings.public_base),
                    aeskey: None,
                },
            },
            quote: None,
            response_url: None,
        };
        let outcome = self.post_inbound(chat, inbound, seq).await?;
        self.set_delivery(seq, &outcome);
        Ok(outcome)
    }

    /// A member triggers an event (enter_agent, enter_chat, menu click).
    pub async fn member_event(
        &self,
        chat: &ChatId,
        from: &str,
        event: Event,
    ) -> Result<CallbackOutcome, String> {
        if self.settings.member_name(from).is_none() {
            return Err(format!("unknown member {from}"));
        }
        let (channel, chat_type, chat_id) = match chat {
            ChatId::App(u) => (Channel::App, ChatType::Single, u.clone()),
            ChatId::Bot(u) => (Channel::Bot, ChatType::Single, u.clone()),
            ChatId::Group(g) => (Channel::Bot, ChatType::Group, g.clone()),
            ChatId::Robot => return Err("no events in the handler group".into()),
        };
        let inbound = Inbound {
            channel,
            chat_type,
            chat_id,
            sender: from.to_owned(),
            msg_id: String::new(),
            create_time: crate::util::unix_now(),
            content: Content::Event { event },
            quote: None,
            response_url: None,
        };
        self.post_inbound(chat, inbound, 0).await
    }

    /// A member clicks button `key` on the card message `seq` (and optionally picks options).
    pub async fn click_card(
        &self,
        seq: u64,
        from: &str,
        key: &str,
        selected: Vec<wecom::SelectedItem>,
    ) -> Result<CallbackOutcome, String> {
        let msg = self
            .lock()
            .messages
            .iter()
            .find(|m| m.seq == seq)
            .cloned()
            .ok_or("no such message")?;
        let card = msg.card.clone().ok_or("not a card")?;
        if msg.replaced.is_some() {
            return Err("该卡片已处理".into());
        }
        let chat = ChatId::parse(&msg.chat).ok_or("bad chat")?;
        let event = Event::TemplateCard {
            event_key: key.to_owned(),
            task_id: card
                .get("task_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            card_type: card
                .get("card_type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            response_code: msg.response_code.clone(),
            selected,
        };
        self.member_event(&chat, from, event).await
    }

    /// Encrypt, sign and post one inbound message; retry like WeCom.
    async fn post_inbound(
        &self,
        chat: &ChatId,
        mut inbound: Inbound,
        seq: u64,
    ) -> Result<CallbackOutcome, String> {
        let s = &self.settings;
        let (plaintext, crypt, path, content_type) = match inbound.channel {
            Channel::App => {
                let is_event = matches!(inbound.content, Content::Event { .. });
                inbound.msg_id = if is_event {
                    String::new()
                } else {
                    format!("msg/{}/{}", s.agent_id, self.next_app_msg_no())
                };
                (
                    wecom::app::message_xml(&s.corp_id, s.agent_id, &inbound),
                    &s.app_crypt,
                    "app",
                    "text/xml",
                )
            }
            Channel::Bot => {
                inbound.msg_id = format!("sim{}", crate::util::random_hex(10));
                inbound.response_url = Some(self.new_response_url(chat));
                (
                    wecom::bot::message_json("simaibot", &s.bot_name, &inbound),
                    &s.bot_crypt,
                    "bot",
                    "application/json",
                )
            }
        };
        let encrypt = crypt.encrypt(&plaintext);
        let body = match inbound.channel {
            Channel::App => wecom::app::envelope(&s.corp_id, s.agent_id, &encrypt),
            Channel::Bot => serde_json::json!({ "encrypt": encrypt }).to_string(),
        };
        let timestamp = crate::util::unix_now().to_string();
        let nonce = crate::util::random_digits(10);
        let signature = crypt.sign(&timestamp, &nonce, &encrypt);
        let url = format!(
            "{}/wecom/{path}/callback?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}",
            s.gateway_url
        );
        let mut outcome = CallbackOutcome {
            ok: false,
            attempts: 0,
            status: 0,
            body: String::new(),
            msg_id: inbound.msg_id.clone(),
            seq,
        };
        for attempt in 1..=CALLBACK_ATTEMPTS {
            outcome.attempts = attempt;
            match self.poster.post(&url, content_type, body.clone()).await {
                Ok(answer) => {
                    outcome.status = answer.status;
                    outcome.body = answer.body;
                    if answer.status == 200 {
                        outcome.ok = true;
                        break;
                    }
                }
                Err(e) => {
                    outcome.status = 0;
                    outcome.body = e.to_string();
                }
            }
        }
        if outcome.ok && inbound.channel == Channel::Bot && !outcome.body.is_empty() {
            self.record_passive_reply(chat, &outcome.body);
        }
        Ok(outcome)
    }

    /// The gateway answered an AI-bot callback with an encrypted passive reply: show it.
    fn record_passive_reply(&self, chat: &ChatId, body: &str) {
        let Ok(reply) = serde_json::from_str::<wecom::bot::EncryptedReply>(body) else {
            return;
        };
        let s = &self.settings;
        if s.bot_crypt
            .verify(
                &reply.msgsignature,
                &reply.timestamp,
                &reply.nonce,
                &reply.encrypt,
            )
            .is_err()
        {
            return;
        }
        let Ok(plain) = s.bot_crypt.decrypt(&reply.encrypt) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<Value>(&plain) else {
            return;
        };
        let text = v
            .pointer("/text/content")
            .or_else(|| v.pointer("/markdown/content"))
            .or_else(|| v.pointer("/stream/content"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.push_message(ChatMessage {
            seq: 0,
            chat: chat.to_string(),
            from: "bot".into(),
            kind: "text".into(),
            text,
            images: Vec::new(),
            card: None,
            at_ms: crate::util::unix_millis(),
            delivery: String::new(),
            dropped: false,
            truncated: false,
            response_code: String::new(),
            replaced: None,
        });
    }

    fn set_delivery(&self, seq: u64, outcome: &CallbackOutcome) {
        let label = if outcome.ok {
            if outcome.attempts > 1 {
                format!("已送达（第{}次）", outcome.attempts)
            } else {
                "已送达".to_owned()
            }
        } else {
            format!("失败（HTTP {}，{}次）", outcome.status, outcome.attempts)
        };
        {
            let mut st = self.lock();
            if let Some(m) = st.messages.iter_mut().find(|m| m.seq == seq) {
                m.delivery = label;
            }
        }
        self.changed.notify_waiters();
    }

    /// Ask the gateway to verify a callback URL, as the admin console does on save.
    pub async fn verify_url(&self, channel: Channel) -> Result<bool, String> {
        let s = &self.settings;
        let crypt = match channel {
            Channel::App => &s.app_crypt,
            Channel::Bot => &s.bot_crypt,
        };
        let expected = crate::util::random_digits(19);
        let echostr = crypt.encrypt(&expected);
        let timestamp = crate::util::unix_now().to_string();
        let nonce = crate::util::random_digits(10);
        let sig = crypt.sign(&timestamp, &nonce, &echostr);
        let url = format!(
            "{}/wecom/{}/callback?msg_signature={sig}&timestamp={timestamp}&nonce={nonce}&echostr={}",
            s.gateway_url,
            channel.as_str(),
            urlencode(&echostr)
        );
        let answer = self.poster.get(&url).await.map_err(|e| e.to_string())?;
        Ok(answer.status == 200 && answer.body == expected)
    }
}

/// Percent-encode for a query value (what WeCom does to echostr's `+ / =`).
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
