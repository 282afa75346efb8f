//! Monitor hooks: `POST /hooks/alertmanager`, `/hooks/grafana` and `/hooks/events`.
//!
//! Each checks who sent the post (bearer token; Grafana's HMAC signature; the event's
//! `routing_key`) before reading it, reads it with [`crate::incidents::alert`], stores it
//! in one transaction, waits until it is on disk and only then answers. No network call
//! happens here; only a failing store answers 5xx, so the sender retries exactly then.
//! Hooks answer 404 while `hooks.token` is empty.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;

use super::AppState;
use super::error::{Cause, HookReject};
use crate::config::HooksConfig;
use crate::incidents::{self, AlertBatch, Ingested};

/// Grafana's signature header (hex HMAC-SHA256 of the body) and its optional timestamp.
pub const GRAFANA_SIGNATURE: &str = "x-grafana-alerting-signature";
pub const GRAFANA_TIMESTAMP: &str = "x-grafana-alerting-signature-timestamp";

fn enabled(cfg: &HooksConfig) -> Result<(), HookReject> {
    if cfg.enabled() {
        Ok(())
    } else {
        Err(HookReject::Off)
    }
}

fn token_matches(cfg: &HooksConfig, given: &str) -> bool {
    crate::util::constant_time_eq(given.as_bytes(), cfg.token.expose().as_bytes())
}

/// `Authorization: Bearer <hooks.token>`.
fn bearer(cfg: &HooksConfig, headers: &HeaderMap) -> Result<(), HookReject> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(HookReject::Unauthorized)?;
    if token_matches(cfg, given) {
        Ok(())
    } else {
        Err(HookReject::Unauthorized)
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Grafana: the HMAC signature when a secret is configured and the post is signed (with a
/// timestamp header the signed string is `timestamp:body`, and the timestamp must be
/// within the callback window); otherwise the bearer token.
fn grafana_auth(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), HookReject> {
    let cfg = &state.cfg.hooks;
    let signature = headers.get(GRAFANA_SIGNATURE).and_then(|v| v.to_str().ok());
    let (Some(signature), false) = (signature, cfg.grafana_secret.is_empty()) else {
        return bearer(cfg, headers);
    };
    let expected = hex_decode(signature).ok_or(HookReject::BadSignature)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(cfg.grafana_secret.expose().as_bytes())
        .map_err(|_| HookReject::BadSignature)?;
    if let Some(ts) = headers.get(GRAFANA_TIMESTAMP) {
        let ts = ts.to_str().map_err(|_| HookReject::BadSignature)?;
        mac.update(ts.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac.verify_slice(&expected)
            .map_err(|_| HookReject::BadSignature)?;
        let mut secs: i64 = ts.trim().parse().map_err(|_| HookReject::Stale)?;
        if secs > 100_000_000_000 {
            secs /= 1000; // milliseconds
        }
        let skew = (crate::util::unix_now() - secs).unsigned_abs();
        if skew > state.cfg.server.timestamp_window.as_secs() {
            return Err(HookReject::Stale);
        }
        Ok(())
    } else {
        mac.update(body);
        mac.verify_slice(&expected)
            .map_err(|_| HookReject::BadSignature)
    }
}

fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, HookReject> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HookReject::TooLarge
        } else {
            HookReject::Invalid(incidents::HookError::Field("body", e.body_text()))
        }
    })
}

/// Store a batch and wait until it is on disk.
async fn store(state: &AppState, batch: AlertBatch) -> Result<Ingested, HookReject> {
    let incidents = state.incidents.clone();
    let source = batch.source.key();
    let (alerts, truncated) = (batch.alerts.len(), batch.truncated);
    let done = tokio::task::spawn_blocking(move || incidents.ingest(&batch))
        .await
        .map_err(|e| HookReject::Unavailable(Cause::new(e)))??;
    state
        .store
        .durable()
        .await
        .map_err(|e| HookReject::Unavailable(Cause::new(e)))?;
    tracing::info!(
        source,
        alerts,
        truncated,
        opened = done.opened,
        fired = done.fired,
        repeats = done.repeats,
        resolved = done.resolved,
        unknown = done.unknown,
        "hook stored"
    );
    Ok(done)
}

fn grouped_reply(done: &Ingested) -> Response {
    Json(json!({
        "status": "success",
        "incidents": done.incidents,
        "opened": done.opened,
        "fired": done.fired,
        "repeats": done.repeats,
        "resolved": done.resolved,
        "unknown": done.unknown,
    }))
    .into_response()
}

pub async fn alertmanager(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HookReject> {
    let cfg = &state.cfg.hooks;
    enabled(cfg)?;
    bearer(cfg, &headers)?;
    let batch = incidents::alert::alertmanager(&body_of(body)?, cfg)?;
    Ok(grouped_reply(&store(&state, batch).await?))
}

pub async fn grafana(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HookReject> {
    enabled(&state.cfg.hooks)?;
    let body = body_of(body)?;
    grafana_auth(&state, &headers, &body)?;
    let batch = incidents::alert::grafana(&body, &state.cfg.hooks)?;
    Ok(grouped_reply(&store(&state, batch).await?))
}

/// PagerDuty Events v2: 202 `{"status":"success","dedup_key":…}`.
pub async fn events(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HookReject> {
    let cfg = &state.cfg.hooks;
    enabled(cfg)?;
    let event = incidents::alert::event(&body_of(body)?, cfg)?;
    if !token_matches(cfg, &event.routing_key) {
        return Err(HookReject::Unauthorized);
    }
    let dedup_key = event.batch.group.clone();
    let done = store(&state, event.batch).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "success",
            "message": "Event processed",
            "dedup_key": dedup_key,
            "incidents": done.incidents,
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decoding_refuses_odd_and_non_hex() {
        assert_eq!(hex_decode("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex_decode("0af"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("é1"), None);
    }
}
