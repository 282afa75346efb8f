//! The crate-level error: every module's error type, aggregated with `#[from]`.
//! HTTP handlers map it through `http::error`; `main` reports it with anyhow.

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
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
