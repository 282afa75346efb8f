//! Report speed: `cargo bench --bench reports`.
//!
//! Files 100,000 tickets over a year into a temporary sled store (handler responses,
//! resolutions, ratings on most), then times `Dashboard::summary` for a week, a month and
//! the whole year (medians of 5 runs), and the CSV export of a month.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use wecom_helpdesk::config::IncidentsConfig;
use wecom_helpdesk::dashboard::{Dashboard, Period, export};
use wecom_helpdesk::ident::{CustomerId, IdKind};
use wecom_helpdesk::incidents::{IncidentSettings, Incidents};
use wecom_helpdesk::kb::log::FaqLog;
use wecom_helpdesk::outbox::Outbox;
use wecom_helpdesk::store::Store;
use wecom_helpdesk::tickets::{Actor, NewTicket, Status, TicketError, TicketSettings, Tickets};
use wecom_helpdesk::wecom::{Channel, ChatType};

const TICKETS: u64 = 100_000;
/// 2026-01-01 00:00 UTC+8.
const START: i64 = 1_767_196_800_000;
const YEAR_MS: i64 = 365 * 86_400_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 256 << 20).expect("store");
    let outbox = Outbox::open(&store).expect("outbox");
    let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    let tickets = Tickets::open(
        &store,
        outbox.clone(),
        TicketSettings {
            prefix: "IT".into(),
            utc_offset: offset,
            public_url: String::new(),
            calendar: Default::default(),
        },
    )
    .expect("tickets");
    let incidents = Incidents::open(
        &store,
        tickets.clone(),
        outbox,
        IncidentSettings {
            rules: IncidentsConfig {
                number_prefix: "INC".into(),
                resolve_with_alerts: true,
                auto_resolve_after: Duration::from_secs(86_400),
                major_after: Duration::from_secs(3600),
                major_reporters: 10,
                outbreak_window: Duration::from_secs(1800),
                outbreak_min_reporters: 3,
                similarity_cutoff: 0.3,
                resolve_tickets: true,
                system_keywords: Vec::new(),
            },
            utc_offset: offset,
            public_url: String::new(),
        },
    )
    .expect("incidents");
    let systems = [
        "交易",
        "三方存管",
        "App/登录",
        "开户/账户",
        "理财",
        "融资融券",
    ];
    let began = Instant::now();
    let step = YEAR_MS / TICKETS as i64;
    for chunk in 0..TICKETS / 500 {
        store
            .transaction::<_, Infallible>(&tickets.trees(), |tx| {
                for i in chunk * 500..(chunk + 1) * 500 {
                    let at = START + i as i64 * step;
                    let new = NewTicket {
                        reporter: format!("agent{}", i % 900),
                        reporter_name: String::new(),
                        channel: Channel::App,
                        chat_type: ChatType::Single,
                        chat_id: String::new(),
                        customer_id: CustomerId {
                            kind: IdKind::CustomerNo,
                            value: format!("{:010}", 1_000_000_000 + i),
                        },
                        system: systems[(i % 6) as usize].into(),
                        description: "客户反映委托下单失败，提示系统繁忙，请尽快处理".into(),
                        screenshots: Vec::new(),
                    };
                    let t = tickets.create_in(tx, &new, at)?;
                    let _ = t;
                }
                Ok(())
            })
            .expect("file");
    }
    // Work three in four of them as handlers would: a response (→ 处理中), then 已解决 with a
    // category (with the agent's notice and rating card staged, as in service).
    let list = tickets.list().expect("list");
    let handler = Actor::Handler("bench".into());
    for chunk in list.chunks(500) {
        store
            .transaction::<_, TicketError>(&tickets.trees(), |tx| {
                for t in chunk.iter().filter(|t| t.id % 4 != 0) {
                    let minutes = (t.id % 300) as i64 * 60_000;
                    tickets.change_status_in::<TicketError>(
                        tx,
                        t.id,
                        &handler,
                        Status::InProgress,
                        "",
                        t.created_at + minutes,
                    )?;
                    tickets.resolve_for_incident_in::<TicketError>(
                        tx,
                        t.id,
                        "已处理",
                        t.created_at + 6 * minutes + 600_000,
                    )?;
                }
                Ok(())
            })
            .expect("work");
    }
    let filing = began.elapsed();
    let faq_log = FaqLog::open(&store).expect("faq log");
    let dashboard = Dashboard {
        tickets: tickets.clone(),
        incidents,
        faq_log,
        sla: wecom_helpdesk::config::SlaConfig {
            first_response: [15, 30, 120, 480].map(|m| Duration::from_secs(m * 60)),
            resolution: [120, 480, 1440, 4320].map(|m| Duration::from_secs(m * 60)),
        },
        utc_offset: offset,
    };
    println!("{TICKETS} tickets filed in {:.1} s", filing.as_secs_f64());
    let periods = [
        (
            "a week",
            Period::parse("2026-06-01", "2026-06-07", offset).expect("week"),
        ),
        (
            "a month",
            Period::parse("2026-06-01", "2026-06-30", offset).expect("month"),
        ),
        (
            "the year",
            Period::parse("2026-01-01", "2026-12-31", offset).expect("year"),
        ),
    ];
    println!();
    println!("| summary of | median of 5 | filed / resolved in the period |");
    println!("|---|---|---|");
    for (name, p) in periods {
        let mut times = Vec::new();
        let (mut filed, mut resolved) = (0, 0);
        for _ in 0..5 {
            let t = Instant::now();
            let s = dashboard.summary(&p).expect("summary");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            (filed, resolved) = (s.filed, s.resolved);
        }
        println!(
            "| {name} | {:.0} ms | {filed} / {resolved} |",
            median(times)
        );
    }
    let month = Period::parse("2026-06-01", "2026-06-30", offset).expect("month");
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let all = tickets.list().expect("list");
        let csv = export::tickets_csv(&month, &all, &dashboard.sla, false).expect("csv");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        size = csv.len();
    }
    println!();
    println!(
        "CSV export of a month: {:.0} ms median ({} KiB)",
        median(times),
        size / 1024
    );
}
