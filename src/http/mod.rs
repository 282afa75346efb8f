//! The HTTP edge: router, extractors, error mapping, WeCom callbacks, health.
//!
//! Handlers only extract verified, typed input, call a service and map the result; the
//! services live in their own modules. One [`AppState`] of shared handles is passed with
//! `with_state`.

pub mod callback;
pub mod console;
pub mod error;
pub mod hooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

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

/// Shared state of every handler: one `Arc`, so the clone axum makes for every request is
/// one reference count, not one per service handle (the callback path is hot; cloning
/// every tree handle of every service cost two thirds of `/healthz`'s throughput).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub cfg: Arc<Config>,
    pub inbox: Inbox,
    pub app_crypt: Arc<MsgCrypt>,
    pub bot_crypt: Arc<MsgCrypt>,
    /// Set once the workers run; `/healthz` answers 503 before.
    pub ready: Arc<AtomicBool>,
    /// Whether the database writes; `/healthz` answers 503 while it does not.
    pub storage: Arc<crate::store::Health>,
    pub tickets: Tickets,
    pub incidents: crate::incidents::Incidents,
    pub dashboard: crate::dashboard::Dashboard,
    pub weekly: Arc<crate::dashboard::weekly::Weekly>,
    pub audit: crate::dashboard::export::Audit,
    pub editor: crate::editor::Editor,
    pub tools: crate::accounts::tools::Tools,
    /// Who has which ticket open (collision warnings), in memory.
    pub presence: console::presence::Presence,
    pub accounts: Arc<Accounts>,
    pub kb: Arc<Kb>,
    pub scripts: Arc<crate::script::Scripts>,
    pub faq_log: FaqLog,
    pub outbox: Outbox,
    pub media: MediaStore,
    /// The database, for backups.
    pub store: crate::store::Store,
    /// Ends long-lived responses (server-sent events) at shutdown.
    pub shutdown: Shutdown,
}

/// Routes of the gateway and the console, with the request layers: a request id (taken from
/// `x-request-id` or made, and echoed), a span per request with the matched route and the
/// id, and the error log ([`error::log_errors`]). The console adds a timeout of its own.
/// (The simulator is merged in by `app` outside these layers.)
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
    let hooks = Router::new()
        .route("/hooks/alertmanager", post(hooks::alertmanager))
        .route("/hooks/grafana", post(hooks::grafana).put(hooks::grafana))
        .route("/hooks/events", post(hooks::events))
        .layer(DefaultBodyLimit::max(state.cfg.hooks.max_body_bytes));
    Router::new()
        .merge(callbacks)
        .merge(hooks)
        .merge(console::router())
        .route("/healthz", get(healthz))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    HeaderName::from_static(error::REQUEST_ID),
                    RequestIds::new(),
                ))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        // Failures are logged once, with their cause, by `log_errors`.
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
                    error::REQUEST_ID,
                )))
                .layer(axum::middleware::from_fn(error::log_errors))
                .layer(axum::middleware::from_fn(timed)),
        )
}

/// Request latency by matched route (`helpdesk_http_request_duration_seconds`).
async fn timed(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "-".to_owned(), |p| p.as_str().to_owned());
    let began = std::time::Instant::now();
    let res = next.run(req).await;
    metrics::histogram!("helpdesk_http_request_duration_seconds", "route" => route)
        .record(began.elapsed().as_secs_f64());
    res
}

/// Request ids: a random prefix per process and a counter, `3f9c2a71-1a2b`. Unique enough to
/// find a log line, and free of a system call per request (the callback path is hot).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds {
            prefix: crate::util::random_hex(4).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n:x}", self.prefix);
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The span every request runs in: method, matched route (never the raw URI, which may
/// carry signatures) and request id.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("-");
    let id = req
        .headers()
        .get(error::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %req.method(), route, request_id = id)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.ready.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    } else if state.storage.failing() {
        (StatusCode::SERVICE_UNAVAILABLE, "storage failing")
    } else {
        (StatusCode::OK, "ok")
    }
}
