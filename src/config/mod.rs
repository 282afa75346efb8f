//! Configuration: `config.toml` plus environment overrides, validated into [`Config`].
//!
//! Two stages, as the rest of the crate expects:
//! 1. **raw**: the TOML file is read into a `toml::Table`; every environment variable
//!    `HELPDESK__SECTION__KEY` (nested with `__`, case-insensitive) replaces one key; the table
//!    is deserialised into `Raw*` structs with serde defaults. Unknown keys are warned about,
//!    never silently accepted as meaningful.
//! 2. **validated**: each raw section is checked by its own conversion (`raw.rs`), which names
//!    the key that is wrong
//!    (`wecom.app.encoding_aes_key: must be 43 characters …`). A bad config stops start-up with
//!    that one message.
//!
//! Secrets live in [`Secret`], whose `Debug`/`Display` print `***`, so a `Config` can be logged.
//! Depends on `util` and `wecom::crypto` (to check an EncodingAESKey as the gateway will
//! decode it).

mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::util::Secret;
use raw::RawConfig;

/// Prefix of environment overrides: `HELPDESK__SERVER__LISTEN=0.0.0.0:8080`.
pub const ENV_PREFIX: &str = "HELPDESK__";

/// The WeCom server API used when neither the simulator nor an explicit base is configured.
pub const WECOM_API_BASE: &str = "https://qyapi.weixin.qq.com";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validated stage
// ---------------------------------------------------------------------------------------------

/// The validated configuration. Cheap to clone; shared as `Arc<Config>`.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub sim: SimConfig,
    pub wecom: WecomConfig,
    pub outbox: OutboxConfig,
    pub paths: PathsConfig,
    pub tickets: TicketsConfig,
    pub conversation: ConversationConfig,
    pub faq: FaqConfig,
    pub console: ConsoleConfig,
    pub sla: SlaConfig,
    pub hooks: HooksConfig,
    pub incidents: IncidentsConfig,
    pub business_hours: BusinessHours,
    pub reports: ReportsConfig,
}

/// The desk's working calendar, for business-time durations (local time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    /// ISO weekdays, Monday = 1.
    pub weekdays: Vec<u32>,
    pub start: chrono::NaiveTime,
    pub end: chrono::NaiveTime,
    /// Days off on working weekdays.
    pub holidays: Vec<chrono::NaiveDate>,
    /// Working days on days off (调休).
    pub workdays: Vec<chrono::NaiveDate>,
}

impl Default for BusinessHours {
    /// Monday to Friday, 09:00–18:00, no holidays.
    fn default() -> Self {
        BusinessHours {
            weekdays: vec![1, 2, 3, 4, 5],
            start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            end: chrono::NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default(),
            holidays: Vec::new(),
            workdays: Vec::new(),
        }
    }
}

/// Reports: the weekly push and `/metrics`.
#[derive(Debug, Clone)]
pub struct ReportsConfig {
    /// When the weekly report goes to the handler group (cron, local time).
    pub weekly_cron: String,
    /// `/metrics` without the API token only from loopback addresses.
    pub metrics_loopback_only: bool,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Base URL for links we send out (console ticket pages). Empty: derived from the
    /// bound address at start-up.
    pub public_url: String,
    pub max_body_bytes: usize,
    pub timestamp_window: Duration,
    /// Offset of local time from UTC, used for ticket numbers and reports (China: +8).
    pub utc_offset_hours: i32,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// Where snapshots go (`wecom-helpdesk backup`, the admin API), one folder each.
    pub backup_dir: PathBuf,
    pub cache_capacity_bytes: u64,
    pub dedupe_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub enabled: bool,
    /// Serve the simulator (whose test API has no login) on a non-loopback listener.
    pub allow_remote: bool,
    /// Listener of the standalone `wecom-helpdesk sim`.
    pub listen: SocketAddr,
    /// Where the standalone simulator posts callbacks.
    pub gateway_url: String,
    pub token_ttl: Duration,
    pub group_name: String,
    pub handler_group_name: String,
    /// `(userid, name)` of the simulated members.
    pub members: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct CallbackKeys {
    pub token: Secret,
    pub encoding_aes_key: Secret,
}

#[derive(Debug, Clone)]
pub struct WecomConfig {
    /// Base of the server API (`…/cgi-bin/…` is appended). Empty means "the built-in
    /// simulator" when `sim.enabled`; [`Config::api_base`] resolves it.
    pub api_base: String,
    pub corp_id: String,
    pub agent_id: i64,
    pub secret: Secret,
    pub app: CallbackKeys,
    pub bot: CallbackKeys,
    /// Display name of the AI bot, stripped from the start of @-mentions.
    pub bot_name: String,
    pub robot_webhook_key: Secret,
    /// `(chatid, name)` of the group chats the bot is in: WeCom's callbacks name a group by
    /// its id only, so the console shows these names.
    pub group_names: Vec<(String, String)>,
}

impl WecomConfig {
    /// The configured name of group chat `chat_id`, if any.
    pub fn group_name(&self, chat_id: &str) -> Option<&str> {
        self.group_names
            .iter()
            .find(|(id, _)| id == chat_id)
            .map(|(_, name)| name.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Attempts at most (0: no limit; the retry budget decides).
    pub max_attempts: u32,
    /// How long transient failures (network, timeouts, 5xx, -1, 45009) are retried, counted
    /// from the first attempt, before the message is dead-lettered.
    pub retry_budget: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub member_per_minute: u32,
    pub robot_per_minute: u32,
    pub http_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct PathsConfig {
    pub kb_dir: PathBuf,
    pub scripts_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct TicketsConfig {
    pub number_prefix: String,
    pub customer_no_pattern: regex::Regex,
    pub max_image_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ConversationConfig {
    pub idle_timeout: Duration,
    pub burst_window: Duration,
    /// After a handler speaks to an agent, the agent's free text in that chat goes to the
    /// ticket for this long of silence (0: never).
    pub follow_up_window: Duration,
}

#[derive(Debug, Clone)]
pub struct FaqConfig {
    /// At or above: answer with the top entry.
    pub answer_threshold: f32,
    /// At or above (and below `answer_threshold`): offer the top 3.
    pub suggest_threshold: f32,
}

#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub demo_accounts: bool,
    pub session_ttl: Duration,
    pub login_attempts_per_minute: u32,
    /// Bearer token for scripts calling `/api/v1` (empty: disabled).
    pub api_token: Secret,
}

#[derive(Debug, Clone)]
pub struct SlaConfig {
    pub first_response: [Duration; 4],
    pub resolution: [Duration; 4],
}

/// The monitor hooks (`/hooks/…`).
#[derive(Debug, Clone)]
pub struct HooksConfig {
    /// Bearer token of the hooks (the `routing_key` of `/hooks/events`); empty: hooks off.
    pub token: Secret,
    /// HMAC-SHA256 key of Grafana's signature (empty: Grafana uses the bearer token).
    pub grafana_secret: Secret,
    /// The alert label naming the system (falling back to `service`, then `job`).
    pub system_label: String,
    /// Label value → the system's name as agents and tickets say it (`trading:交易系统`).
    pub system_names: Vec<(String, String)>,
    pub max_body_bytes: usize,
}

impl HooksConfig {
    pub fn enabled(&self) -> bool {
        !self.token.is_empty()
    }
}

/// Incidents: numbering, resolution and the 重大事件 rules.
#[derive(Debug, Clone)]
pub struct IncidentsConfig {
    /// Incident numbers read like INC20261130-003.
    pub number_prefix: String,
    /// Resolve an incident by itself when every alert in it has resolved (else a handler
    /// confirms).
    pub resolve_with_alerts: bool,
    /// An incident with alerts but none seen for this long resolves.
    pub auto_resolve_after: Duration,
    /// Open longer than this: 重大事件.
    pub major_after: Duration,
    /// Linked tickets from more than this many distinct reporters: 重大事件.
    pub major_reporters: usize,
    /// Reports are clustered within this rolling window.
    pub outbreak_window: Duration,
    /// Distinct reporters a cluster needs to become an incident.
    pub outbreak_min_reporters: usize,
    /// Similarity (0..1) a report needs to join a cluster or an incident (a system's own
    /// cut-off, set in the console, takes precedence).
    pub similarity_cutoff: f32,
    /// Resolving an incident resolves its open linked tickets with the resolution note
    /// (and asks each reporter for a rating); false: they stay for a handler.
    pub resolve_tickets: bool,
    /// Words that name a system in a question (`交易:委托,下单`): an FAQ question the bot
    /// could not answer is clustered under the system it names.
    pub system_keywords: Vec<(String, Vec<String>)>,
}

impl Config {
    /// Read `path`, apply `HELPDESK__…` overrides from the process environment, validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::from_sources(path, &text, &env)
    }

    /// Parse `text` (named `path` in errors) with the given environment overrides.
    pub fn from_sources(
        path: &Path,
        text: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                apply_override(&mut table, rest, value)?;
            }
        }
        let mut unknown = Vec::new();
        let raw: RawConfig = {
            let de = toml::Value::Table(table);
            let mut track = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
            let de = serde_ignored::Deserializer::new(de, &mut track);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let key = e.path().to_string();
                ConfigError::Invalid {
                    key,
                    message: e.into_inner().to_string(),
                }
            })?
        };
        for key in unknown {
            tracing::warn!(%key, "unknown configuration key ignored");
        }
        raw.validate()
    }

    /// The server API base actually used: explicit `wecom.api_base`, else the built-in
    /// simulator mounted at `/sim` of our own listener, else WeCom itself.
    pub fn api_base(&self, bound: SocketAddr) -> String {
        if !self.wecom.api_base.is_empty() {
            self.wecom.api_base.clone()
        } else if self.sim.enabled {
            format!("http://{}/sim", loopback_for(bound))
        } else {
            WECOM_API_BASE.to_owned()
        }
    }

    /// Base URL for links to the console.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", loopback_for(bound))
        } else {
            self.server.public_url.clone()
        }
    }

    /// Local time offset for ticket numbers and reports.
    pub fn utc_offset(&self) -> chrono::FixedOffset {
        chrono::FixedOffset::east_opt(self.server.utc_offset_hours * 3600)
            .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset is valid"))
    }
}

/// A wildcard listen address (`0.0.0.0`) is not something to connect to; use loopback.
pub fn loopback_for(bound: SocketAddr) -> SocketAddr {
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// Set `rest` (`SECTION__KEY`, already stripped of the prefix) to `value` in `table`.
///
/// The value takes the TOML type of the key it replaces (so `HELPDESK__WECOM__AGENT_ID=7`
/// stays an integer and `HELPDESK__WECOM__SECRET=123` stays a string); for a key absent from
/// the file, a literal that parses as TOML (bool, number, array) keeps that type.
fn apply_override(table: &mut toml::Table, rest: &str, value: &str) -> Result<(), ConfigError> {
    let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
    let key = parts.join(".");
    if parts.iter().any(String::is_empty) {
        return Err(ConfigError::invalid(
            &key,
            format!("environment override {ENV_PREFIX}{rest} has an empty segment"),
        ));
    }
    let (last, sections) = parts.split_last().expect("split yields at least one part");
    let mut cur = table;
    for section in sections {
        let entry = cur
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| ConfigError::invalid(&key, format!("`{section}` is not a section")))?;
    }
    let typed =
        match cur.get(last) {
            Some(toml::Value::String(_)) => toml::Value::String(value.to_owned()),
            Some(toml::Value::Integer(_)) => {
                toml::Value::Integer(value.trim().parse().map_err(|_| {
                    ConfigError::invalid(&key, format!("`{value}` is not an integer"))
                })?)
            }
            Some(toml::Value::Float(_)) => {
                toml::Value::Float(value.trim().parse().map_err(|_| {
                    ConfigError::invalid(&key, format!("`{value}` is not a number"))
                })?)
            }
            Some(toml::Value::Boolean(_)) => toml::Value::Boolean(match value.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ConfigError::invalid(
                        &key,
                        format!("`{value}` is not true/false"),
                    ));
                }
            }),
            Some(toml::Value::Table(_)) => {
                return Err(ConfigError::invalid(&key, "is a section, not a value"));
            }
            Some(_) | None => infer_literal(value),
        };
    cur.insert(last.clone(), typed);
    Ok(())
}

fn infer_literal(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .filter(|v| !matches!(v, toml::Value::Table(_)))
            .unwrap_or_else(|| toml::Value::String(value.to_owned())),
        Err(_) => toml::Value::String(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
[sim]
enabled = true
[wecom]
corp_id = "wwcorp"
agent_id = 1000002
secret = "s3cret-value"
[wecom.app]
token = "AppToken"
encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
[wecom.bot]
token = "BotToken"
encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
[wecom.robot]
webhook_key = "robot-key"
"#;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_sources(Path::new("config.toml"), BASE, &env)
    }

    #[test]
    fn base_config_is_valid() {
        let c = load(&[]).expect("valid");
        assert_eq!(c.server.listen.port(), 8080);
        assert_eq!(c.wecom.agent_id, 1000002);
        assert_eq!(c.server.max_body_bytes, 1024 * 1024);
        assert_eq!(c.server.timestamp_window, Duration::from_secs(300));
    }

    #[test]
    fn env_overrides_keep_types_and_nest() {
        let c = load(&[
            ("HELPDESK__SERVER__LISTEN", "0.0.0.0:9000"),
            ("HELPDESK__WECOM__AGENT_ID", "7"),
            ("HELPDESK__WECOM__SECRET", "123456"),
            ("HELPDESK__WECOM__APP__TOKEN", "Other1"),
            ("HELPDESK__SIM__ENABLED", "false"),
            ("HELPDESK__WECOM__API_BASE", "http://127.0.0.1:1/x"),
            ("HELPDESK__STORAGE__DATA_DIR", "/tmp/x"),
            ("UNRELATED", "1"),
        ])
        .expect("valid");
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.wecom.agent_id, 7);
        assert_eq!(c.wecom.secret.expose(), "123456");
        assert_eq!(c.wecom.app.token.expose(), "Other1");
        assert!(!c.sim.enabled);
        assert_eq!(c.storage.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("HELPDESK__SERVER__LISTEN", "nonsense", "server.listen"),
            (
                "HELPDESK__WECOM__APP__ENCODING_AES_KEY",
                "short",
                "wecom.app.encoding_aes_key",
            ),
            (
                "HELPDESK__WECOM__BOT__TOKEN",
                "has space",
                "wecom.bot.token",
            ),
            ("HELPDESK__WECOM__AGENT_ID", "x", "wecom.agent_id"),
            ("HELPDESK__WECOM__API_BASE", "ftp://x", "wecom.api_base"),
            (
                "HELPDESK__OUTBOX__RETRY_BUDGET_MINS",
                "0",
                "outbox.retry_budget_mins",
            ),
            (
                "HELPDESK__TICKETS__CUSTOMER_NO_PATTERN",
                "([",
                "tickets.customer_no_pattern",
            ),
        ];
        for (k, v, key) in cases {
            let err = load(&[(k, v)]).expect_err(k);
            let msg = err.to_string();
            assert!(msg.starts_with(key), "{k}: {msg}");
        }
    }

    #[test]
    fn type_errors_name_their_key() {
        let text = BASE.replace("agent_id = 1000002", "agent_id = \"abc\"");
        let err = Config::from_sources(Path::new("c.toml"), &text, &[]).expect_err("bad type");
        assert!(err.to_string().starts_with("wecom.agent_id"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = load(&[]).expect("valid");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret-value"));
        assert!(!dbg.contains("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"));
        assert!(!dbg.contains("robot-key"));
        assert!(dbg.contains("***"));
    }

    #[test]
    fn api_base_resolution() {
        let c = load(&[]).expect("valid");
        let bound: SocketAddr = "0.0.0.0:4321".parse().expect("addr");
        assert_eq!(c.api_base(bound), "http://127.0.0.1:4321/sim");
        let c = load(&[("HELPDESK__SIM__ENABLED", "false")]).expect("valid");
        assert_eq!(c.api_base(bound), WECOM_API_BASE.to_owned());
    }

    #[test]
    fn the_simulator_stays_on_loopback_unless_forced() {
        let open = ("HELPDESK__SERVER__LISTEN", "0.0.0.0:8080");
        let err = load(&[open]).expect_err("refused");
        assert!(err.to_string().starts_with("sim.enabled:"), "{err}");
        assert!(load(&[open, ("HELPDESK__SIM__ALLOW_REMOTE", "true")]).is_ok());
        assert!(load(&[open, ("HELPDESK__SIM__ENABLED", "false")]).is_ok());
    }

    #[test]
    fn demo_accounts_only_with_the_simulator() {
        let demo = ("HELPDESK__CONSOLE__DEMO_ACCOUNTS", "true");
        assert!(load(&[demo]).is_ok());
        let err = load(&[demo, ("HELPDESK__SIM__ENABLED", "false")]).expect_err("refused");
        assert!(
            err.to_string().starts_with("console.demo_accounts:"),
            "{err}"
        );
    }
}
