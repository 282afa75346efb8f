//! The gateway end to end over real HTTP: callbacks in through the simulator (or crafted by
//! hand for bad input), replies out through the simulator's server API.

use serde_json::{Value, json};
use wecom_helpdesk::wecom::{self, MsgCrypt};

use super::common::{PNG, TestApp, app_callback, app_crypt, bot_crypt, text_msg};

async fn post(app: &TestApp, surface: &str, query: &str, body: String) -> (u16, String) {
    let r = app
        .http
        .post(format!("{}/wecom/{surface}/callback?{query}", app.base))
        .body(body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

fn sends_to(calls: &[Value], user: &str) -> usize {
    calls
        .iter()
        .filter(|c| {
            c["endpoint"] == "message/send" && c["errcode"] == 0 && c["body"]["touser"] == user
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_chat_gets_a_help_reply_end_to_end() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let sent = sim.send("app:zhangsan", "zhangsan", "帮助").await;
    assert_eq!(sent["attempts"], 1);
    let replies = sim
        .wait_text("app:zhangsan", "zhangsan", 0, "事件助手")
        .await;
    assert_eq!(replies[0]["from"], "app");
    assert!(replies[0]["text"].as_str().expect("text").contains("提单"));
    let calls = sim.calls().await;
    assert!(
        calls
            .iter()
            .any(|c| c["endpoint"] == "gettoken" && c["errcode"] == 0)
    );
    assert_eq!(sends_to(&calls, "zhangsan"), 1);
    let send = calls
        .iter()
        .find(|c| c["endpoint"] == "message/send")
        .expect("send");
    assert_eq!(send["body"]["agentid"], app.cfg.wecom.agent_id);
    assert_eq!(send["body"]["msgtype"], "text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_group_and_single_chats_get_help_replies() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let group = format!("group:{}", wecom_helpdesk::sim::GROUP_CHAT_ID);
    sim.send(&group, "lisi", "帮助").await;
    let replies = sim.wait_text(&group, "lisi", 0, "事件助手").await;
    assert_eq!(replies[0]["from"], "bot");
    assert!(
        replies[0]["text"]
            .as_str()
            .expect("text")
            .starts_with("<@lisi>"),
        "group replies @ the member: {}",
        replies[0]["text"]
    );
    sim.send("bot:wangwu", "wangwu", "帮助").await;
    let replies = sim.wait_text("bot:wangwu", "wangwu", 0, "事件助手").await;
    assert!(!replies[0]["text"].as_str().expect("text").starts_with("<@"));
    let calls = sim.calls().await;
    assert_eq!(
        calls
            .iter()
            .filter(|c| c["endpoint"] == "aibot/response" && c["errcode"] == 0)
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_chat_gets_a_passive_welcome_and_url_verification_works() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let r: Value = sim
        .post(
            "/api/event",
            json!({ "chat": "bot:zhaoliu", "from": "zhaoliu", "event": "enter_chat" }),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["ok"], true);
    // The welcome came back in the callback's own answer (encrypted passive reply).
    let replies = sim.wait_text("bot:zhaoliu", "zhaoliu", 0, "事件助手").await;
    assert_eq!(replies.len(), 1);
    for surface in ["app", "bot"] {
        let v: Value = sim
            .post("/api/verify", json!({ "surface": surface }))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(v["verified"], true, "{surface}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_callbacks_are_processed_once() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let msg = text_msg("zhaoliu", 880_001, "帮助");
    let (q, body) = app_callback(&app, &msg, wecom_helpdesk::util::unix_now());
    // WeCom's three attempts, and a replay on top.
    for _ in 0..4 {
        let (status, text) = post(&app, "app", &q, body.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(text, "", "acknowledged with an empty body");
    }
    sim.wait_text("app:zhaoliu", "zhaoliu", 0, "事件助手").await;
    app.settled(0).await;
    assert_eq!(sends_to(&sim.calls().await, "zhaoliu"), 1);
    assert_eq!(sim.replies("app:zhaoliu", "zhaoliu", 0).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let now = wecom_helpdesk::util::unix_now();
    let user = "wangwu";

    // Forged signature.
    let (q, body) = app_callback(&app, &text_msg(user, 1, "帮助"), now);
    let forged = q.replacen("msg_signature=", "msg_signature=0", 1);
    assert_eq!(post(&app, "app", &forged, body.clone()).await.0, 403);
    // Missing parameters.
    assert_eq!(post(&app, "app", "timestamp=1", body.clone()).await.0, 400);
    // Outside the timestamp window (signed correctly, but ten minutes old).
    let (q, body) = app_callback(&app, &text_msg(user, 2, "帮助"), now - 600);
    assert_eq!(post(&app, "app", &q, body).await.0, 403);
    // Oversized body.
    let (q, _) = app_callback(&app, &text_msg(user, 3, "帮助"), now);
    let huge = format!(
        "<xml><Encrypt>{}</Encrypt></xml>",
        "A".repeat(2 * 1024 * 1024)
    );
    // The gateway answers 413 as soon as the body passes the limit, without reading the rest,
    // and the connection closes: a client still sending may see the reset instead of the
    // answer. Either way the body is refused (and the checks below find nothing stored).
    // (Its own client: the closed connection must not be reused by the requests after it.)
    match reqwest::Client::new()
        .post(format!("{}/wecom/app/callback?{q}", app.base))
        .body(huge)
        .send()
        .await
    {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "refused: {e}"),
    }
    // Malformed XML envelope, and an envelope with a DTD.
    assert_eq!(post(&app, "app", &q, "<xml><Encrypt>".into()).await.0, 400);
    let dtd =
        r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><xml><Encrypt>&e;</Encrypt></xml>"#;
    assert_eq!(post(&app, "app", &q, dtd.into()).await.0, 400);
    // Malformed plaintext inside a valid envelope.
    let c = app_crypt(&app);
    let enc = c.encrypt("<xml><MsgType>text</MsgType>");
    let ts = now.to_string();
    let sig = c.sign(&ts, "1", &enc);
    let env = wecom::app::envelope(&app.cfg.wecom.corp_id, 1000002, &enc);
    assert_eq!(
        post(
            &app,
            "app",
            &format!("msg_signature={sig}&timestamp={ts}&nonce=1"),
            env
        )
        .await
        .0,
        400
    );
    // Wrong receive_id: encrypted for another corp with our token and key.
    let w = &app.cfg.wecom;
    let other = MsgCrypt::new(
        w.app.token.expose(),
        w.app.encoding_aes_key.expose(),
        "wwOtherCorp",
    )
    .expect("key");
    let plain = wecom::app::message_xml(&w.corp_id, w.agent_id, &text_msg(user, 4, "帮助"));
    let enc = other.encrypt(&plain);
    let sig = other.sign(&ts, "1", &enc);
    let env = wecom::app::envelope(&w.corp_id, w.agent_id, &enc);
    assert_eq!(
        post(
            &app,
            "app",
            &format!("msg_signature={sig}&timestamp={ts}&nonce=1"),
            env
        )
        .await
        .0,
        403
    );
    // Unknown message type: acknowledged (so WeCom stops retrying) and ignored.
    let plain = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[hologram]]></MsgType><MsgId>5</MsgId><AgentID>1000002</AgentID></xml>",
        w.corp_id
    );
    let enc = c.encrypt(&plain);
    let sig = c.sign(&ts, "1", &enc);
    let env = wecom::app::envelope(&w.corp_id, w.agent_id, &enc);
    assert_eq!(
        post(
            &app,
            "app",
            &format!("msg_signature={sig}&timestamp={ts}&nonce=1"),
            env
        )
        .await,
        (200, String::new())
    );
    // AI bot: malformed JSON, and a bot payload signed with the app's token.
    let (q, _) = app_callback(&app, &text_msg(user, 6, "帮助"), now);
    assert_eq!(post(&app, "bot", &q, "{not json".into()).await.0, 400);
    let b = bot_crypt(&app);
    let enc = b.encrypt("{\"msgid\":\"x\"}");
    let sig = c.sign(&ts, "1", &enc);
    assert_eq!(
        post(
            &app,
            "bot",
            &format!("msg_signature={sig}&timestamp={ts}&nonce=1"),
            json!({ "encrypt": enc }).to_string()
        )
        .await
        .0,
        403
    );
    // GET verification with a forged signature.
    let r = app
        .http
        .get(format!(
            "{}/wecom/app/callback?msg_signature=00&timestamp={ts}&nonce=1&echostr=abc",
            app.base
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403);

    // Nothing was stored: a good message now gets exactly one reply, and no other sends.
    sim.send(&format!("app:{user}"), user, "帮助").await;
    sim.wait_text(&format!("app:{user}"), user, 0, "事件助手")
        .await;
    app.settled(0).await;
    assert_eq!(sends_to(&sim.calls().await, user), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_and_busy_answers_are_retried() {
    let app = TestApp::start().await;
    let sim = app.sim();
    sim.send("app:zhangsan", "zhangsan", "帮助").await;
    sim.wait_text("app:zhangsan", "zhangsan", 0, "事件助手")
        .await;

    // Expired token: 42001, refresh once, send.
    sim.post("/api/expire_tokens", json!({})).await;
    let seq = sim.last_seq().await;
    sim.send("app:zhangsan", "zhangsan", "帮助").await;
    sim.wait_text("app:zhangsan", "zhangsan", seq, "事件助手")
        .await;
    let calls = sim.calls().await;
    let codes: Vec<i64> = calls
        .iter()
        .filter(|c| c["endpoint"] == "message/send" || c["endpoint"] == "gettoken")
        .map(|c| c["errcode"].as_i64().expect("code"))
        .collect();
    assert!(
        codes.windows(3).any(|w| w == [42001, 0, 0]),
        "42001 → gettoken → send: {codes:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| c["endpoint"] == "gettoken").count(),
        2
    );

    // Busy and rate-limited answers: backed off and retried until delivered.
    sim.post(
        "/api/faults",
        json!({ "endpoint": "message/send", "codes": [-1, 45009, -1] }),
    )
    .await;
    let seq = sim.last_seq().await;
    sim.send("app:lisi", "lisi", "帮助").await;
    sim.wait_text("app:lisi", "lisi", seq, "事件助手").await;
    let calls = sim.calls().await;
    let lisi: Vec<i64> = calls
        .iter()
        .filter(|c| c["endpoint"] == "message/send" && c["body"]["touser"] == "lisi")
        .map(|c| c["errcode"].as_i64().expect("code"))
        .collect();
    assert_eq!(lisi, [-1, 45009, -1, 0]);
    // An unknown token (40014) is refreshed too.
    sim.post(
        "/api/faults",
        json!({ "endpoint": "message/send", "codes": [40014] }),
    )
    .await;
    let seq = sim.last_seq().await;
    sim.send("app:wangwu", "wangwu", "帮助").await;
    sim.wait_text("app:wangwu", "wangwu", seq, "事件助手").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_rate_limit_queues_instead_of_dropping() {
    // With a budget of 5 per minute, 8 replies to one member: 5 go out, 3 wait for the
    // window (none is sent into WeCom's silent drop).
    let app = TestApp::start_with(&[("HELPDESK__OUTBOX__MEMBER_PER_MINUTE", "5")]).await;
    let sim = app.sim();
    for i in 0..8 {
        sim.send("app:zhaoliu", "zhaoliu", &format!("帮助 {i}"))
            .await;
    }
    sim.wait_replies("app:zhaoliu", "zhaoliu", 0, |r| r.len() >= 5)
        .await;
    // Settled with the three over budget still queued for the next window.
    app.settled(3).await;
    assert_eq!(app.services().outbox.pending().expect("outbox").len(), 3);
    let replies = sim.replies("app:zhaoliu", "zhaoliu", 0).await;
    assert_eq!(replies.len(), 5, "the sixth waits for the window");
    assert!(replies.iter().all(|m| m["dropped"] == false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_events_arrive_through_both_surfaces() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let out = sim.send_full("app:lisi", "lisi", None, &[PNG]).await;
    assert_eq!(out["ok"], true);
    let out = sim.send_full("bot:lisi", "lisi", None, &[PNG]).await;
    assert_eq!(out["ok"], true);
    let group = format!("group:{}", wecom_helpdesk::sim::GROUP_CHAT_ID);
    let out = sim.send_full(&group, "lisi", Some("截图"), &[PNG]).await;
    assert_eq!(out["ok"], true);
    // A group cannot carry a standalone image to the bot (WeCom delivers images there only
    // in mixed messages with the @-mention).
    let r = sim
        .post(
            "/api/send",
            json!({ "chat": group, "from": "lisi", "images": [base64_png()] }),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r: Value = sim
        .post(
            "/api/event",
            json!({ "chat": "app:lisi", "from": "lisi", "event": "enter_agent" }),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["ok"], true);
    sim.wait_replies("app:lisi", "lisi", 0, |r| r.len() >= 2)
        .await;
}

fn base64_png() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(PNG)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_restart_resume_unprocessed() {
    let app = TestApp::start().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let dir = app.stop().await;
    // Reopen the same data directory in-process: the store closes cleanly and reopens.
    let app = TestApp::start_in(dir, &[]).await;
    app.sim().send("app:zhangsan", "zhangsan", "帮助").await;
    app.sim()
        .wait_text("app:zhangsan", "zhangsan", 0, "事件助手")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_posing_as_a_screenshot_is_never_served_as_a_page() {
    let app = TestApp::start().await;
    let sim = app.sim();
    // Through the chat page's upload form, declaring the file as a web page.
    let html = "<html><script>fetch('/console/admin/users',{method:'POST'})</script></html>";
    let b = "XBOUNDARYX";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"chat\"\r\n\r\napp:lisi\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\nlisi\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\
         Content-Type: text/html\r\n\r\n{html}\r\n--{b}--\r\n"
    );
    let r = app
        .http
        .post(format!("{}/sim/api/upload", app.base))
        .header("content-type", format!("multipart/form-data; boundary={b}"))
        .body(body)
        .send()
        .await
        .expect("upload");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let mine = sim.messages("app:lisi", 0).await;
    let url = mine
        .iter()
        .find_map(|m| m["images"][0].as_str())
        .expect("the upload is shown in the chat")
        .to_owned();
    let url = if url.starts_with("http") {
        url
    } else {
        format!("{}{url}", app.base)
    };
    let r = app.http.get(&url).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "application/octet-stream");
    assert_eq!(header("content-disposition"), "attachment");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-security-policy").contains("sandbox"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_response_url_falls_back_to_the_app_at_once() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let mut msg = text_msg("wangwu", 990_001, "帮助");
    msg.channel = wecom_helpdesk::wecom::Channel::Bot;
    msg.msg_id = "aibot-unreachable-1".into();
    // Nothing listens on port 1: the connection is refused.
    msg.response_url = Some("http://127.0.0.1:1/cgi-bin/aibot/response?key=gone".into());
    let crypt = super::common::bot_crypt(&app);
    let plain = wecom_helpdesk::wecom::bot::message_json("aibot", "事件助手", &msg);
    let enc = crypt.encrypt(&plain);
    let ts = wecom_helpdesk::util::unix_now().to_string();
    let sig = crypt.sign(&ts, "777", &enc);
    let q = format!("msg_signature={sig}&timestamp={ts}&nonce=777");
    let body = serde_json::json!({ "encrypt": enc }).to_string();
    let (status, _) = post(&app, "bot", &q, body).await;
    assert_eq!(status, 200);
    // The reply arrives through message/send, in the member's app chat.
    sim.wait_text("app:wangwu", "wangwu", 0, "事件助手").await;
    app.settled(0).await;
    app.assert_no_dead_letters();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wecom_outage_delays_replies_in_order_and_loses_none() {
    // Twelve failures in a row (well past the eight attempts that used to dead-letter) on
    // a fast clock: the head is retried, the lane held, and all three replies arrive in
    // order once WeCom answers again.
    let app = TestApp::start_with(&[("HELPDESK__OUTBOX__BACKOFF_MAX_SECS", "1")]).await;
    let sim = app.sim();
    let codes: Vec<i64> = (0..12)
        .map(|i| if i % 2 == 0 { -1 } else { 45009 })
        .collect();
    sim.post(
        "/api/faults",
        json!({ "endpoint": "message/send", "codes": codes }),
    )
    .await;
    for text in ["帮助", "进度", "取消"] {
        sim.send("app:zhaoliu", "zhaoliu", text).await;
    }
    // The backoff reaches its 1 s cap: about 10 s of outage.
    for _ in 0..120 {
        if sim.replies("app:zhaoliu", "zhaoliu", 0).await.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    app.settled(0).await;
    let texts = super::common::texts(&sim.replies("app:zhaoliu", "zhaoliu", 0).await);
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[0].contains("事件助手"), "{texts:?}");
    assert!(texts[1].contains("工单"), "{texts:?}");
    assert!(texts[2].contains("没有进行中的提单"), "{texts:?}");
    app.assert_no_dead_letters();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_user_lookup_delays_no_answer() {
    // WeCom's user/get stops answering. Names are cosmetic: every member is answered at once
    // (the lookups time out on their own, off the ordered path).
    let app = TestApp::start().await;
    let sim = app.sim();
    sim.post(
        "/api/faults",
        json!({ "endpoint": "user/get", "hang_ms": 60_000 }),
    )
    .await;
    for member in ["zhangsan", "lisi", "wangwu", "zhaoliu"] {
        sim.send(&format!("app:{member}"), member, "帮助").await;
    }
    for member in ["zhangsan", "lisi", "wangwu", "zhaoliu"] {
        sim.wait_text(&format!("app:{member}"), member, 0, "事件助手")
            .await;
    }
    // (In the ordered path, each lookup would hold the queue for the client's 10 s timeout,
    // longer than `wait_text` waits.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_repeated_on_purpose_arrives_even_when_retried() {
    // The same answer twice in a row; the second's first attempt fails, and its re-attempt
    // must not be swallowed by WeCom's duplicate check as a copy of the first.
    let app = TestApp::start().await;
    let sim = app.sim();
    sim.say("app:lisi", "lisi", "取消", "没有进行中的提单")
        .await;
    sim.post(
        "/api/faults",
        json!({ "endpoint": "message/send", "codes": [-1] }),
    )
    .await;
    sim.send("app:lisi", "lisi", "取消").await;
    app.settled(0).await;
    let texts = super::common::texts(&sim.replies("app:lisi", "lisi", 0).await);
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("没有进行中的提单"))
            .count(),
        2,
        "{texts:?}"
    );
}
