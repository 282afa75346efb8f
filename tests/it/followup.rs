//! Conversation continuity: once a handler speaks to an agent about a ticket, the agent's
//! natural answers (text or screenshots) reach that ticket, not the FAQ; `补充` finds the
//! ticket by its last digits or explains itself.

use wecom_helpdesk::tickets::{EventKind, Status};

use super::common::{TestApp, file_ticket, png};

const CHAT: &str = "app:zhangsan";
const MEMBER: &str = "zhangsan";

fn agent_messages(app: &TestApp, number: &str) -> Vec<String> {
    let t = app
        .tickets()
        .by_number(number)
        .expect("read")
        .expect("ticket");
    app.tickets()
        .events(t.id)
        .expect("events")
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::AgentMessage { text, images } => {
                Some(format!("{text}{}", "📷".repeat(images.len())))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_a_handler_reaches_the_ticket_not_the_faq() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let number = file_ticket(&sim, CHAT, MEMBER, "客户银行卡余额和证券账户对不上").await;
    app.tickets()
        .reply(&number, "handler", "请问客户最近换过银行卡吗？")
        .expect("reply");
    sim.wait_text(CHAT, MEMBER, 0, "请问客户最近换过银行卡吗")
        .await;
    let before = app
        .services()
        .faq_log
        .report(0, 10)
        .expect("report")
        .questions;

    let r = sim
        .say(CHAT, MEMBER, "好的，客户说上周刚换过银行卡", "已补充到工单")
        .await;
    assert!(r.iter().any(|t| t.contains(&number)), "{r:?}");
    assert!(!r.iter().any(|t| t.contains("您是不是想问")), "{r:?}");
    sim.say(
        CHAT,
        MEMBER,
        "客户又来电话催了，今天能处理吗",
        "已补充到工单",
    )
    .await;
    // A screenshot too, without opening a new intake.
    let r = sim
        .say_full(CHAT, MEMBER, None, &[&png(7)], "已补充到工单")
        .await;
    assert!(!r.iter().any(|t| t.contains("我们来提交")), "{r:?}");

    let thread = agent_messages(&app, &number);
    assert_eq!(thread.len(), 3, "{thread:?}");
    // The queue marks the ticket: the agent wrote since the handler did.
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket");
    let clock = wecom_helpdesk::http::console::views::Clock {
        now: t.updated_at,
        offset: app.cfg.utc_offset(),
    };
    let state = wecom_helpdesk::tickets::sla::state(&t, &app.cfg.sla, t.updated_at);
    assert!(wecom_helpdesk::http::console::views::row(&t, &state, &clock).agent_wrote);
    assert!(thread[0].contains("上周刚换过银行卡"));
    assert!(thread[2].contains('📷'));
    let after = app
        .services()
        .faq_log
        .report(0, 10)
        .expect("report")
        .questions;
    assert_eq!(after, before, "follow-ups are not FAQ questions");
    // Commands are still commands, and 新问题 starts a new report.
    sim.say(CHAT, MEMBER, "进度", "进行中的工单").await;
    sim.say(CHAT, MEMBER, "新问题", "第1步").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screenshot_after_a_need_info_answer_goes_to_the_ticket() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let number = file_ticket(&sim, CHAT, MEMBER, "客户App登录一直提示密码错误").await;
    app.tickets()
        .change_status(&number, "handler", Status::NeedInfo, "请提供报错截图")
        .expect("need info");
    sim.wait_text(CHAT, MEMBER, 0, "请提供报错截图").await;
    sim.say(CHAT, MEMBER, "好的，我让客户截图", "添加到工单")
        .await;
    let r = sim
        .say_full(CHAT, MEMBER, None, &[&png(8)], "已补充到工单")
        .await;
    assert!(!r.iter().any(|t| t.contains("我们来提交")), "{r:?}");
    assert_eq!(agent_messages(&app, &number).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_tickets_in_conversation_the_bot_asks_once() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let first = file_ticket(&sim, CHAT, MEMBER, "客户股票下单一直显示废单").await;
    let second = file_ticket(&sim, CHAT, MEMBER, "客户融资融券额度显示为零").await;
    for n in [&first, &second] {
        app.tickets()
            .reply(n, "handler", "收到，正在核实")
            .expect("reply");
    }
    let r = sim
        .say(CHAT, MEMBER, "客户刚刚又试了一次", "补充到哪一个")
        .await;
    let list = r
        .iter()
        .find(|t| t.contains("补充到哪一个"))
        .expect("asked");
    let pos = |n: &str| list.find(n).expect("listed");
    let choice = if pos(&second) < pos(&first) { "1" } else { "2" };
    sim.say(CHAT, MEMBER, choice, "已补充到工单").await;
    assert_eq!(agent_messages(&app, &second), ["客户刚刚又试了一次"]);
    // Remembered: the next message goes there without asking.
    let r = sim
        .say(CHAT, MEMBER, "客户说额度现在恢复了", "已补充到工单")
        .await;
    assert!(r.iter().any(|t| t.contains(&second)), "{r:?}");
    assert!(agent_messages(&app, &first).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supplement_by_last_digits_or_with_an_explanation() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let number = file_ticket(&sim, CHAT, MEMBER, "客户三方存管银行卡变更失败").await;
    let digits = number.rsplit('-').next().expect("digits").to_owned();
    let r = sim
        .say(
            CHAT,
            MEMBER,
            &format!("补充 {digits} 客户已经去柜台办理"),
            "添加到工单",
        )
        .await;
    assert!(r.iter().any(|t| t.contains(&number)), "{r:?}");
    // Without a number, the one open ticket is meant.
    sim.say(CHAT, MEMBER, "补充 客户办完了", "添加到工单").await;
    assert_eq!(agent_messages(&app, &number).len(), 2);
    // With two open tickets and no number, the bot explains and lists them.
    let other = file_ticket(&sim, CHAT, MEMBER, "客户理财产品赎回未到账").await;
    let r = sim
        .say(CHAT, MEMBER, "补充 客户很着急", "请写明要补充到哪个工单")
        .await;
    let text = r.join("\n");
    assert!(text.contains(&number) && text.contains(&other), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ti_dan_after_an_faq_answer_keeps_even_a_short_question() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let r = sim.say(CHAT, MEMBER, "股票交易不了", "提单").await;
    assert!(r.iter().any(|t| t.contains("解决您的问题了吗")), "{r:?}");
    let r = sim.say(CHAT, MEMBER, "提单", "第1步").await;
    let text = r.join("\n");
    assert!(
        text.contains("股票交易不了"),
        "the question is kept: {text}"
    );
    sim.say(CHAT, MEMBER, super::common::ID_CARD, "第2步").await;
    let r = sim.say(CHAT, MEMBER, "2", "第3步").await;
    assert!(
        r.join("\n").contains("您刚才的问题“股票交易不了”已记下"),
        "{r:?}"
    );
    sim.say(CHAT, MEMBER, "下单时提示废单", "第4步").await;
    sim.say_full(CHAT, MEMBER, None, &[&png(9)], "张截图").await;
    let r = sim.say(CHAT, MEMBER, "完成", "请核对").await;
    assert!(
        r.join("\n").contains("股票交易不了；下单时提示废单"),
        "{r:?}"
    );
    // After the no-match answer (which also offers 提单), the question is kept too.
    sim.say("app:lisi", "lisi", "客户说他的账户被冻结了怎么回事", "提单")
        .await;
    let r = sim.say("app:lisi", "lisi", "提单", "第1步").await;
    assert!(r.join("\n").contains("账户被冻结"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_a_person_is_tracked_until_a_handler_takes_it() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let number = file_ticket(&sim, CHAT, MEMBER, "客户融资融券担保比例显示异常").await;
    let r = sim.say(CHAT, MEMBER, "人工", "请求人工").await;
    assert!(r.iter().any(|t| t.contains(&number)), "{r:?}");
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket");
    assert!(t.human_requested_at.is_some(), "flagged on the ticket");
    assert!(
        app.tickets()
            .events(t.id)
            .expect("events")
            .iter()
            .any(|e| matches!(e.kind, EventKind::HumanRequested)),
        "in the thread"
    );
    // The queue shows it; a handler takes it; the agent hears who.
    let rows = wecom_helpdesk::http::console::views::queue_rows(
        &[],
        &wecom_helpdesk::tickets::query::Filters::default().page_of(
            vec![(
                t.clone(),
                wecom_helpdesk::tickets::sla::state(&t, &app.cfg.sla, t.created_at),
            )],
            50,
        ),
        &wecom_helpdesk::tickets::query::Filters::default(),
        &wecom_helpdesk::http::console::views::Clock {
            now: t.created_at,
            offset: app.cfg.utc_offset(),
        },
    );
    assert!(rows.rows[0].human, "the queue row is marked");
    let seq = sim.last_seq().await;
    app.tickets()
        .assign(&number, "handler", Some("handler"))
        .expect("take");
    sim.wait_text(CHAT, MEMBER, seq, "处理人员 handler 已接手")
        .await;
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket");
    assert!(t.human_requested_at.is_none(), "taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsolved_after_an_faq_answer_takes_two_messages_not_four() {
    let app = TestApp::start().await;
    let sim = app.sim();
    sim.say(CHAT, MEMBER, "股票交易不了", "解决您的问题了吗")
        .await;
    let seq = sim.last_seq().await;
    sim.send(CHAT, MEMBER, "未解决").await;
    sim.wait_text(CHAT, MEMBER, seq, "第1步").await;
    app.settled(0).await;
    let replies = super::common::texts(&sim.replies(CHAT, MEMBER, seq).await);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[0].contains("股票交易不了"),
        "the question is kept: {replies:?}"
    );
}
