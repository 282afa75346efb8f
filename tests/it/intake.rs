//! Guided intake end to end: conversations over real HTTP through the simulator, for the app
//! (one-to-one) and the AI bot (group), and what follows a filed ticket.

use std::time::Duration;

use serde_json::{Value, json};
use wecom_helpdesk::sim::GROUP_CHAT_ID;
use wecom_helpdesk::tickets::{Category, Status};

use super::common::{
    ID_CARD, SimClient, TestApp, app_callback, file_ticket, number_in, png, text_msg,
};

fn group() -> String {
    format!("group:{GROUP_CHAT_ID}")
}

/// No request to WeCom ever carried the whole identifier.
async fn assert_never_sent_whole(sim: &SimClient, secret: &str) {
    for c in sim.calls().await {
        assert!(
            !c["body"].to_string().contains(secret),
            "{} carried the whole number: {}",
            c["endpoint"],
            c["body"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_happy_path_files_a_ticket_and_notifies() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:zhangsan";
    let r = sim.say(chat, "zhangsan", "提单", "第1步").await;
    assert!(r[0].contains("提交一个问题工单"), "intro first: {r:?}");
    sim.say(chat, "zhangsan", ID_CARD, "第2步").await;
    let r = sim.say(chat, "zhangsan", "交易", "第3步").await;
    assert!(!r.iter().any(|t| t.contains("没有对应")), "{r:?}");
    sim.say(
        chat,
        "zhangsan",
        "今天上午10点买入股票时提示资金不足，但账户里有余额",
        "第4步",
    )
    .await;
    sim.say_full(chat, "zhangsan", None, &[&png(1)], "已收到第 1 张")
        .await;
    sim.say_full(chat, "zhangsan", None, &[&png(2)], "已收到第 2 张")
        .await;
    let summary = sim.say(chat, "zhangsan", "完成", "请核对").await.join("\n");
    assert!(
        summary.contains("110105＊＊＊＊＊＊＊＊002X"),
        "masked in the summary: {summary}"
    );
    assert!(
        summary.contains("截图：2 张") && summary.contains("所属系统：交易"),
        "{summary}"
    );
    let filed = sim.say(chat, "zhangsan", "提交", "工单已提交").await;
    let number = number_in(&filed);
    assert!(filed.join("\n").contains("110105＊＊＊＊＊＊＊＊002X"));

    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket exists");
    assert_eq!(
        t.customer_id.value, ID_CARD,
        "the whole number is on the ticket"
    );
    assert_eq!(t.system, "交易");
    assert_eq!(t.status, Status::New);
    assert_eq!(t.reporter, "zhangsan");
    assert_eq!(t.reporter_name, "张三", "name from user/get");
    assert_eq!(t.screenshots.len(), 2);
    for h in &t.screenshots {
        assert!(
            app.services().store.media().contains(h),
            "screenshot stored"
        );
    }
    assert_eq!(app.tickets().events(t.id).expect("events").len(), 1);

    // The handler group heard of it, masked, with a link to the console.
    let notice = sim.wait_text("robot", "-", 0, &number).await;
    let text = notice[0]["text"].as_str().expect("text");
    assert!(
        text.contains("110105＊＊＊＊＊＊＊＊002X") && text.contains("张三"),
        "{text}"
    );
    assert!(
        text.contains(&format!("/console/tickets/{number}")),
        "{text}"
    );
    assert_never_sent_whole(&sim, ID_CARD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_happy_path_with_a_mixed_screenshot() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let g = group();
    let r = sim.say(&g, "lisi", "报障", "第1步").await;
    assert!(
        r[0].starts_with("<@lisi>"),
        "group replies @ the member: {r:?}"
    );
    sim.say(&g, "lisi", "13812345678", "第2步").await;
    sim.say(&g, "lisi", "三方存管", "第3步").await;
    let r = sim
        .say(
            &g,
            "lisi",
            "昨天下午银证转账转出失败，提示银行系统繁忙",
            "第4步",
        )
        .await;
    assert!(
        r.join("").contains("@我"),
        "the group prompt explains mixed messages: {r:?}"
    );
    sim.say_full(&g, "lisi", Some("截图"), &[&png(7)], "已收到第 1 张")
        .await;
    let summary = sim.say(&g, "lisi", "完成", "请核对").await.join("\n");
    assert!(
        summary.contains("138＊＊＊＊5678") && !summary.contains("13812345678"),
        "{summary}"
    );
    let number = number_in(&sim.say(&g, "lisi", "提交", "工单已提交").await);
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket");
    assert_eq!(t.chat_type, wecom_helpdesk::wecom::ChatType::Group);
    assert_eq!(t.chat_id, GROUP_CHAT_ID);
    assert_eq!(t.system, "三方存管");
    assert_eq!(t.customer_id.value, "13812345678");
    assert_never_sent_whole(&sim, "13812345678").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_for_a_group_dialog_can_come_through_the_app() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let g = group();
    sim.say(&g, "wangwu", "提单", "第1步").await;
    sim.say(&g, "wangwu", "880012345678", "第2步").await;
    sim.say(&g, "wangwu", "5", "第3步").await;
    sim.say(
        &g,
        "wangwu",
        "客户App登录时一直提示验证码错误，已重装",
        "第4步",
    )
    .await;
    // The member switches to the app chat and sends the picture there.
    let r = sim
        .say_full("app:wangwu", "wangwu", None, &[&png(3)], "已收到第 1 张")
        .await;
    assert!(r[0].contains("群聊"), "{r:?}");
    sim.say("app:wangwu", "wangwu", "完成", "请核对").await;
    // …and finishes in the group.
    let number = number_in(&sim.say(&g, "wangwu", "提交", "工单已提交").await);
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket");
    assert_eq!(t.screenshots.len(), 1);
    assert_eq!(t.system, "App/登录");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_identifiers_are_explained_then_accepted() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:zhaoliu";
    sim.say(chat, "zhaoliu", "上报", "第1步").await;
    let r = sim
        .say(chat, "zhaoliu", "110105194912310021", "还可以再试")
        .await;
    assert!(r[0].contains("校验"), "{r:?}");
    let r = sim.say(chat, "zhaoliu", "1381234", "还可以再试").await;
    assert!(r[0].contains("位数"), "{r:?}");
    let r = sim.say(chat, "zhaoliu", "12812345678x", "还可以再试").await;
    assert!(r[0].contains("例如"), "{r:?}");
    sim.say(chat, "zhaoliu", "１３８ １２３４ ５６７８", "第2步")
        .await;
    // Choices: an unknown option is explained with the list.
    let r = sim.say(chat, "zhaoliu", "9", "还可以再试").await;
    assert!(r[0].contains("序号"), "{r:?}");
    sim.say(chat, "zhaoliu", "融资融券", "第3步").await;
    let r = sim.say(chat, "zhaoliu", "不行", "还可以再试").await;
    assert!(
        r[0].contains("太短"),
        "an empty-ish description is refused: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screenshot_step_needs_an_image() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:lisi";
    sim.say(chat, "lisi", "提单", "第1步").await;
    sim.say(chat, "lisi", ID_CARD, "第2步").await;
    sim.say(chat, "lisi", "1", "第3步").await;
    sim.say(
        chat,
        "lisi",
        "新开户客户第二天仍无法登录交易，提示账户未激活",
        "第4步",
    )
    .await;
    let r = sim.say(chat, "lisi", "完成", "还可以再试").await;
    assert!(r[0].contains("截图"), "{r:?}");
    let r = sim.say(chat, "lisi", "截图我等下发", "还可以再试").await;
    assert!(r[0].contains("需要发送截图"), "{r:?}");
    // A file that is not an image is refused, and changes nothing.
    let pdf = b"%PDF-1.7 not an image".to_vec();
    let r = sim.say_full(chat, "lisi", None, &[&pdf], "只支持").await;
    assert!(r[0].contains("PNG"), "{r:?}");
    sim.say_full(chat, "lisi", None, &[&png(4)], "已收到第 1 张")
        .await;
    sim.say(chat, "lisi", "完成", "请核对").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_dialog_and_later_messages_start_fresh() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:zhangsan";
    sim.say(chat, "zhangsan", "提单", "第1步").await;
    sim.say(chat, "zhangsan", ID_CARD, "第2步").await;
    let r = sim.say(chat, "zhangsan", "取消", "已取消").await;
    assert_eq!(r.len(), 1);
    // An answer after cancel is not taken as step input.
    let r = sim.say(chat, "zhangsan", "2", "提单").await;
    assert!(!r.iter().any(|t| t.contains("第3步")), "{r:?}");
    sim.say(chat, "zhangsan", "取消", "没有进行中的提单").await;
    // 重新开始 starts over with nothing kept.
    sim.say(chat, "zhangsan", "提单", "第1步").await;
    sim.say(chat, "zhangsan", ID_CARD, "第2步").await;
    let r = sim.say(chat, "zhangsan", "重新开始", "第1步").await;
    assert!(r.iter().any(|t| t.contains("重新开始")), "{r:?}");
    // Help and progress keep the dialog and repeat its question.
    let r = sim.say(chat, "zhangsan", "帮助", "继续当前提单").await;
    assert!(r.iter().any(|t| t.contains("第1步")), "{r:?}");
    sim.say(chat, "zhangsan", ID_CARD, "第2步").await;
    assert_eq!(
        app.tickets().list().expect("list").len(),
        0,
        "nothing was filed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_dialog_expires_with_a_notice() {
    let app = TestApp::start_with(&[("HELPDESK__CONVERSATION__IDLE_TIMEOUT_SECS", "1")]).await;
    let sim = app.sim();
    let chat = "app:wangwu";
    sim.say(chat, "wangwu", "提单", "第1步").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = sim.say(chat, "wangwu", ID_CARD, "自动取消").await;
    assert!(
        !r.iter().any(|t| t.contains("第2步")),
        "the late answer is not step input: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restart_mid_intake_continues_the_dialog() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:zhaoliu";
    sim.say(chat, "zhaoliu", "提单", "第1步").await;
    sim.say(chat, "zhaoliu", ID_CARD, "第2步").await;
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &[]).await;
    let sim = app.sim();
    sim.say(chat, "zhaoliu", "2", "第3步").await;
    sim.say(chat, "zhaoliu", "上午十点委托卖出一直显示已报未成", "第4步")
        .await;
    sim.say_full(chat, "zhaoliu", None, &[&png(9)], "已收到第 1 张")
        .await;
    sim.say(chat, "zhaoliu", "完成", "请核对").await;
    let number = number_in(&sim.say(chat, "zhaoliu", "提交", "工单已提交").await);
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket");
    assert_eq!(
        t.customer_id.value, ID_CARD,
        "the answer given before the restart was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_in_one_group_never_share_a_dialog() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let g = group();
    sim.say(&g, "lisi", "提单", "<@lisi>").await;
    sim.say(&g, "wangwu", "提单", "<@wangwu>").await;
    // wangwu's answer goes to wangwu's dialog only.
    let r = sim.say(&g, "wangwu", "13912345678", "<@wangwu>").await;
    assert!(r.iter().any(|t| t.contains("第2步")), "{r:?}");
    // lisi is still at step 1: "2" is not an identifier for lisi.
    let r = sim.say(&g, "lisi", "2", "<@lisi>").await;
    assert!(r.iter().any(|t| t.contains("还可以再试")), "{r:?}");
    sim.say(&g, "lisi", ID_CARD, "第2步").await;
    let r = sim.say(&g, "wangwu", "2", "第3步").await;
    assert!(r.iter().all(|t| t.starts_with("<@wangwu>")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_text_and_screenshots_becomes_one_intake() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:zhangsan";
    sim.say(
        chat,
        "zhangsan",
        "客户股票交易不了，下单时提示资金不足",
        "提单",
    )
    .await;
    // Three screenshots in a row, without waiting for any answer.
    let seq = sim.last_seq().await;
    for n in 0..3 {
        sim.send_full(chat, "zhangsan", None, &[&png(20 + n)]).await;
    }
    let replies = sim
        .wait_replies(chat, "zhangsan", seq, |r| {
            r.iter()
                .any(|m| m["text"].as_str().is_some_and(|t| t.contains("共 3 张")))
        })
        .await;
    let all = super::common::texts(&replies).join("\n");
    assert!(all.contains("已记下您刚才发的问题描述"), "{all}");
    assert_eq!(
        all.matches("第1步").count(),
        1,
        "one dialog, asked once: {all}"
    );
    sim.say(chat, "zhangsan", ID_CARD, "第2步").await;
    // The description was kept: the next question is the screenshots, with 3 already in.
    let r = sim.say(chat, "zhangsan", "2", "第4步").await;
    assert!(r.join("").contains("已收到 3 张"), "{r:?}");
    let summary = sim.say(chat, "zhangsan", "完成", "请核对").await.join("\n");
    assert!(
        summary.contains("资金不足") && summary.contains("截图：3 张"),
        "{summary}"
    );
    let number = number_in(&sim.say(chat, "zhangsan", "提交", "工单已提交").await);
    assert_eq!(app.tickets().list().expect("list").len(), 1);
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket");
    assert_eq!(t.screenshots.len(), 3);
    assert_eq!(t.description, "客户股票交易不了，下单时提示资金不足");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_callback_does_not_advance_a_step_twice() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:lisi";
    sim.say(chat, "lisi", "提单", "第1步").await;
    let seq = sim.last_seq().await;
    let (q, body) = app_callback(
        &app,
        &text_msg("lisi", 990_001, ID_CARD),
        wecom_helpdesk::util::unix_now(),
    );
    for _ in 0..3 {
        let r = app
            .http
            .post(format!("{}/wecom/app/callback?{q}", app.base))
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    sim.wait_text(chat, "lisi", seq, "第2步").await;
    app.settled(0).await;
    let after = super::common::texts(&sim.replies(chat, "lisi", seq).await);
    assert_eq!(
        after.iter().filter(|t| t.contains("第2步")).count(),
        1,
        "{after:?}"
    );
    // The next answer is taken by step 2, not by step 3.
    let r = sim.say(chat, "lisi", "2", "第3步").await;
    assert_eq!(r.len(), 1, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_changes_reach_the_agent_and_the_rating_card_reopens() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:zhangsan";
    let number = file_ticket(
        &sim,
        chat,
        "zhangsan",
        "客户银行卡余额和证券账户资金对不上，差额约五千元",
    )
    .await;
    let tickets = app.tickets();

    // A reply is pushed to the agent and starts the ticket.
    let seq = sim.last_seq().await;
    tickets
        .reply(&number, "handler1", "已收到，正在核对清算数据")
        .expect("reply");
    let r = super::common::texts(&sim.wait_text(chat, "zhangsan", seq, "处理人员回复").await);
    assert_eq!(r.len(), 1, "one message, no separate status notice: {r:?}");
    assert!(r[0].contains("正在核对清算数据"), "{r:?}");
    assert_eq!(
        tickets.by_number(&number).expect("read").expect("t").status,
        Status::InProgress
    );

    // 待补充: the agent's next text goes into the thread and the ticket resumes.
    let seq = sim.last_seq().await;
    tickets
        .change_status(&number, "handler1", Status::NeedInfo, "请提供客户转账时间")
        .expect("need info");
    sim.wait_text(chat, "zhangsan", seq, "需要您补充信息").await;
    let r = sim
        .say(
            chat,
            "zhangsan",
            "客户说是昨天下午三点转的",
            "已将补充说明添加到工单",
        )
        .await;
    assert!(r[0].contains(&number), "{r:?}");
    let t = tickets.by_number(&number).expect("read").expect("t");
    assert_eq!(t.status, Status::InProgress);
    let events = tickets.events(t.id).expect("events");
    assert!(events.iter().any(|e| matches!(&e.kind, wecom_helpdesk::tickets::EventKind::AgentMessage { text, .. } if text.contains("三点"))));
    sim.wait_text("robot", "-", 0, "收到补充信息").await;

    // Resolving needs a category; then the agent gets the text and a rating card.
    assert!(
        tickets
            .change_status(&number, "handler1", Status::Resolved, "已修复")
            .is_err()
    );
    tickets
        .set_category(&number, "handler1", Category::Data)
        .expect("category");
    let seq = sim.last_seq().await;
    tickets
        .change_status(&number, "handler1", Status::Resolved, "清算数据已修正")
        .expect("resolve");
    let replies = sim
        .wait_replies(chat, "zhangsan", seq, |r| {
            r.iter().any(|m| m["kind"] == "template_card")
        })
        .await;
    assert!(
        replies.iter().any(|m| m["text"]
            .as_str()
            .is_some_and(|t| t.contains("卡片") && t.contains("未解决"))),
        "the text points to the card and names the words that work without it"
    );
    let card: &Value = replies
        .iter()
        .find(|m| m["kind"] == "template_card")
        .expect("card");

    // The agent clicks 未解决 with a score of 2: reopened, handlers told, card greyed.
    let r: Value = sim
        .post(
            "/api/card",
            json!({ "seq": card["seq"], "from": "zhangsan", "key": "rate_unsolved",
                    "selected": [{ "question_key": "score", "option_ids": ["2"] }] }),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["ok"], true);
    sim.wait_text(chat, "zhangsan", seq, "已重新打开").await;
    let t = tickets.by_number(&number).expect("read").expect("t");
    assert_eq!(t.status, Status::InProgress);
    let rating = t.rating.expect("rating kept");
    assert!(!rating.solved);
    assert_eq!(rating.score, Some(2));
    sim.wait_text("robot", "-", 0, "未解决").await;
    let updated = sim.messages(chat, 0).await;
    let card_now = updated
        .iter()
        .find(|m| m["seq"] == card["seq"])
        .expect("card");
    assert!(
        card_now["replaced"]
            .as_str()
            .is_some_and(|l| l.contains("未解决")),
        "{card_now}"
    );

    // Resolved again; this time the agent answers by text: closed with 5 points.
    let seq = sim.last_seq().await;
    tickets
        .change_status(&number, "handler1", Status::Resolved, "已再次核对")
        .expect("resolve");
    sim.wait_text(chat, "zhangsan", seq, "请在下面的卡片里评价")
        .await;
    sim.say(chat, "zhangsan", "已解决 5", "感谢您的评价").await;
    let t = tickets.by_number(&number).expect("read").expect("t");
    assert_eq!(t.status, Status::Closed);
    assert_eq!(t.rating.map(|r| (r.solved, r.score)), Some((true, Some(5))));
    // Closed is final.
    assert!(tickets.reply(&number, "handler1", "补充一句").is_err());

    // Every push went to the reporter, and none carried the whole identifier.
    for c in sim
        .calls()
        .await
        .iter()
        .filter(|c| c["endpoint"] == "message/send")
    {
        assert_eq!(c["body"]["touser"], "zhangsan");
    }
    assert_never_sent_whole(&sim, ID_CARD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_supplements_and_other_peoples_tickets() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let number = file_ticket(
        &sim,
        "app:lisi",
        "lisi",
        "理财产品赎回后资金三天未到账，客户很着急",
    )
    .await;
    let r = sim.say("app:lisi", "lisi", "进度", "进行中的工单").await;
    assert!(r[0].contains(&number) && r[0].contains("待处理"), "{r:?}");
    let r = sim
        .say(
            "app:lisi",
            "lisi",
            &format!("补充 {number} 客户补充：赎回的是货币基金"),
            "已将补充说明添加",
        )
        .await;
    assert!(r[0].contains(&number));
    // Someone else cannot touch it.
    let r = sim
        .say(
            "app:wangwu",
            "wangwu",
            &format!("补充 {number} 我来补充"),
            "只能操作您本人",
        )
        .await;
    assert_eq!(r.len(), 1);
    let r = sim
        .say(
            "app:wangwu",
            "wangwu",
            "补充 IT20200101-0001 内容",
            "没有找到工单",
        )
        .await;
    assert_eq!(r.len(), 1);
    sim.say("app:wangwu", "wangwu", "进度", "没有进行中的工单")
        .await;
    let t = app.tickets().by_number(&number).expect("read").expect("t");
    let events = app.tickets().events(t.id).expect("events");
    assert_eq!(events.len(), 2, "created + lisi's supplement only");
    // 人工 tells the handler group (and flags lisi's open ticket).
    sim.say("app:lisi", "lisi", "人工", "已标记为“请求人工”")
        .await;
    sim.wait_text("robot", "-", 0, "请求人工协助").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_nine_screenshots_and_files_that_are_not_images() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "bot:zhaoliu";
    sim.say(chat, "zhaoliu", "提单", "第1步").await;
    let seq = sim.last_seq().await;
    for n in 0..12 {
        sim.send_full(chat, "zhaoliu", None, &[&png(100 + n)]).await;
    }
    let r = sim.wait_text(chat, "zhaoliu", seq, "最多可提交 9 张").await;
    assert!(!r.is_empty());
    // A document sent as a file is refused with a message.
    use base64::Engine;
    let pdf = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 quarterly report");
    let seq = sim.last_seq().await;
    let resp = sim
        .post(
            "/api/send",
            json!({ "chat": chat, "from": "zhaoliu", "files": [pdf] }),
        )
        .await;
    assert!(resp.status().is_success());
    sim.wait_text(chat, "zhaoliu", seq, "只支持 PNG").await;
}
