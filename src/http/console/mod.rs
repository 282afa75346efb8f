//! The handler console (`/console/…`) and its JSON API (`/api/v1/…`).
//!
//! Pages are server-rendered (askama templates embedded in the binary, no CDN) with a small
//! script for live updates (server-sent events), Ctrl+Enter and FAQ search. Every action is
//! a plain form post protected by the session's CSRF token and answered with a redirect, so
//! the console also works with scripts disabled. The API offers the same actions as JSON,
//! with the same sessions (CSRF in `X-CSRF-Token`) or a bearer token.
//!
//! Handlers extract a verified caller, call one service operation (see [`ops`]) and map the
//! result; errors go through [`crate::http::error::ConsoleError`].

pub mod api;
pub mod auth;

pub mod ops;
pub mod pages;
pub mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use super::AppState;

/// Largest console request body (forms, JSON): replies are text.
pub const MAX_BODY: usize = 64 * 1024;

/// Escape text for HTML outside templates.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::root))
        .route("/console", get(pages::root))
        .route("/console/", get(pages::queue))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/queue/rows", get(pages::queue_rows))
        .route("/console/events", get(pages::events))
        .route("/console/tickets/{number}", get(pages::ticket))
        .route("/console/tickets/{number}/live", get(pages::ticket_live))
        .route("/console/tickets/{number}/{action}", post(pages::act))
        .route("/console/outbox/{id}/retry", post(pages::retry))
        .route("/console/media/{hash}", get(pages::media))
        .route("/console/faq/search", get(pages::faq_search))
        .route("/console/assets/{name}", get(pages::asset))
        .route("/console/admin", get(pages::admin))
        .route("/console/admin/users", post(pages::add_user))
        .route(
            "/console/admin/drafts/{id}/publish",
            post(pages::publish_draft),
        )
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/tickets", get(api::tickets))
        .route("/api/v1/tickets/{number}", get(api::ticket))
        .route("/api/v1/tickets/{number}/{action}", post(api::act))
        .route("/api/v1/outbox/{id}/retry", post(api::retry))
        .route("/api/v1/faq/search", get(api::faq_search))
        .route("/api/v1/admin/outbox/dead", get(api::dead_letters))
        .route("/api/v1/admin/faq-report", get(api::faq_report))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
