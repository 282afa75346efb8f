//! Console and API errors: one table of status, stable code and message.
//! Pages get a small HTML error page (or a redirect to the login); the API gets JSON.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::tickets::TicketError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    #[error("请先登录")]
    LoginRequired,
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
    #[error("服务器内部错误，请稍后重试")]
    Internal,
}

impl From<TicketError> for ConsoleError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::NotFound => ConsoleError::NotFound,
            other => ConsoleError::Ticket(other),
        }
    }
}

impl From<crate::store::Error> for ConsoleError {
    fn from(e: crate::store::Error) -> Self {
        tracing::error!(error = %e, "console storage error");
        ConsoleError::Internal
    }
}

impl ConsoleError {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ConsoleError::LoginRequired => (StatusCode::SEE_OTHER, "login_required"),
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
            ConsoleError::Ticket(TicketError::NotFound) => (StatusCode::NOT_FOUND, "not_found"),
            ConsoleError::Ticket(TicketError::Storage) | ConsoleError::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
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
        (
            status,
            Json(json!({ "error": code, "message": self.to_string() })),
        )
            .into_response()
    }
}

/// A console error rendered as JSON (the API's rejections and errors).
#[derive(Debug)]
pub struct ApiError(pub ConsoleError);

impl From<ConsoleError> for ApiError {
    fn from(e: ConsoleError) -> Self {
        ApiError(e)
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
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
        if status == StatusCode::SEE_OTHER {
            return (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/console/login")],
            )
                .into_response();
        }
        tracing::info!(code, status = status.as_u16(), "console request refused");
        let body = format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <link rel=\"stylesheet\" href=\"/console/assets/app.css\"></head><body class=\"error-page\">\
             <main class=\"card\"><h1>{title}</h1><p>{msg}</p><p><a href=\"/console/\">返回工单队列</a></p></main></body></html>",
            title = status.canonical_reason().unwrap_or("错误"),
            msg = super::escape_html(&self.to_string()),
        );
        (status, Html(body)).into_response()
    }
}
