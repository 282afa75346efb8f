//! The crate-level error: every module's error type, aggregated with `#[from]`, for the
//! composition root (`app`, `sim`) and `main`, which reports it with anyhow. HTTP handlers
//! answer with the edge's own errors (`http::error`), never with this one.

use crate::config::ConfigError;
use crate::store;
use crate::wecom::client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Crypto(#[from] crate::wecom::CryptoError),
    #[error("invalid intake scripts:\n{0}")]
    Scripts(#[from] crate::script::Errors),
    #[error(transparent)]
    Kb(#[from] crate::kb::Error),
    #[error(transparent)]
    Auth(#[from] crate::accounts::AuthError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
