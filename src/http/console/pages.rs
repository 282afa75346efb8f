//! Page handlers of the console: one per page or form (login, queue and its live rows, the
//! ticket page and its actions, media, FAQ search, admin), sharing the rendering, cookie and
//! flash helpers at the top. (About 640 lines; the JSON API is `api.rs`, the service calls
//! `ops.rs`.)

use std::convert::Infallible;
use std::net::SocketAddr;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::auth::{AdminPage, Caller, LOGIN_CSRF_COOKIE, PageUser, SESSION_COOKIE, cookie};
use super::ops::{self, ActionInput, blocking};
use super::views::{self, Clock, Filters, Flash, UserView};
use crate::accounts::{AuthError, Role};
use crate::http::AppState;
use crate::http::error::{ConsoleError, safe_next};

/// Render a page template (an error page on failure).
pub fn render(t: impl Template) -> Result<Html<String>, ConsoleError> {
    t.render().map(Html).map_err(ConsoleError::internal)
}

pub fn clock(state: &AppState) -> Clock {
    Clock {
        now: crate::util::unix_millis(),
        offset: state.cfg.utc_offset(),
    }
}

/// The logged-in user as the page header shows them.
pub fn user_view(c: &Caller) -> UserView {
    UserView {
        login: c.login.clone(),
        role: c.role.label(),
        admin: c.is_admin(),
    }
}

fn csrf(c: &Caller) -> String {
    c.csrf.clone().unwrap_or_default()
}

/// `SameSite=Lax` for the session: a link from a WeCom notice (a cross-site GET) opens the
/// ticket without a new login, while a cross-site form post carries no session (and every
/// state change needs the CSRF token too). `Strict` for the login form's token.
fn cookie_header(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: i64,
    same_site: &str,
) -> HeaderValue {
    let secure = if state.cfg.server.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Debug, Default, Deserialize)]
pub struct FlashQuery {
    #[serde(default)]
    msg: String,
}

fn flash(q: &FlashQuery) -> Option<Flash> {
    ops::confirmation(&q.msg).map(|t| Flash {
        kind: "ok",
        text: t.to_owned(),
    })
}

/// The client's address, for rate-limiting logins (absent in in-process tests).
pub struct ClientAddr(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "local".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

pub async fn root() -> Redirect {
    Redirect::to("/console/")
}

// --- login -----------------------------------------------------------------------------------

fn login_page(
    state: &AppState,
    error: Option<String>,
    login: String,
    next: &str,
    status: StatusCode,
) -> Response {
    let token = crate::util::random_hex(16);
    let page = views::LoginPage {
        csrf: token.clone(),
        error,
        login,
        next: safe_next(next).unwrap_or_default().to_owned(),
    };
    match render(page) {
        Ok(html) => {
            let mut r = (status, html).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(state, LOGIN_CSRF_COOKIE, &token, 1800, "Strict"),
            );
            r
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

pub async fn login_form(
    State(state): State<AppState>,
    Query(q): Query<NextQuery>,
    parts: Parts,
) -> Response {
    if let Some(id) = cookie(&parts.headers, SESSION_COOKIE)
        && matches!(state.accounts.session(&id), Ok(Some(_)))
    {
        return Redirect::to(safe_next(&q.next).unwrap_or("/console/")).into_response();
    }
    login_page(&state, None, String::new(), &q.next, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
    /// The console page to return to.
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // Double-submit check: the form's token must match the cookie set with the form.
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE);
    if expected.is_none_or(|e| {
        form.csrf.is_empty() || !crate::util::constant_time_eq(e.as_bytes(), form.csrf.as_bytes())
    }) {
        return login_page(
            &state,
            Some(ConsoleError::Csrf.to_string()),
            form.login,
            &form.next,
            StatusCode::FORBIDDEN,
        );
    }
    let accounts = state.accounts.clone();
    let (login, password) = (form.login.trim().to_owned(), form.password);
    let name = login.clone();
    let result =
        tokio::task::spawn_blocking(move || accounts.login(&name, &password, &client)).await;
    match result {
        Ok(Ok((id, _))) => {
            let ttl = state.cfg.console.session_ttl.as_secs() as i64;
            let to = safe_next(&form.next).unwrap_or("/console/");
            let mut r = Redirect::to(to).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(&state, SESSION_COOKIE, &id, ttl, "Lax"),
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(&state, LOGIN_CSRF_COOKIE, "", 0, "Strict"),
            );
            r
        }
        Ok(Err(e @ AuthError::RateLimited { .. })) => login_page(
            &state,
            Some(e.to_string()),
            login,
            &form.next,
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Ok(Err(e @ AuthError::Storage(_))) => ConsoleError::from(e).into_response(),
        Ok(Err(e)) => {
            let status = StatusCode::UNAUTHORIZED;
            login_page(&state, Some(e.to_string()), login, &form.next, status)
        }
        Err(e) => ConsoleError::internal(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    back: String,
}

pub async fn logout(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    if let Some(id) = &c.session_id {
        let (accounts, id) = (state.accounts.clone(), id.clone());
        blocking(move || accounts.logout(&id).map_err(ConsoleError::internal)).await?;
    }
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(&state, SESSION_COOKIE, "", 0, "Lax"),
    );
    Ok(r)
}

// --- queue -----------------------------------------------------------------------------------

/// The tickets a queue view needs: all (for the counts) and the filtered, sorted ones.
struct QueueData {
    /// Numbers of the incidents not resolved (the queue tags their tickets).
    active_incidents: Vec<String>,
    counts: Vec<(crate::tickets::Status, usize)>,
    /// The tickets in the filter's statuses, before the other filters.
    loaded: Vec<crate::tickets::Ticket>,
    /// The page of the selection asked for.
    page: views::Page<(crate::tickets::Ticket, crate::tickets::sla::SlaState)>,
    clock: Clock,
}

/// The queue for `filters`, read off the async threads through the status index.
async fn queue_data(
    state: &AppState,
    c: &Caller,
    filters: &Filters,
) -> Result<QueueData, ConsoleError> {
    let (state, login, filters) = (state.clone(), c.login.clone(), filters.clone());
    ops::blocking(move || {
        let clock = clock(&state);
        let loaded = state.tickets.in_statuses(&filters.statuses())?;
        let selected = filters.select(loaded.clone(), &login, &state.cfg.sla, clock.now);
        Ok(QueueData {
            active_incidents: state
                .incidents
                .active()?
                .into_iter()
                .map(|i| i.number)
                .collect(),
            counts: state.tickets.status_counts()?,
            loaded,
            page: filters.page_of(selected, crate::tickets::query::PER_PAGE),
            clock,
        })
    })
    .await
}

fn chrome(c: &Caller, flash: Option<Flash>) -> views::Chrome {
    views::Chrome {
        user: user_view(c),
        csrf: csrf(c),
        flash,
    }
}

pub async fn queue(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Query(filters): Query<Filters>,
    Query(fq): Query<FlashQuery>,
    uri: axum::http::Uri,
) -> Result<Response, ConsoleError> {
    let prefs = state.tools.prefs(&c.login)?;
    let views = state.tools.views(&c.login)?;
    // The personal default view, when the queue is opened without filters.
    if uri.query().is_none_or(str::is_empty)
        && let Some(v) = prefs
            .default_view
            .and_then(|id| views.iter().find(|v| v.id == id))
        && !v.query.is_empty()
    {
        return Ok(Redirect::to(&format!("/console/?{}", v.query)).into_response());
    }
    let mut filters = filters.normalized();
    filters.utc_offset_secs = state.cfg.utc_offset().local_minus_utc();
    let d = queue_data(&state, &c, &filters).await?;
    let logins = ops::logins(&state)?;
    let script_systems = state.scripts.current().systems();
    let mut page = views::queue_page(
        chrome(&c, flash(&fq)),
        filters,
        &views::systems_offered(&script_systems, &d.loaded),
        &logins,
        &d.counts,
        &d.page,
        &d.clock,
    );
    only_active_incidents(&mut page.rows, &d.active_incidents);
    mark_updated(&mut page.rows, &prefs);
    page.views = views
        .into_iter()
        .map(|v| (v.name, v.query, v.owner.is_none()))
        .collect();
    Ok(render(page)?.into_response())
}

/// "有更新": rows changed since the viewer last opened them (tickets never opened by them
/// are not marked: everything would be).
fn mark_updated(rows: &mut [views::RowView], prefs: &crate::accounts::tools::Prefs) {
    for r in rows {
        r.updated = prefs
            .seen
            .iter()
            .any(|(id, at)| *id == r.id && r.updated_at > *at);
    }
}

pub async fn queue_rows(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Query(filters): Query<Filters>,
) -> Result<Html<String>, ConsoleError> {
    let mut filters = filters.normalized();
    filters.utc_offset_secs = state.cfg.utc_offset().local_minus_utc();
    let d = queue_data(&state, &c, &filters).await?;
    let mut rows = views::queue_rows(&d.counts, &d.page, &filters, &d.clock);
    only_active_incidents(&mut rows.rows, &d.active_incidents);
    mark_updated(&mut rows.rows, &state.tools.prefs(&c.login)?);
    render(rows)
}

/// The queue tags a ticket with its incident only while the incident is not resolved.
fn only_active_incidents(rows: &mut [views::RowView], active: &[String]) {
    for r in rows {
        if !active.contains(&r.incident) {
            r.incident.clear();
        }
    }
}

/// Server-sent events: the id of every ticket (`ticket`) and incident (`incident`) that
/// changes; `*` when some were missed.
pub async fn events(
    State(state): State<AppState>,
    PageUser(_): PageUser,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    fn changes(
        rx: tokio::sync::broadcast::Receiver<u64>,
        name: &'static str,
    ) -> impl Stream<Item = Result<Event, Infallible>> {
        futures_util::stream::unfold(rx, move |mut rx| async move {
            use tokio::sync::broadcast::error::RecvError;
            let data = match rx.recv().await {
                Ok(id) => id.to_string(),
                Err(RecvError::Lagged(_)) => "*".to_owned(),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(Event::default().event(name).data(data)), rx))
        })
    }
    let stream = futures_util::stream::select(
        changes(state.tickets.subscribe(), "ticket"),
        changes(state.incidents.subscribe(), "incident"),
    );
    let mut sd = state.shutdown.clone();
    // End the stream at shutdown, so a graceful stop does not wait for open pages.
    Sse::new(stream.take_until(async move { sd.wait().await })).keep_alive(KeepAlive::default())
}

// --- ticket ----------------------------------------------------------------------------------

fn ticket_page(
    state: &AppState,
    c: &Caller,
    number: &str,
    flash: Option<Flash>,
) -> Result<views::TicketPage, ConsoleError> {
    let t = state
        .tickets
        .by_number(number)?
        .ok_or(ConsoleError::NotFound)?;
    let events = state.tickets.events(t.id)?;
    let deliveries = ops::deliveries(state, &events)?;
    let mut page = views::ticket_page(
        chrome(c, flash),
        &t,
        &events,
        &deliveries,
        &ops::logins(state)?,
        &state.cfg.sla,
        &clock(state),
    );
    page.incidents = super::incidents::active_options(state)?;
    page.templates = state
        .tools
        .templates(&c.login)?
        .into_iter()
        .map(|tpl| {
            let body = crate::accounts::tools::fill(
                &tpl.body,
                &t.reporter_label(),
                &t.number,
                &t.system,
                &c.login,
            );
            (tpl.name, body)
        })
        .collect();
    page.macros = state
        .tools
        .macros(&c.login)?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    state
        .tools
        .seen(&c.login, t.id, crate::util::unix_millis())?;
    let ck = clock(state);
    page.by_reporter = state
        .tickets
        .of_reporter(&t.reporter)?
        .iter()
        .filter(|o| o.id != t.id)
        .take(10)
        .map(|o| views::history_row(o, &ck))
        .collect();
    page.by_customer = state
        .tickets
        .of_customer(&t.customer_id.value)?
        .iter()
        .filter(|o| o.id != t.id)
        .take(10)
        .map(|o| views::history_row(o, &ck))
        .collect();
    // A group is shown by its configured name (WeCom's callbacks carry the id only).
    if t.chat_type == crate::wecom::ChatType::Group
        && let Some(name) = state.cfg.wecom.group_name(&t.chat_id)
    {
        page.t.source = format!("群聊 {name}");
    }
    Ok(page)
}

pub async fn ticket(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path(number): Path<String>,
    Query(fq): Query<FlashQuery>,
) -> Result<Html<String>, ConsoleError> {
    render(ticket_page(&state, &c, &number, flash(&fq))?)
}

pub async fn ticket_live(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path(number): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    let page = ticket_page(&state, &c, &number, None)?;
    render(views::TicketLive {
        csrf: page.csrf,
        t: page.t,
        thread: page.thread,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(flatten)]
    input: ActionInput,
}

/// A form action on a ticket: redirect on success; on a refused action, the page again with
/// the reason (and nothing changed).
pub async fn act(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path((number, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    let (typed_text, typed_reason) = (form.input.text.clone(), form.input.reason.clone());
    match ops::act(&state, &c, &number, &action, form.input).await {
        Ok(code) => {
            Ok(Redirect::to(&format!("/console/tickets/{number}?msg={code}")).into_response())
        }
        // Refused: the page again, the reason on it, and what was typed still there.
        Err(e @ (ConsoleError::Ticket(_) | ConsoleError::BadInput(_) | ConsoleError::Newer(_))) => {
            let newer = matches!(e, ConsoleError::Newer(_));
            let (status, _) = e.status_and_code();
            let mut page = ticket_page(
                &state,
                &c,
                &number,
                Some(Flash {
                    kind: "error",
                    text: e.to_string(),
                }),
            )?;
            page.typed_text = typed_text;
            page.typed_reason = typed_reason;
            page.confirm = newer;
            Ok((status, render(page)?).into_response())
        }
        Err(e) => Err(e),
    }
}

pub async fn retry(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path(id): Path<u64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    let outbox = state.outbox.clone();
    let moved = blocking(move || outbox.retry_dead(id).map_err(ConsoleError::from)).await?;
    if !moved {
        return Err(ConsoleError::NotFound);
    }
    let back = if form.back.is_empty()
        || !form
            .back
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
    {
        "/console/admin?msg=retried".to_owned()
    } else {
        format!("/console/tickets/{}?msg=retried", form.back)
    };
    Ok(Redirect::to(&back).into_response())
}

/// A screenshot, to logged-in users only.
pub async fn media(
    State(state): State<AppState>,
    PageUser(_): PageUser,
    Path(hash): Path<String>,
) -> Result<Response, ConsoleError> {
    if !crate::store::media::is_valid_hash(&hash) {
        return Err(ConsoleError::NotFound);
    }
    let store = state.media.clone();
    let bytes = blocking(move || store.get(&hash).map_err(ConsoleError::internal))
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let ct = crate::conversation::media::sniff(&bytes).unwrap_or("application/octet-stream");
    Ok((
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "private, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    pub q: String,
}

/// FAQ entries for the canned-reply box (searched off the async threads: tantivy and jieba
/// are CPU work).
pub async fn faq_hits(state: &AppState, q: &str) -> Result<Vec<serde_json::Value>, ConsoleError> {
    let (kb, q) = (state.kb.clone(), q.to_owned());
    let hits = blocking(move || Ok(kb.search(&q, 5))).await?;
    Ok(hits
        .into_iter()
        .map(|h| {
            serde_json::json!({
                "id": h.entry.id,
                "question": h.entry.question,
                "answer": h.entry.answer,
                "confidence": h.confidence,
            })
        })
        .collect())
}

pub async fn faq_search(
    State(state): State<AppState>,
    PageUser(_): PageUser,
    Query(q): Query<SearchQuery>,
) -> Result<axum::Json<Vec<serde_json::Value>>, ConsoleError> {
    Ok(axum::Json(faq_hits(&state, &q.q).await?))
}

/// Browsers ask for `/favicon.ico` on every page: the console's icon.
pub async fn favicon() -> Response {
    asset(Path("icon.svg".to_owned())).await
}

pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, ct) = match name.as_str() {
        "app.css" => (include_str!("assets/app.css"), "text/css; charset=utf-8"),
        "app.js" => (
            include_str!("assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "icon.svg" => (include_str!("assets/icon.svg"), "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

// --- admin -----------------------------------------------------------------------------------

pub async fn admin(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Query(fq): Query<FlashQuery>,
) -> Result<Html<String>, ConsoleError> {
    render(admin_page(&state, &c, flash(&fq), String::new()).await?)
}

/// The admin page, with a flash and what was typed into the new-account form.
async fn admin_page(
    state: &AppState,
    c: &Caller,
    flash: Option<Flash>,
    typed_login: String,
) -> Result<views::AdminPage, ConsoleError> {
    let users = state.accounts.users().map_err(ConsoleError::internal)?;
    let dir = state.cfg.paths.kb_dir.clone();
    let loaded =
        blocking(move || crate::kb::entry::load_dir(&dir).map_err(ConsoleError::internal)).await?;
    let since = crate::util::unix_millis() - 7 * 24 * 3600 * 1000;
    let log = state.faq_log.clone();
    let faq = blocking(move || Ok(log.report(since, 10)?)).await?;
    Ok(views::AdminPage {
        user: user_view(c),
        csrf: csrf(c),
        flash,
        typed_login,
        users: users
            .into_iter()
            .map(|u| (u.login, u.role.label()))
            .collect(),
        drafts: loaded
            .entries
            .iter()
            .filter(|e| e.draft)
            .map(|e| views::DraftView {
                id: e.id.clone(),
                question: e.question.clone(),
                similar: e.similar.join("\n"),
                answer: e.answer.clone(),
                system: e.system.clone(),
                path: e.path.clone(),
            })
            .collect(),
        kb_errors: loaded.errors.iter().map(ToString::to_string).collect(),
        dead: state
            .outbox
            .dead_letters()?
            .into_iter()
            .map(|j| views::DeadView {
                id: j.id,
                lane: j.dest.lane(),
                kind: j.msg.kind(),
                origin: j.origin,
                error: j.last_error.unwrap_or_default(),
            })
            .collect(),
        faq_rate: format!("{:.0}%", faq.deflection_rate() * 100.0),
        hot: faq
            .hot
            .iter()
            .map(|(id, n)| {
                let question = state.kb.current().get(id).map(|e| e.question.clone());
                (question.unwrap_or_else(|| id.clone()), *n)
            })
            .collect(),
        faq,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct UserForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn add_user(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Form(form): Form<UserForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    let role =
        Role::parse(&form.role).ok_or_else(|| ConsoleError::BadInput("未知的角色".into()))?;
    let accounts = state.accounts.clone();
    let login = form.login.trim().to_owned();
    let name = login.clone();
    let added = blocking(move || {
        accounts
            .put_user(&name, role, &form.password, false)
            .map_err(ConsoleError::from)
    })
    .await;
    match added {
        Ok(_) => Ok(Redirect::to("/console/admin?msg=user_added").into_response()),
        // Refused (a taken or invalid name, a short password): the page again, with why.
        Err(e @ ConsoleError::BadInput(_)) => {
            let (status, _) = e.status_and_code();
            let flash = Some(Flash {
                kind: "error",
                text: e.to_string(),
            });
            let page = admin_page(&state, &c, flash, login).await?;
            Ok((status, render(page)?).into_response())
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DraftForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    question: String,
    #[serde(default)]
    similar: String,
    #[serde(default)]
    answer: String,
}

pub async fn publish_draft(
    State(state): State<AppState>,
    AdminPage(c): AdminPage,
    Path(id): Path<String>,
    Form(form): Form<DraftForm>,
) -> Result<Response, ConsoleError> {
    c.check_csrf(Some(&form.csrf))?;
    ops::publish_draft(&state, &id, form.question, form.similar, form.answer).await?;
    Ok(Redirect::to("/console/admin?msg=draft_published").into_response())
}

/// WeCom's limits for what an app may send: images up to 10 MB (JPG, PNG, GIF), files up to
/// 20 MB.
pub const MAX_IMAGE: usize = 10 * 1024 * 1024;
pub const MAX_FILE: usize = 20 * 1024 * 1024;

/// Files a handler may not send to an agent (programs, scripts).
const REFUSED: [&str; 12] = [
    "exe", "bat", "cmd", "com", "msi", "sh", "js", "vbs", "ps1", "apk", "jar", "scr",
];

/// Check one attachment: (is an image, or why it is refused).
pub fn check_attachment(name: &str, bytes: &[u8]) -> Result<bool, ConsoleError> {
    let image = crate::conversation::media::sniff(bytes)
        .is_some_and(|t| matches!(t, "image/png" | "image/jpeg" | "image/gif"));
    let ext = name.rsplit('.').next().unwrap_or_default().to_lowercase();
    if !image && (REFUSED.contains(&ext.as_str()) || !name.contains('.')) {
        return Err(ConsoleError::BadInput(format!("不能发送这类文件：{name}")));
    }
    if bytes.is_empty() {
        return Err(ConsoleError::BadInput(format!("文件是空的：{name}")));
    }
    let limit = if image { MAX_IMAGE } else { MAX_FILE };
    if bytes.len() > limit {
        return Err(ConsoleError::BadInput(format!(
            "{name} 超过企业微信的大小限制（图片 10 MB，文件 20 MB）"
        )));
    }
    Ok(image)
}

/// A reply with attachments (`multipart/form-data`: `_csrf`, `text`, `seen`, `confirm`,
/// `files`): the files are checked and stored, then the text and each file are sent.
pub async fn reply_with_files(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    Path(number): Path<String>,
    mut form: axum::extract::Multipart,
) -> Result<Response, ConsoleError> {
    let mut fields = ActionInput::default();
    let mut csrf = String::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ConsoleError::BadInput(format!("表单无法读取：{}", e.body_text())))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ConsoleError::BadInput(format!("表单无法读取：{}", e.body_text())))?;
        match (name.as_str(), file_name) {
            ("files", Some(f)) if !bytes.is_empty() => files.push((f, bytes.to_vec())),
            ("files", _) => {}
            ("_csrf", _) => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            ("text", _) => fields.text = String::from_utf8_lossy(&bytes).into_owned(),
            ("seen", _) => fields.seen = String::from_utf8_lossy(&bytes).into_owned(),
            ("confirm", _) => fields.confirm = String::from_utf8_lossy(&bytes).into_owned(),
            _ => {}
        }
    }
    c.check_csrf(Some(&csrf))?;
    let mut checked = Vec::new();
    for (name, bytes) in &files {
        checked.push((name.clone(), check_attachment(name, bytes)?, bytes.clone()));
    }
    if fields.confirm.is_empty() {
        ops::check_newer(&state, &c, &number, &fields.seen).await?;
    }
    let (st, me, n, text) = (state.clone(), c.login.clone(), number.clone(), fields.text);
    blocking(move || {
        let mut attachments = Vec::new();
        for (name, image, bytes) in checked {
            let media = st.media.put(&bytes).map_err(ConsoleError::internal)?;
            attachments.push(crate::tickets::Attachment { media, name, image });
        }
        st.tickets.reply_with(&n, &me, &text, &attachments)?;
        Ok(())
    })
    .await?;
    Ok(Redirect::to(&format!("/console/tickets/{number}?msg=replied")).into_response())
}
