//! Reports over HTTP: the summary API and its refusals, the CSV export parsed back (BOM,
//! masking, the audited whole-identifier export for admins only), the board and reports
//! pages, and `/metrics`.

use reqwest::StatusCode;
use serde_json::Value;

use super::common::{ID_CARD, TestApp, console_session, file_ticket};

const API_TOKEN: &str = "reports-test-api-token-0123456789";

async fn app() -> TestApp {
    TestApp::start_with(&[("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN)]).await
}

async fn api(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.base))
        .header("authorization", format!("Bearer {API_TOKEN}"))
        .send()
        .await
        .expect("api")
}

fn today() -> String {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    chrono::Utc::now()
        .with_timezone(&offset)
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_the_day_and_refuses_bad_periods() {
    let app = app().await;
    let sim = app.sim();
    let number = file_ticket(&sim, "app:lisi", "lisi", "委托一直不成交，客户很着急").await;
    let day = today();
    let r = api(
        &app,
        &format!("/api/v1/reports/summary?from={day}&to={day}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let s: Value = r.json().await.expect("json");
    assert_eq!(s["filed"], 1);
    assert_eq!(s["by_category"]["uncategorised"], 1);
    assert_eq!(s["by_system"]["交易"], 1);
    for key in [
        "resolved",
        "resolution_rate",
        "timely_rate",
        "first_response",
        "resolution",
        "csat",
        "deflection",
        "incidents",
    ] {
        assert!(s.get(key).is_some(), "{key} in {s}");
    }
    assert_eq!(s["resolution_rate"], 0.0);
    assert!(
        s["timely_rate"].is_null(),
        "nothing resolved: no 及时率, not NaN"
    );
    for (query, says) in [
        ("from=2026-11-30&to=2026-11-01", "不能晚于"),
        ("from=2026-13-01&to=2026-12-01", "YYYY-MM-DD"),
        ("from=2024-01-01&to=2026-01-01", "最长"),
        ("from=2026-11-01", "from 和 to"),
    ] {
        let r = api(&app, &format!("/api/v1/reports/summary?{query}")).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let v: Value = r.json().await.expect("json");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(says)),
            "{query}: {v}"
        );
    }

    // The export: a BOM, the ticket, its identifier masked.
    let r = api(
        &app,
        &format!("/api/v1/reports/tickets.csv?from={day}&to={day}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/csv")
    );
    let bytes = r.bytes().await.expect("body");
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][0], number.as_str());
    assert!(!String::from_utf8_lossy(&bytes).contains(ID_CARD), "masked");
    // Whole identifiers: not for handlers (the API token is a handler's)…
    let r = api(
        &app,
        &format!("/api/v1/reports/tickets.csv?from={day}&to={day}&whole=1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.services().audit.entries(10).expect("audit").is_empty());
    // …for admins, and recorded.
    let admin = console_session(&app, "admin", "admin-demo").await;
    let r = app
        .http
        .get(format!(
            "{}/api/v1/reports/tickets.csv?from={day}&to={day}&whole=1",
            app.base
        ))
        .header("cookie", &admin)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(String::from_utf8_lossy(&r.bytes().await.expect("body")).contains(ID_CARD));
    let audit = app.services().audit.entries(10).expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].login, "admin");

    // The pages render for a handler, with SVG charts and drill-down links.
    let handler = console_session(&app, "handler", "handler-demo").await;
    let page = app
        .http
        .get(format!("{}/console/reports?from={day}&to={day}", app.base))
        .header("cookie", &handler)
        .send()
        .await
        .expect("reports");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.matches("<svg").count() >= 5, "five charts");
    assert!(
        html.contains(&format!("/console/?status=all&#38;from={day}&#38;to={day}")),
        "drill-down links"
    );
    let board = app
        .http
        .get(format!("{}/console/board", app.base))
        .header("cookie", &handler)
        .send()
        .await
        .expect("board");
    let html = board.text().await.expect("html");
    assert!(
        html.contains("id=\"tile-filed-today\">1<"),
        "today's filed ticket on the board"
    );
    let bad = app
        .http
        .get(format!(
            "{}/console/reports?from=2026-12-01&to=2026-11-01",
            app.base
        ))
        .header("cookie", &handler)
        .send()
        .await
        .expect("reports");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_guarded() {
    let app = app().await;
    let sim = app.sim();
    sim.say("app:zhangsan", "zhangsan", "帮助", "事件助手")
        .await;
    let r = app.get("/metrics").await; // in-process: loopback
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("text");
    for name in [
        "helpdesk_tickets{status=\"new\"}",
        "helpdesk_incidents_open",
        "helpdesk_inbox_pending",
        "helpdesk_outbox_pending",
        "helpdesk_outbox_dead",
        "helpdesk_callbacks_total{result=\"accepted\"}",
        "helpdesk_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} in:\n{text}");
    }
    // Not loopback-only and no token: refused.
    let strict =
        TestApp::start_with(&[("HELPDESK__REPORTS__METRICS_LOOPBACK_ONLY", "false")]).await;
    assert_eq!(
        strict.get("/metrics").await.status(),
        StatusCode::UNAUTHORIZED
    );
}
