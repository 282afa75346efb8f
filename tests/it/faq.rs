//! FAQ answering: ranking on the shipped knowledge base, the analysis, hot reload, broken
//! and draft entries, bad questions, and the FAQ → 未解决 → intake hand-over end to end.

use wecom_helpdesk::kb::{self, Kb};

use super::common::{ID_CARD, TestApp, app_callback, png, repo_root, text_msg};

/// Questions as agents type them (colloquial, typo'd), with the entry that should answer.
const AGENT_QUESTIONS: &[(&str, &str)] = &[
    ("客户说手机上能不能直接开户啊", "acct-open-online"),
    ("客户说股票交易不了", "trade-cannot-trade"),
    ("股票下不了单", "trade-cannot-trade"),
    ("客户问证券里的钱怎么转回银行", "bank-transfer-howto"),
    ("开户的话要带啥证件", "acct-open-materials"),
    ("开户交了好几天了还在审核", "acct-open-review"),
    ("开户被打回来说身份证照片不清楚", "acct-open-rejected"),
    ("客户好多年没用的帐户要激活", "acct-dormant"),
    ("客户不想炒了想把账户销掉", "acct-close"),
    ("客户换手机号了原来的号不用了", "acct-change-phone"),
    ("身份证过期了交易被限制了", "acct-idcard-expired"),
    ("风险测评过期了在哪重新做", "acct-risk-assessment"),
    ("我客户在别的券商开过户还能在我们这开吗", "acct-multiple"),
    ("股票几点开盘几点收盘", "trade-hours"),
    ("挂的单一直不成交咋回事", "trade-order-not-filled"),
    ("单子撤不掉怎么办", "trade-cancel"),
    ("下单提示价格超出涨跌幅", "trade-price-limit"),
    ("今天买的股票怎么卖不了", "trade-t1"),
    ("买卖一次股票手续费多少钱", "trade-fees"),
    ("打新要多少市值", "trade-ipo"),
    ("300开头的票买不了", "trade-gem-permission"),
    ("688的股票提示没有权限", "trade-star-permission"),
    ("买st股票提示要签协议", "trade-st-permission"),
    ("委托变成废单了", "trade-rejected-order"),
    ("账户明明有钱为啥显示资金不足", "trade-insufficient-funds"),
    ("周末能不能银证转账", "bank-transfer-hours"),
    ("银证转帐一直失败提示银行系统繁忙", "bank-transfer-failed"),
    ("证劵转银行提示密码错误", "bank-transfer-password"),
    ("转出显示成功了银行卡没收到钱", "bank-transfer-not-arrived"),
    ("今天卖了股票钱能取出来吗", "bank-withdraw-after-sell"),
    ("客户银行卡丢了要换存管卡", "bank-change-card"),
    ("基金赎回的钱几天到账", "fund-redeem-arrival"),
    ("定投这个月没扣款", "fund-sip"),
    ("买理财提示风险等级不匹配", "fund-risk-mismatch"),
    ("app一打开就闪退", "app-crash"),
    ("交易密码忘了怎么找回", "app-forgot-trade-password"),
    ("密码输错太多次账户锁了", "app-account-locked"),
    ("收不到验证码短信", "app-no-sms"),
    ("两融维持担保比例低于130会怎样", "margin-ratio"),
    ("开两融要什么条件", "margin-open"),
    ("融资的利息怎么算", "margin-rate"),
    ("银行卡余额和证券账户资金对不上", "cash-mismatch"),
    ("钱显示可用但是取不出来", "cash-withdrawable"),
    ("股票分红的钱什么时候到账", "cash-stock-dividend"),
    ("配股怎么缴款", "cash-rights-issue"),
    ("客户说app登陆不上一直转圈", "app-login-failed"),
    ("换了新手机登不进去要验证", "app-new-device"),
    ("指纹登录用不了了", "app-biometric"),
    ("行情一直不动是不是卡了", "app-quotes-stale"),
    ("融券卖出怎么操作", "margin-short"),
    ("合约快到期了能展期吗", "margin-extend"),
    ("逆回购到期的钱啥时候能用", "cash-reverse-repo"),
    ("交割单在哪导出", "other-statement"),
];

fn shipped() -> kb::KbIndex {
    let loaded = kb::entry::load_dir(&repo_root().join("kb")).expect("kb/");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    kb::build(&loaded.entries, &loaded.dict, &loaded.synonyms).expect("index")
}

#[test]
fn the_shipped_kb_is_complete() {
    let loaded = kb::entry::load_dir(&repo_root().join("kb")).expect("kb/");
    assert!(loaded.entries.len() >= 60, "at least 60 entries");
    for system in [
        "开户/账户",
        "交易",
        "三方存管",
        "理财",
        "App/登录",
        "融资融券",
        "资金/清算",
    ] {
        assert!(
            loaded.entries.iter().filter(|e| e.system == system).count() >= 5,
            "{system} is covered"
        );
    }
    for e in &loaded.entries {
        assert!(e.similar.len() >= 3, "{} has 3+ similar questions", e.id);
        assert!(
            e.answer.chars().count() >= 40,
            "{} has a useful answer",
            e.id
        );
        assert!(!e.draft, "{} is served", e.id);
    }
}

#[test]
fn agent_questions_find_their_entry() {
    let index = shipped();
    let mut misses = Vec::new();
    for (q, want) in AGENT_QUESTIONS {
        let hits = index.search(q, 3);
        if hits.first().map(|h| h.entry.id.as_str()) != Some(*want) {
            misses.push(format!(
                "{q} → {:?} (want {want})",
                hits.first().map(|h| &h.entry.id)
            ));
        }
    }
    assert!(AGENT_QUESTIONS.len() >= 30);
    assert!(misses.is_empty(), "{misses:#?}");
}

#[test]
fn the_user_dictionary_keeps_domain_words_whole() {
    let root = repo_root().join("kb");
    let dict = std::fs::read_to_string(root.join("dict.txt")).expect("dict");
    let syn = std::fs::read_to_string(root.join("synonyms.txt")).expect("synonyms");
    let a = kb::text::Analyzer::new(kb::text::Synonyms::parse(&syn), &dict).expect("analyzer");
    let words = a.cut(&a.prepare("客户三方存管银证转账失败，融资融券维持担保比例低于平仓线"));
    for w in ["三方存管", "银证转账", "融资融券", "维持担保比例", "平仓线"] {
        assert!(words.contains(&w.to_owned()), "{w} kept whole in {words:?}");
    }
    // Variant spellings meet their canonical form before matching.
    assert_eq!(a.prepare("证劵帐户登陆"), "证券账户登录");
}

#[test]
fn odd_questions_never_fail() {
    let index = shipped();
    for q in [
        "",
        "   ",
        "😀😀😀",
        "\"(:*)\"",
        "AND OR NOT ~^",
        "[机构][numbers]",
    ] {
        let hits = index.search(q, 5);
        assert!(hits.len() <= 5, "{q:?}");
        assert!(
            hits.iter().all(|h| (0.0..=1.0).contains(&h.confidence)),
            "{q:?}: confidences are calibrated scores"
        );
    }
    let long = "客户说银证转账失败了".repeat(500);
    let hits = index.search(&long, 3);
    assert_eq!(
        hits[0].entry.id, "bank-transfer-failed",
        "a long paste still finds its topic"
    );
    assert!(index.search("😀😀", 3).is_empty());
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn edits_reload_broken_files_are_reported_and_drafts_never_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(repo_root().join("kb")).expect("kb/") {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, dir.path().join(p.file_name().expect("name"))).expect("copy");
    }
    let kb = Kb::load(dir.path()).expect("load");
    let before = kb.current();
    assert_eq!(
        kb.reload_if_changed().expect("reload"),
        None,
        "nothing changed"
    );

    // A new entry is picked up; a query in flight keeps its index.
    write(
        dir.path(),
        "visit-booking.md",
        "+++\nid = \"visit-booking\"\nquestion = \"如何预约营业部临柜业务？\"\nsimilar = [\"去营业部办业务要预约吗\", \"临柜预约\", \"营业部办理要排队吗\"]\nsystem = \"其他\"\ntags = []\n+++\n在App“业务办理—预约临柜”选择营业部和时间即可。\n",
    );
    let report = kb.reload_if_changed().expect("reload").expect("changed");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        kb.search("去营业部办业务要不要预约", 1)[0].entry.id,
        "visit-booking"
    );
    assert!(
        before.get("visit-booking").is_none(),
        "the old index is untouched"
    );

    // A broken file is reported with path and line; its last good version keeps serving.
    let path = dir.path().join("trade-hours.md");
    let good = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        good.replacen("system = \"交易\"", "system = 交易", 1),
    )
    .expect("break");
    let report = kb.reload_if_changed().expect("reload").expect("changed");
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].path.ends_with("trade-hours.md") && report.errors[0].line == 5,
        "{}",
        report.errors[0]
    );
    assert_eq!(
        kb.search("几点开盘几点收盘", 1)[0].entry.id,
        "trade-hours",
        "last good version serves"
    );
    assert_eq!(
        kb.search("怎么撤单", 1)[0].entry.id,
        "trade-cancel",
        "the rest serve"
    );
    assert_eq!(kb.errors().len(), 1);

    // A draft is never served.
    write(
        dir.path(),
        "draft.md",
        "+++\nid = \"draft-entry\"\nquestion = \"草稿：如何办理港股通？\"\nsimilar = [\"港股通怎么开\", \"港股通权限\", \"买港股\"]\nsystem = \"交易\"\ntags = []\ndraft = true\n+++\n审核中。\n",
    );
    kb.reload_if_changed().expect("reload").expect("changed");
    assert!(kb.current().get("draft-entry").is_none());
    assert!(
        kb.search("港股通怎么开", 5)
            .iter()
            .all(|h| h.entry.id != "draft-entry")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faq_first_answers_suggests_and_hands_over_to_the_intake() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:zhangsan";

    // Confident: the answer, then "是否解决"; 已解决 closes the loop.
    let r = sim
        .say(chat, "zhangsan", "交易密码忘了怎么找回", "解决您的问题了吗")
        .await;
    assert!(
        r[0].contains("忘记交易密码") && r[0].contains("人脸识别"),
        "{r:?}"
    );
    sim.say(chat, "zhangsan", "已解决", "很高兴帮到您").await;

    // Plausible: three suggestions; a number answers.
    let r = sim
        .say(chat, "zhangsan", "身份证过期了交易被限制了", "您是不是想问")
        .await;
    assert!(r[0].contains("1. 身份证过期后怎么更新证件信息？"), "{r:?}");
    let r = sim.say(chat, "zhangsan", "1", "解决您的问题了吗").await;
    assert!(r[0].contains("证件更新"), "{r:?}");

    // Not solved: the intake starts with the question kept as the description.
    let q = "银证转帐一直失败提示银行系统繁忙";
    sim.say(chat, "zhangsan", q, "解决您的问题了吗").await;
    let r = sim.say(chat, "zhangsan", "未解决", "第1步").await;
    assert!(r.iter().any(|t| t.contains("已记下")), "{r:?}");
    sim.say(chat, "zhangsan", ID_CARD, "第2步").await;
    sim.say(chat, "zhangsan", "3", "第4步").await;
    sim.say_full(chat, "zhangsan", None, &[&png(50)], "已收到第 1 张")
        .await;
    sim.say(chat, "zhangsan", "完成", "请核对").await;
    let filed = sim.say(chat, "zhangsan", "提交", "工单已提交").await;
    let number = regex::Regex::new(r"IT\d{8}-\d{4}")
        .expect("re")
        .find(&filed.join(""))
        .expect("number")
        .as_str()
        .to_owned();
    let t = app
        .tickets()
        .by_number(&number)
        .expect("read")
        .expect("ticket");
    assert_eq!(t.description, q);
    assert_eq!(t.system, "三方存管");

    // Nothing close: said so, with the intake offered.
    sim.say(
        chat,
        "zhangsan",
        "今天食堂中午吃什么",
        "需要处理人员跟进请回复“提单”",
    )
    .await;

    // The query log has it all.
    let report = app.services().faq_log.report(0, 10).expect("report");
    assert_eq!(report.questions, 4, "{report:?}");
    assert_eq!(report.answered, 2);
    assert_eq!(report.solved, 1);
    assert_eq!(report.unsolved, 1);
    assert_eq!(report.no_match, 1);
    assert!(report.deflected >= 2, "{report:?}");
    assert!(report.unanswered.iter().any(|(q, _)| q.contains("食堂")));
    assert!(
        report
            .hot
            .iter()
            .any(|(id, _)| id == "app-forgot-trade-password")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_messages_get_a_sensible_answer_end_to_end() {
    let app = TestApp::start().await;
    let sim = app.sim();
    let chat = "app:lisi";
    // Whitespace only (WeCom can deliver it; the simulator's page cannot send it).
    let seq = sim.last_seq().await;
    let (q, body) = app_callback(
        &app,
        &text_msg("lisi", 123_456, "   "),
        wecom_helpdesk::util::unix_now(),
    );
    let r = app
        .http
        .post(format!("{}/wecom/app/callback?{q}", app.base))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    sim.wait_text(chat, "lisi", seq, "请直接描述").await;
    for odd in ["😀😀😀", "\"(:*)\" AND OR", &"账户".repeat(2500)] {
        // `say` waits for a reply that offers the intake.
        sim.say(chat, "lisi", odd, "提单").await;
    }
    app.settled(0).await;
    app.assert_no_dead_letters();
    assert_eq!(app.services().inbox.dead_letters().expect("inbox").len(), 0);
}
