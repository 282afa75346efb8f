//! The WeCom server API client: the only place that speaks HTTP to WeCom (and the only user of
//! reqwest in the gateway; the simulator posts its callbacks with its own).
//!
//! - `access_token` is cached for the app and refreshed **single-flight**: concurrent callers
//!   that find no valid token wait on one `gettoken` instead of stampeding (WeCom throttles
//!   `gettoken`, and two fetches can invalidate each other).
//! - An answer of 40014 / 42001 / 41001 (invalid / expired / missing token) drops the cached
//!   token — only if it is still the one that failed — and the call is retried once.
//! - Errors keep WeCom's `errcode`; [`ClientError::is_retryable`] tells the outbox which ones
//!   are worth another attempt (-1 busy, 45009 rate limit, network, 5xx).
//! - URLs carry the token or the robot key, so reqwest errors are stripped of their URL
//!   before they can reach a log line.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::outbound::Message;
use crate::util::Secret;

/// Refresh a token this long before WeCom says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// Images and files bigger than this are refused while downloading.
pub const MAX_DOWNLOAD_BYTES: usize = 20 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("WeCom answered errcode {code}: {message}")]
    Api { code: i64, message: String },
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("network error: {0}")]
    Network(String),
    #[error("unexpected response: {0}")]
    Decode(String),
    #[error("download exceeds {0} bytes")]
    TooLarge(usize),
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A media message whose bytes are not in the media store (never retried).
    #[error("media {0} is not in the media store")]
    MissingMedia(String),
}

impl Sent {
    /// The answer of `message/send`.
    fn of(v: &Value) -> Sent {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Sent {
            msgid: s("msgid"),
            response_code: s("response_code"),
            invalid_users: s("invaliduser"),
        }
    }
}

impl ClientError {
    /// Worth trying again later (the outbox backs off); otherwise the message is dead.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Api { code, .. } => matches!(
                code,
                -1 | 45009 | 45033 | 130101 | 40014 | 42001 | 41001 | 60020
            ),
            ClientError::Status(s) => *s == 429 || *s >= 500,
            ClientError::Network(_) => true,
            ClientError::Decode(_)
            | ClientError::TooLarge(_)
            | ClientError::Unsupported(_)
            | ClientError::MissingMedia(_) => false,
        }
    }

    pub fn code(&self) -> Option<i64> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> ClientError {
        let e = e.without_url();
        if let Some(status) = e.status() {
            ClientError::Status(status.as_u16())
        } else {
            ClientError::Network(e.to_string())
        }
    }
}

/// How long an AI-bot `response_url` may take before the reply goes by `message/send`
/// instead: short, because the member is waiting and the fallback always works.
pub const RESPONSE_URL_TIMEOUT: Duration = Duration::from_secs(5);

fn is_token_error(code: i64) -> bool {
    matches!(code, 40014 | 42001 | 41001)
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    valid_until: Instant,
}

enum GetBody {
    Json(Value),
    Raw(reqwest::Response),
}

/// Result of `message/send`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    pub msgid: String,
    /// For interactive template cards: the code that updates the card later.
    pub response_code: String,
    pub invalid_users: String,
}

/// A member as `user/get` returns it (only what we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    pub userid: String,
    #[serde(default)]
    pub name: String,
}

/// Bytes fetched from `media/get` or an AI-bot media URL.
#[derive(Debug, Clone)]
pub struct Download {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// Settings of a [`Client`]; secrets stay in [`Secret`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub api_base: String,
    pub corp_id: String,
    pub agent_id: i64,
    pub secret: Secret,
    pub robot_webhook_key: Secret,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    cfg: ClientConfig,
    token: std::sync::Mutex<Option<CachedToken>>,
    /// Held while one caller fetches a token; the others wait, then read the cache.
    refresh: Mutex<()>,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(ClientError::from_reqwest)?;
        Ok(Client {
            http,
            cfg,
            token: std::sync::Mutex::new(None),
            refresh: Mutex::new(()),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/cgi-bin/{path}", self.cfg.api_base)
    }

    fn cached(&self) -> Option<String> {
        let guard = self.token.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|t| Instant::now() < t.valid_until)
            .map(|t| t.value.clone())
    }

    /// A valid access_token, fetching one (single-flight) when none is cached.
    pub async fn access_token(&self) -> Result<String, ClientError> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let _flight = self.refresh.lock().await;
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let resp = self
            .http
            .get(self.url("gettoken"))
            .query(&[
                ("corpid", self.cfg.corp_id.as_str()),
                ("corpsecret", self.cfg.secret.expose()),
            ])
            .send()
            .await
            .map_err(ClientError::from_reqwest)?;
        let v = envelope(resp).await?;
        let value = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ClientError::Decode("gettoken without access_token".into()))?
            .to_owned();
        let expires = v.get("expires_in").and_then(Value::as_u64).unwrap_or(7200);
        let lifetime = Duration::from_secs(expires).saturating_sub(TOKEN_MARGIN);
        let lifetime = lifetime.max(Duration::from_secs(expires) / 2);
        tracing::info!(expires_in = expires, "access_token refreshed");
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(CachedToken {
            value: value.clone(),
            valid_until: Instant::now() + lifetime,
        });
        Ok(value)
    }

    /// Forget `stale` (only if it is still the cached token: a concurrent refresh may have
    /// replaced it already).
    fn invalidate(&self, stale: &str) {
        let mut guard = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_some_and(|t| t.value == stale) {
            *guard = None;
        }
    }

    /// POST JSON to an access_token API, refreshing the token and retrying once on a token
    /// error.
    async fn post_api(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let resp = self
                .http
                .post(self.url(path))
                .query(&[("access_token", token.as_str())])
                .json(body)
                .send()
                .await
                .map_err(ClientError::from_reqwest)?;
            match envelope(resp).await {
                Err(ClientError::Api { code, .. }) if is_token_error(code) && !retried => {
                    tracing::info!(code, path, "access_token rejected; refreshing once");
                    self.invalidate(&token);
                    retried = true;
                }
                other => return other,
            }
        }
    }

    /// GET an access_token API. A JSON body is checked for `errcode` (and retried once on a
    /// token error); anything else is handed back as a raw response.
    async fn get_api(&self, path: &str, query: &[(&str, &str)]) -> Result<GetBody, ClientError> {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let mut q = vec![("access_token", token.as_str())];
            q.extend_from_slice(query);
            let resp = self
                .http
                .get(self.url(path))
                .query(&q)
                .send()
                .await
                .map_err(ClientError::from_reqwest)?;
            if !is_json(&resp) {
                return Ok(GetBody::Raw(resp));
            }
            match envelope(resp).await {
                Err(ClientError::Api { code, .. }) if is_token_error(code) && !retried => {
                    self.invalidate(&token);
                    retried = true;
                }
                other => return other.map(GetBody::Json),
            }
        }
    }

    /// `message/send` to one member.
    ///
    /// `dedupe`: for a re-attempt of a message that may already have been delivered, WeCom's
    /// duplicate check with this interval (the time since the first attempt): an identical
    /// message delivered within it is not shown again. First attempts go without it, so a
    /// legitimately repeated text ("请重新输入…") is never swallowed.
    pub async fn send_message(
        &self,
        touser: &str,
        msg: &Message,
        dedupe: Option<Duration>,
    ) -> Result<Sent, ClientError> {
        let mut body = json!({
            "touser": touser,
            "agentid": self.cfg.agent_id,
        });
        let obj = body.as_object_mut().expect("object literal");
        if let Some(interval) = dedupe {
            // WeCom accepts at most four hours.
            let secs = interval.as_secs().clamp(1, 4 * 3600);
            obj.insert("enable_duplicate_check".into(), 1.into());
            obj.insert("duplicate_check_interval".into(), secs.into());
        }
        match msg {
            Message::Text { content, .. } => {
                obj.insert("msgtype".into(), "text".into());
                obj.insert("text".into(), json!({ "content": content }));
            }
            Message::Markdown { content } => {
                obj.insert("msgtype".into(), "markdown".into());
                obj.insert("markdown".into(), json!({ "content": content }));
            }
            Message::TextCard {
                title,
                description,
                url,
                btntxt,
            } => {
                obj.insert("msgtype".into(), "textcard".into());
                obj.insert(
                    "textcard".into(),
                    json!({ "title": title, "description": description, "url": url, "btntxt": btntxt }),
                );
            }
            Message::TemplateCard { card } => {
                obj.insert("msgtype".into(), "template_card".into());
                obj.insert("template_card".into(), card.clone());
            }
            Message::Image { .. } | Message::File { .. } => {
                return Err(ClientError::Unsupported(
                    "media messages go through send_media",
                ));
            }
        }
        let v = self.post_api("message/send", &body).await?;
        Ok(Sent::of(&v))
    }

    /// `media/upload`: upload `bytes` as `kind` (`image` or `file`); returns the media_id
    /// (valid three days).
    pub async fn media_upload(
        &self,
        kind: &str,
        filename: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, ClientError> {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let part = reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(filename.to_owned())
                .mime_str(content_type)
                .map_err(ClientError::from_reqwest)?;
            let form = reqwest::multipart::Form::new().part("media", part);
            let resp = self
                .http
                .post(self.url("media/upload"))
                .query(&[("access_token", token.as_str()), ("type", kind)])
                .multipart(form)
                .send()
                .await
                .map_err(ClientError::from_reqwest)?;
            match envelope(resp).await {
                Err(ClientError::Api { code, .. }) if is_token_error(code) && !retried => {
                    self.invalidate(&token);
                    retried = true;
                }
                Err(e) => return Err(e),
                Ok(v) => {
                    return v
                        .get("media_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or(ClientError::Unsupported(
                            "media/upload answered no media_id",
                        ));
                }
            }
        }
    }

    /// `message/send` of an uploaded image or file.
    pub async fn send_media(
        &self,
        touser: &str,
        kind: &str,
        media_id: &str,
        dedupe: Option<Duration>,
    ) -> Result<Sent, ClientError> {
        let mut body = json!({
            "touser": touser,
            "agentid": self.cfg.agent_id,
            "msgtype": kind,
            kind: { "media_id": media_id },
        });
        if let Some(interval) = dedupe {
            body["enable_duplicate_check"] = 1.into();
            body["duplicate_check_interval"] = interval.as_secs().clamp(1, 4 * 3600).into();
        }
        let v = self.post_api("message/send", &body).await?;
        Ok(Sent::of(&v))
    }

    /// `message/update_template_card`: grey out the buttons of a clicked card for `userid`.
    pub async fn update_card_button(
        &self,
        userid: &str,
        response_code: &str,
        replace_name: &str,
    ) -> Result<(), ClientError> {
        let body = json!({
            "userids": [userid],
            "agentid": self.cfg.agent_id,
            "response_code": response_code,
            "button": { "replace_name": replace_name },
        });
        self.post_api("message/update_template_card", &body)
            .await
            .map(|_| ())
    }

    /// `media/get`. A JSON body (even with HTTP 200) is an error, never a file.
    pub async fn media_get(&self, media_id: &str) -> Result<Download, ClientError> {
        match self.get_api("media/get", &[("media_id", media_id)]).await? {
            GetBody::Raw(resp) => read_limited(resp).await,
            GetBody::Json(_) => Err(ClientError::Decode(
                "media/get answered JSON instead of a file".into(),
            )),
        }
    }

    /// `user/get`: the member's display name.
    pub async fn user_get(&self, userid: &str) -> Result<Member, ClientError> {
        match self.get_api("user/get", &[("userid", userid)]).await? {
            GetBody::Json(v) => {
                serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
            }
            GetBody::Raw(_) => Err(ClientError::Decode(
                "user/get answered a non-JSON body".into(),
            )),
        }
    }

    /// The group robot webhook of the handler group.
    pub async fn robot_send(&self, msg: &Message) -> Result<(), ClientError> {
        let body = match msg {
            Message::Text { content, mentioned } => {
                json!({ "msgtype": "text", "text": { "content": content, "mentioned_list": mentioned } })
            }
            Message::Markdown { content } => {
                json!({ "msgtype": "markdown", "markdown": { "content": content } })
            }
            Message::TextCard {
                title,
                description,
                url,
                ..
            } => json!({ "msgtype": "news", "news": { "articles": [
                { "title": title, "description": description, "url": url }
            ] } }),
            Message::TemplateCard { card } => {
                json!({ "msgtype": "template_card", "template_card": card })
            }
            Message::Image { .. } | Message::File { .. } => {
                return Err(ClientError::Unsupported(
                    "the group robot takes no uploaded media",
                ));
            }
        };
        let resp = self
            .http
            .post(format!("{}/cgi-bin/webhook/send", self.cfg.api_base))
            .query(&[("key", self.cfg.robot_webhook_key.expose())])
            .json(&body)
            .send()
            .await
            .map_err(ClientError::from_reqwest)?;
        envelope(resp).await.map(|_| ())
    }

    /// POST one reply to an AI-bot `response_url` (single use, valid one hour).
    pub async fn bot_respond(&self, response_url: &str, msg: &Message) -> Result<(), ClientError> {
        let body = match msg {
            Message::Text { content, .. } | Message::Markdown { content } => {
                json!({ "msgtype": "markdown", "markdown": { "content": content } })
            }
            Message::TextCard {
                title, description, ..
            } => {
                json!({ "msgtype": "markdown", "markdown": { "content": format!("**{title}**\n{description}") } })
            }
            Message::TemplateCard { card } => {
                json!({ "msgtype": "template_card", "template_card": card })
            }
            Message::Image { .. } | Message::File { .. } => {
                return Err(ClientError::Unsupported(
                    "the group robot takes no uploaded media",
                ));
            }
        };
        let resp = self
            .http
            .post(response_url)
            .timeout(RESPONSE_URL_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(ClientError::from_reqwest)?;
        envelope(resp).await.map(|_| ())
    }

    /// GET a media URL (AI-bot images: 5-minute links to encrypted bytes).
    pub async fn download(&self, url: &str) -> Result<Download, ClientError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(ClientError::from_reqwest)?;
        if !resp.status().is_success() {
            return Err(ClientError::Status(resp.status().as_u16()));
        }
        if is_json(&resp) {
            let v: Value = resp
                .json()
                .await
                .map_err(|e| ClientError::Decode(e.without_url().to_string()))?;
            check_errcode(v)?;
            return Err(ClientError::Decode("media URL answered JSON".into()));
        }
        read_limited(resp).await
    }
}

fn is_json(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.starts_with("text/plain"))
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Download, ClientError> {
    if !resp.status().is_success() {
        return Err(ClientError::Status(resp.status().as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n as usize > MAX_DOWNLOAD_BYTES)
    {
        return Err(ClientError::TooLarge(MAX_DOWNLOAD_BYTES));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ClientError::from_reqwest)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_DOWNLOAD_BYTES {
            return Err(ClientError::TooLarge(MAX_DOWNLOAD_BYTES));
        }
    }
    Ok(Download {
        bytes,
        content_type,
    })
}

/// Read a JSON envelope; errcode != 0 is an [`ClientError::Api`].
async fn envelope(resp: reqwest::Response) -> Result<Value, ClientError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(ClientError::from_reqwest)?;
    if !status.is_success() {
        return Err(ClientError::Status(status.as_u16()));
    }
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
    check_errcode(v)
}

fn check_errcode(v: Value) -> Result<Value, ClientError> {
    let code = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
    if code != 0 {
        let message = v
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        return Err(ClientError::Api { code, message });
    }
    Ok(v)
}
