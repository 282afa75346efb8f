//! The raw stage of the configuration (serde defaults, one struct per section) and the
//! conversion of each section into its validated form; errors name the key that is wrong.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    BusinessHours, CallbackKeys, Config, ConfigError, ConsoleConfig, ConversationConfig, FaqConfig,
    HooksConfig, IncidentsConfig, OutboxConfig, PathsConfig, ReportsConfig, Secret, ServerConfig,
    SimConfig, SlaConfig, StorageConfig, TicketsConfig, WecomConfig,
};

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct RawConfig {
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
    hooks: RawHooks,
    incidents: RawIncidents,
    business_hours: RawBusinessHours,
    reports: RawReports,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawBusinessHours {
    /// ISO weekdays, Monday = 1.
    weekdays: Vec<u32>,
    start: String,
    end: String,
    /// Days off that would be working days (`YYYY-MM-DD`).
    holidays: Vec<String>,
    /// Working days that would be days off (调休, `YYYY-MM-DD`).
    workdays: Vec<String>,
}

impl Default for RawBusinessHours {
    fn default() -> Self {
        RawBusinessHours {
            weekdays: vec![1, 2, 3, 4, 5],
            start: "09:00".into(),
            end: "18:00".into(),
            holidays: Vec::new(),
            workdays: Vec::new(),
        }
    }
}

impl RawBusinessHours {
    fn validate(self) -> Result<BusinessHours, ConfigError> {
        if self.weekdays.iter().any(|d| !(1..=7).contains(d)) {
            return Err(ConfigError::invalid(
                "business_hours.weekdays",
                "must list ISO weekdays 1 (Monday) to 7 (Sunday)",
            ));
        }
        let time = |key: &str, v: &str| {
            chrono::NaiveTime::parse_from_str(v.trim(), "%H:%M")
                .map_err(|_| ConfigError::invalid(key, format!("`{v}` is not HH:MM")))
        };
        let start = time("business_hours.start", &self.start)?;
        let end = time("business_hours.end", &self.end)?;
        if end <= start {
            return Err(ConfigError::invalid(
                "business_hours.end",
                "must be after business_hours.start",
            ));
        }
        let dates = |key: &str, v: &[String]| {
            v.iter()
                .map(|d| {
                    chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                        .map_err(|_| ConfigError::invalid(key, format!("`{d}` is not YYYY-MM-DD")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(BusinessHours {
            weekdays: self.weekdays,
            start,
            end,
            holidays: dates("business_hours.holidays", &self.holidays)?,
            workdays: dates("business_hours.workdays", &self.workdays)?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawReports {
    weekly_cron: String,
    metrics_loopback_only: bool,
}

impl Default for RawReports {
    fn default() -> Self {
        RawReports {
            weekly_cron: "0 9 * * MON".into(),
            metrics_loopback_only: true,
        }
    }
}

impl RawReports {
    fn validate(self) -> Result<ReportsConfig, ConfigError> {
        let cron = self.weekly_cron.trim().to_owned();
        cron.parse::<croner::Cron>()
            .map_err(|e| ConfigError::invalid("reports.weekly_cron", format!("`{cron}`: {e}")))?;
        Ok(ReportsConfig {
            weekly_cron: cron,
            metrics_loopback_only: self.metrics_loopback_only,
        })
    }
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
    backup_dir: String,
    cache_capacity_mb: u64,
    dedupe_ttl_hours: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            data_dir: "data".into(),
            backup_dir: "backups".into(),
            cache_capacity_mb: 64,
            dedupe_ttl_hours: 72,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawSim {
    enabled: bool,
    allow_remote: bool,
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
            allow_remote: false,
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
    group_names: Vec<String>,
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
    retry_budget_mins: u64,
    backoff_base_ms: u64,
    backoff_max_secs: u64,
    member_per_minute: u32,
    robot_per_minute: u32,
    http_timeout_secs: u64,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            max_attempts: 0,
            retry_budget_mins: 24 * 60,
            backoff_base_ms: 500,
            backoff_max_secs: 60,
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
    follow_up_hours: u64,
}

impl Default for RawConversation {
    fn default() -> Self {
        RawConversation {
            idle_timeout_secs: 1800,
            burst_window_secs: 120,
            follow_up_hours: 24,
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

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawHooks {
    token: Secret,
    grafana_secret: Secret,
    system_label: String,
    system_names: Vec<String>,
    max_body_bytes: u64,
}

impl Default for RawHooks {
    fn default() -> Self {
        RawHooks {
            token: Secret::default(),
            grafana_secret: Secret::default(),
            system_label: "system".into(),
            system_names: Vec::new(),
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawIncidents {
    number_prefix: String,
    resolve_with_alerts: bool,
    auto_resolve_hours: u64,
    major_after_mins: u64,
    major_reporters: usize,
    outbreak_window_mins: u64,
    outbreak_min_reporters: usize,
    similarity_cutoff: f32,
    resolve_tickets: bool,
    system_keywords: Vec<String>,
}

impl Default for RawIncidents {
    fn default() -> Self {
        RawIncidents {
            number_prefix: "INC".into(),
            resolve_with_alerts: true,
            auto_resolve_hours: 24,
            major_after_mins: 60,
            major_reporters: 10,
            outbreak_window_mins: 30,
            outbreak_min_reporters: 3,
            similarity_cutoff: 0.3,
            resolve_tickets: true,
            system_keywords: Vec::new(),
        }
    }
}

impl RawHooks {
    fn validate(self) -> Result<HooksConfig, ConfigError> {
        let label = self.system_label.trim();
        if label.is_empty() {
            return Err(ConfigError::invalid(
                "hooks.system_label",
                "must name the alert label that carries the system (e.g. `system`)",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "hooks.max_body_bytes",
                "must be at least 1024",
            ));
        }
        let system_names = self
            .system_names
            .iter()
            .map(|m| {
                let (value, name) = m
                    .split_once(':')
                    .filter(|(v, n)| !v.trim().is_empty() && !n.trim().is_empty())
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "hooks.system_names",
                            format!("`{m}` is not `标签值:系统名`"),
                        )
                    })?;
                Ok((value.trim().to_owned(), name.trim().to_owned()))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(HooksConfig {
            token: self.token,
            grafana_secret: self.grafana_secret,
            system_label: label.to_owned(),
            system_names,
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
        })
    }
}

impl RawIncidents {
    fn validate(self) -> Result<IncidentsConfig, ConfigError> {
        let prefix = self.number_prefix.trim();
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ConfigError::invalid(
                "incidents.number_prefix",
                "must be capital letters, e.g. INC",
            ));
        }
        if !(0.05..=0.95).contains(&self.similarity_cutoff) {
            return Err(ConfigError::invalid(
                "incidents.similarity_cutoff",
                "must be between 0.05 and 0.95",
            ));
        }
        if self.outbreak_min_reporters < 2 {
            return Err(ConfigError::invalid(
                "incidents.outbreak_min_reporters",
                "must be at least 2 (one reporter is not an outbreak)",
            ));
        }
        let system_keywords = self
            .system_keywords
            .iter()
            .map(|m| {
                let (system, words) = m
                    .split_once(':')
                    .filter(|(s, w)| !s.trim().is_empty() && !w.trim().is_empty())
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "incidents.system_keywords",
                            format!("`{m}` is not `系统:词,词`"),
                        )
                    })?;
                let words = words
                    .split([',', '，'])
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok((system.trim().to_owned(), words))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(IncidentsConfig {
            outbreak_window: Duration::from_secs(self.outbreak_window_mins.max(1) * 60),
            outbreak_min_reporters: self.outbreak_min_reporters,
            similarity_cutoff: self.similarity_cutoff,
            resolve_tickets: self.resolve_tickets,
            system_keywords,
            number_prefix: prefix.to_owned(),
            resolve_with_alerts: self.resolve_with_alerts,
            auto_resolve_after: Duration::from_secs(self.auto_resolve_hours.max(1) * 3600),
            major_after: Duration::from_secs(self.major_after_mins.max(1) * 60),
            major_reporters: self.major_reporters.max(1),
        })
    }
}

impl RawConfig {
    /// The second stage: every section checked by its own conversion, then the checks that
    /// span sections.
    pub(super) fn validate(self) -> Result<Config, ConfigError> {
        let sim = self.sim.validate()?;
        let server = self.server.validate()?;
        if sim.enabled && !server.listen.ip().is_loopback() && !sim.allow_remote {
            return Err(ConfigError::invalid(
                "sim.enabled",
                "the simulator's test API (/sim/api) has no login; it is served only on a \
                 loopback server.listen. Set sim.enabled = false, or sim.allow_remote = true to \
                 expose it anyway (a demo on a trusted network)",
            ));
        }
        let wecom = self.wecom.validate()?;
        if !sim.enabled && wecom.api_base.is_empty() && wecom.secret.expose().starts_with("demo-") {
            return Err(ConfigError::invalid(
                "wecom.secret",
                "still holds the demo value while sim.enabled = false; set the app's real secret",
            ));
        }
        if self.console.demo_accounts && !sim.enabled {
            return Err(ConfigError::invalid(
                "console.demo_accounts",
                "creates admin/admin-demo and handler/handler-demo, for the demo only: it needs \
                 sim.enabled = true. Set it to false and create accounts with \
                 `wecom-helpdesk user add NAME --role admin`",
            ));
        }
        let hooks = self.hooks.validate()?;
        if !sim.enabled && wecom.api_base.is_empty() && hooks.token.expose().starts_with("demo-") {
            return Err(ConfigError::invalid(
                "hooks.token",
                "still holds the demo value while the desk talks to WeCom; set a long random \
                 token (or empty to turn the hooks off)",
            ));
        }
        Ok(Config {
            server,
            storage: self.storage.validate()?,
            sim,
            wecom,
            outbox: self.outbox.validate()?,
            paths: PathsConfig {
                kb_dir: PathBuf::from(self.paths.kb_dir),
                scripts_dir: PathBuf::from(self.paths.scripts_dir),
            },
            tickets: self.tickets.validate()?,
            conversation: self.conversation.validate()?,
            faq: self.faq.validate()?,
            console: ConsoleConfig {
                demo_accounts: self.console.demo_accounts,
                session_ttl: Duration::from_secs(self.console.session_hours.max(1) * 3600),
                login_attempts_per_minute: self.console.login_attempts_per_minute.max(1),
                api_token: self.console.api_token,
            },
            sla: self.sla.validate()?,
            hooks,
            incidents: self.incidents.validate()?,
            business_hours: self.business_hours.validate()?,
            reports: self.reports.validate()?,
        })
    }
}

impl RawServer {
    fn validate(self) -> Result<ServerConfig, ConfigError> {
        let listen = parse_addr("server.listen", &self.listen)?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if !(-12..=14).contains(&self.utc_offset_hours) {
            return Err(ConfigError::invalid(
                "server.utc_offset_hours",
                "must be between -12 and 14",
            ));
        }
        let public_url = self.public_url.trim_end_matches('/').to_owned();
        if !public_url.is_empty() {
            check_url("server.public_url", &public_url)?;
        }
        Ok(ServerConfig {
            listen,
            public_url,
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            timestamp_window: Duration::from_secs(self.timestamp_window_secs),
            utc_offset_hours: self.utc_offset_hours,
        })
    }
}

impl RawStorage {
    fn validate(self) -> Result<StorageConfig, ConfigError> {
        if self.data_dir.trim().is_empty() {
            return Err(ConfigError::invalid(
                "storage.data_dir",
                "must not be empty",
            ));
        }
        if self.backup_dir.trim().is_empty() {
            return Err(ConfigError::invalid(
                "storage.backup_dir",
                "must not be empty",
            ));
        }
        Ok(StorageConfig {
            data_dir: PathBuf::from(self.data_dir),
            backup_dir: PathBuf::from(self.backup_dir),
            cache_capacity_bytes: self.cache_capacity_mb.max(8) * 1024 * 1024,
            dedupe_ttl: Duration::from_secs(self.dedupe_ttl_hours.max(1) * 3600),
        })
    }
}

impl RawSim {
    fn validate(self) -> Result<SimConfig, ConfigError> {
        let members = if self.members.is_empty() {
            default_sim_members()
        } else {
            self.members
                .iter()
                .map(|m| {
                    let (id, name) = m.split_once(':').ok_or_else(|| {
                        ConfigError::invalid("sim.members", format!("`{m}` is not `userid:姓名`"))
                    })?;
                    Ok((id.trim().to_owned(), name.trim().to_owned()))
                })
                .collect::<Result<_, _>>()?
        };
        Ok(SimConfig {
            enabled: self.enabled,
            allow_remote: self.allow_remote,
            listen: parse_addr("sim.listen", &self.listen)?,
            gateway_url: self.gateway_url.trim_end_matches('/').to_owned(),
            token_ttl: Duration::from_secs(self.token_ttl_secs.max(1)),
            group_name: self.group_name,
            handler_group_name: self.handler_group_name,
            members,
        })
    }
}

impl RawWecom {
    fn validate(self) -> Result<WecomConfig, ConfigError> {
        let api_base = self.api_base.trim_end_matches('/').to_owned();
        if !api_base.is_empty() {
            check_url("wecom.api_base", &api_base)?;
        }
        if self.corp_id.trim().is_empty() {
            return Err(ConfigError::invalid("wecom.corp_id", "must not be empty"));
        }
        if self.agent_id <= 0 {
            return Err(ConfigError::invalid(
                "wecom.agent_id",
                "must be the app's positive AgentId",
            ));
        }
        if self.secret.is_empty() {
            return Err(ConfigError::invalid("wecom.secret", "must not be empty"));
        }
        check_token("wecom.app.token", &self.app.token)?;
        check_aes_key("wecom.app.encoding_aes_key", &self.app.encoding_aes_key)?;
        check_token("wecom.bot.token", &self.bot.token)?;
        check_aes_key("wecom.bot.encoding_aes_key", &self.bot.encoding_aes_key)?;
        if self.robot.webhook_key.is_empty() {
            return Err(ConfigError::invalid(
                "wecom.robot.webhook_key",
                "must not be empty",
            ));
        }
        let group_names = self
            .group_names
            .iter()
            .map(|g| {
                let (id, name) = g.split_once(':').ok_or_else(|| {
                    ConfigError::invalid("wecom.group_names", format!("`{g}` is not `chatid:群名`"))
                })?;
                Ok((id.trim().to_owned(), name.trim().to_owned()))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(WecomConfig {
            group_names,
            api_base,
            corp_id: self.corp_id.trim().to_owned(),
            agent_id: self.agent_id,
            secret: self.secret,
            app: CallbackKeys {
                token: self.app.token,
                encoding_aes_key: self.app.encoding_aes_key,
            },
            bot: CallbackKeys {
                token: self.bot.token,
                encoding_aes_key: self.bot.encoding_aes_key,
            },
            bot_name: self.bot.name,
            robot_webhook_key: self.robot.webhook_key,
        })
    }
}

impl RawOutbox {
    fn validate(self) -> Result<OutboxConfig, ConfigError> {
        if self.retry_budget_mins == 0 {
            return Err(ConfigError::invalid(
                "outbox.retry_budget_mins",
                "must be at least 1",
            ));
        }
        if self.member_per_minute == 0 || self.robot_per_minute == 0 {
            return Err(ConfigError::invalid(
                "outbox.member_per_minute",
                "rate limits must be at least 1",
            ));
        }
        Ok(OutboxConfig {
            max_attempts: self.max_attempts,
            retry_budget: Duration::from_secs(self.retry_budget_mins * 60),
            backoff_base: Duration::from_millis(self.backoff_base_ms.max(1)),
            backoff_max: Duration::from_secs(self.backoff_max_secs.max(1)),
            member_per_minute: self.member_per_minute,
            robot_per_minute: self.robot_per_minute,
            http_timeout: Duration::from_secs(self.http_timeout_secs.max(1)),
        })
    }
}

impl RawTickets {
    fn validate(self) -> Result<TicketsConfig, ConfigError> {
        let customer_no_pattern = regex::Regex::new(&self.customer_no_pattern).map_err(|e| {
            ConfigError::invalid("tickets.customer_no_pattern", format!("bad regex: {e}"))
        })?;
        let prefix = self.number_prefix.trim().to_owned();
        if prefix.is_empty() || prefix.len() > 8 || !prefix.chars().all(|c| c.is_ascii_uppercase())
        {
            return Err(ConfigError::invalid(
                "tickets.number_prefix",
                "must be 1–8 uppercase ASCII letters, e.g. IT",
            ));
        }
        Ok(TicketsConfig {
            number_prefix: prefix,
            customer_no_pattern,
            max_image_bytes: usize::try_from(self.max_image_bytes).unwrap_or(usize::MAX),
        })
    }
}

impl RawConversation {
    fn validate(self) -> Result<ConversationConfig, ConfigError> {
        if self.idle_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "conversation.idle_timeout_secs",
                "must be at least 1",
            ));
        }
        Ok(ConversationConfig {
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            burst_window: Duration::from_secs(self.burst_window_secs),
            follow_up_window: Duration::from_secs(self.follow_up_hours * 3600),
        })
    }
}

impl RawFaq {
    fn validate(self) -> Result<FaqConfig, ConfigError> {
        if !(0.0..=1.0).contains(&self.answer_threshold)
            || !(0.0..=1.0).contains(&self.suggest_threshold)
            || self.suggest_threshold > self.answer_threshold
        {
            return Err(ConfigError::invalid(
                "faq.answer_threshold",
                "thresholds must lie in 0..=1 with suggest_threshold <= answer_threshold",
            ));
        }
        Ok(FaqConfig {
            answer_threshold: self.answer_threshold,
            suggest_threshold: self.suggest_threshold,
        })
    }
}

impl RawSla {
    fn validate(self) -> Result<SlaConfig, ConfigError> {
        let minutes = |key: &str, v: &[u64]| -> Result<[Duration; 4], ConfigError> {
            if v.len() != 4 || v.contains(&0) {
                return Err(ConfigError::invalid(
                    key,
                    "must list 4 positive minute values, for P1..P4",
                ));
            }
            Ok([0, 1, 2, 3].map(|i| Duration::from_secs(v[i] * 60)))
        };
        Ok(SlaConfig {
            first_response: minutes("sla.first_response_mins", &self.first_response_mins)?,
            resolution: minutes("sla.resolution_mins", &self.resolution_mins)?,
        })
    }
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
