//! Handler productivity over the API: merge (the duplicate's follow-ups land on the ticket
//! that carries on), link, bulk actions with mixed results, and history by reporter and by
//! customer.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::{ID_CARD, TestApp, file_ticket};

const API_TOKEN: &str = "productivity-test-api-token-01234";

async fn app() -> TestApp {
    TestApp::start_with(&[("HELPDESK__CONSOLE__API_TOKEN", API_TOKEN)]).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    super::common::api_call(app, API_TOKEN, reqwest::Method::POST, path, Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, v) =
        super::common::api_call(app, API_TOKEN, reqwest::Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {v}");
    v
}

fn numbers(v: &Value) -> Vec<String> {
    v["tickets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["number"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_link_bulk_and_history() {
    let app = app().await;
    let sim = app.sim();
    let dup = file_ticket(&sim, "app:zhangsan", "zhangsan", "客户委托下单后一直未成交").await;
    let keep = file_ticket(&sim, "app:lisi", "lisi", "委托下单一直不成交，客户很着急").await;
    let other = file_ticket(
        &sim,
        "app:zhangsan",
        "zhangsan",
        "客户想修改交易密码找不到入口",
    )
    .await;

    // Merge: refused into itself; then the duplicate closes and its reporter is told.
    let (s, v) = post(
        &app,
        &format!("/api/v1/tickets/{dup}/merge"),
        json!({"into": dup}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = post(
        &app,
        &format!("/api/v1/tickets/{dup}/merge"),
        json!({"into": keep}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"]["status"], "closed");
    assert_eq!(v["ticket"]["merged_into"], keep.as_str());
    sim.wait_text(
        "app:zhangsan",
        "zhangsan",
        0,
        &format!("后续由 {keep} 跟进"),
    )
    .await;
    // Merging into a closed (merged) ticket is refused.
    let (s, _) = post(
        &app,
        &format!("/api/v1/tickets/{other}/merge"),
        json!({"into": dup}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // The duplicate's reporter adds to it: it lands on the ticket that carries on.
    sim.say(
        "app:zhangsan",
        "zhangsan",
        &format!("补充 {dup} 客户说是上午十点的委托"),
        "补充说明",
    )
    .await;
    let t = app
        .tickets()
        .by_number(&keep)
        .expect("read")
        .expect("there");
    let events = app.tickets().events(t.id).expect("events");
    assert!(
        events.iter().any(|e| matches!(&e.kind, wecom_helpdesk::tickets::EventKind::AgentMessage { text, .. } if text.contains("上午十点"))),
        "the follow-up is on {keep}"
    );
    assert!(events.iter().any(|e| matches!(&e.kind, wecom_helpdesk::tickets::EventKind::MergedFrom { from } if *from == dup)));

    // Link both ways.
    let (s, v) = post(
        &app,
        &format!("/api/v1/tickets/{keep}/link"),
        json!({"ticket": other}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let a = get(&app, &format!("/api/v1/tickets/{keep}")).await;
    let b = get(&app, &format!("/api/v1/tickets/{other}")).await;
    assert_eq!(a["ticket"]["links"], json!([other]));
    assert_eq!(b["ticket"]["links"], json!([keep]));

    // Bulk with mixed results: the closed duplicate is refused, the others changed.
    let (s, v) = post(&app, "/api/v1/tickets/bulk", json!({
        "numbers": [keep, dup, other, "IT20000101-0001"], "action": "priority", "priority": "P1",
    })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["ok"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    let results = v["results"].as_array().expect("results");
    assert_eq!(results[1]["error"], "ticket_closed");
    assert_eq!(results[3]["error"], "not_found");
    assert_eq!(
        get(&app, &format!("/api/v1/tickets/{other}")).await["ticket"]["priority"],
        "P1"
    );
    let (s, v) = post(
        &app,
        "/api/v1/tickets/bulk",
        json!({"numbers": [keep], "action": "explode"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = post(&app, "/api/v1/tickets/bulk", json!({
        "numbers": [keep, other], "action": "status", "status": "need_info", "reason": "请补充截图",
    })).await;
    assert_eq!((s, v["ok"].as_u64()), (StatusCode::OK, Some(2)), "{v}");

    // History: by reporter, by customer (whole or masked as notices show it).
    let mine = numbers(&get(&app, "/api/v1/tickets?status=all&reporter=zhangsan").await);
    assert_eq!(mine.len(), 2);
    assert!(mine.contains(&dup) && mine.contains(&other));
    let same = numbers(
        &get(
            &app,
            &format!("/api/v1/tickets?status=all&customer={ID_CARD}"),
        )
        .await,
    );
    assert_eq!(
        same.len(),
        3,
        "one customer, three tickets across reporters"
    );
    let masked = "110105********002X";
    let same = numbers(
        &get(
            &app,
            &format!("/api/v1/tickets?status=all&customer={masked}"),
        )
        .await,
    );
    assert_eq!(same.len(), 3);
    let none = numbers(&get(&app, "/api/v1/tickets?status=all&customer=13800000000").await);
    assert!(none.is_empty());
}

/// A session's API caller: cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn session(app: &TestApp, login: &str, password: &str) -> Session {
    let cookie = super::common::console_session(app, login, password).await;
    let me: Value = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    Session {
        cookie,
        csrf: me["csrf"].as_str().expect("csrf").to_owned(),
    }
}

async fn send(
    app: &TestApp,
    s: &Session,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .json(&body)
        .send()
        .await
        .expect("api");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_macros_and_the_assignees_wecom_notices() {
    let app = app().await;
    let sim = app.sim();
    let h = session(&app, "handler", "handler-demo").await;
    let post = reqwest::Method::POST;
    // A template with an unknown variable is refused; a good one is kept.
    let (s, v) = send(
        &app,
        &h,
        post.clone(),
        "/api/v1/templates",
        json!({"name": "坏的", "body": "您好 {客户}"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("{客户}")));
    let (s, v) = send(&app, &h, post.clone(), "/api/v1/templates", json!({"name": "要截图", "body": "{报告人}您好，请补充工单 {工单号}（{系统}）的报错截图。— {处理人}"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let template = v["id"].as_u64().expect("id");
    // A handler may not add a shared one.
    let (s, _) = send(
        &app,
        &h,
        post.clone(),
        "/api/v1/templates",
        json!({"name": "共享", "body": "x", "shared": true}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = send(&app, &h, post.clone(), "/api/v1/macros", json!({
        "name": "请补充截图", "steps": {"template": template, "status": "need_info", "reason": "请补充截图", "assign_me": true},
    })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mac = v["id"].as_u64().expect("id");

    // The handler's WeCom account: wangwu in the simulator, notices on.
    let (s, v) = send(
        &app,
        &h,
        reqwest::Method::PUT,
        "/api/v1/me/prefs",
        json!({"wecom_userid": "wangwu", "notify": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let number = file_ticket(&sim, "app:lisi", "lisi", "委托撤单失败，提示系统繁忙").await;
    // The macro: reply with the template filled in, 待补充, assigned to the handler.
    let (s, v) = send(
        &app,
        &h,
        post.clone(),
        &format!("/api/v1/tickets/{number}/macro"),
        json!({"macro": mac.to_string()}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"]["status"], "need_info");
    assert_eq!(v["ticket"]["assignee"], "handler");
    sim.wait_text(
        "app:lisi",
        "lisi",
        0,
        &format!("请补充工单 {number}（交易）的报错截图。— handler"),
    )
    .await;

    // The agent follows up: the assignee hears of it in WeCom.
    sim.say("app:lisi", "lisi", "报错是“系统繁忙，请稍后再试”", "")
        .await;
    sim.wait_text(
        "app:wangwu",
        "wangwu",
        0,
        &format!("您负责的工单 {number} 收到报告人的补充信息"),
    )
    .await;
    // An @mention in a note reaches the colleague (the admin, mapped to zhaoliu).
    let a = session(&app, "admin", "admin-demo").await;
    let (s, _) = send(
        &app,
        &a,
        reqwest::Method::PUT,
        "/api/v1/me/prefs",
        json!({"wecom_userid": "zhaoliu", "notify": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = send(
        &app,
        &h,
        post.clone(),
        &format!("/api/v1/tickets/{number}/note"),
        json!({"text": "@admin 请帮忙看下网关日志"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    sim.wait_text("app:zhaoliu", "zhaoliu", 0, "提到了您").await;
    // Switched off: no more notices.
    let (s, _) = send(
        &app,
        &h,
        reqwest::Method::PUT,
        "/api/v1/me/prefs",
        json!({"wecom_userid": "wangwu", "notify": false}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let before = sim.messages("app:wangwu", 0).await.len();
    sim.say(
        "app:lisi",
        "lisi",
        "补充 再补充一句：上午十点开始的",
        "补充说明",
    )
    .await;
    app.settled(0).await;
    assert_eq!(sim.messages("app:wangwu", 0).await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_a_newer_one_asks_for_confirmation_and_viewers_see_each_other() {
    let app = app().await;
    let sim = app.sim();
    let number = file_ticket(&sim, "app:lisi", "lisi", "资金账户余额显示不对").await;
    let h = session(&app, "handler", "handler-demo").await;
    let a = session(&app, "admin", "admin-demo").await;
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("there");
    let seen = app
        .tickets()
        .events(t.id)
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .max()
        .expect("some");
    let post = reqwest::Method::POST;
    // Both open the ticket; the admin is typing.
    let (_, v) = send(
        &app,
        &h,
        post.clone(),
        &format!("/console/tickets/{number}/presence"),
        json!({"typing": false}),
    )
    .await;
    assert_eq!(v["others"], json!([]));
    let (_, v) = send(
        &app,
        &a,
        post.clone(),
        &format!("/console/tickets/{number}/presence"),
        json!({"typing": true}),
    )
    .await;
    assert_eq!(v["others"], json!([{"login": "handler", "typing": false}]));
    let (_, v) = send(
        &app,
        &h,
        post.clone(),
        &format!("/console/tickets/{number}/presence"),
        json!({"typing": false}),
    )
    .await;
    assert_eq!(v["others"], json!([{"login": "admin", "typing": true}]));
    // The admin replies first; the handler's reply from the older page is held back.
    let (s, _) = send(
        &app,
        &a,
        post.clone(),
        &format!("/api/v1/tickets/{number}/reply"),
        json!({"text": "我们正在核对"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = send(
        &app,
        &h,
        post.clone(),
        &format!("/api/v1/tickets/{number}/reply"),
        json!({"text": "请稍等", "seen": seen.to_string()}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("admin 回复了报告人")),
        "{v}"
    );
    let (s, _) = send(
        &app,
        &h,
        post.clone(),
        &format!("/api/v1/tickets/{number}/reply"),
        json!({"text": "请稍等", "seen": seen.to_string(), "confirm": "1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_attachment_reaches_the_agent_as_an_image() {
    let app = app().await;
    let sim = app.sim();
    let number = file_ticket(&sim, "app:lisi", "lisi", "App 登录后页面一直空白").await;
    let h = session(&app, "handler", "handler-demo").await;
    let page = |parts: reqwest::multipart::Form| {
        app.http
            .post(format!("{}/console/tickets/{number}/reply-files", app.base))
            .header("cookie", &h.cookie)
            .multipart(parts)
    };
    // A refused type and an oversized image: nothing sent.
    let exe = reqwest::multipart::Form::new()
        .text("_csrf", h.csrf.clone())
        .text("text", "请安装这个")
        .part(
            "files",
            reqwest::multipart::Part::bytes(b"MZ\x90\x00binary".to_vec()).file_name("tool.exe"),
        );
    let r = page(exe).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let mut big = super::common::png(1);
    big.resize(11 * 1024 * 1024, 0);
    let big = reqwest::multipart::Form::new()
        .text("_csrf", h.csrf.clone())
        .text("text", "太大了")
        .part(
            "files",
            reqwest::multipart::Part::bytes(big).file_name("big.png"),
        );
    let r = page(big).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("there");
    assert!(
        !app.tickets()
            .events(t.id)
            .expect("events")
            .iter()
            .any(|e| matches!(e.kind, wecom_helpdesk::tickets::EventKind::Reply { .. }))
    );

    // A screenshot and a PDF: the text, then the image and the file, in the agent's chat.
    let ok = reqwest::multipart::Form::new()
        .text("_csrf", h.csrf.clone())
        .text("text", "请按截图里的步骤清除缓存")
        .part(
            "files",
            reqwest::multipart::Part::bytes(super::common::png(3)).file_name("步骤.png"),
        )
        .part(
            "files",
            reqwest::multipart::Part::bytes(b"%PDF-1.4 guide".to_vec()).file_name("操作指引.pdf"),
        );
    let r = page(ok).send().await.expect("post");
    // Redirected back to the ticket page (followed by the client).
    assert!(
        r.url().path().ends_with(&number) && r.status() == StatusCode::OK,
        "{}",
        r.url()
    );
    let replies = sim
        .wait_replies("app:lisi", "lisi", 0, |m| {
            m.iter().any(|x| x["kind"] == "file")
        })
        .await;
    let image = replies
        .iter()
        .find(|m| m["kind"] == "image")
        .expect("the image");
    let url = image["images"][0].as_str().expect("an image url");
    let bytes = app
        .http
        .get(url)
        .send()
        .await
        .expect("view")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(
        bytes.as_ref(),
        super::common::png(3).as_slice(),
        "the same picture arrived"
    );
    let kinds: Vec<&str> = replies.iter().filter_map(|m| m["kind"].as_str()).collect();
    let text_at = replies
        .iter()
        .position(|m| m["text"].as_str().is_some_and(|t| t.contains("清除缓存")))
        .expect("text");
    let image_at = kinds.iter().position(|k| *k == "image").expect("image");
    assert!(text_at < image_at, "the text first: {kinds:?}");
    let events = app.tickets().events(t.id).expect("events");
    assert!(events.iter().any(|e| matches!(&e.kind, wecom_helpdesk::tickets::EventKind::Reply { attachments, .. } if attachments.len() == 2)));
    app.settled(0).await;
    app.assert_no_dead_letters();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_views_a_default_view_and_the_updated_marker() {
    let app = app().await;
    let sim = app.sim();
    let number = file_ticket(&sim, "app:lisi", "lisi", "理财产品到期资金未到账").await;
    let h = session(&app, "handler", "handler-demo").await;
    let (s, v) = send(
        &app,
        &h,
        reqwest::Method::POST,
        "/api/v1/views",
        json!({"name": "理财待处理", "query": "?status=new&system=理财"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let view = v["id"].as_u64().expect("id");
    // Shared views are for admins.
    let (s, _) = send(
        &app,
        &h,
        reqwest::Method::POST,
        "/api/v1/views",
        json!({"name": "共享", "query": "status=all", "shared": true}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = send(
        &app,
        &h,
        reqwest::Method::PUT,
        "/api/v1/me/prefs",
        json!({"default_view": view}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = |path: String| {
        plain
            .get(format!("{}{path}", app.base))
            .header("cookie", &h.cookie)
            .send()
    };
    // The queue opens with the default view.
    let r = page("/console/".into()).await.expect("queue");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/?status=new&system=理财");
    // Opened, then changed by someone else: 有更新 on its row; opened again: gone.
    let r = page(format!("/console/tickets/{number}"))
        .await
        .expect("ticket");
    assert_eq!(r.status(), StatusCode::OK);
    let row_of = |html: &str| {
        let at = html
            .find(&format!("data-number=\"{number}\""))
            .expect("the row");
        html[at..at + html[at..].find("</tr>").expect("row end")].to_owned()
    };
    let html = page("/console/?status=all".into())
        .await
        .expect("queue")
        .text()
        .await
        .expect("html");
    assert!(!row_of(&html).contains("有更新"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (s, _) = super::common::api_call(
        &app,
        API_TOKEN,
        reqwest::Method::POST,
        &format!("/api/v1/tickets/{number}/priority"),
        Some(json!({"priority": "P2"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let html = page("/console/?status=all".into())
        .await
        .expect("queue")
        .text()
        .await
        .expect("html");
    assert!(row_of(&html).contains("有更新"), "{}", row_of(&html));
    page(format!("/console/tickets/{number}"))
        .await
        .expect("ticket");
    let html = page("/console/?status=all".into())
        .await
        .expect("queue")
        .text()
        .await
        .expect("html");
    assert!(!row_of(&html).contains("有更新"));
}
