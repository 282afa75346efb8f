//! The report's figures on fixture tickets with fixed timestamps, worked out by hand (the
//! comments show the arithmetic).

use std::time::Duration;

use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone};

use super::*;
use crate::config::BusinessHours;
use crate::ident::{CustomerId, IdKind};
use crate::tickets::calendar::business_ms;
use crate::tickets::{NewTicket, Priority, Rating};
use crate::wecom::{Channel, ChatType};

fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("offset")
}

/// Local time in UTC+8 → unix ms.
fn at(m: u32, d: u32, h: u32, min: u32) -> i64 {
    cst()
        .with_ymd_and_hms(2026, m, d, h, min, 0)
        .single()
        .expect("time")
        .timestamp_millis()
}

fn sla() -> SlaConfig {
    let mins = |v: [u64; 4]| v.map(|m| Duration::from_secs(m * 60));
    SlaConfig {
        first_response: mins([15, 30, 120, 480]),
        resolution: mins([120, 480, 1440, 4320]),
    }
}

/// Mon–Fri 09:00–18:00, Wednesday 2026-11-25 a holiday.
fn calendar() -> BusinessHours {
    BusinessHours {
        weekdays: vec![1, 2, 3, 4, 5],
        start: NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
        end: NaiveTime::from_hms_opt(18, 0, 0).expect("time"),
        holidays: vec![NaiveDate::from_ymd_opt(2026, 11, 25).expect("date")],
        workdays: Vec::new(),
    }
}

struct Fixture {
    id: u64,
    system: &'static str,
    priority: Priority,
    category: Option<Category>,
    filed: i64,
    first_response: Option<i64>,
    resolved: Option<i64>,
    paused_ms: i64,
    reopens: u32,
    rating: Option<(u8, i64)>,
    status: Status,
}

/// A ticket as the ticket service would have stored it (durations measured when they
/// ended, on the calendar of the time).
fn ticket(f: Fixture) -> Ticket {
    let new = NewTicket {
        reporter: format!("agent{}", f.id),
        reporter_name: String::new(),
        channel: Channel::App,
        chat_type: ChatType::Single,
        chat_id: String::new(),
        customer_id: CustomerId {
            kind: IdKind::CustomerNo,
            value: "12345678".into(),
        },
        system: f.system.into(),
        description: "描述".into(),
        screenshots: Vec::new(),
    };
    let mut t = Ticket::filed(f.id, format!("IT20261123-{:04}", f.id), new, f.filed);
    let cal = calendar();
    t.priority = f.priority;
    t.category = f.category;
    t.status = f.status;
    t.paused_ms = f.paused_ms;
    t.reopens = f.reopens;
    if let Some(fr) = f.first_response {
        t.first_response_at = Some(fr);
        t.first_response_ms = Some(fr - f.filed);
        t.first_response_business_ms = Some(business_ms(&cal, cst(), f.filed, fr));
    }
    if let Some(r) = f.resolved {
        t.resolved_at = Some(r);
        t.resolution_ms = Some(r - f.filed);
        t.resolution_business_ms = Some(business_ms(&cal, cst(), f.filed, r));
    }
    t.rating = f.rating.map(|(score, at)| Rating {
        solved: true,
        score: Some(score),
        at,
    });
    t
}

fn fixtures() -> Vec<Ticket> {
    let base = |id, system, priority, category, filed| Fixture {
        id,
        system,
        priority,
        category,
        filed,
        first_response: None,
        resolved: None,
        paused_ms: 0,
        reopens: 0,
        rating: None,
        status: Status::New,
    };
    vec![
        // T1 Mon 10:00, P3 咨询: response 20 min, resolved after 2 h, rated 5.
        ticket(Fixture {
            first_response: Some(at(11, 23, 10, 20)),
            resolved: Some(at(11, 23, 12, 0)),
            rating: Some((5, at(11, 23, 12, 30))),
            status: Status::Closed,
            ..base(
                1,
                "交易",
                Priority::P3,
                Some(Category::Consulting),
                at(11, 23, 10, 0),
            )
        }),
        // T2 Mon 17:00, P2 数据: response 40 min (late), 4 h in 待补充, resolved Tue 02:00
        // (9 h; 5 h without the pause ≤ 8 h: timely), rated 3.
        ticket(Fixture {
            first_response: Some(at(11, 23, 17, 40)),
            resolved: Some(at(11, 24, 2, 0)),
            paused_ms: 4 * 3_600_000,
            rating: Some((3, at(11, 24, 9, 0))),
            status: Status::Closed,
            ..base(
                2,
                "交易",
                Priority::P2,
                Some(Category::Data),
                at(11, 23, 17, 0),
            )
        }),
        // T3 Tue 09:00, P1 程序: response 5 min, reopened once, resolved Wed 09:00 (24 h >
        // 2 h: late), rated 4.
        ticket(Fixture {
            first_response: Some(at(11, 24, 9, 5)),
            resolved: Some(at(11, 25, 9, 0)),
            reopens: 1,
            rating: Some((4, at(11, 25, 10, 0))),
            status: Status::Resolved,
            ..base(
                3,
                "三方存管",
                Priority::P1,
                Some(Category::Program),
                at(11, 24, 9, 0),
            )
        }),
        // T4 Fri 16:00, P4, no category, untouched.
        base(4, "App/登录", Priority::P4, None, at(11, 27, 16, 0)).into_ticket(),
        // T5 filed the Friday before (outside), resolved Mon 09:00 (inside): 72 h > 24 h.
        ticket(Fixture {
            first_response: Some(at(11, 20, 9, 30)),
            resolved: Some(at(11, 23, 9, 0)),
            status: Status::Resolved,
            ..base(
                5,
                "交易",
                Priority::P3,
                Some(Category::Other),
                at(11, 20, 9, 0),
            )
        }),
        // T6 Sun 23:30, P3 其他: response 15 min, resolved Mon 11-30 01:00 (outside).
        ticket(Fixture {
            first_response: Some(at(11, 29, 23, 45)),
            resolved: Some(at(11, 30, 1, 0)),
            status: Status::Resolved,
            ..base(
                6,
                "交易",
                Priority::P3,
                Some(Category::Other),
                at(11, 29, 23, 30),
            )
        }),
    ]
}

impl Fixture {
    fn into_ticket(self) -> Ticket {
        ticket(self)
    }
}

fn week() -> Period {
    Period::parse("2026-11-23", "2026-11-29", cst()).expect("period")
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

#[test]
fn the_weeks_figures_are_the_ones_worked_out_by_hand() {
    let faq = FaqReport {
        questions: 10,
        deflected: 4,
        ..FaqReport::default()
    };
    let s = summarize(&week(), &fixtures(), &[], &faq, &sla());
    // Filed T1 T2 T3 T4 T6; resolved in the week T1 T2 T3 T5.
    assert_eq!((s.filed, s.resolved), (5, 4));
    assert!(close(s.resolution_rate, 0.8), "4 / 5");
    assert!(
        close(s.resolved_share, 0.8),
        "T1 T2 T3 T6 of the 5 filed are done by now"
    );
    assert!(close(s.timely_rate, 0.5), "T1, T2 (pause excluded) of 4");
    assert!(
        close(s.first_response_sla_rate, 0.75),
        "T1 T3 T6 of the 4 answered"
    );
    assert!(close(s.reopen_rate, 0.25), "T3 of 4");
    let by_cat: Vec<usize> = CATEGORY_KEYS.iter().map(|k| s.by_category[k]).collect();
    assert_eq!(by_cat, [1, 1, 1, 1, 1]);
    assert_eq!(s.by_system["交易"], 3);
    assert_eq!(s.by_system["三方存管"], 1);
    // First responses 300, 900, 1200, 2400 s.
    assert!(close(s.first_response.avg, 1200.0));
    assert!(close(s.first_response.median, 1050.0), "(900 + 1200) / 2");
    assert!(
        close(s.first_response.p90, 2400.0),
        "nearest rank: the 4th of 4"
    );
    // Resolutions 7200, 32400, 86400, 259200 s.
    assert!(close(s.resolution.avg, 96_300.0));
    assert!(close(s.resolution.median, 59_400.0));
    assert!(close(s.resolution.p90, 259_200.0));
    // Business time: T1 2 h; T2 Mon 17–18 = 1 h; T3 Tue 9 h, Wednesday a holiday; T5 Fri
    // 9 h, the weekend and Monday before 09:00 nothing → 3600, 7200, 32400, 32400.
    assert!(close(s.resolution.business.median, 19_800.0));
    assert!(close(s.resolution.business.avg, 18_900.0));
    assert!(close(s.resolution.business.p90, 32_400.0));
    // Ratings in the week: 5, 3, 4 → two of three are 4–5; 3 ratings for 4 resolved.
    assert!(close(s.csat, 2.0 / 3.0));
    assert!(close(s.rating_response_rate, 0.75));
    assert!(close(s.deflection, 0.4));
    // Heatmap: Monday 10 h and 17 h, Tuesday 9 h, Friday 16 h, Sunday 23 h.
    assert_eq!(s.heatmap[0][10] + s.heatmap[0][17] + s.heatmap[1][9], 3);
    assert_eq!((s.heatmap[4][16], s.heatmap[6][23]), (1, 1));
    assert_eq!(s.days.len(), 7);
    assert_eq!(s.days[0].filed, 2);
    assert_eq!(s.days[0].resolved, 2, "T1 and T5 on Monday");
    // Resolution buckets: 2 h → 1–4 h; 9 h → 4–24 h; 24 h → 1–3 天; 72 h → 3–7 天.
    let buckets: Vec<usize> = s.resolution_buckets.iter().map(|(_, n)| *n).collect();
    assert_eq!(buckets, [0, 1, 1, 1, 1, 0]);
}

#[test]
fn an_empty_period_shows_zeros_and_no_rates() {
    let p = Period::parse("2025-01-06", "2025-01-12", cst()).expect("period");
    let s = summarize(&p, &fixtures(), &[], &FaqReport::default(), &sla());
    assert_eq!((s.filed, s.resolved), (0, 0));
    assert_eq!(s.resolution_rate, None);
    assert_eq!(s.timely_rate, None);
    assert_eq!(s.first_response.median, None);
    let json = serde_json::to_string(&s).expect("json");
    assert!(!json.contains("NaN"), "{json}");
}

#[test]
fn the_csv_is_masked_excel_friendly_and_neutralised() {
    let mut tickets = fixtures();
    tickets[0].description = "=HYPERLINK(\"http://x\") 客户13812345678".into();
    tickets[1].customer_id = CustomerId {
        kind: IdKind::IdCard,
        value: "11010519491231002X".into(),
    };
    let bytes = export::tickets_csv(&week(), &tickets, &sla(), false).expect("csv");
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "a BOM for Excel");
    let mut r = csv::Reader::from_reader(&bytes[3..]);
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
    assert_eq!(rows.len(), 5, "the tickets filed in the week");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("11010519491231002X") && !text.contains("13812345678"));
    let description = &rows[0][14];
    assert!(description.starts_with("'="), "{description}");
    // Whole identifiers on request (an admin's audited export).
    let whole = export::tickets_csv(&week(), &tickets, &sla(), true).expect("csv");
    assert!(String::from_utf8_lossy(&whole).contains("11010519491231002X"));
    assert_eq!(export::neutralise("+1"), "'+1");
    assert_eq!(export::neutralise("@x"), "'@x");
    assert_eq!(export::neutralise("ok"), "ok");
}

#[test]
fn charts_render_svg_with_their_chinese_labels() {
    let s = summarize(&week(), &fixtures(), &[], &FaqReport::default(), &sla());
    for svg in [
        charts::daily_by_category(&s),
        charts::by_system(&s),
        charts::resolution_distribution(&s),
        charts::sla_trend(&s),
        charts::heatmap(&s),
    ] {
        assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{svg}");
        assert!(svg.contains("<text"));
    }
    assert!(charts::by_system(&s).contains("三方存管"));
}

#[test]
fn the_weekly_markdown_has_the_figures_and_trends() {
    let s = summarize(&week(), &fixtures(), &[], &FaqReport::default(), &sla());
    let prev = summarize(
        &week().previous(),
        &fixtures(),
        &[],
        &FaqReport::default(),
        &sla(),
    );
    let md = weekly::markdown(&week(), &s, &prev, "http://desk/console/reports");
    assert!(md.contains("2026-W48"), "{md}");
    assert!(md.contains("提交 **5** 件"), "{md}");
    assert!(md.contains("解决率 **80%**"), "{md}");
    assert!(md.contains("及时率 **50%**"), "{md}");
    // The week before had T5 only: 5 vs 1 filed.
    assert!(md.contains("↑400%"), "{md}");
    assert!(md.contains("[查看报表](http://desk/console/reports)"));
}

/// A desk on a store in `dir` with the weekly schedule (Monday 09:00 local).
fn weekly_on(
    dir: &std::path::Path,
) -> (crate::store::Store, crate::outbox::Outbox, weekly::Weekly) {
    let store = crate::store::Store::open(dir, 8 << 20).expect("store");
    let outbox = crate::outbox::Outbox::open(&store).expect("outbox");
    let tickets = Tickets::open(
        &store,
        outbox.clone(),
        crate::tickets::TicketSettings {
            prefix: "IT".into(),
            utc_offset: cst(),
            public_url: "http://desk".into(),
            calendar: calendar(),
        },
    )
    .expect("tickets");
    let incidents = Incidents::open(
        &store,
        tickets.clone(),
        outbox.clone(),
        crate::incidents::IncidentSettings {
            rules: crate::config::IncidentsConfig {
                number_prefix: "INC".into(),
                resolve_with_alerts: true,
                auto_resolve_after: Duration::from_secs(3600),
                major_after: Duration::from_secs(3600),
                major_reporters: 10,
                outbreak_window: Duration::from_secs(1800),
                outbreak_min_reporters: 3,
                similarity_cutoff: 0.3,
                resolve_tickets: true,
                system_keywords: Vec::new(),
            },
            utc_offset: cst(),
            public_url: "http://desk".into(),
        },
    )
    .expect("incidents");
    let dashboard = Dashboard {
        tickets,
        incidents,
        faq_log: FaqLog::open(&store).expect("faq log"),
        sla: sla(),
        utc_offset: cst(),
    };
    let w = weekly::Weekly::open(
        &store,
        dashboard,
        outbox.clone(),
        "0 9 * * MON",
        "http://desk".into(),
    )
    .expect("weekly");
    (store, outbox, w)
}

fn robot_reports(outbox: &crate::outbox::Outbox) -> Vec<String> {
    let mut jobs = outbox.pending().expect("outbox");
    jobs.sort_by_key(|j| j.id);
    jobs.into_iter()
        .filter(|j| j.origin.starts_with("weekly/"))
        .map(|j| j.origin)
        .collect()
}

#[test]
fn the_weekly_report_goes_once_a_week_across_restarts_and_missed_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (_, outbox, w) = weekly_on(dir.path());
        // A new desk, Monday 11-30 08:00: the slot of 11-23 was before its time — nothing.
        assert_eq!(w.send_due(at(11, 30, 8, 0)).expect("due"), None);
        assert_eq!(w.send_due(at(11, 30, 8, 30)).expect("due"), None);
        // The slot: W48's report, once.
        assert_eq!(
            w.send_due(at(11, 30, 9, 0)).expect("due"),
            Some("2026-W48".into())
        );
        assert_eq!(w.send_due(at(11, 30, 9, 0)).expect("due"), None);
        assert_eq!(w.send_due(at(12, 2, 15, 0)).expect("due"), None);
        assert_eq!(robot_reports(&outbox), ["weekly/2026-W48"]);
    }
    {
        // Restarted the same week: nothing again.
        let (_, outbox, w) = weekly_on(dir.path());
        assert_eq!(w.send_due(at(12, 3, 10, 0)).expect("due"), None);
        assert_eq!(robot_reports(&outbox).len(), 1);
    }
    {
        // Down over Monday 12-07 09:00, back at 15:00: the missed report goes now, once.
        let (_, outbox, w) = weekly_on(dir.path());
        assert_eq!(
            w.send_due(at(12, 7, 15, 0)).expect("due"),
            Some("2026-W49".into())
        );
        assert_eq!(w.send_due(at(12, 7, 15, 1)).expect("due"), None);
        assert_eq!(
            robot_reports(&outbox),
            ["weekly/2026-W48", "weekly/2026-W49"]
        );
        // An admin's "send now" is extra and does not count as the scheduled one.
        w.send_now(at(12, 8, 10, 0)).expect("send now");
        assert_eq!(robot_reports(&outbox).len(), 2);
        assert_eq!(outbox.pending().expect("outbox").len(), 3);
    }
}

#[test]
fn a_reopen_counts_only_when_leaving_resolved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, w) = weekly_on(dir.path());
    let tickets = &w.dashboard.tickets;
    let new = NewTicket {
        reporter: "zhangsan".into(),
        reporter_name: String::new(),
        channel: Channel::App,
        chat_type: ChatType::Single,
        chat_id: "zhangsan".into(),
        customer_id: CustomerId {
            kind: IdKind::CustomerNo,
            value: "12345678".into(),
        },
        system: "交易".into(),
        description: "d".into(),
        screenshots: Vec::new(),
    };
    let t = store
        .transaction(&tickets.trees(), |tx| {
            tickets.create_in::<std::convert::Infallible>(tx, &new, crate::util::unix_millis())
        })
        .expect("file");
    tickets
        .set_category(&t.number, "h", Category::Program)
        .expect("category");
    tickets
        .change_status(&t.number, "h", Status::InProgress, "")
        .expect("start");
    tickets
        .change_status(&t.number, "h", Status::NeedInfo, "")
        .expect("ask");
    tickets
        .change_status(&t.number, "h", Status::InProgress, "")
        .expect("back");
    tickets
        .change_status(&t.number, "h", Status::Resolved, "")
        .expect("resolve");
    tickets
        .change_status(&t.number, "h", Status::InProgress, "未解决")
        .expect("reopen");
    tickets
        .change_status(&t.number, "h", Status::Resolved, "")
        .expect("resolve again");
    tickets
        .change_status(&t.number, "h", Status::Closed, "")
        .expect("close");
    let t = tickets.by_number(&t.number).expect("read").expect("there");
    assert_eq!(
        t.reopens, 1,
        "待补充 → 处理中 and 已解决 → 已关闭 are not reopens"
    );
    assert!(t.first_response_ms.is_some() && t.resolution_business_ms.is_some());
}
