//! Monitor hooks and incidents end to end: a real Prometheus Alertmanager posting to our
//! hook, Grafana's HMAC, PagerDuty-shaped events (Alertmanager's own pagerduty_config body
//! among them), bad input, a restart in the middle, and the incident API reaching linked
//! reporters through the simulator.

use std::process::Stdio;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::{SimClient, TestApp, file_ticket, texts};

const HOOK_TOKEN: &str = "demo-hooks-token";
const API_TOKEN: &str = "incident-test-api-token-0123456789";

async fn app() -> TestApp {
    TestApp::start_with(&[("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN)]).await
}

fn am_body(status: &str, alerts: &[(&str, &str)], starts_at: &str) -> Value {
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|(fingerprint, alert_status)| {
            json!({
                "status": alert_status,
                "labels": {"alertname": "OrderLatency", "system": "trading", "severity": "warning", "instance": fingerprint},
                "annotations": {"summary": "委托下单超时"},
                "startsAt": starts_at,
                "endsAt": if *alert_status == "resolved" { "2026-11-30T02:00:00Z" } else { "0001-01-01T00:00:00Z" },
                "generatorURL": "http://prometheus.test/graph",
                "fingerprint": fingerprint,
            })
        })
        .collect();
    json!({
        "version": "4", "receiver": "helpdesk", "status": status,
        "groupKey": "{}:{alertname=\"OrderLatency\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "OrderLatency"},
        "commonLabels": {"alertname": "OrderLatency", "system": "trading"},
        "commonAnnotations": {"summary": "委托下单超时"},
        "externalURL": "http://alertmanager.test", "alerts": alerts,
    })
}

async fn post_hook(
    app: &TestApp,
    path: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.send().await.expect("post hook")
}

/// A refused post: path, body, headers, expected status, a word of the message.
type BadCase = (
    &'static str,
    Vec<u8>,
    Vec<(&'static str, String)>,
    StatusCode,
    &'static str,
);

fn bearer() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {HOOK_TOKEN}"))]
}

async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    super::common::api_call(app, API_TOKEN, method, path, body).await
}

async fn incidents(app: &TestApp, status: &str) -> Vec<Value> {
    let (s, v) = api(
        app,
        reqwest::Method::GET,
        &format!("/api/v1/incidents?status={status}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["incidents"].as_array().cloned().unwrap_or_default()
}

async fn incident(app: &TestApp, number: &str) -> Value {
    let (s, v) = api(
        app,
        reqwest::Method::GET,
        &format!("/api/v1/incidents/{number}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["incident"].clone()
}

/// The handler group's messages about `number`.
async fn robot_about(sim: &SimClient, number: &str) -> Vec<String> {
    texts(&sim.messages("robot", 0).await)
        .into_iter()
        .filter(|t| t.contains(number))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_posts_repeats_and_resolves_then_a_restart_repeats_nothing() {
    let app = app().await;
    // WeCom's robot API is busy: the "opened" notice stays queued across the restart.
    app.sim()
        .post(
            "/api/faults",
            json!({ "endpoint": "webhook/send", "codes": vec![-1; 200] }),
        )
        .await;
    let firing = am_body(
        "firing",
        &[("gw-01", "firing"), ("gw-02", "firing")],
        "2026-11-30T01:00:00Z",
    );
    let r = post_hook(
        &app,
        "/hooks/alertmanager",
        firing.to_string().as_bytes(),
        &bearer(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["opened"], 1);
    let number = answer["incidents"][0].as_str().expect("number").to_owned();
    let i = incident(&app, &number).await;
    assert_eq!(
        i["system"], "交易",
        "the label value reads as the agents' system name"
    );
    assert_eq!(
        (i["status"].as_str(), i["alert_count"].as_u64()),
        (Some("open"), Some(2))
    );
    assert_eq!(i["priority"], "P3");
    let timeline = i["timeline"].as_array().expect("timeline").len();

    // Restart in the middle (the notice not delivered yet), then Alertmanager's repeat:
    // nothing changes but "last seen". The simulator starts afresh with the gateway.
    assert!(robot_about(&app.sim(), &number).await.is_empty());
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &[("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN)]).await;
    let r = post_hook(
        &app,
        "/hooks/alertmanager",
        firing.to_string().as_bytes(),
        &bearer(),
    )
    .await;
    let answer: Value = r.json().await.expect("json");
    assert_eq!(
        (answer["opened"].as_u64(), answer["repeats"].as_u64()),
        (Some(0), Some(2))
    );
    let i = incident(&app, &number).await;
    assert_eq!(i["timeline"].as_array().expect("timeline").len(), timeline);
    assert_eq!(i["alerts"][0]["repeats"], 1);
    assert_eq!(incidents(&app, "all").await.len(), 1);

    let resolved = am_body(
        "resolved",
        &[("gw-01", "resolved"), ("gw-02", "resolved")],
        "2026-11-30T01:00:00Z",
    );
    let r = post_hook(
        &app,
        "/hooks/alertmanager",
        resolved.to_string().as_bytes(),
        &bearer(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let i = incident(&app, &number).await;
    assert_eq!(i["status"], "resolved");
    assert!(i["mttr_ms"].as_i64().is_some());
    app.settled(0).await;
    let notices = robot_about(&app.sim(), &number).await;
    assert_eq!(
        notices.len(),
        2,
        "opened and resolved, once each across the restart: {notices:?}"
    );
    assert!(notices[0].contains("新事件") && notices[1].contains("事件已恢复"));
    app.assert_no_dead_letters();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_ten_thousand_alerts_is_absorbed_one_incident_per_group() {
    let app = app().await;
    const GROUPS: usize = 50;
    for post in 0..100 {
        let group = post % GROUPS;
        let alerts: Vec<Value> = (0..100)
            .map(|n| {
                json!({
                    "status": "firing",
                    "labels": {"alertname": format!("Flood{group}"), "system": "trading", "instance": format!("host-{post}-{n}")},
                    "annotations": {"summary": format!("告警风暴 {group}")},
                    "startsAt": "2026-11-30T01:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": format!("{post:04}{n:04}"),
                })
            })
            .collect();
        let body = json!({
            "version": "4", "status": "firing", "groupKey": format!("{{}}:{{alertname=\"Flood{group}\"}}"),
            "truncatedAlerts": 0, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "", "alerts": alerts,
        });
        let r = post_hook(
            &app,
            "/hooks/alertmanager",
            body.to_string().as_bytes(),
            &bearer(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let list = incidents(&app, "open").await;
    assert_eq!(list.len(), GROUPS, "one incident per group");
    assert!(list.iter().all(|i| i["alerts"] == 200));
    // The handler group is told of each incident once: within its 20 a minute, the rest
    // queued (never dropped).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = texts(&app.sim().messages("robot", 0).await)
        .into_iter()
        .filter(|t| t.contains("新事件"))
        .count();
    let queued = app
        .services()
        .outbox
        .pending()
        .expect("outbox")
        .into_iter()
        .filter(|j| j.dest.lane() == "robot")
        .count();
    assert!(delivered <= 20, "the robot limit holds: {delivered}");
    assert_eq!(
        delivered + queued,
        GROUPS,
        "every notice delivered or queued"
    );
    app.assert_no_dead_letters();
}

fn grafana_body() -> Vec<u8> {
    json!({
        "receiver": "helpdesk", "status": "firing", "orgId": 1, "version": "1",
        "title": "[FIRING:1] BankTransferErrors", "state": "alerting", "message": "银证转账失败率升高",
        "groupKey": "{}/{}:{alertname=\"BankTransferErrors\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "BankTransferErrors"},
        "commonLabels": {"alertname": "BankTransferErrors", "service": "bank-transfer", "severity": "critical"},
        "commonAnnotations": {}, "externalURL": "http://grafana.test/",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "BankTransferErrors", "service": "bank-transfer", "severity": "critical"},
            "annotations": {"summary": "银证转账失败率 12%"},
            "startsAt": "2026-11-30T01:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://grafana.test/alerting/grafana/abc/view",
            "fingerprint": "c0ffee0000000001",
            "silenceURL": "http://grafana.test/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "http://grafana.test/d/abc", "panelURL": "",
            "values": {"B": 12.0, "C": 1}
        }]
    })
    .to_string()
    .into_bytes()
}

fn sign(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_signatures_with_and_without_a_timestamp() {
    let secret = "grafana-hmac-secret";
    let app = TestApp::start_with(&[
        ("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN),
        ("HELPDESK__HOOKS__GRAFANA_SECRET", secret),
    ])
    .await;
    let body = grafana_body();
    let sig = "x-grafana-alerting-signature";
    let ts_header = "x-grafana-alerting-signature-timestamp";

    // Refused: a wrong signature, one over another body, a stale timestamp, no auth at all.
    let wrong = post_hook(
        &app,
        "/hooks/grafana",
        &body,
        &[(sig, sign("other", &body))],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let other_body = post_hook(&app, "/hooks/grafana", &body, &[(sig, sign(secret, b"{}"))]).await;
    assert_eq!(other_body.status(), StatusCode::FORBIDDEN);
    let old = (chrono::Utc::now().timestamp() - 3600).to_string();
    let mut signed = format!("{old}:").into_bytes();
    signed.extend_from_slice(&body);
    let stale = post_hook(
        &app,
        "/hooks/grafana",
        &body,
        &[(sig, sign(secret, &signed)), (ts_header, old)],
    )
    .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    let anonymous = post_hook(&app, "/hooks/grafana", &body, &[]).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(incidents(&app, "all").await.is_empty(), "nothing stored");

    // Accepted: the body signed; then (a repeat) timestamp:body signed; then the bearer token.
    let good = post_hook(&app, "/hooks/grafana", &body, &[(sig, sign(secret, &body))]).await;
    assert_eq!(good.status(), StatusCode::OK);
    let now = chrono::Utc::now().timestamp().to_string();
    let mut signed = format!("{now}:").into_bytes();
    signed.extend_from_slice(&body);
    let with_ts = post_hook(
        &app,
        "/hooks/grafana",
        &body,
        &[(sig, sign(secret, &signed)), (ts_header, now)],
    )
    .await;
    assert_eq!(with_ts.status(), StatusCode::OK);
    let with_token = post_hook(&app, "/hooks/grafana", &body, &bearer()).await;
    assert_eq!(with_token.status(), StatusCode::OK);

    let list = incidents(&app, "open").await;
    assert_eq!(list.len(), 1, "one group, one incident: {list:?}");
    let i = incident(&app, list[0]["number"].as_str().expect("number")).await;
    assert_eq!(i["system"], "三方存管", "`service` stands in for `system`");
    assert_eq!(
        (i["priority"].as_str(), i["major"].as_bool()),
        (Some("P1"), Some(true))
    );
    let alert = &i["alerts"][0];
    assert_eq!(alert["repeats"], 2);
    assert_eq!(
        alert["silence_url"],
        "http://grafana.test/alerting/silence/new?alertmanager=grafana"
    );
    assert_eq!(alert["details"]["B"], 12.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_trigger_acknowledge_resolve_and_alertmanagers_pagerduty_body() {
    let app = app().await;
    let trigger = json!({
        "routing_key": HOOK_TOKEN, "event_action": "trigger", "dedup_key": "trading-order-timeout",
        "payload": {"summary": "委托下单超时 > 5s", "source": "trade-gw-01", "severity": "error",
                    "custom_details": {"system": "trading", "p99_ms": 5300}},
        "links": [{"href": "http://grafana.test/d/orders", "text": "委托看板"}]
    });
    let r = post_hook(&app, "/hooks/events", trigger.to_string().as_bytes(), &[]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(
        (answer["status"].as_str(), answer["dedup_key"].as_str()),
        (Some("success"), Some("trading-order-timeout"))
    );
    let number = answer["incidents"][0].as_str().expect("number").to_owned();
    for (action, status) in [("acknowledge", "acknowledged"), ("resolve", "resolved")] {
        let body = json!({"routing_key": HOOK_TOKEN, "event_action": action, "dedup_key": "trading-order-timeout"});
        let r = post_hook(&app, "/hooks/events", body.to_string().as_bytes(), &[]).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(incident(&app, &number).await["status"], status);
    }
    let i = incident(&app, &number).await;
    assert!(i["tta_ms"].as_i64().is_some() && i["mttr_ms"].as_i64().is_some());
    assert_eq!(i["alerts"][0]["links"][0]["text"], "委托看板");

    // Alertmanager's pagerduty_config, with its `url` pointed here (dedup_key = sha256 of
    // the groupKey, its own `severity` label passed through).
    let am_pd = json!({
        "routing_key": HOOK_TOKEN,
        "dedup_key": "5f7e3d1d1b0e6b1f1b4c2b4f0a2e8e3a9f1d6c7b8a9e0f1a2b3c4d5e6f708192",
        "event_action": "trigger",
        "payload": {"summary": "[FIRING:1] AppLoginErrors", "source": "Alertmanager", "severity": "page",
                    "custom_details": {"firing": "Labels:\n - alertname = AppLoginErrors\n", "num_firing": "1", "num_resolved": "0", "resolved": ""}},
        "client": "Alertmanager", "client_url": "http://alertmanager.test/#/alerts?receiver=pd",
        "images": [], "links": []
    });
    let r = post_hook(&app, "/hooks/events", am_pd.to_string().as_bytes(), &[]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let answer: Value = r.json().await.expect("json");
    let i = incident(&app, answer["incidents"][0].as_str().expect("number")).await;
    assert_eq!(
        (i["severity"].as_str(), i["priority"].as_str()),
        (Some("critical"), Some("P1"))
    );
    assert_eq!(i["status"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_posts_are_refused_and_change_nothing() {
    // Hooks are off while hooks.token is empty.
    let off = TestApp::start_with(&[("HELPDESK__HOOKS__TOKEN", "")]).await;
    let body = am_body("firing", &[("gw-01", "firing")], "2026-11-30T01:00:00Z").to_string();
    let r = post_hook(&off, "/hooks/alertmanager", body.as_bytes(), &bearer()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    drop(off);

    let app = TestApp::start_with(&[
        ("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN),
        ("HELPDESK__HOOKS__MAX_BODY_BYTES", "4096"),
    ])
    .await;
    let wrong_token = vec![("authorization", "Bearer not-the-token".to_owned())];
    let huge = am_body("firing", &[("gw-01", "firing")], "2026-11-30T01:00:00Z")
        .to_string()
        .replace("委托下单超时", &"长".repeat(3000));
    let cases: Vec<BadCase> = vec![
        ("/hooks/alertmanager", body.clone().into_bytes(), vec![], StatusCode::UNAUTHORIZED, "token"),
        ("/hooks/alertmanager", body.clone().into_bytes(), wrong_token, StatusCode::UNAUTHORIZED, "token"),
        ("/hooks/alertmanager", b"{\"version\":\"4\",".to_vec(), bearer(), StatusCode::BAD_REQUEST, "invalid JSON"),
        ("/hooks/alertmanager", body.replace("\"version\":\"4\"", "\"version\":\"3\"").into_bytes(), bearer(), StatusCode::BAD_REQUEST, "version"),
        ("/hooks/alertmanager", body.replace("groupKey", "groupKee").into_bytes(), bearer(), StatusCode::BAD_REQUEST, "groupKey"),
        ("/hooks/alertmanager", body.replace("\"status\":\"firing\"", "\"status\":\"burning\"").into_bytes(), bearer(), StatusCode::BAD_REQUEST, "status"),
        ("/hooks/alertmanager", huge.into_bytes(), bearer(), StatusCode::PAYLOAD_TOO_LARGE, "size"),
        ("/hooks/grafana", body.replace("\"version\":\"4\"", "\"version\":\"1\"").into_bytes(), vec![], StatusCode::UNAUTHORIZED, "token"),
        ("/hooks/events", json!({"routing_key": "nope", "event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "info"}}).to_string().into_bytes(), vec![], StatusCode::UNAUTHORIZED, "token"),
        ("/hooks/events", json!({"routing_key": HOOK_TOKEN, "event_action": "trigger", "payload": {"summary": "s", "source": "x"}}).to_string().into_bytes(), vec![], StatusCode::BAD_REQUEST, "severity"),
        ("/hooks/events", json!({"routing_key": HOOK_TOKEN, "event_action": "resolve"}).to_string().into_bytes(), vec![], StatusCode::BAD_REQUEST, "dedup_key"),
        ("/hooks/events", json!({"routing_key": HOOK_TOKEN, "event_action": "escalate", "dedup_key": "k"}).to_string().into_bytes(), vec![], StatusCode::BAD_REQUEST, "event_action"),
    ];
    for (path, body, headers, status, says) in cases {
        let r = post_hook(&app, path, &body, &headers).await;
        assert_eq!(r.status(), status, "{path} {says}");
        let v: Value = r.json().await.expect("a JSON error");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(says)),
            "{path}: {v}"
        );
    }
    // A resolve for an alert never seen is accepted, recorded, and opens nothing.
    let ghost = am_body("resolved", &[("ghost", "resolved")], "2026-11-30T01:00:00Z").to_string();
    let r = post_hook(&app, "/hooks/alertmanager", ghost.as_bytes(), &bearer()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["unknown"], 1);
    assert!(incidents(&app, "all").await.is_empty());
    app.settled(0).await;
    assert!(
        texts(&app.sim().messages("robot", 0).await)
            .iter()
            .all(|t| !t.contains("事件"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_incident_reaches_its_reporters_in_their_own_chats() {
    let app = app().await;
    let sim = app.sim();
    let t1 = file_ticket(&sim, "app:lisi", "lisi", "股票交易不了，委托一直不成交").await;
    let t2 = file_ticket(&sim, "app:wangwu", "wangwu", "交易下单失败，提示系统繁忙").await;
    let (s, v) = api(
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents",
        Some(json!({"title": "交易系统委托失败", "system": "交易", "priority": "P2", "tickets": [t1]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let number = v["incident"]["number"].as_str().expect("number").to_owned();
    assert!(
        number.starts_with("INC") && number.len() == "INC20261130-001".len(),
        "{number}"
    );
    for (action, body) in [
        ("link", json!({"ticket": t2})),
        ("ack", Value::Null),
        (
            "update",
            json!({"text": "已定位到交易网关故障，正在切换备用线路"}),
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (s, v) = api(
            &app,
            reqwest::Method::POST,
            &format!("/api/v1/incidents/{number}/{action}"),
            body,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{action}: {v}");
    }
    for (chat, member) in [("app:lisi", "lisi"), ("app:wangwu", "wangwu")] {
        sim.wait_text(chat, member, 0, "正在切换备用线路").await;
    }
    // Refusals: a ticket already in it elsewhere, an unknown ticket, acknowledging twice.
    let (s, v) = api(
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents",
        Some(json!({"title": "另一个", "system": "交易", "tickets": [t1]})),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("linked_elsewhere"))
    );
    let (s, _) = api(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{number}/link"),
        Some(json!({"ticket": "IT20000101-0001"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = api(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{number}/ack"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = api(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{number}/update"),
        Some(json!({"text": "  "})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (s, v) = api(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{number}/resolve"),
        Some(json!({"text": "备用线路已生效，交易恢复"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (chat, member) in [("app:lisi", "lisi"), ("app:wangwu", "wangwu")] {
        sim.wait_text(chat, member, 0, "备用线路已生效").await;
    }
    let list = incidents(&app, "resolved").await;
    let item = &list[0];
    for key in [
        "number",
        "status",
        "title",
        "system",
        "priority",
        "major",
        "opened_at",
        "resolved_at",
        "alerts",
        "tickets",
    ] {
        assert!(item.get(key).is_some(), "list items carry {key}: {item}");
    }
    assert_eq!(item["tickets"].as_array().map(Vec::len), Some(2));
    let ticket = app
        .tickets()
        .by_number(item["tickets"][0].as_str().expect("t"))
        .expect("read")
        .expect("there");
    assert_eq!(ticket.incident.as_deref(), Some(number.as_str()));
    app.settled(0).await;
    let notices = robot_about(&sim, &number).await;
    assert_eq!(notices.len(), 2, "opened and resolved: {notices:?}");
    app.assert_no_dead_letters();
}

/// The Alertmanager binary: Debian's `prometheus-alertmanager` (installed by `.ci/run`).
fn alertmanager_binary() -> String {
    for name in ["prometheus-alertmanager", "alertmanager"] {
        let found = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return name.to_owned();
        }
    }
    panic!(
        "a real Prometheus Alertmanager is required: apt-get install prometheus-alertmanager \
         (.ci/run installs it)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..240 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_opens_repeats_and_resolves_one_incident() {
    let binary = alertmanager_binary();
    let app = app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        r#"route:
  receiver: helpdesk
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: helpdesk
    webhook_configs:
      - url: {base}/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {HOOK_TOKEN}
"#,
        base = app.base
    );
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config).expect("write config");
    let mut am = tokio::process::Command::new(&binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start alertmanager");
    let am_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for("alertmanager to be ready", async || {
        let r = http.get(format!("{am_url}/-/ready")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    let starts = chrono::Utc::now().to_rfc3339();
    let alert = |instance: &str, ends: Option<String>| {
        let mut a = json!({
            "labels": {"alertname": "OrderLatency", "system": "trading", "severity": "warning", "instance": instance},
            "annotations": {"summary": "委托下单超时"},
            "generatorURL": "http://prometheus.test/graph",
            "startsAt": starts,
        });
        if let Some(e) = ends {
            a["endsAt"] = e.into();
        }
        a
    };
    let post_alerts = async |alerts: Value| {
        let r = http
            .post(format!("{am_url}/api/v2/alerts"))
            .json(&alerts)
            .send()
            .await
            .expect("post to alertmanager");
        assert!(r.status().is_success(), "alertmanager took the alerts");
    };
    post_alerts(json!([alert("gw-01", None), alert("gw-02", None)])).await;

    let number = wait_for("an incident from alertmanager", async || {
        let list = incidents(&app, "open").await;
        let i = list.first()?;
        (i["alerts"] == 2).then(|| i["number"].as_str().map(str::to_owned))?
    })
    .await;
    let timeline = incident(&app, &number).await["timeline"]
        .as_array()
        .map(Vec::len);
    // repeat_interval (2 s): the same alerts again change only their "last seen".
    wait_for("a repeat from alertmanager", async || {
        let i = incident(&app, &number).await;
        let repeated = i["alerts"]
            .as_array()?
            .iter()
            .all(|a| a["repeats"].as_u64() >= Some(1));
        repeated.then_some(())
    })
    .await;
    let i = incident(&app, &number).await;
    assert_eq!(
        i["timeline"].as_array().map(Vec::len),
        timeline,
        "a repeat adds nothing"
    );
    assert_eq!(i["status"], "open");

    let ended = chrono::Utc::now().to_rfc3339();
    post_alerts(json!([
        alert("gw-01", Some(ended.clone())),
        alert("gw-02", Some(ended))
    ]))
    .await;
    wait_for("the incident to resolve", async || {
        (incident(&app, &number).await["status"] == "resolved").then_some(())
    })
    .await;
    assert_eq!(
        incidents(&app, "all").await.len(),
        1,
        "one group, one incident"
    );
    app.settled(0).await;
    let notices = robot_about(&app.sim(), &number).await;
    assert_eq!(notices.len(), 2, "the handler group got: {notices:?}");
    assert!(notices[0].contains("新事件") && notices[1].contains("事件已恢复"));
    am.start_kill().expect("stop alertmanager");
    let _ = am.wait().await;
}
