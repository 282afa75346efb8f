//! Configuration: `config.toml` plus environment overrides, validated into [`Config`].
//!
//! Two stages, as the rest of the crate expects:
//! 1. **raw**: the TOML file is read into a `toml::Table`; every environment variable
//!    `HELPDESK__SECTION__KEY` (nested with `__`, case-insensitive) replaces one key; the table
//!    is deserialised into `Raw*` structs with serde defaults. Unknown keys are warned about,
//!    never silently accepted as meaningful.
//! 2. **validated**: [`Config::from_raw`] checks each value and names the key that is wrong
//!    (`wecom.app.encoding_aes_key: must be 43 characters …`). A bad config stops start-up with
//!    that one message.
//!
//! Secrets live in [`Secret`], whose `Debug`/`Display` print `***`, so a `Config` can be logged.
//! Depends on nothing else in the crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::util::Secret;

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
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw stage
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawConfig {
    server: RawServer,
    storage: RawStorage,
    sim: RawSim,
    wecom: RawWecom,
    outbox: RawOutbox,
    paths: RawPaths,
    tickets: RawTickets,
    conversation: RawConversation,
    faq: RawFaq,
    console: RawConsole,
    sla: RawSla,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawServer {
    listen: String,
    public_url: String,
    max_body_bytes: u64,
    timestamp_window_secs: u64,
    utc_offset_hours: i32,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            max_body_bytes: 1024 * 1024,
            timestamp_window_secs: 300,
            utc_offset_hours: 8,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawStorage {
    data_dir: String,
    cache_capacity_mb: u64,
    dedupe_ttl_hours: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            data_dir: "data".into(),
            cache_capacity_mb: 64,
            dedupe_ttl_hours: 72,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawSim {
    enabled: bool,
    listen: String,
    gateway_url: String,
    token_ttl_secs: u64,
    group_name: String,
    handler_group_name: String,
    members: Vec<String>,
}

impl Default for RawSim {
    fn default() -> Self {
        RawSim {
            enabled: false,
            listen: "127.0.0.1:8081".into(),
            gateway_url: "http://127.0.0.1:8080".into(),
            token_ttl_secs: 7200,
            group_name: "华东区业务群".into(),
            handler_group_name: "事件处理群".into(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawWecom {
    api_base: String,
    corp_id: String,
    agent_id: i64,
    secret: Secret,
    app: RawCallbackKeys,
    bot: RawBot,
    robot: RawRobot,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawCallbackKeys {
    token: Secret,
    encoding_aes_key: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawBot {
    token: Secret,
    encoding_aes_key: Secret,
    name: String,
}

impl Default for RawBot {
    fn default() -> Self {
        RawBot {
            token: Secret::default(),
            encoding_aes_key: Secret::default(),
            name: "事件助手".into(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawRobot {
    webhook_key: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawOutbox {
    max_attempts: u32,
    backoff_base_ms: u64,
    backoff_max_secs: u64,
    member_per_minute: u32,
    robot_per_minute: u32,
    http_timeout_secs: u64,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            max_attempts: 8,
            backoff_base_ms: 500,
            backoff_max_secs: 300,
            member_per_minute: 30,
            robot_per_minute: 20,
            http_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawPaths {
    kb_dir: String,
    scripts_dir: String,
}

impl Default for RawPaths {
    fn default() -> Self {
        RawPaths {
            kb_dir: "kb".into(),
            scripts_dir: "bot-scripts".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawTickets {
    number_prefix: String,
    customer_no_pattern: String,
    max_image_bytes: u64,
}

impl Default for RawTickets {
    fn default() -> Self {
        RawTickets {
            number_prefix: "IT".into(),
            customer_no_pattern: r"^[0-9]{8,12}$".into(),
            max_image_bytes: 10 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawConversation {
    idle_timeout_secs: u64,
    burst_window_secs: u64,
}

impl Default for RawConversation {
    fn default() -> Self {
        RawConversation {
            idle_timeout_secs: 1800,
            burst_window_secs: 120,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawFaq {
    answer_threshold: f32,
    suggest_threshold: f32,
}

impl Default for RawFaq {
    fn default() -> Self {
        RawFaq {
            answer_threshold: 0.70,
            suggest_threshold: 0.35,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawConsole {
    demo_accounts: bool,
    session_hours: u64,
    login_attempts_per_minute: u32,
    api_token: Secret,
}

impl Default for RawConsole {
    fn default() -> Self {
        RawConsole {
            demo_accounts: false,
            session_hours: 12,
            login_attempts_per_minute: 5,
            api_token: Secret::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawSla {
    /// Minutes to first response, per priority P1..P4.
    first_response_mins: Vec<u64>,
    /// Minutes to resolution, per priority P1..P4.
    resolution_mins: Vec<u64>,
}

impl Default for RawSla {
    fn default() -> Self {
        RawSla {
            first_response_mins: vec![15, 30, 120, 480],
            resolution_mins: vec![120, 480, 1440, 4320],
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
    pub cache_capacity_bytes: u64,
    pub dedupe_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub enabled: bool,
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
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub max_attempts: u32,
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
        Config::from_raw(raw)
    }

    fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let listen = parse_addr("server.listen", &raw.server.listen)?;
        if raw.server.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if !(-12..=14).contains(&raw.server.utc_offset_hours) {
            return Err(ConfigError::invalid(
                "server.utc_offset_hours",
                "must be between -12 and 14",
            ));
        }
        let public_url = raw.server.public_url.trim_end_matches('/').to_owned();
        if !public_url.is_empty() {
            check_url("server.public_url", &public_url)?;
        }
        if raw.storage.data_dir.trim().is_empty() {
            return Err(ConfigError::invalid(
                "storage.data_dir",
                "must not be empty",
            ));
        }

        let members = if raw.sim.members.is_empty() {
            default_sim_members()
        } else {
            raw.sim
                .members
                .iter()
                .map(|m| {
                    let (id, name) = m.split_once(':').ok_or_else(|| {
                        ConfigError::invalid("sim.members", format!("`{m}` is not `userid:姓名`"))
                    })?;
                    Ok((id.trim().to_owned(), name.trim().to_owned()))
                })
                .collect::<Result<_, _>>()?
        };

        let w = raw.wecom;
        let api_base = w.api_base.trim_end_matches('/').to_owned();
        if !api_base.is_empty() {
            check_url("wecom.api_base", &api_base)?;
        }
        if w.corp_id.trim().is_empty() {
            return Err(ConfigError::invalid("wecom.corp_id", "must not be empty"));
        }
        if w.agent_id <= 0 {
            return Err(ConfigError::invalid(
                "wecom.agent_id",
                "must be the app's positive AgentId",
            ));
        }
        if w.secret.is_empty() {
            return Err(ConfigError::invalid("wecom.secret", "must not be empty"));
        }
        check_token("wecom.app.token", &w.app.token)?;
        check_aes_key("wecom.app.encoding_aes_key", &w.app.encoding_aes_key)?;
        check_token("wecom.bot.token", &w.bot.token)?;
        check_aes_key("wecom.bot.encoding_aes_key", &w.bot.encoding_aes_key)?;
        if w.robot.webhook_key.is_empty() {
            return Err(ConfigError::invalid(
                "wecom.robot.webhook_key",
                "must not be empty",
            ));
        }
        if !raw.sim.enabled && api_base.is_empty() && w.secret.expose().starts_with("demo-") {
            return Err(ConfigError::invalid(
                "wecom.secret",
                "still holds the demo value while sim.enabled = false; set the app's real secret",
            ));
        }

        let o = raw.outbox;
        if o.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "outbox.max_attempts",
                "must be at least 1",
            ));
        }
        if o.member_per_minute == 0 || o.robot_per_minute == 0 {
            return Err(ConfigError::invalid(
                "outbox.member_per_minute",
                "rate limits must be at least 1",
            ));
        }

        let customer_no_pattern =
            regex::Regex::new(&raw.tickets.customer_no_pattern).map_err(|e| {
                ConfigError::invalid("tickets.customer_no_pattern", format!("bad regex: {e}"))
            })?;
        let prefix = raw.tickets.number_prefix.trim().to_owned();
        if prefix.is_empty() || prefix.len() > 8 || !prefix.chars().all(|c| c.is_ascii_uppercase())
        {
            return Err(ConfigError::invalid(
                "tickets.number_prefix",
                "must be 1–8 uppercase ASCII letters, e.g. IT",
            ));
        }

        if !(0.0..=1.0).contains(&raw.faq.answer_threshold)
            || !(0.0..=1.0).contains(&raw.faq.suggest_threshold)
            || raw.faq.suggest_threshold > raw.faq.answer_threshold
        {
            return Err(ConfigError::invalid(
                "faq.answer_threshold",
                "thresholds must lie in 0..=1 with suggest_threshold <= answer_threshold",
            ));
        }
        if raw.conversation.idle_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "conversation.idle_timeout_secs",
                "must be at least 1",
            ));
        }
        let sla_array = |key: &str, v: &[u64]| -> Result<[Duration; 4], ConfigError> {
            if v.len() != 4 || v.contains(&0) {
                return Err(ConfigError::invalid(
                    key,
                    "must list 4 positive minute values, for P1..P4",
                ));
            }
            Ok([0, 1, 2, 3].map(|i| Duration::from_secs(v[i] * 60)))
        };

        Ok(Config {
            server: ServerConfig {
                listen,
                public_url,
                max_body_bytes: usize::try_from(raw.server.max_body_bytes).unwrap_or(usize::MAX),
                timestamp_window: Duration::from_secs(raw.server.timestamp_window_secs),
                utc_offset_hours: raw.server.utc_offset_hours,
            },
            storage: StorageConfig {
                data_dir: PathBuf::from(raw.storage.data_dir),
                cache_capacity_bytes: raw.storage.cache_capacity_mb.max(8) * 1024 * 1024,
                dedupe_ttl: Duration::from_secs(raw.storage.dedupe_ttl_hours.max(1) * 3600),
            },
            sim: SimConfig {
                enabled: raw.sim.enabled,
                listen: parse_addr("sim.listen", &raw.sim.listen)?,
                gateway_url: raw.sim.gateway_url.trim_end_matches('/').to_owned(),
                token_ttl: Duration::from_secs(raw.sim.token_ttl_secs.max(1)),
                group_name: raw.sim.group_name,
                handler_group_name: raw.sim.handler_group_name,
                members,
            },
            wecom: WecomConfig {
                api_base,
                corp_id: w.corp_id.trim().to_owned(),
                agent_id: w.agent_id,
                secret: w.secret,
                app: CallbackKeys {
                    token: w.app.token,
                    encoding_aes_key: w.app.encoding_aes_key,
                },
                bot: CallbackKeys {
                    token: w.bot.token,
                    encoding_aes_key: w.bot.encoding_aes_key,
                },
                bot_name: w.bot.name,
                robot_webhook_key: w.robot.webhook_key,
            },
            outbox: OutboxConfig {
                max_attempts: o.max_attempts,
                backoff_base: Duration::from_millis(o.backoff_base_ms.max(1)),
                backoff_max: Duration::from_secs(o.backoff_max_secs.max(1)),
                member_per_minute: o.member_per_minute,
                robot_per_minute: o.robot_per_minute,
                http_timeout: Duration::from_secs(o.http_timeout_secs.max(1)),
            },
            paths: PathsConfig {
                kb_dir: PathBuf::from(raw.paths.kb_dir),
                scripts_dir: PathBuf::from(raw.paths.scripts_dir),
            },
            tickets: TicketsConfig {
                number_prefix: prefix,
                customer_no_pattern,
                max_image_bytes: usize::try_from(raw.tickets.max_image_bytes).unwrap_or(usize::MAX),
            },
            conversation: ConversationConfig {
                idle_timeout: Duration::from_secs(raw.conversation.idle_timeout_secs),
                burst_window: Duration::from_secs(raw.conversation.burst_window_secs),
            },
            faq: FaqConfig {
                answer_threshold: raw.faq.answer_threshold,
                suggest_threshold: raw.faq.suggest_threshold,
            },
            console: ConsoleConfig {
                demo_accounts: raw.console.demo_accounts,
                session_ttl: Duration::from_secs(raw.console.session_hours.max(1) * 3600),
                login_attempts_per_minute: raw.console.login_attempts_per_minute.max(1),
                api_token: raw.console.api_token,
            },
            sla: SlaConfig {
                first_response: sla_array("sla.first_response_mins", &raw.sla.first_response_mins)?,
                resolution: sla_array("sla.resolution_mins", &raw.sla.resolution_mins)?,
            },
        })
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

fn default_sim_members() -> Vec<(String, String)> {
    [
        ("zhangsan", "张三"),
        ("lisi", "李四"),
        ("wangwu", "王五"),
        ("zhaoliu", "赵六"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect()
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("`{value}` is not a socket address like 127.0.0.1:8080"),
        )
    })
}

fn check_url(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("`{value}` must start with http:// or https://"),
        ))
    }
}

fn check_token(key: &str, token: &Secret) -> Result<(), ConfigError> {
    let t = token.expose();
    if t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ConfigError::invalid(
            key,
            "must be 1–32 letters or digits (the Token set in the WeCom admin console)",
        ));
    }
    Ok(())
}

fn check_aes_key(key: &str, value: &Secret) -> Result<(), ConfigError> {
    crate::wecom::crypto::decode_aes_key(value.expose())
        .map(|_| ())
        .map_err(|_| {
            ConfigError::invalid(
                key,
                "must be the 43-character EncodingAESKey (letters and digits) from the WeCom admin console",
            )
        })
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
            ("HELPDESK__OUTBOX__MAX_ATTEMPTS", "0", "outbox.max_attempts"),
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
}
