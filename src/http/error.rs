//! The error edge of HTTP: every error a handler or extractor can answer with, each mapped
//! once to a status and a stable code, and the one place that logs them.
//!
//! - [`CallbackError`]: why a WeCom callback was refused. WeCom gets a short plain-text code
//!   (no internals).
//! - [`ConsoleError`]: console pages (a small HTML page, or a redirect to the login) and, as
//!   [`ApiError`], the JSON API. User text is Chinese and comes from the `Display`.
//!
//! `into_response` has no side effects: it attaches a [`Failure`] to the response, and the
//! [`log_errors`] middleware logs it (inside the request's span, so with its id and route).
//! An internal error keeps its cause ([`Cause`]) until then; the browser sees only "服务器
//! 内部错误" and the request id, which finds the log line.

use std::sync::Arc;

use axum::Json;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::accounts::AuthError;
use crate::incidents::{HookError, IncidentError};
use crate::shutdown::Chain;
use crate::tickets::TicketError;
use crate::wecom::{CryptoError, ParseError};

/// The header carrying the request id (set, or taken from the client, by the router).
pub const REQUEST_ID: &str = "x-request-id";

/// The source of an internal error, kept for the log.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Chain(&*self.0).fmt(f)
    }
}

impl Cause {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(e))
    }
}

/// What [`log_errors`] logs about a response that is an error; attached by `into_response`.
#[derive(Debug, Clone)]
pub struct Failure {
    code: &'static str,
    /// The internal cause, for a 500.
    cause: Option<Cause>,
    /// A detail safe to log (never message content): why a callback was refused.
    detail: Option<String>,
    /// For a console HTML page, its message: the page is rendered again with the request id.
    page: Option<String>,
    callback: bool,
}

/// Why a WeCom callback was refused. Anything but an empty 200 makes WeCom retry, which is
/// right for `Unavailable` and harmless for forgeries.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("missing or malformed signature parameters")]
    BadQuery,
    #[error("timestamp outside the accepted window")]
    Stale,
    #[error("body exceeds the size limit")]
    TooLarge,
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("addressed to another corp")]
    WrongRecipient,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("temporarily unavailable")]
    Unavailable(#[source] crate::store::Error),
}

impl From<ParseError> for CallbackError {
    fn from(e: ParseError) -> Self {
        CallbackError::Malformed(e.to_string())
    }
}

impl CallbackError {
    /// `(status, stable code)` for each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            CallbackError::BadQuery => (StatusCode::BAD_REQUEST, "bad_query"),
            CallbackError::Stale => (StatusCode::FORBIDDEN, "stale_timestamp"),
            CallbackError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            CallbackError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            CallbackError::WrongRecipient => (StatusCode::FORBIDDEN, "wrong_recipient"),
            CallbackError::Crypto(CryptoError::SignatureMismatch) => {
                (StatusCode::FORBIDDEN, "bad_signature")
            }
            CallbackError::Crypto(CryptoError::ReceiveIdMismatch) => {
                (StatusCode::FORBIDDEN, "wrong_receive_id")
            }
            CallbackError::Crypto(_) => (StatusCode::BAD_REQUEST, "bad_ciphertext"),
            CallbackError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl IntoResponse for CallbackError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = Some(self.to_string());
        let cause = match self {
            CallbackError::Unavailable(e) => Some(Cause(Arc::new(e))),
            _ => None,
        };
        let mut res = (status, code).into_response();
        res.extensions_mut().insert(Failure {
            code,
            cause,
            detail,
            page: None,
            callback: true,
        });
        res
    }
}

/// Console and API errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsoleError {
    /// A page needs a login; `next` is the page to return to after it.
    #[error("请先登录")]
    LoginRequired { next: String },
    #[error("未登录或凭证无效")]
    Unauthorized,
    #[error("没有权限访问该页面")]
    Forbidden,
    #[error("页面已过期或请求来源无效，请刷新页面后重试")]
    Csrf,
    #[error("找不到该内容")]
    NotFound,
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Ticket(TicketError),
    #[error("{0}")]
    Incident(IncidentError),
    /// Someone else replied or changed the status since the page was loaded.
    #[error("在你打开页面之后，{0}。确认仍要发送，请再点一次发送。")]
    Newer(String),
    #[error("服务器内部错误，请稍后重试")]
    Internal(Cause),
}

impl From<IncidentError> for ConsoleError {
    fn from(e: IncidentError) -> Self {
        match e {
            IncidentError::NotFound => ConsoleError::NotFound,
            IncidentError::Storage(cause) => ConsoleError::Internal(Cause(cause)),
            IncidentError::Ticket(e) => ConsoleError::from(e),
            other => ConsoleError::Incident(other),
        }
    }
}

/// Why a monitor's post (`/hooks/…`) was refused. Only a failing store answers 5xx (the
/// sender retries); everything else is the sender's to fix and is never retried usefully.
#[derive(Debug, thiserror::Error)]
pub enum HookReject {
    #[error("hooks are not enabled (hooks.token is empty)")]
    Off,
    #[error("missing or wrong token")]
    Unauthorized,
    #[error("signature does not match the body")]
    BadSignature,
    #[error("signature timestamp outside the accepted window")]
    Stale,
    #[error("body exceeds the size limit")]
    TooLarge,
    #[error("{0}")]
    Invalid(#[from] HookError),
    #[error("temporarily unavailable, retry")]
    Unavailable(Cause),
}

impl HookReject {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            HookReject::Off => (StatusCode::NOT_FOUND, "not_found"),
            HookReject::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            HookReject::BadSignature => (StatusCode::FORBIDDEN, "bad_signature"),
            HookReject::Stale => (StatusCode::FORBIDDEN, "stale_timestamp"),
            HookReject::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            HookReject::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid event"),
            HookReject::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl From<IncidentError> for HookReject {
    fn from(e: IncidentError) -> Self {
        match e {
            IncidentError::Storage(cause) => HookReject::Unavailable(Cause(cause)),
            // Nothing else can refuse an ingest; keep the cause if it ever does.
            other => HookReject::Unavailable(Cause(Arc::new(other))),
        }
    }
}

impl IntoResponse for HookReject {
    /// PagerDuty's error shape: `{"status": …, "message": …}`.
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = self.to_string();
        let mut res = (status, Json(json!({ "status": code, "message": message }))).into_response();
        let cause = match self {
            HookReject::Unavailable(c) => Some(c),
            _ => None,
        };
        res.extensions_mut().insert(Failure {
            code,
            cause,
            detail: Some(message),
            page: None,
            callback: true,
        });
        res
    }
}

impl ConsoleError {
    /// An internal error, keeping `e` as its cause for the log.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> ConsoleError {
        ConsoleError::Internal(Cause(Arc::new(e)))
    }
}

impl From<TicketError> for ConsoleError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::NotFound => ConsoleError::NotFound,
            TicketError::Storage(cause) => ConsoleError::Internal(Cause(cause)),
            other => ConsoleError::Ticket(other),
        }
    }
}

impl From<AuthError> for ConsoleError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Storage(cause) => ConsoleError::Internal(Cause(cause)),
            AuthError::Hashing(why) => ConsoleError::internal(std::io::Error::other(why)),
            other => ConsoleError::BadInput(other.to_string()),
        }
    }
}

impl From<crate::store::Error> for ConsoleError {
    fn from(e: crate::store::Error) -> Self {
        ConsoleError::internal(e)
    }
}

impl From<tokio::task::JoinError> for ConsoleError {
    fn from(e: tokio::task::JoinError) -> Self {
        ConsoleError::internal(e)
    }
}

impl ConsoleError {
    /// `(status, stable code)` for each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ConsoleError::LoginRequired { .. } => (StatusCode::SEE_OTHER, "login_required"),
            ConsoleError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ConsoleError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ConsoleError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            ConsoleError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ConsoleError::BadInput(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_input"),
            ConsoleError::Ticket(TicketError::Closed) => (StatusCode::CONFLICT, "ticket_closed"),
            ConsoleError::Ticket(TicketError::IllegalTransition { .. }) => {
                (StatusCode::CONFLICT, "illegal_transition")
            }
            ConsoleError::Ticket(TicketError::CategoryRequired) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "category_required")
            }
            ConsoleError::Ticket(TicketError::Empty) => (StatusCode::UNPROCESSABLE_ENTITY, "empty"),
            ConsoleError::Ticket(TicketError::TooLong(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "too_long")
            }
            ConsoleError::Ticket(TicketError::NotOwner) => (StatusCode::FORBIDDEN, "forbidden"),
            ConsoleError::Ticket(TicketError::SelfReference) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "self_reference")
            }
            ConsoleError::Ticket(TicketError::MergeTarget(_)) => {
                (StatusCode::CONFLICT, "merge_target_closed")
            }
            ConsoleError::Ticket(TicketError::NotFound) => (StatusCode::NOT_FOUND, "not_found"),
            ConsoleError::Newer(_) => (StatusCode::CONFLICT, "newer_activity"),
            ConsoleError::Incident(e) => match e {
                IncidentError::Illegal(..) => (StatusCode::CONFLICT, "illegal_transition"),
                IncidentError::LinkedElsewhere(..) => (StatusCode::CONFLICT, "linked_elsewhere"),
                IncidentError::NotLinked(_) => (StatusCode::CONFLICT, "not_linked"),
                IncidentError::NoTicket(_) => (StatusCode::UNPROCESSABLE_ENTITY, "no_such_ticket"),
                IncidentError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                IncidentError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, "bad_input"),
            },
            ConsoleError::Ticket(TicketError::Storage(_)) | ConsoleError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    fn failure(self, code: &'static str, page: Option<String>) -> Failure {
        let cause = match self {
            ConsoleError::Internal(c) => Some(c),
            ConsoleError::Ticket(TicketError::Storage(c)) => Some(Cause(c)),
            ConsoleError::Incident(IncidentError::Storage(c)) => Some(Cause(c)),
            _ => None,
        };
        Failure {
            code,
            cause,
            detail: None,
            page,
            callback: false,
        }
    }

    /// JSON form for the API.
    pub fn api(self) -> Response {
        let (status, code) = self.status_and_code();
        let status = if status == StatusCode::SEE_OTHER {
            StatusCode::UNAUTHORIZED
        } else {
            status
        };
        let mut res = (
            status,
            Json(json!({ "error": code, "message": self.to_string() })),
        )
            .into_response();
        res.extensions_mut().insert(self.failure(code, None));
        res
    }
}

/// A console error rendered as JSON (the API's rejections and errors).
#[derive(Debug)]
pub struct ApiError(pub ConsoleError);

impl<E: Into<ConsoleError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.api()
    }
}

impl IntoResponse for ConsoleError {
    /// Page form: a redirect to the login, or a small error page.
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ConsoleError::LoginRequired { next } = &self {
            let location = match safe_next(next) {
                Some(next) => format!("/console/login?next={}", urlencode(next)),
                None => "/console/login".to_owned(),
            };
            return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
        }
        let message = self.to_string();
        let mut res = (status, Html(error_page(status, &message, None))).into_response();
        res.extensions_mut()
            .insert(self.failure(code, Some(message)));
        res
    }
}

/// `next` when it is a console page to return to after the login (never another site).
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with("/console/")
        && next != "/console/"
        && !next.starts_with("/console/login")
        && !next.contains("//")
        && !next.contains('\\')
        && next.len() <= 512
        && next.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(next)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The heading of an error page, in the console's language.
fn status_title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "请求无效",
        401 => "请先登录",
        403 => "没有权限",
        404 => "找不到该内容",
        408 => "请求超时",
        409 => "操作与当前状态冲突",
        413 => "内容过大",
        422 => "填写有误",
        429 => "操作过于频繁",
        503 => "服务暂不可用",
        _ => "服务器内部错误",
    }
}

fn error_page(status: StatusCode, message: &str, request_id: Option<&str>) -> String {
    let reference = request_id
        .map(|id| {
            format!(
                "<p class=\"muted\">请求编号：<code>{}</code>（联系管理员时请提供）</p>",
                super::console::escape_html(id)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/app.css\"></head><body class=\"error-page\">\
         <header class=\"topbar\"><a class=\"brand\" href=\"/console/\">事件处理台</a>\
         <nav><a href=\"/console/\">工单队列</a></nav></header>\
         <main class=\"card\"><h1>{title}</h1><p>{msg}</p>{reference}<p><a href=\"/console/\">返回工单队列</a></p></main></body></html>",
        title = status_title(status),
        msg = super::console::escape_html(message),
    )
}

/// Middleware: log the [`Failure`] a response carries, once, and give a console error page
/// the request id.
pub async fn log_errors(req: Request, next: Next) -> Response {
    // A cheap clone (shared bytes): most requests succeed and never read it.
    let request_id = req.headers().get(REQUEST_ID).cloned();
    let mut res = next.run(req).await;
    let Some(f) = res.extensions_mut().remove::<Failure>() else {
        return res;
    };
    let status = res.status().as_u16();
    match (&f.cause, f.callback) {
        (Some(cause), _) => {
            tracing::error!(code = f.code, status, error = %cause, "request failed")
        }
        (None, true) => {
            metrics::counter!("helpdesk_callbacks_total", "result" => f.code).increment(1);
            let reason = f.detail.as_deref().unwrap_or_default();
            tracing::warn!(code = f.code, status, reason, "callback refused");
        }
        (None, false) => tracing::info!(code = f.code, status, "console request refused"),
    }
    let Some((message, id)) = f.page.zip(request_id) else {
        return res;
    };
    let Ok(shown) = id.to_str() else {
        return res;
    };
    // The same response (status, headers) with the page naming the request.
    let page = error_page(res.status(), &message, Some(shown));
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(REQUEST_ID, id);
    Response::from_parts(parts, axum::body::Body::from(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_cause_and_shows_none_of_it() {
        let e = ConsoleError::internal(std::io::Error::other("disk on fire"));
        let (status, code) = e.status_and_code();
        assert_eq!(
            (status, code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert!(!e.to_string().contains("disk"));
        let res = e.into_response();
        let f = res.extensions().get::<Failure>().expect("failure attached");
        assert!(
            f.cause
                .as_ref()
                .expect("cause")
                .to_string()
                .contains("disk on fire")
        );
    }

    #[test]
    fn only_console_pages_are_returned_to_after_login() {
        assert_eq!(
            safe_next("/console/tickets/IT20261121-0001"),
            Some("/console/tickets/IT20261121-0001")
        );
        for bad in [
            "https://evil.example/console/",
            "//evil.example/console/",
            "/console//evil.example",
            "/console/login?next=/console/",
            "/elsewhere",
            "/console/\\evil",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_page_for_a_500_names_the_request() {
        let page = error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "服务器内部错误",
            Some("abc-1"),
        );
        assert!(page.contains("请求编号：<code>abc-1</code>"));
        assert!(page.contains("<h1>服务器内部错误</h1>"), "{page}");
        let page = error_page(StatusCode::FORBIDDEN, "没有权限访问该页面", None);
        assert!(page.contains("<title>没有权限</title>"), "{page}");
        assert!(
            page.contains(r#"<header class="topbar">"#),
            "the console's top bar"
        );
    }
}
