//! The HTTP edge: router, extractors, error mapping, WeCom callbacks, health.
//!
//! Handlers only extract verified, typed input, call a service and map the result; the
//! services live in their own modules. One [`AppState`] of shared handles is passed with
//! `with_state`.

pub mod callback;
pub mod console;
pub mod error;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::inbox::Inbox;
use crate::kb::Kb;
use crate::kb::log::FaqLog;
use crate::outbox::Outbox;
use crate::shutdown::Shutdown;
use crate::store::media::MediaStore;
use crate::tickets::Tickets;
use crate::wecom::MsgCrypt;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub inbox: Inbox,
    pub app_crypt: Arc<MsgCrypt>,
    pub bot_crypt: Arc<MsgCrypt>,
    /// Set once the workers run; `/healthz` answers 503 before.
    pub ready: Arc<AtomicBool>,
    pub tickets: Tickets,
    pub accounts: Arc<Accounts>,
    pub kb: Arc<Kb>,
    pub scripts: Arc<crate::script::Scripts>,
    pub faq_log: FaqLog,
    pub outbox: Outbox,
    pub media: MediaStore,
    /// Ends long-lived responses (server-sent events) at shutdown.
    pub shutdown: Shutdown,
}

/// Routes of the gateway (the simulator and console are merged in by `app`).
pub fn router(state: AppState) -> Router {
    let limit = state.cfg.server.max_body_bytes;
    let callbacks = Router::new()
        .route(
            "/wecom/app/callback",
            get(callback::verify_url::<callback::AppSurface>).post(callback::app_message),
        )
        .route(
            "/wecom/bot/callback",
            get(callback::verify_url::<callback::BotSurface>).post(callback::bot_message),
        )
        .layer(DefaultBodyLimit::max(limit));
    Router::new()
        .merge(callbacks)
        .merge(console::router())
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}
