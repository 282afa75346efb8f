//! WeCom callback endpoints: `GET`/`POST /wecom/app/callback` and `/wecom/bot/callback`.
//!
//! The [`Verified`] extractor does all the checking before a handler runs: query parameters
//! (percent-decoded exactly once, `+` kept as `+`), timestamp window, signature (constant
//! time), decryption with the surface's receive_id. Handlers then only parse and hand the
//! message to the inbox. No network call and no search happens here; the answer is an empty
//! 200 once the message is durably stored (or recognised as a retry).

use std::sync::LazyLock;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::CallbackError;
use crate::inbox::Accepted;
use crate::wecom::{self, Channel, Content, Event, MsgCrypt, ParseError};

/// The signature parameters of a callback URL.
#[derive(Debug, Clone)]
pub struct SignedQuery {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
    pub echostr: Option<String>,
}

/// Percent-decode once, keeping `+` as a literal plus (echostr is base64).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl SignedQuery {
    pub fn parse(query: Option<&str>) -> Result<SignedQuery, CallbackError> {
        let mut sig = None;
        let mut ts = None;
        let mut nonce = None;
        let mut echo = None;
        for pair in query.unwrap_or_default().split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or(CallbackError::BadQuery)?;
            match k {
                "msg_signature" => sig = Some(v),
                "timestamp" => ts = Some(v),
                "nonce" => nonce = Some(v),
                "echostr" => echo = Some(v),
                _ => {}
            }
        }
        Ok(SignedQuery {
            msg_signature: sig
                .filter(|s| !s.is_empty())
                .ok_or(CallbackError::BadQuery)?,
            timestamp: ts
                .filter(|s| !s.is_empty())
                .ok_or(CallbackError::BadQuery)?,
            nonce: nonce
                .filter(|s| !s.is_empty())
                .ok_or(CallbackError::BadQuery)?,
            echostr: echo,
        })
    }

    fn check_window(&self, window: std::time::Duration) -> Result<(), CallbackError> {
        let ts: i64 = self
            .timestamp
            .parse()
            .map_err(|_| CallbackError::BadQuery)?;
        let skew = (crate::util::unix_now() - ts).unsigned_abs();
        if skew > window.as_secs() {
            return Err(CallbackError::Stale);
        }
        Ok(())
    }
}

fn crypt_for(state: &AppState, channel: Channel) -> &MsgCrypt {
    match channel {
        Channel::App => &state.app_crypt,
        Channel::Bot => &state.bot_crypt,
    }
}

/// Which callback surface a route serves (a type-level marker for the extractor).
pub trait Surface: Send + Sync + 'static {
    const CHANNEL: Channel;
    /// Reads a decrypted message of this surface.
    const PARSE: fn(&str) -> Result<wecom::Inbound, ParseError>;
}

pub struct AppSurface;
impl Surface for AppSurface {
    const CHANNEL: Channel = Channel::App;
    const PARSE: fn(&str) -> Result<wecom::Inbound, ParseError> = wecom::app::parse;
}

pub struct BotSurface;
impl Surface for BotSurface {
    const CHANNEL: Channel = Channel::Bot;
    const PARSE: fn(&str) -> Result<wecom::Inbound, ParseError> = wecom::bot::parse;
}

/// A verified, decrypted callback body: signature, timestamp window, receive_id all checked.
pub struct Verified<S> {
    pub plaintext: String,
    pub query: SignedQuery,
    _surface: std::marker::PhantomData<S>,
}

impl<S: Surface> FromRequest<AppState> for Verified<S> {
    type Rejection = CallbackError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let query = SignedQuery::parse(req.uri().query())?;
        query.check_window(state.cfg.server.timestamp_window)?;
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    CallbackError::TooLarge
                } else {
                    CallbackError::Malformed(e.body_text())
                }
            })?;
        let body = std::str::from_utf8(&body)
            .map_err(|_| CallbackError::Malformed("body is not UTF-8".into()))?;
        let encrypted = match S::CHANNEL {
            Channel::App => {
                let env = wecom::app::parse_envelope(body).map_err(CallbackError::from)?;
                if !env.to_user_name.is_empty() && env.to_user_name != state.cfg.wecom.corp_id {
                    return Err(CallbackError::WrongRecipient);
                }
                env.encrypt
            }
            Channel::Bot => wecom::bot::parse_envelope(body).map_err(CallbackError::from)?,
        };
        let plaintext = crypt_for(state, S::CHANNEL).verify_and_decrypt(
            &query.msg_signature,
            &query.timestamp,
            &query.nonce,
            &encrypted,
        )?;
        Ok(Verified {
            plaintext,
            query,
            _surface: std::marker::PhantomData,
        })
    }
}

/// URL verification (GET): the decrypted echostr, verbatim.
pub struct Echo<S> {
    pub plaintext: String,
    _surface: std::marker::PhantomData<S>,
}

impl<S: Surface> FromRequestParts<AppState> for Echo<S> {
    type Rejection = CallbackError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let query = SignedQuery::parse(parts.uri.query())?;
        query.check_window(state.cfg.server.timestamp_window)?;
        let echostr = query.echostr.as_deref().ok_or(CallbackError::BadQuery)?;
        let plaintext = crypt_for(state, S::CHANNEL).verify_and_decrypt(
            &query.msg_signature,
            &query.timestamp,
            &query.nonce,
            echostr,
        )?;
        Ok(Echo {
            plaintext,
            _surface: std::marker::PhantomData,
        })
    }
}

pub async fn verify_url<S: Surface>(echo: Echo<S>) -> Response {
    tracing::info!(channel = S::CHANNEL.as_str(), "callback URL verified");
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        echo.plaintext,
    )
        .into_response()
}

/// `helpdesk_callbacks_total` of the stored and the retried callbacks, looked up in the
/// recorder once (a lookup per callback showed in profiles of the callback path).
static CALLBACKS_ACCEPTED: LazyLock<metrics::Counter> =
    LazyLock::new(|| callbacks_total("accepted"));
static CALLBACKS_DUPLICATE: LazyLock<metrics::Counter> =
    LazyLock::new(|| callbacks_total("duplicate"));

/// The counter of `result`, from the process's recorder (installed first if it is not yet:
/// a counter taken before would count nowhere).
fn callbacks_total(result: &'static str) -> metrics::Counter {
    crate::telemetry::prometheus();
    metrics::counter!("helpdesk_callbacks_total", "result" => result)
}

/// Store the message and acknowledge it.
async fn accept(
    state: &AppState,
    parsed: Result<wecom::Inbound, ParseError>,
) -> Result<Response, CallbackError> {
    let inbound = match parsed {
        Ok(m) => m,
        Err(ParseError::Unsupported(kind)) => {
            tracing::info!(%kind, "unsupported callback type acknowledged and ignored");
            return Ok(StatusCode::OK.into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let (channel, msg_id, kind) = (
        inbound.channel,
        inbound.msg_id.clone(),
        inbound.content.kind(),
    );
    let welcome = channel == Channel::Bot
        && matches!(
            inbound.content,
            Content::Event {
                event: Event::EnterChat
            }
        );
    match state.inbox.accept(inbound).await {
        Ok(Accepted::New(seq)) => {
            CALLBACKS_ACCEPTED.increment(1);
            tracing::debug!(channel = channel.as_str(), %msg_id, kind, seq, "callback stored");
        }
        Ok(Accepted::Duplicate) => {
            CALLBACKS_DUPLICATE.increment(1);
            tracing::info!(channel = channel.as_str(), %msg_id, "retried callback acknowledged again");
        }
        Err(e) => return Err(CallbackError::Unavailable(e)),
    }
    if welcome {
        return Ok(passive_text(
            &state.bot_crypt,
            crate::conversation::HELP_TEXT,
        ));
    }
    Ok(StatusCode::OK.into_response())
}

/// An encrypted AI-bot passive reply carrying one text message (the enter_chat welcome).
fn passive_text(crypt: &MsgCrypt, text: &str) -> Response {
    let plain = serde_json::json!({ "msgtype": "text", "text": { "content": text } }).to_string();
    let encrypt = crypt.encrypt(&plain);
    let timestamp = crate::util::unix_now().to_string();
    let nonce = crate::util::random_digits(10);
    let reply = wecom::bot::EncryptedReply {
        msgsignature: crypt.sign(&timestamp, &nonce, &encrypt),
        encrypt,
        timestamp,
        nonce,
    };
    axum::Json(reply).into_response()
}

/// A verified callback, parsed and durably stored: the answer for WeCom. An extractor, so
/// the hot path borrows the state instead of cloning it for every request.
pub struct Stored<S> {
    pub response: Response,
    _surface: std::marker::PhantomData<S>,
}

impl<S: Surface> FromRequest<AppState> for Stored<S> {
    type Rejection = CallbackError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let v = Verified::<S>::from_request(req, state).await?;
        Ok(Stored {
            response: accept(state, S::PARSE(&v.plaintext)).await?,
            _surface: std::marker::PhantomData,
        })
    }
}

pub async fn app_message(stored: Stored<AppSurface>) -> Response {
    stored.response
}

pub async fn bot_message(stored: Stored<BotSurface>) -> Response {
    stored.response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_keeps_plus_and_decodes_once() {
        let q = SignedQuery::parse(Some(
            "msg_signature=abc&timestamp=1&nonce=2&echostr=a%2Bb%2F%3D+c%252B",
        ))
        .expect("parses");
        assert_eq!(q.echostr.as_deref(), Some("a+b/=+c%2B"));
        assert!(SignedQuery::parse(Some("timestamp=1&nonce=2")).is_err());
        assert!(SignedQuery::parse(Some("msg_signature=a&timestamp=1&nonce=%ZZ")).is_err());
        assert!(SignedQuery::parse(None).is_err());
    }
}
