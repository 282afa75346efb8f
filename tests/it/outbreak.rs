//! Outbreaks end to end through the simulator: agents reporting one fault become one
//! incident, a late reporter is told at once, updates and the resolution reach every
//! reporter in their own chat, children resolve with rating cards, a member can say it is
//! another problem, and a restart in the middle of a fan-out tells nobody twice.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::{SimClient, TestApp, file_ticket, texts};

const API_TOKEN: &str = "outbreak-test-api-token-0123456789";

async fn api(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    super::common::api_call(app, API_TOKEN, reqwest::Method::POST, path, Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, v) =
        super::common::api_call(app, API_TOKEN, reqwest::Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {v}");
    v
}

const REPORTS: [(&str, &str); 3] = [
    ("zhangsan", "股票交易不了，委托一直失败"),
    ("lisi", "客户委托下单失败，交易不了"),
    ("wangwu", "交易委托失败，下单不了"),
];

/// Messages in `member`'s app chat that contain `needle`.
async fn told(sim: &SimClient, member: &str, needle: &str) -> usize {
    texts(&sim.replies(&format!("app:{member}"), member, 0).await)
        .iter()
        .filter(|t| t.contains(needle))
        .count()
}

/// Three agents report the fault; returns the incident number and their tickets.
async fn outbreak(app: &TestApp) -> (String, Vec<String>) {
    let sim = app.sim();
    let mut tickets = Vec::new();
    for (member, text) in REPORTS {
        tickets.push(file_ticket(&sim, &format!("app:{member}"), member, text).await);
    }
    // The third report made the incident: its reply says so at once.
    let last = texts(&sim.replies("app:wangwu", "wangwu", 0).await);
    let reply = last
        .iter()
        .find(|t| t.contains("工单已提交"))
        .expect("the filing reply");
    assert!(
        reply.contains("这是已知问题，处理组正在处理，恢复后会第一时间通知您"),
        "{reply}"
    );
    let number = regex::Regex::new(r"INC\d{8}-\d{3}")
        .expect("regex")
        .find(reply)
        .expect("an incident number")
        .as_str()
        .to_owned();
    (number, tickets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_one_fault_become_one_incident_and_everyone_hears_of_it() {
    let app = TestApp::start_with(&[("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN)]).await;
    let sim = app.sim();
    let (number, tickets) = outbreak(&app).await;
    let i = get(&app, &format!("/api/v1/incidents/{number}")).await["incident"].clone();
    assert_eq!(i["sources"], json!(["outbreak"]));
    assert_eq!(i["system"], "交易");
    let linked: Vec<&str> = i["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(linked.len(), 3);
    for t in &tickets {
        assert!(linked.contains(&t.as_str()), "{t} linked");
    }
    // The earlier reporters were told by a notice of their own.
    for member in ["zhangsan", "lisi"] {
        sim.wait_text(&format!("app:{member}"), member, 0, &number)
            .await;
    }

    // A late reporter gets the known-issue reply at once, and the ticket is linked.
    let late = file_ticket(&sim, "app:zhaoliu", "zhaoliu", "交易不了，委托下单一直失败").await;
    assert!(told(&sim, "zhaoliu", "这是已知问题").await == 1);
    let t = app
        .tickets()
        .by_number(&late)
        .expect("read")
        .expect("there");
    assert_eq!(t.incident.as_deref(), Some(number.as_str()));

    // A handler update reaches all four, each once, in their own chat.
    let update = "已定位到交易网关故障，正在切换备用线路";
    let (s, v) = api(
        &app,
        &format!("/api/v1/incidents/{number}/update"),
        json!({"text": update}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for member in ["zhangsan", "lisi", "wangwu", "zhaoliu"] {
        sim.wait_text(&format!("app:{member}"), member, 0, update)
            .await;
    }
    app.settled(0).await;
    for member in ["zhangsan", "lisi", "wangwu", "zhaoliu"] {
        assert_eq!(told(&sim, member, update).await, 1, "{member} once");
    }
    let detail = get(&app, &format!("/api/v1/incidents/{number}")).await;
    let fanout = &detail["incident"]["fanout"][0];
    assert_eq!(
        (fanout["total"].as_u64(), fanout["sent"].as_u64()),
        (Some(4), Some(4)),
        "{fanout}"
    );

    // The late reporter says it is another problem: detached, the ticket goes on alone.
    sim.say("app:zhaoliu", "zhaoliu", "不是同一问题", "取消关联")
        .await;
    let t = app
        .tickets()
        .by_number(&late)
        .expect("read")
        .expect("there");
    assert_eq!(t.incident, None);

    // Resolving closes the children with the note and a rating card each.
    let (s, v) = api(
        &app,
        &format!("/api/v1/incidents/{number}/resolve"),
        json!({"text": "交易网关已切换，交易恢复"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.settled(0).await;
    for (t, (member, _)) in tickets.iter().zip(REPORTS) {
        let ticket = app.tickets().by_number(t).expect("read").expect("there");
        assert_eq!(
            ticket.status,
            wecom_helpdesk::tickets::Status::Resolved,
            "{t}"
        );
        let chat = sim.replies(&format!("app:{member}"), member, 0).await;
        assert_eq!(
            chat.iter().filter(|m| m["kind"] == "template_card").count(),
            1,
            "{member} got the rating card"
        );
        assert_eq!(
            told(&sim, member, "交易网关已切换，交易恢复").await,
            1,
            "{member}"
        );
    }
    let t = app
        .tickets()
        .by_number(&late)
        .expect("read")
        .expect("there");
    assert!(
        t.status.is_open(),
        "the detached ticket stays for a handler"
    );
    assert_eq!(told(&sim, "zhaoliu", "交易网关已切换，交易恢复").await, 0);
    app.assert_no_dead_letters();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_fan_out_tells_nobody_twice() {
    let app = TestApp::start_with(&[("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN)]).await;
    let (number, _) = outbreak(&app).await;
    app.settled(0).await;
    // WeCom refuses app messages for a while: the update stays queued.
    app.sim()
        .post(
            "/api/faults",
            json!({ "endpoint": "message/send", "codes": vec![-1; 400] }),
        )
        .await;
    let update = "正在切换备用线路，请稍候";
    let (s, _) = api(
        &app,
        &format!("/api/v1/incidents/{number}/update"),
        json!({"text": update}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let dir = app.stop().await;

    let app = TestApp::start_in(dir, &[("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN)]).await;
    let sim = app.sim();
    for (member, _) in REPORTS {
        sim.wait_text(&format!("app:{member}"), member, 0, update)
            .await;
    }
    app.settled(0).await;
    for (member, _) in REPORTS {
        assert_eq!(
            told(&sim, member, update).await,
            1,
            "{member}: once, nobody skipped"
        );
    }
    app.assert_no_dead_letters();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_the_faq_cannot_answer_joins_a_known_incident() {
    let app = TestApp::start_with(&[("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN)]).await;
    let sim = app.sim();
    let (number, _) = outbreak(&app).await;
    let reply = sim
        .say(
            "app:zhaoliu",
            "zhaoliu",
            "委托下单一直失败，交易不了怎么回事",
            "已知问题",
        )
        .await;
    assert!(reply.iter().any(|t| t.contains(&number)), "{reply:?}");
    let i = get(&app, &format!("/api/v1/incidents/{number}")).await;
    assert_eq!(i["incident"]["subscribers"], 1);
    // The asker hears the update too, and can leave.
    let (s, _) = api(
        &app,
        &format!("/api/v1/incidents/{number}/update"),
        json!({"text": "预计十分钟内恢复"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    sim.wait_text("app:zhaoliu", "zhaoliu", 0, "预计十分钟内恢复")
        .await;
    sim.say("app:zhaoliu", "zhaoliu", "不是同一个问题", "不会再收到")
        .await;
    let i = get(&app, &format!("/api/v1/incidents/{number}")).await;
    assert_eq!(i["incident"]["subscribers"], 0);
}
