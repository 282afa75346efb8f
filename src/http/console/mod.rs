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
pub mod editor;
pub mod incidents;

pub mod ops;
pub mod pages;
pub mod presence;
pub mod reports;
pub mod tools;
pub mod views;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use super::AppState;

/// Largest console request body (forms, JSON): replies are text.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest reply with attachments: a few files within WeCom's limits.
pub const MAX_UPLOAD: usize = 45 * 1024 * 1024;

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
    let routes = Router::new()
        .route("/", get(pages::root))
        .route("/console", get(pages::root))
        .route("/console/", get(pages::queue))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/queue/rows", get(pages::queue_rows))
        .route("/console/events", get(pages::events))
        .route("/console/tickets/{number}", get(pages::ticket))
        .route("/console/tickets/{number}/live", get(pages::ticket_live))
        .route("/console/tickets/{number}/presence", post(presence::report))
        .route(
            "/console/tickets/{number}/reply-files",
            post(pages::reply_with_files).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/console/tickets/{number}/{action}", post(pages::act))
        .route("/console/outbox/{id}/retry", post(pages::retry))
        .route("/console/media/{hash}", get(pages::media))
        .route("/console/faq/search", get(pages::faq_search))
        .route("/console/assets/{name}", get(pages::asset))
        .route("/favicon.ico", get(pages::favicon))
        .route("/console/admin", get(pages::admin))
        .route("/console/admin/users", post(pages::add_user))
        .route(
            "/console/admin/drafts/{id}/publish",
            post(pages::publish_draft),
        )
        .route(
            "/console/incidents",
            get(incidents::page).post(incidents::declare_form),
        )
        .route("/console/incidents/rows", get(incidents::rows_part))
        .route("/console/incidents/link", post(incidents::link_form))
        .route("/console/incidents/{number}", get(incidents::incident))
        .route(
            "/console/incidents/{number}/live",
            get(incidents::incident_live),
        )
        .route(
            "/console/incidents/{number}/{action}",
            post(incidents::act_form),
        )
        .route(
            "/api/v1/incidents",
            get(incidents::api_list).post(incidents::api_declare),
        )
        .route("/api/v1/incidents/{number}", get(incidents::api_get))
        .route(
            "/api/v1/incidents/{number}/{action}",
            post(incidents::api_act),
        )
        .route("/console/board", get(reports::board))
        .route("/console/board/live", get(reports::board_live))
        .route("/console/reports", get(reports::reports))
        .route("/console/reports/send", post(reports::send_weekly))
        .route("/api/v1/reports/summary", get(reports::api_summary))
        .route("/api/v1/reports/tickets.csv", get(reports::api_csv))
        .route("/metrics", get(reports::metrics))
        .route("/console/admin/kb", get(editor::kb_page))
        .route("/console/admin/kb/edit", get(editor::kb_edit))
        .route("/console/admin/kb/save", post(editor::kb_save))
        .route("/console/admin/kb/delete", post(editor::kb_delete))
        .route("/console/admin/kb/restore", post(editor::kb_restore))
        .route("/console/admin/kb/similar", post(editor::kb_add_similar))
        .route("/console/admin/rollback", post(editor::rollback))
        .route("/console/admin/scripts", get(editor::scripts_page))
        .route(
            "/console/admin/scripts/{file}",
            get(editor::script_edit).post(editor::script_save),
        )
        .route("/console/admin/audit", get(editor::audit_page))
        .route("/api/v1/admin/kb", get(editor::api_kb_list))
        .route("/api/v1/admin/kb/test", post(editor::api_kb_test))
        .route(
            "/api/v1/admin/kb/{id}",
            get(editor::api_kb_get)
                .put(editor::api_kb_put)
                .delete(editor::api_kb_delete),
        )
        .route("/api/v1/admin/kb-trash", get(editor::api_kb_trash))
        .route(
            "/api/v1/admin/kb-trash/{name}/restore",
            post(editor::api_kb_restore),
        )
        .route("/api/v1/admin/unanswered", get(editor::api_unanswered))
        .route("/api/v1/admin/scripts", get(editor::api_scripts))
        .route(
            "/api/v1/admin/scripts/{file}",
            get(editor::api_script_get).put(editor::api_script_put),
        )
        .route(
            "/api/v1/admin/scripts/{file}/dry-run",
            post(editor::api_script_dry_run),
        )
        .route("/api/v1/admin/audit", get(editor::api_audit))
        .route("/api/v1/admin/versions", get(editor::api_versions))
        .route(
            "/api/v1/admin/versions/rollback",
            post(editor::api_rollback),
        )
        .route("/console/tools", get(tools::page))
        .route("/console/tools/{what}", post(tools::change))
        .route("/console/tools/{what}/{id}/delete", post(tools::delete))
        .route("/api/v1/me/prefs", axum::routing::put(tools::api_prefs))
        .route(
            "/api/v1/templates",
            get(tools::api_list_templates).post(tools::api_add_template),
        )
        .route(
            "/api/v1/macros",
            get(tools::api_list_macros).post(tools::api_add_macro),
        )
        .route(
            "/api/v1/views",
            get(tools::api_list_views).post(tools::api_add_view),
        )
        .route(
            "/api/v1/templates/{id}",
            axum::routing::delete(tools::api_delete_template),
        )
        .route(
            "/api/v1/macros/{id}",
            axum::routing::delete(tools::api_delete_macro),
        )
        .route(
            "/api/v1/views/{id}",
            axum::routing::delete(tools::api_delete_view),
        )
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/tickets", get(api::tickets))
        .route("/api/v1/tickets/bulk", post(api::bulk))
        .route("/api/v1/tickets/{number}", get(api::ticket))
        .route("/api/v1/tickets/{number}/{action}", post(api::act))
        .route("/api/v1/outbox/{id}/retry", post(api::retry))
        .route("/api/v1/faq/search", get(api::faq_search))
        .route("/api/v1/admin/outbox/dead", get(api::dead_letters))
        .route("/api/v1/admin/faq-report", get(api::faq_report))
        .route("/api/v1/admin/backup", post(api::backup))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    with_security_headers(routes)
}

/// How long a console handler may take to produce its response head (the live queue's event
/// stream runs longer: a body is not timed).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The console's Content-Security-Policy: scripts, styles and images from our own origin
/// only (the pages have no inline script or style), never framed.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Security headers on every console and API response. Pages carry personal data, so they
/// are not cached (static assets set their own `Cache-Control` first).
fn with_security_headers(router: Router<AppState>) -> Router<AppState> {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    router
        .layer(set(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::REFERRER_POLICY, "same-origin"))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
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
