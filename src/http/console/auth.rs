//! Who is calling the console: session cookies (HttpOnly, SameSite=Strict) or, for scripts
//! calling `/api/v1`, `Authorization: Bearer <console.api_token>`.
//!
//! - [`PageUser`] — a logged-in person; otherwise a redirect to the login page.
//! - [`ApiUser`] — the same for the JSON API; otherwise 401.
//! - [`AdminPage`] / [`AdminApi`] — as above, and role admin; otherwise 403.
//!
//! CSRF: every state-changing request from a cookie session must carry the session's token
//! (form field `_csrf` or header `X-CSRF-Token`), compared in constant time. Bearer-token
//! calls carry no cookie and need none.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;

use crate::accounts::Role;
use crate::http::AppState;
use crate::http::error::{ApiError, ConsoleError};

pub const SESSION_COOKIE: &str = "hd_session";
pub const LOGIN_CSRF_COOKIE: &str = "hd_login";

/// The value of cookie `name` in the request, if present.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub login: String,
    pub role: Role,
    /// The session's CSRF token; `None` for bearer-token calls (no cookie, no CSRF).
    pub csrf: Option<String>,
    pub session_id: Option<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Check the CSRF token a state-changing request carried.
    pub fn check_csrf(&self, provided: Option<&str>) -> Result<(), ConsoleError> {
        let Some(expected) = &self.csrf else {
            return Ok(());
        };
        match provided {
            Some(p) if crate::util::constant_time_eq(p.as_bytes(), expected.as_bytes()) => Ok(()),
            _ => Err(ConsoleError::Csrf),
        }
    }
}

async fn caller(parts: &Parts, state: &AppState) -> Result<Option<Caller>, ConsoleError> {
    if let Some(auth) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = state.cfg.console.api_token.expose();
        return match auth.strip_prefix("Bearer ") {
            Some(t)
                if !token.is_empty()
                    && crate::util::constant_time_eq(t.as_bytes(), token.as_bytes()) =>
            {
                Ok(Some(Caller {
                    login: "api".into(),
                    role: Role::Handler,
                    csrf: None,
                    session_id: None,
                }))
            }
            _ => Err(ConsoleError::Unauthorized),
        };
    }
    let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let accounts = state.accounts.clone();
    let lookup = id.clone();
    let session = tokio::task::spawn_blocking(move || accounts.session(&lookup))
        .await
        .map_err(ConsoleError::internal)?
        .map_err(ConsoleError::internal)?;
    Ok(session.map(|s| Caller {
        login: s.login,
        role: s.role,
        csrf: Some(s.csrf),
        session_id: Some(id),
    }))
}

/// The caller, or `missing` when there is none; with `admin`, handlers get 403.
async fn require(
    parts: &Parts,
    state: &AppState,
    missing: ConsoleError,
    admin: bool,
) -> Result<Caller, ConsoleError> {
    let c = caller(parts, state).await?.ok_or(missing)?;
    if admin && !c.is_admin() {
        return Err(ConsoleError::Forbidden);
    }
    Ok(c)
}

/// To the login, and back to this page after it (a GET only: a form post is not repeated).
fn login_required(parts: &Parts) -> ConsoleError {
    let next = if parts.method == axum::http::Method::GET {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    ConsoleError::LoginRequired { next }
}

/// A person logged in to the console (pages redirect to the login otherwise).
pub struct PageUser(pub Caller);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        require(parts, state, login_required(parts), false)
            .await
            .map(PageUser)
    }
}

/// A caller of the JSON API (401 otherwise).
pub struct ApiUser(pub Caller);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        require(parts, state, ConsoleError::Unauthorized, false)
            .await
            .map(ApiUser)
            .map_err(ApiError)
    }
}

/// An admin on a page (403 for handlers).
pub struct AdminPage(pub Caller);

impl FromRequestParts<AppState> for AdminPage {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        require(parts, state, login_required(parts), true)
            .await
            .map(AdminPage)
    }
}

/// An admin on the API (403 for handlers).
pub struct AdminApi(pub Caller);

impl FromRequestParts<AppState> for AdminApi {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        require(parts, state, ConsoleError::Unauthorized, true)
            .await
            .map(AdminApi)
            .map_err(ApiError)
    }
}
