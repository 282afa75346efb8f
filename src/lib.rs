//! wecom-helpdesk: an incident desk that lives inside WeCom (企业微信).
//!
//! Agents report their customers' problems to a bot in WeCom; the bot answers from the FAQ
//! or runs a guided intake that files a complete ticket; handlers work the tickets in a web
//! console and their replies reach the agent in WeCom.
//!
//! # Layout
//!
//! Dependencies point down this list; heavy crates stay in one module each.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | `config.toml` + `HELPDESK__…` overrides → validated [`config::Config`] |
//! | [`error`], [`shutdown`], [`telemetry`], [`util`] | crate error; shutdown signal and worker supervisor; logging; small helpers |
//! | [`store`] | the only sled user: typed trees, transactions, group-commit durability, media files |
//! | [`wecom`] | protocol types, XML/JSON parsing, `crypto` (WXBizMsgCrypt), `client` (the only reqwest user) |
//! | [`inbox`] | durable, deduplicated queue of verified inbound messages |
//! | [`kb`] | FAQ entries from `kb/`, jieba + tantivy index, FAQ-first decision, query log |
//! | [`outbox`] | durable queue of outbound messages and its delivery worker |
//! | [`script`] | intake flows from `bot-scripts/`: validation, hot reload, pure step evaluation |
//! | [`tickets`] | ticket model, state machine, numbering, thread, notices, PII masking |
//! | [`conversation`] | sessions, validators, screenshots, the worker that routes each message |
//! | [`accounts`] | console users (argon2) and sessions |
//! | [`http`] | router, verified-callback and session extractors, error mapping, console and API, health |
//! | [`sim`] | the WeCom simulator: fake server API and browser chat page |
//! | [`app`] | composition root: open store, build services, spawn supervised workers, serve |

pub mod accounts;
pub mod app;
pub mod config;
pub mod conversation;
pub mod error;
pub mod http;
pub mod inbox;
pub mod kb;
pub mod outbox;
pub mod script;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod tickets;
pub mod util;
pub mod wecom;

pub use error::{Error, Result};
