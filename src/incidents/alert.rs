//! What monitors post, read into one model ([`AlertBatch`]): Prometheus Alertmanager's
//! webhook (`"version": "4"`), Grafana's (the same shape, `"version": "1"`, with extras) and
//! the PagerDuty Events v2 shaped generic event. Reading is pure: the HTTP edge checks who
//! sent it, these functions check what was sent; [`super::Incidents::ingest`] stores it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::model::{Link, Severity, Source};
use crate::config::HooksConfig;

/// A body we refuse, with a sentence for the sender's log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    #[error("invalid JSON at `{path}`: {message}")]
    Json { path: String, message: String },
    #[error("unsupported payload version `{0}` (expected {1})")]
    Version(String, &'static str),
    #[error("invalid field `{0}`: {1}")]
    Field(&'static str, String),
}

/// What the sender wants done with one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Fire,
    Acknowledge,
    Resolve,
}

/// One alert, as any sender posts it.
#[derive(Debug, Clone)]
pub struct AlertIn {
    /// Fingerprint or dedup_key: the alert's identity at its sender.
    pub key: String,
    pub action: Action,
    pub name: String,
    pub summary: String,
    pub severity: Severity,
    pub system: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub generator_url: String,
    pub silence_url: String,
    pub links: Vec<Link>,
    pub details: Option<Value>,
}

/// One post of a sender: the alerts of one group.
#[derive(Debug, Clone)]
pub struct AlertBatch {
    pub source: Source,
    /// The group's identity at its sender (`groupKey`, or the dedup_key of an event).
    pub group: String,
    /// A title for an incident the batch opens.
    pub title: String,
    pub external_url: String,
    /// Alerts the sender left out (`truncatedAlerts`).
    pub truncated: u32,
    pub alerts: Vec<AlertIn>,
}

fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, HookError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| HookError::Json {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// RFC 3339 → unix ms; Alertmanager's "zero" time (`0001-01-01T00:00:00Z`) is no time.
fn parse_time(field: &'static str, s: &str) -> Result<Option<i64>, HookError> {
    if s.is_empty() {
        return Ok(None);
    }
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| HookError::Field(field, format!("`{s}` is not an RFC 3339 time: {e}")))?;
    Ok((t.timestamp() > 0).then(|| t.timestamp_millis()))
}

/// The system an alert is about: the configured label, then `service`, then `job`, mapped to
/// the name agents use (`hooks.system_names`).
fn system_of(cfg: &HooksConfig, labels: &BTreeMap<String, String>) -> String {
    let raw = [cfg.system_label.as_str(), "service", "job"]
        .iter()
        .find_map(|k| labels.get(*k).filter(|v| !v.trim().is_empty()))
        .map_or("", String::as_str);
    system_name(cfg, raw)
}

fn system_name(cfg: &HooksConfig, raw: &str) -> String {
    let raw = raw.trim();
    if raw.is_empty() {
        return "未知系统".to_owned();
    }
    cfg.system_names
        .iter()
        .find(|(value, _)| value.eq_ignore_ascii_case(raw))
        .map_or_else(|| raw.to_owned(), |(_, name)| name.clone())
}

/// A stand-in fingerprint (16 hex, like Alertmanager's) for an alert posted without one.
fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xfe]);
    }
    crate::util::hex_lower(&h.finalize()[..8])
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmMessage {
    version: String,
    group_key: String,
    #[serde(default)]
    truncated_alerts: u32,
    #[serde(default)]
    common_labels: BTreeMap<String, String>,
    #[serde(default)]
    common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    external_url: String,
    alerts: Vec<AmAlert>,
    /// Grafana: the notification's title.
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
    #[serde(default)]
    fingerprint: String,
    /// Grafana extras.
    #[serde(default)]
    values: Option<Value>,
    #[serde(default, rename = "silenceURL")]
    silence_url: String,
    #[serde(default, rename = "dashboardURL")]
    dashboard_url: String,
    #[serde(default, rename = "panelURL")]
    panel_url: String,
}

/// Alertmanager's webhook (`"version": "4"`).
pub fn alertmanager(body: &[u8], cfg: &HooksConfig) -> Result<AlertBatch, HookError> {
    grouped(Source::Alertmanager, "4", body, cfg)
}

/// Grafana's webhook (`"version": "1"`).
pub fn grafana(body: &[u8], cfg: &HooksConfig) -> Result<AlertBatch, HookError> {
    grouped(Source::Grafana, "1", body, cfg)
}

fn grouped(
    source: Source,
    version: &'static str,
    body: &[u8],
    cfg: &HooksConfig,
) -> Result<AlertBatch, HookError> {
    let m: AmMessage = from_json(body)?;
    if m.version != version {
        return Err(HookError::Version(m.version, version));
    }
    if m.group_key.trim().is_empty() {
        return Err(HookError::Field("groupKey", "must not be empty".into()));
    }
    if m.alerts.is_empty() {
        return Err(HookError::Field(
            "alerts",
            "must list at least one alert".into(),
        ));
    }
    let mut alerts = Vec::with_capacity(m.alerts.len());
    for a in m.alerts {
        let action = match a.status.as_str() {
            "firing" => Action::Fire,
            "resolved" => Action::Resolve,
            other => {
                return Err(HookError::Field(
                    "alerts[].status",
                    format!("`{other}` is neither firing nor resolved"),
                ));
            }
        };
        let pick = |k: &str| {
            a.annotations
                .get(k)
                .or_else(|| m.common_annotations.get(k))
                .cloned()
        };
        let name = a
            .labels
            .get("alertname")
            .or_else(|| m.common_labels.get("alertname"))
            .cloned()
            .unwrap_or_else(|| "告警".to_owned());
        let summary = pick("summary")
            .or_else(|| pick("description"))
            .unwrap_or_else(|| name.clone());
        let severity = a
            .labels
            .get("severity")
            .or_else(|| m.common_labels.get("severity"))
            .map_or(Severity::Warning, |s| Severity::parse(s));
        let mut links = Vec::new();
        for (href, text) in [(&a.dashboard_url, "仪表盘"), (&a.panel_url, "面板")] {
            if !href.is_empty() {
                links.push(Link {
                    href: href.clone(),
                    text: text.to_owned(),
                });
            }
        }
        let key = if a.fingerprint.trim().is_empty() {
            fingerprint(&a.labels)
        } else {
            a.fingerprint.trim().to_owned()
        };
        alerts.push(AlertIn {
            key,
            action,
            system: system_of(cfg, &a.labels),
            starts_at: parse_time("alerts[].startsAt", &a.starts_at)?,
            ends_at: parse_time("alerts[].endsAt", &a.ends_at)?,
            name,
            summary,
            severity,
            labels: a.labels,
            annotations: a.annotations,
            generator_url: a.generator_url,
            silence_url: a.silence_url,
            links,
            details: a.values,
        });
    }
    let title = m
        .common_annotations
        .get("summary")
        .cloned()
        .or_else(|| alerts.first().map(|a| a.summary.clone()))
        .or(m.title)
        .unwrap_or_default();
    Ok(AlertBatch {
        source,
        group: m.group_key,
        title,
        external_url: m.external_url,
        truncated: m.truncated_alerts,
        alerts,
    })
}

#[derive(Deserialize)]
struct PdEvent {
    #[serde(default)]
    routing_key: String,
    event_action: String,
    #[serde(default)]
    dedup_key: Option<String>,
    #[serde(default)]
    payload: Option<PdPayload>,
    #[serde(default)]
    links: Vec<PdLink>,
    #[serde(default)]
    client_url: String,
}

#[derive(Deserialize)]
struct PdPayload {
    summary: String,
    source: String,
    severity: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    custom_details: Option<Value>,
}

#[derive(Deserialize)]
struct PdLink {
    href: String,
    #[serde(default)]
    text: String,
}

/// The longest `dedup_key` and `summary` PagerDuty accepts.
const MAX_DEDUP_KEY: usize = 255;
const MAX_SUMMARY: usize = 1024;

/// A generic event as sent, before the routing key is checked.
pub struct Event {
    pub routing_key: String,
    pub batch: AlertBatch,
}

/// The generic event (PagerDuty Events API v2 shape). A trigger without a `dedup_key` gets
/// a fresh one (returned to the sender, as PagerDuty does).
pub fn event(body: &[u8], cfg: &HooksConfig) -> Result<Event, HookError> {
    let e: PdEvent = from_json(body)?;
    let action = match e.event_action.as_str() {
        "trigger" => Action::Fire,
        "acknowledge" => Action::Acknowledge,
        "resolve" => Action::Resolve,
        other => {
            return Err(HookError::Field(
                "event_action",
                format!("`{other}` is not trigger, acknowledge or resolve"),
            ));
        }
    };
    let dedup_key = match e.dedup_key.map(|k| k.trim().to_owned()) {
        Some(k) if k.chars().count() > MAX_DEDUP_KEY => {
            return Err(HookError::Field(
                "dedup_key",
                format!("longer than {MAX_DEDUP_KEY} characters"),
            ));
        }
        Some(k) if !k.is_empty() => k,
        _ if action == Action::Fire => crate::util::random_hex(16),
        _ => {
            return Err(HookError::Field(
                "dedup_key",
                "is required to acknowledge or resolve".into(),
            ));
        }
    };
    let mut alert = AlertIn {
        key: dedup_key.clone(),
        action,
        name: dedup_key.clone(),
        summary: String::new(),
        severity: Severity::Warning,
        system: String::new(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        starts_at: None,
        ends_at: None,
        generator_url: e.client_url,
        silence_url: String::new(),
        links: e
            .links
            .into_iter()
            .filter(|l| !l.href.is_empty())
            .map(|l| Link {
                text: if l.text.is_empty() {
                    l.href.clone()
                } else {
                    l.text
                },
                href: l.href,
            })
            .collect(),
        details: None,
    };
    match e.payload {
        Some(p) => {
            for (field, value) in [
                ("payload.summary", &p.summary),
                ("payload.source", &p.source),
                ("payload.severity", &p.severity),
            ] {
                if value.trim().is_empty() {
                    return Err(HookError::Field(field, "must not be empty".into()));
                }
            }
            if p.summary.chars().count() > MAX_SUMMARY {
                return Err(HookError::Field(
                    "payload.summary",
                    format!("longer than {MAX_SUMMARY} characters"),
                ));
            }
            // The strict four words, or (Alertmanager's pagerduty_config passes its own
            // `severity` label through) the same mapping as alert labels.
            alert.severity =
                Severity::parse_strict(&p.severity).unwrap_or_else(|| Severity::parse(&p.severity));
            let detail_system = p
                .custom_details
                .as_ref()
                .and_then(|d| d.get(&cfg.system_label))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let raw_system = detail_system
                .or_else(|| p.group.clone())
                .or_else(|| p.component.clone())
                .unwrap_or_else(|| p.source.clone());
            alert.system = system_name(cfg, &raw_system);
            alert.starts_at = match &p.timestamp {
                Some(ts) => parse_time("payload.timestamp", ts)?,
                None => None,
            };
            for (k, v) in [
                ("source", Some(p.source)),
                ("component", p.component),
                ("group", p.group),
                ("class", p.class),
            ] {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    alert.labels.insert(k.to_owned(), v);
                }
            }
            alert.summary = p.summary.trim().to_owned();
            alert.details = p.custom_details;
        }
        None if action == Action::Fire => {
            return Err(HookError::Field(
                "payload",
                "is required to trigger (summary, source, severity)".into(),
            ));
        }
        None => {}
    }
    Ok(Event {
        routing_key: e.routing_key,
        batch: AlertBatch {
            source: Source::Events,
            group: dedup_key,
            title: alert.summary.clone(),
            external_url: String::new(),
            truncated: 0,
            alerts: vec![alert],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::Secret;

    fn cfg() -> HooksConfig {
        HooksConfig {
            token: Secret::new("t"),
            grafana_secret: Secret::default(),
            system_label: "system".into(),
            system_names: vec![("trading".into(), "交易系统".into())],
            max_body_bytes: 1 << 20,
        }
    }

    const AM: &str = r#"{"receiver":"helpdesk","status":"firing",
      "alerts":[{"status":"firing",
        "labels":{"alertname":"OrderLatency","job":"trading","severity":"critical","instance":"gw-01"},
        "annotations":{"summary":"委托下单超时"},
        "startsAt":"2026-11-30T01:02:03.5Z","endsAt":"0001-01-01T00:00:00Z",
        "generatorURL":"http://prom/graph","fingerprint":"1a30ba71cca2921f"}],
      "groupLabels":{"alertname":"OrderLatency"},"commonLabels":{"alertname":"OrderLatency"},
      "commonAnnotations":{},"externalURL":"http://am:9093","version":"4",
      "groupKey":"{}:{alertname=\"OrderLatency\"}","truncatedAlerts":0}"#;

    #[test]
    fn alertmanager_v4_is_read() {
        let b = alertmanager(AM.as_bytes(), &cfg()).expect("valid");
        assert_eq!(b.group, "{}:{alertname=\"OrderLatency\"}");
        assert_eq!(b.title, "委托下单超时");
        let a = &b.alerts[0];
        assert_eq!(a.key, "1a30ba71cca2921f");
        assert_eq!(a.action, Action::Fire);
        assert_eq!(a.severity, Severity::Critical);
        // `system` is absent: `job` stands in, mapped to the agents' name.
        assert_eq!(a.system, "交易系统");
        assert_eq!(a.starts_at, Some(1_796_000_523_500));
        assert_eq!(a.ends_at, None, "the zero time is no time");
        assert_eq!(a.labels["instance"], "gw-01", "unknown labels are kept");
    }

    #[test]
    fn wrong_version_and_missing_fields_are_refused() {
        let grafana_body = AM.replace("\"version\":\"4\"", "\"version\":\"1\"");
        assert!(matches!(
            alertmanager(grafana_body.as_bytes(), &cfg()),
            Err(HookError::Version(v, "4")) if v == "1"
        ));
        assert!(grafana(grafana_body.as_bytes(), &cfg()).is_ok());
        let no_group = AM.replace("\"groupKey\"", "\"group\"");
        let e = alertmanager(no_group.as_bytes(), &cfg()).expect_err("no groupKey");
        assert!(e.to_string().contains("groupKey"), "{e}");
        let bad_status = AM.replace(
            "\"status\":\"firing\",\n        \"labels\"",
            "\"status\":\"burning\",\"labels\"",
        );
        assert!(alertmanager(bad_status.as_bytes(), &cfg()).is_err());
        let e = alertmanager(b"{\"version\":", &cfg()).expect_err("truncated");
        assert!(matches!(e, HookError::Json { .. }));
    }

    #[test]
    fn events_need_a_payload_to_trigger_and_a_key_to_resolve() {
        let trigger = br#"{"routing_key":"k","event_action":"trigger",
          "payload":{"summary":"s","source":"trade-gw-01","severity":"error",
          "custom_details":{"system":"trading"}},"links":[{"href":"http://x","text":"chart"}]}"#;
        let e = event(trigger, &cfg()).expect("valid");
        assert_eq!(e.routing_key, "k");
        let a = &e.batch.alerts[0];
        assert_eq!(a.key.len(), 32, "a generated dedup_key");
        assert_eq!(
            (a.severity, a.system.as_str()),
            (Severity::Error, "交易系统")
        );
        let resolve = br#"{"routing_key":"k","event_action":"resolve"}"#;
        assert!(matches!(
            event(resolve, &cfg()),
            Err(HookError::Field("dedup_key", _))
        ));
        let bare = br#"{"routing_key":"k","event_action":"trigger","dedup_key":"x"}"#;
        assert!(matches!(
            event(bare, &cfg()),
            Err(HookError::Field("payload", _))
        ));
        let odd = br#"{"routing_key":"k","event_action":"snooze","dedup_key":"x"}"#;
        assert!(matches!(
            event(odd, &cfg()),
            Err(HookError::Field("event_action", _))
        ));
    }
}
