//! Who has a ticket open, and who is typing a reply (collision warnings): each ticket page
//! reports every few seconds (`POST /console/tickets/{number}/presence`) and gets the
//! others back. Kept in memory only: presence is worth nothing after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::PageUser;
use crate::http::AppState;
use crate::http::error::ConsoleError;

/// A viewer not heard from for this long has left.
const GONE: Duration = Duration::from_secs(20);

/// Login → (last report, typing).
type Viewers = HashMap<String, (Instant, bool)>;

#[derive(Clone, Default)]
pub struct Presence {
    /// Ticket number → its viewers.
    inner: Arc<Mutex<HashMap<String, Viewers>>>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").finish_non_exhaustive()
    }
}

impl Presence {
    /// Record `login` on `number` (typing or not); returns the others: (login, typing).
    pub fn report(&self, number: &str, login: &str, typing: bool) -> Vec<(String, bool)> {
        let now = Instant::now();
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, viewers| {
            viewers.retain(|_, (at, _)| now.duration_since(*at) < GONE);
            !viewers.is_empty()
        });
        let viewers = all.entry(number.to_owned()).or_default();
        viewers.insert(login.to_owned(), (now, typing));
        let mut others: Vec<(String, bool)> = viewers
            .iter()
            .filter(|(l, _)| l.as_str() != login)
            .map(|(l, (_, t))| (l.clone(), *t))
            .collect();
        others.sort();
        others
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Report {
    pub typing: bool,
}

pub async fn report(
    State(state): State<AppState>,
    PageUser(c): PageUser,
    headers: HeaderMap,
    Path(number): Path<String>,
    Json(r): Json<Report>,
) -> Result<Json<Value>, ConsoleError> {
    c.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    let others = state
        .presence
        .report(&number.to_uppercase(), &c.login, r.typing);
    Ok(Json(json!({
        "others": others.iter().map(|(l, t)| json!({"login": l, "typing": t})).collect::<Vec<_>>()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_see_each_other() {
        let p = Presence::default();
        assert!(p.report("IT1", "a", false).is_empty());
        assert_eq!(p.report("IT1", "b", true), [("a".to_owned(), false)]);
        assert_eq!(p.report("IT1", "a", false), [("b".to_owned(), true)]);
        assert!(p.report("IT2", "a", false).is_empty());
    }
}
