//! Errors of the HTTP edge, each mapped once to a status and a stable code.
//!
//! Callers of the WeCom endpoints get a short plain-text reason (no internals); the
//! details go to the log with fields, never with message content.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::wecom::{CryptoError, ParseError};

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
    Unavailable,
}

impl From<ParseError> for CallbackError {
    fn from(e: ParseError) -> Self {
        CallbackError::Malformed(e.to_string())
    }
}

impl CallbackError {
    /// `(status, stable code)` for each error; the single mapping table of this edge.
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
            CallbackError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl IntoResponse for CallbackError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        tracing::warn!(code, status = status.as_u16(), reason = %self, "callback refused");
        (status, code).into_response()
    }
}
