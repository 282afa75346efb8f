//! Logging setup. Log lines carry fields (msg_id, job, ticket), never message text, tokens,
//! keys or whole ID/phone numbers; see `tickets::mask` for what may be shown.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber: `RUST_LOG` if set, else `info` for this crate and `warn`
/// for dependencies. Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,wecom_helpdesk=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
