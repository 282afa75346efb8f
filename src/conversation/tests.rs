//! Unit tests of the routing core: [`Engine::apply`] on a temporary store with the shipped
//! scripts and kb, fed a prepared input (no simulator, no network), and the worker's
//! handling of storage errors.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::media::Fetcher;
use super::session::{Session, Sessions};
use super::{Engine, EngineSettings, Prepared, Worker};
use crate::config::Config;
use crate::ident::{CustomerId, IdKind};
use crate::inbox::Inbox;
use crate::incidents::{IncidentSettings, Incidents};
use crate::kb::Kb;
use crate::kb::log::FaqLog;
use crate::outbox::Outbox;
use crate::script::Scripts;
use crate::store::{Record, Store, TxError};
use crate::tickets::{Category, NewTicket, Status, Ticket, TicketSettings, Tickets};
use crate::wecom::client::{Client, ClientConfig};
use crate::wecom::outbound::Message;
use crate::wecom::{Channel, ChatType, Content, Inbound, MediaRef};

const MEMBER: &str = "zhangsan";

struct Desk {
    _dir: tempfile::TempDir,
    store: Store,
    engine: Arc<Engine>,
    /// Unix ms of the next message; each message is a second after the one before.
    clock: i64,
    msg_no: u64,
}

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("config.toml");
        let text = std::fs::read_to_string(&path).expect("config.toml");
        let env = [(
            "HELPDESK__STORAGE__DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        )];
        let cfg = Config::from_sources(&path, &text, &env).expect("config");
        let store = Store::open(dir.path(), 8 << 20).expect("store");
        let outbox = Outbox::open(&store).expect("outbox");
        let settings = TicketSettings {
            prefix: cfg.tickets.number_prefix.clone(),
            utc_offset: cfg.utc_offset(),
            public_url: "http://console.test".into(),
            calendar: cfg.business_hours.clone(),
        };
        let client = Client::new(ClientConfig {
            // Nothing here reaches WeCom: `prepare`, the only caller, is not used.
            api_base: "http://127.0.0.1:9".into(),
            corp_id: cfg.wecom.corp_id.clone(),
            agent_id: cfg.wecom.agent_id,
            secret: cfg.wecom.secret.clone(),
            robot_webhook_key: cfg.wecom.robot_webhook_key.clone(),
            timeout: Duration::from_secs(1),
        })
        .expect("client");
        let tickets = Tickets::open(&store, outbox.clone(), settings).expect("tickets");
        let incidents = Incidents::open(
            &store,
            tickets.clone(),
            outbox.clone(),
            IncidentSettings {
                rules: cfg.incidents.clone(),
                utc_offset: cfg.utc_offset(),
                public_url: "http://console.test".into(),
            },
        )
        .expect("incidents");
        let client = Arc::new(client);
        let engine = Engine {
            inbox: Inbox::open(&store).expect("inbox"),
            names: super::names::NameLookups::new(tickets.clone(), client.clone()),
            tickets,
            incidents,
            outbox,
            sessions: Sessions::open(&store).expect("sessions"),
            scripts: Arc::new(Scripts::load(&root.join("bot-scripts")).expect("scripts")),
            kb: Arc::new(Kb::load(&root.join("kb")).expect("kb")),
            faq_log: FaqLog::open(&store).expect("faq log"),
            client,
            fetcher: Fetcher {
                max_bytes: 1 << 20,
                bot_key: [0; 32],
            },
            settings: EngineSettings::from_config(&cfg),
            store: store.clone(),
        };
        Desk {
            _dir: dir,
            store,
            engine: Arc::new(engine),
            clock: 1_790_000_000_000,
            msg_no: 0,
        }
    }

    fn inbound(&mut self, content: Content) -> Inbound {
        self.msg_no += 1;
        Inbound {
            channel: Channel::App,
            chat_type: ChatType::Single,
            chat_id: MEMBER.into(),
            sender: MEMBER.into(),
            msg_id: format!("msg/{}", self.msg_no),
            create_time: 0,
            content,
            quote: None,
            response_url: None,
        }
    }

    /// Store `inbound` in the inbox and apply it with `prep` (the member's tickets are read
    /// as `prepare` would); returns the replies staged for the member.
    async fn apply(&mut self, inbound: Inbound, mut prep: Prepared) -> Vec<String> {
        let before = self.replies().len();
        self.engine.inbox.accept(inbound).await.expect("accept");
        let pending = self.engine.inbox.pending(1).expect("pending");
        let (seq, item) = pending.into_iter().next().expect("a pending item");
        prep.tickets = self.engine.tickets.of_reporter(MEMBER).expect("tickets");
        self.clock += 1000;
        let batch = [(seq, item, prep)];
        let applied = self.engine.commit(&batch, self.clock).expect("commit");
        self.engine.inbox.processed(&[seq]);
        self.engine.after_commit(&applied);
        self.replies().split_off(before)
    }

    async fn say(&mut self, text: &str) -> Vec<String> {
        let inbound = self.inbound(Content::Text { text: text.into() });
        self.apply(inbound, Prepared::default()).await
    }

    /// Every text staged for the member so far, in order.
    fn replies(&self) -> Vec<String> {
        let mut jobs = self.engine.outbox.pending().expect("outbox");
        jobs.sort_by_key(|j| j.id);
        jobs.into_iter()
            .filter(|j| j.dest.lane() == format!("member/{MEMBER}"))
            .filter_map(|j| match j.msg {
                Message::Text { content, .. } => Some(content),
                _ => None,
            })
            .collect()
    }

    fn session(&self) -> Session {
        self.engine
            .sessions
            .peek(MEMBER, &format!("app/{MEMBER}"))
            .expect("session")
            .unwrap_or_default()
    }

    fn file_ticket(&self) -> Ticket {
        let new = NewTicket {
            reporter: MEMBER.into(),
            reporter_name: "张三".into(),
            channel: Channel::App,
            chat_type: ChatType::Single,
            chat_id: MEMBER.into(),
            customer_id: CustomerId {
                kind: IdKind::Mobile,
                value: "13812345678".into(),
            },
            system: "集中交易".into(),
            description: "股票交易不了".into(),
            screenshots: vec!["ab".repeat(32)],
        };
        let tickets = &self.engine.tickets;
        self.store
            .transaction::<_, Infallible>(&tickets.trees(), |tx| {
                tickets.create_in(tx, &new, self.clock)
            })
            .map_err(TxError::into_store)
            .expect("file a ticket")
    }

    fn set_status(&self, t: &Ticket, to: Status) -> Ticket {
        let tickets = &self.engine.tickets;
        if to == Status::Resolved {
            tickets
                .set_category(&t.number, "handler", Category::Program)
                .expect("category");
        }
        tickets
            .change_status(&t.number, "handler", Status::InProgress, "")
            .ok();
        tickets
            .change_status(&t.number, "handler", to, "请提供截图")
            .expect("status")
    }

    fn ticket(&self, t: &Ticket) -> Ticket {
        self.engine
            .tickets
            .get(t.id)
            .expect("read")
            .expect("ticket")
    }
}

/// A record that claims a newer version than this binary knows: reading it is a storage
/// error (the way a corrupt or newer database shows itself).
#[derive(Serialize, Deserialize)]
struct FromTheFuture;

impl Record for FromTheFuture {
    const VERSION: u8 = 200;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rating_word_rates_the_resolved_ticket() {
    let mut desk = Desk::new();
    let t = desk.file_ticket();
    desk.set_status(&t, Status::Resolved);
    let replies = desk.say("已解决 5").await;
    assert_eq!(desk.ticket(&t).status, Status::Closed);
    assert_eq!(desk.ticket(&t).rating.map(|r| r.score), Some(Some(5)));
    assert!(
        replies
            .iter()
            .any(|r| r.contains("满意度 5 分") && r.contains(&t.number)),
        "{replies:?}"
    );
    // A second rating is refused politely and changes nothing.
    let replies = desk.say("已解决").await;
    assert_eq!(desk.ticket(&t).status, Status::Closed);
    assert!(
        !replies.iter().any(|r| r.contains("感谢您的评价")),
        "{replies:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn text_and_screenshots_while_need_info_go_into_the_ticket() {
    let mut desk = Desk::new();
    let t = desk.file_ticket();
    desk.set_status(&t, Status::NeedInfo);
    let replies = desk.say("客户说上周刚换过银行卡").await;
    assert!(
        replies
            .iter()
            .any(|r| r.contains("已将补充说明添加到工单") && r.contains(&t.number)),
        "{replies:?}"
    );
    // (A supplement answers the 待补充; the handler asks again.)
    desk.set_status(&t, Status::NeedInfo);
    let image = desk.inbound(Content::Image {
        media: MediaRef::MediaId {
            media_id: "m1".into(),
            pic_url: String::new(),
        },
    });
    let prep = Prepared {
        images: vec![Ok("cd".repeat(32))],
        ..Prepared::default()
    };
    let replies = desk.apply(image, prep).await;
    assert!(
        replies.iter().any(|r| r.contains("1 张截图")),
        "{replies:?}"
    );
    let thread = desk.engine.tickets.events(t.id).expect("events");
    let text = format!("{thread:?}");
    assert!(text.contains("客户说上周刚换过银行卡"), "{text}");
    assert!(text.contains(&"cd".repeat(32)), "{text}");
    assert!(desk.session().dialog.is_none(), "no new intake was opened");
}

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_after_a_question_start_the_intake_with_it_as_description() {
    let mut desk = Desk::new();
    // Long enough for the description step's validator.
    let question = "股票交易不了，下单一直提示失败";
    desk.say(question).await;
    let image = desk.inbound(Content::Image {
        media: MediaRef::MediaId {
            media_id: "m1".into(),
            pic_url: String::new(),
        },
    });
    let prep = Prepared {
        images: vec![Ok("ef".repeat(32))],
        ..Prepared::default()
    };
    let replies = desk.apply(image, prep).await;
    let dialog = desk.session().dialog.expect("the intake started");
    assert_eq!(dialog.flow, "report");
    assert_eq!(dialog.answers.description.as_deref(), Some(question));
    assert_eq!(dialog.answers.screenshots, vec!["ef".repeat(32)]);
    assert!(!replies.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_dialog_expires_and_the_member_is_told() {
    let mut desk = Desk::new();
    desk.say("提单").await;
    assert!(desk.session().dialog.is_some());
    desk.clock += desk.engine.settings.idle_timeout.as_millis() as i64;
    let replies = desk.say("13812345678").await;
    let minutes = desk.engine.settings.idle_timeout.as_secs().div_ceil(60);
    let expired = desk
        .engine
        .scripts
        .current()
        .global
        .expired
        .replace("{minutes}", &minutes.to_string());
    assert_eq!(replies.first(), Some(&expired), "{replies:?}");
    assert!(desk.session().dialog.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_error_in_apply_aborts_everything() {
    let mut desk = Desk::new();
    let key = (MEMBER.to_owned(), format!("app/{MEMBER}"));
    desk.store
        .tree::<(String, String), FromTheFuture>(&crate::store::trees::SESSIONS)
        .expect("tree")
        .insert(&key, &FromTheFuture)
        .expect("insert");
    let inbound = desk.inbound(Content::Text {
        text: "进度".into(),
    });
    desk.engine.inbox.accept(inbound).await.expect("accept");
    let (seq, item) = desk.engine.inbox.pending(1).expect("pending").remove(0);
    let batch = [(seq, item, Prepared::default())];
    let err = desk
        .engine
        .commit(&batch, desk.clock)
        .expect_err("unreadable session");
    assert!(err.to_string().contains("sessions"), "{err}");
    assert_eq!(desk.engine.inbox.pending(1).expect("pending").len(), 1);
    assert!(desk.replies().is_empty(), "nothing was said to the member");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_whose_tickets_cannot_be_read_is_retried_then_dead_lettered_unanswered() {
    let mut desk = Desk::new();
    let t = desk.file_ticket();
    desk.store
        .tree::<u64, FromTheFuture>(&crate::store::trees::TICKETS)
        .expect("tree")
        .insert(&t.id, &FromTheFuture)
        .expect("insert");
    let mut inbound = desk.inbound(Content::Text {
        text: "已解决".into(),
    });
    inbound.msg_id = "msg/rating".into();
    desk.engine.inbox.accept(inbound).await.expect("accept");
    let worker = Worker::new(desk.engine.inbox.clone(), desk.engine.clone());
    for _ in 0..super::worker::MAX_FAILURES {
        assert_eq!(worker.step().await.expect("step"), Some(false));
    }
    assert_eq!(
        worker.step().await.expect("step"),
        None,
        "the queue is clear"
    );
    assert_eq!(desk.engine.inbox.dead_letters().expect("dead").len(), 1);
    assert!(
        desk.replies().is_empty(),
        "the agent was told nothing false"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_intake_files_the_ticket_inside_the_engines_transaction() {
    // Runs every write of filing (ticket, number, counter, indexes, event, notices, session)
    // through `Engine::commit`, so a tree missing from `Engine::trees` fails here.
    let mut desk = Desk::new();
    for (text, expect) in [
        ("提单", "第1步"),
        ("13812345678", "第2步"),
        ("2", "第3步"),
        ("今天上午九点委托买入一直显示废单", "第4步"),
    ] {
        let replies = desk.say(text).await;
        assert!(
            replies.iter().any(|r| r.contains(expect)),
            "{text}: {replies:?}"
        );
    }
    let image = desk.inbound(Content::Image {
        media: MediaRef::MediaId {
            media_id: "m1".into(),
            pic_url: String::new(),
        },
    });
    let prep = Prepared {
        images: vec![Ok("ab".repeat(32))],
        ..Prepared::default()
    };
    desk.apply(image, prep).await;
    let replies = desk.say("完成").await;
    assert!(replies.iter().any(|r| r.contains("请核对")), "{replies:?}");
    let replies = desk.say("提交").await;
    let tickets = desk.engine.tickets.of_reporter(MEMBER).expect("tickets");
    assert_eq!(tickets.len(), 1);
    let t = &tickets[0];
    assert_eq!(t.system, "交易");
    assert_eq!(t.screenshots, vec!["ab".repeat(32)]);
    assert!(replies.iter().any(|r| r.contains(&t.number)), "{replies:?}");
    assert!(desk.session().dialog.is_none());
    let robot = desk.engine.outbox.pending().expect("outbox");
    assert!(
        robot.iter().any(|j| j.dest.lane() == "robot"),
        "the handlers are told"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rating_words_and_bare_numbers_are_not_faq_questions() {
    let mut desk = Desk::new();
    let replies = desk.say("已解决").await;
    assert!(replies[0].contains("没有待评价的工单"), "{replies:?}");
    let replies = desk.say("2").await;
    assert!(replies[0].contains("没有可以选择的列表"), "{replies:?}");
    let report = desk.engine.faq_log.report(0, 10).expect("report");
    assert_eq!(report.questions, 0, "nothing was logged as a question");
}
