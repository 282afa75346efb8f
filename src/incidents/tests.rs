//! Unit tests of the incident rules on a temporary store: grouping, repeats, resolves,
//! linking, broadcast, 重大 and the sweep. (The hooks, the console and a real Alertmanager
//! are tested end to end in `tests/it/incidents.rs`.)

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use super::*;
use crate::config::IncidentsConfig;
use crate::ident::{CustomerId, IdKind};
use crate::tickets::{NewTicket, TicketSettings};
use crate::wecom::{Channel, ChatType};

struct Desk {
    _dir: tempfile::TempDir,
    store: Store,
    outbox: Outbox,
    tickets: Tickets,
    incidents: Incidents,
}

fn rules() -> IncidentsConfig {
    IncidentsConfig {
        number_prefix: "INC".into(),
        resolve_with_alerts: true,
        auto_resolve_after: Duration::from_secs(3600),
        major_after: Duration::from_secs(3600),
        major_reporters: 2,
        outbreak_window: Duration::from_secs(30 * 60),
        outbreak_min_reporters: 3,
        similarity_cutoff: 0.3,
        resolve_tickets: true,
        system_keywords: Vec::new(),
    }
}

impl Desk {
    fn new() -> Desk {
        Desk::with(rules())
    }

    fn with(rules: IncidentsConfig) -> Desk {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("store");
        let outbox = Outbox::open(&store).expect("outbox");
        let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
        let tickets = Tickets::open(
            &store,
            outbox.clone(),
            TicketSettings {
                prefix: "IT".into(),
                utc_offset: offset,
                public_url: "http://console.test".into(),
                calendar: Default::default(),
            },
        )
        .expect("tickets");
        let incidents = Incidents::open(
            &store,
            tickets.clone(),
            outbox.clone(),
            IncidentSettings {
                rules,
                utc_offset: offset,
                public_url: "http://console.test".into(),
            },
        )
        .expect("incidents");
        Desk {
            _dir: dir,
            store,
            outbox,
            tickets,
            incidents,
        }
    }

    fn file(&self, reporter: &str) -> Ticket {
        self.file_about(reporter, "股票交易不了", crate::util::unix_millis())
    }

    fn file_about(&self, reporter: &str, description: &str, at: i64) -> Ticket {
        let new = NewTicket {
            reporter: reporter.into(),
            reporter_name: String::new(),
            channel: Channel::App,
            chat_type: ChatType::Single,
            chat_id: reporter.into(),
            customer_id: CustomerId {
                kind: IdKind::CustomerNo,
                value: "12345678".into(),
            },
            system: "交易系统".into(),
            description: description.into(),
            screenshots: Vec::new(),
        };
        self.store
            .transaction(&self.tickets.trees(), |tx| {
                self.tickets.create_in::<Infallible>(tx, &new, at)
            })
            .expect("file")
    }

    /// File a ticket and report it (as the conversation does at filing) at `at`.
    fn report(&self, reporter: &str, text: &str, at: i64) -> (Ticket, Reported) {
        let t = self.file_about(reporter, text, at);
        let r = self
            .store
            .transaction(&self.incidents.trees(), |tx| {
                let report = Report {
                    system: &t.system,
                    text: &t.description,
                    reporter,
                    ticket: Some(&t),
                };
                self.incidents.report_in::<Infallible>(tx, &report, at)
            })
            .expect("report");
        (t, r)
    }

    /// A question without a ticket, reported at `at`.
    fn ask(&self, reporter: &str, text: &str, at: i64) -> Reported {
        self.store
            .transaction(&self.incidents.trees(), |tx| {
                let report = Report {
                    system: "交易系统",
                    text,
                    reporter,
                    ticket: None,
                };
                self.incidents.report_in::<Infallible>(tx, &report, at)
            })
            .expect("ask")
    }

    /// Texts staged for `lane` (`robot`, `member/zhangsan`), in order.
    fn sent(&self, lane: &str) -> Vec<String> {
        let mut jobs = self.outbox.pending().expect("outbox");
        jobs.sort_by_key(|j| j.id);
        jobs.into_iter()
            .filter(|j| j.dest.lane() == lane)
            .filter_map(|j| match j.msg {
                Message::Text { content, .. } | Message::Markdown { content } => Some(content),
                _ => None,
            })
            .collect()
    }

    fn robot_notices(&self) -> Vec<String> {
        self.sent("robot")
            .into_iter()
            .filter(|m| m.contains("事件"))
            .collect()
    }
}

fn alert(key: &str, action: Action, starts_at: i64, severity: Severity) -> AlertIn {
    AlertIn {
        key: key.into(),
        action,
        name: "OrderLatency".into(),
        summary: "委托下单超时".into(),
        severity,
        system: "交易系统".into(),
        labels: BTreeMap::from([("alertname".into(), "OrderLatency".into())]),
        annotations: BTreeMap::new(),
        starts_at: Some(starts_at),
        ends_at: None,
        generator_url: "http://prom/graph".into(),
        silence_url: String::new(),
        links: Vec::new(),
        details: None,
    }
}

fn batch(alerts: Vec<AlertIn>) -> AlertBatch {
    AlertBatch {
        source: Source::Alertmanager,
        group: "{}:{alertname=\"OrderLatency\"}".into(),
        title: "委托下单超时".into(),
        external_url: "http://am".into(),
        truncated: 0,
        alerts,
    }
}

#[test]
fn a_group_is_one_incident_and_repeats_change_only_last_seen() {
    let d = Desk::new();
    let w = Severity::Warning;
    let first = d
        .incidents
        .ingest(&batch(vec![
            alert("a1", Action::Fire, 1, w),
            alert("a2", Action::Fire, 1, w),
        ]))
        .expect("ingest");
    assert_eq!((first.opened, first.fired), (1, 2));
    let number = first.incidents[0].clone();
    assert!(
        number.starts_with("INC") && number.ends_with("-001"),
        "{number}"
    );
    let before = d
        .incidents
        .by_number(&number)
        .expect("read")
        .expect("there");
    let timeline = d.incidents.events(before.id).expect("events").len();

    // Alertmanager's repeat_interval: the same firing alerts again.
    let again = d
        .incidents
        .ingest(&batch(vec![
            alert("a1", Action::Fire, 1, w),
            alert("a2", Action::Fire, 1, w),
        ]))
        .expect("repeat");
    assert_eq!((again.opened, again.fired, again.repeats), (0, 0, 2));
    let after = d
        .incidents
        .by_number(&number)
        .expect("read")
        .expect("there");
    assert_eq!(after.alerts, 2);
    assert_eq!(after.alerts_firing, 2);
    assert_eq!(
        d.incidents.events(after.id).expect("events").len(),
        timeline
    );
    let a1 = d
        .incidents
        .alert("alertmanager/a1")
        .expect("read")
        .expect("kept");
    assert_eq!(a1.repeats, 1);
    assert_eq!(d.robot_notices().len(), 1, "one notice: opened");
    assert!(d.robot_notices()[0].contains(&number));
}

#[test]
fn resolving_every_alert_resolves_the_incident_once() {
    let d = Desk::new();
    let w = Severity::Warning;
    let got = d
        .incidents
        .ingest(&batch(vec![
            alert("a1", Action::Fire, 1, w),
            alert("a2", Action::Fire, 1, w),
        ]))
        .expect("ingest");
    let number = &got.incidents[0];
    d.incidents
        .ingest(&batch(vec![alert("a1", Action::Resolve, 1, w)]))
        .expect("one resolves");
    let i = d.incidents.by_number(number).expect("read").expect("there");
    assert_eq!((i.status, i.alerts_firing), (IncidentStatus::Open, 1));
    d.incidents
        .ingest(&batch(vec![
            alert("a1", Action::Resolve, 1, w),
            alert("a2", Action::Resolve, 1, w),
        ]))
        .expect("all resolve");
    let i = d.incidents.by_number(number).expect("read").expect("there");
    assert_eq!(i.status, IncidentStatus::Resolved);
    assert!(i.mttr_ms.is_some_and(|m| m >= 0));
    assert_eq!(i.resolution.as_deref(), Some("所有告警已恢复"));
    let notices = d.robot_notices();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[1].contains("事件已恢复"));

    // A new firing of the group after the resolution is a new incident.
    let next = d
        .incidents
        .ingest(&batch(vec![alert("a1", Action::Fire, 99, w)]))
        .expect("fires again");
    assert_eq!(next.opened, 1);
    assert_ne!(&next.incidents[0], number);
}

#[test]
fn a_resolve_of_an_unknown_alert_is_recorded_and_changes_nothing_else() {
    let d = Desk::new();
    let got = d
        .incidents
        .ingest(&batch(vec![alert(
            "ghost",
            Action::Resolve,
            1,
            Severity::Warning,
        )]))
        .expect("ingest");
    assert_eq!(got.unknown, 1);
    assert!(got.incidents.is_empty());
    assert!(d.incidents.recent(10).expect("list").is_empty());
    let kept = d
        .incidents
        .alert("alertmanager/ghost")
        .expect("read")
        .expect("recorded");
    assert_eq!((kept.status, kept.incident), (AlertStatus::Resolved, None));
    assert!(d.outbox.pending().expect("outbox").is_empty());
}

#[test]
fn updates_reach_each_linked_reporter_once_and_resolution_too() {
    let d = Desk::new();
    let t1 = d.file("zhangsan");
    let t2 = d.file("zhangsan");
    let t3 = d.file("lisi");
    let inc = d
        .incidents
        .declare(
            "handler",
            &Declare {
                title: "交易系统无法下单".into(),
                system: "交易系统".into(),
                priority: Priority::P2,
                tickets: vec![t1.number.clone(), t2.number.clone()],
            },
        )
        .expect("declare");
    d.incidents
        .act(&inc.number, "handler", &Op::Link(t3.number.clone()))
        .expect("link");
    let linked = d
        .tickets
        .by_number(&t3.number)
        .expect("read")
        .expect("there");
    assert_eq!(linked.incident.as_deref(), Some(inc.number.as_str()));

    d.incidents
        .act(
            &inc.number,
            "handler",
            &Op::Update("已定位到网关故障".into()),
        )
        .expect("update");
    let zhang = d.sent("member/zhangsan");
    let li = d.sent("member/lisi");
    assert_eq!(
        zhang
            .iter()
            .filter(|m| m.contains("已定位到网关故障"))
            .count(),
        1
    );
    assert_eq!(
        li.iter().filter(|m| m.contains("已定位到网关故障")).count(),
        1
    );

    // Two reporters is not more than major_reporters (2); a third makes it 重大.
    assert!(
        d.incidents
            .by_number(&inc.number)
            .expect("read")
            .expect("there")
            .major
            .is_none()
    );
    let t4 = d.file("wangwu");
    let i = d
        .incidents
        .act(&inc.number, "handler", &Op::Link(t4.number.clone()))
        .expect("link");
    assert!(
        i.major
            .as_ref()
            .is_some_and(|m| m.reason.contains("3 名报告人"))
    );

    d.incidents
        .act(&inc.number, "handler", &Op::Unlink(t4.number.clone()))
        .expect("unlink");
    let unlinked = d
        .tickets
        .by_number(&t4.number)
        .expect("read")
        .expect("there");
    assert_eq!(unlinked.incident, None);

    let i = d
        .incidents
        .act(&inc.number, "handler", &Op::Resolve("网关已切换".into()))
        .expect("resolve");
    assert_eq!(i.status, IncidentStatus::Resolved);
    // Each linked ticket resolved with the note (zhangsan has two).
    for (lane, tickets) in [("member/zhangsan", 2), ("member/lisi", 1)] {
        let resolved: Vec<_> = d
            .sent(lane)
            .into_iter()
            .filter(|m| m.contains("已恢复") && m.contains("网关已切换"))
            .collect();
        assert_eq!(resolved.len(), tickets, "{lane}");
    }
    assert!(
        !d.sent("member/wangwu").iter().any(|m| m.contains("已恢复")),
        "an unlinked reporter hears nothing more"
    );
    // Resolved twice is refused; reopen works.
    assert!(matches!(
        d.incidents
            .act(&inc.number, "handler", &Op::Resolve(String::new())),
        Err(IncidentError::Illegal(IncidentStatus::Resolved, _))
    ));
    let i = d
        .incidents
        .act(&inc.number, "handler", &Op::Reopen("又出现了".into()))
        .expect("reopen");
    assert_eq!((i.status, i.resolved_at), (IncidentStatus::Open, None));
}

#[test]
fn a_ticket_belongs_to_one_incident_at_a_time() {
    let d = Desk::new();
    let t = d.file("zhangsan");
    let declare = |title: &str, tickets: Vec<String>| Declare {
        title: title.into(),
        system: "交易系统".into(),
        priority: Priority::P3,
        tickets,
    };
    let a = d
        .incidents
        .declare("h", &declare("甲", vec![t.number.clone()]))
        .expect("a");
    let refused = d
        .incidents
        .declare("h", &declare("乙", vec![t.number.clone()]));
    assert!(matches!(refused, Err(IncidentError::LinkedElsewhere(_, ref o)) if *o == a.number));
    // Nothing of the refused declaration was stored.
    assert_eq!(d.incidents.recent(10).expect("list").len(), 1);
    assert!(matches!(
        d.incidents
            .declare("h", &declare("丙", vec!["IT20000101-0001".into()])),
        Err(IncidentError::NoTicket(_))
    ));
}

#[test]
fn critical_alerts_are_major_at_once_and_announced_once() {
    let d = Desk::new();
    let c = Severity::Critical;
    let got = d
        .incidents
        .ingest(&batch(vec![
            alert("a1", Action::Fire, 1, c),
            alert("a2", Action::Fire, 1, c),
        ]))
        .expect("ingest");
    let i = d
        .incidents
        .by_number(&got.incidents[0])
        .expect("read")
        .expect("there");
    assert_eq!(i.priority, Priority::P1);
    assert!(i.major.is_some());
    let majors = d
        .robot_notices()
        .into_iter()
        .filter(|m| m.contains("重大事件"))
        .count();
    assert_eq!(majors, 1);
}

#[test]
fn the_sweep_flags_long_incidents_and_resolves_silent_ones() {
    let d = Desk::new();
    let got = d
        .incidents
        .ingest(&batch(vec![alert(
            "a1",
            Action::Fire,
            1,
            Severity::Warning,
        )]))
        .expect("ingest");
    let now = crate::util::unix_millis();
    assert_eq!(d.incidents.sweep(now).expect("sweep"), 0, "nothing due yet");
    // Two hours later: over major_after (1 h) and silent longer than auto_resolve (1 h).
    assert_eq!(d.incidents.sweep(now + 2 * 3_600_000).expect("sweep"), 1);
    let i = d
        .incidents
        .by_number(&got.incidents[0])
        .expect("read")
        .expect("there");
    assert_eq!(i.status, IncidentStatus::Resolved);
    assert!(i.major.is_some_and(|m| m.reason.contains("持续超过")));
    assert!(i.resolution.is_some_and(|r| r.contains("自动解决")));
    let events = d.incidents.events(i.id).expect("events");
    assert!(
        matches!(&events.last().expect("some").kind, EventKind::Resolved { note, .. } if note.contains("未收到告警"))
    );
}

#[test]
fn events_follow_pagerduty_semantics() {
    let d = Desk::new();
    let ev = |action| AlertBatch {
        source: Source::Events,
        group: "trading-order-timeout".into(),
        title: "委托下单超时".into(),
        external_url: String::new(),
        truncated: 0,
        alerts: vec![AlertIn {
            starts_at: None,
            ..alert("trading-order-timeout", action, 0, Severity::Error)
        }],
    };
    let first = d.incidents.ingest(&ev(Action::Fire)).expect("trigger");
    assert_eq!(first.opened, 1);
    assert_eq!(
        d.incidents
            .ingest(&ev(Action::Fire))
            .expect("again")
            .repeats,
        1
    );
    d.incidents.ingest(&ev(Action::Acknowledge)).expect("ack");
    let i = d
        .incidents
        .by_number(&first.incidents[0])
        .expect("read")
        .expect("there");
    assert_eq!(i.status, IncidentStatus::Acknowledged);
    assert!(i.acknowledged_at.is_some());
    d.incidents.ingest(&ev(Action::Resolve)).expect("resolve");
    let i = d
        .incidents
        .by_number(&first.incidents[0])
        .expect("read")
        .expect("there");
    assert_eq!(i.status, IncidentStatus::Resolved);
    assert!(i.tta_ms.is_some() && i.mttr_ms.is_some());
    // After a resolve, the same key triggers a new incident (PagerDuty's rule).
    let again = d
        .incidents
        .ingest(&ev(Action::Fire))
        .expect("trigger again");
    assert_eq!(again.opened, 1);
    // An acknowledge for a key never seen changes nothing.
    let ghost = AlertBatch {
        group: "ghost".into(),
        alerts: vec![alert("ghost", Action::Acknowledge, 0, Severity::Info)],
        ..ev(Action::Fire)
    };
    assert_eq!(d.incidents.ingest(&ghost).expect("ack ghost").unknown, 1);
}

const MIN: i64 = 60_000;
/// Thursday 2026-12-03 10:00 in UTC+8.
const T0: i64 = 1_796_263_200_000;

#[test]
fn three_reporters_alike_become_one_incident_and_the_earlier_ones_are_told() {
    let d = Desk::new();
    let (t1, r1) = d.report("zhangsan", "股票交易不了，委托一直失败", T0);
    let (_, r2) = d.report("lisi", "客户委托下单失败，交易不了", T0 + 2 * MIN);
    assert!(
        r1.incident.is_none() && r2.incident.is_none(),
        "two reporters are not an outbreak"
    );
    let (t3, r3) = d.report("wangwu", "交易委托失败 下单不了", T0 + 4 * MIN);
    let inc = r3
        .incident
        .expect("the third reporter makes it an outbreak");
    assert_eq!(inc.sources, vec![Source::Outbreak]);
    assert_eq!(inc.tickets.len(), 3);
    assert!(inc.tickets.contains(&t1.number) && inc.tickets.contains(&t3.number));
    // The earlier reporters are told by the outbox; the third hears it in the reply.
    for member in ["zhangsan", "lisi"] {
        let told = d.sent(&format!("member/{member}"));
        assert!(
            told.iter()
                .any(|m| m.contains(&inc.number) && m.contains("已知问题")),
            "{member}: {told:?}"
        );
    }
    assert!(d.sent("member/wangwu").is_empty());
    let opened = d
        .robot_notices()
        .into_iter()
        .filter(|m| m.contains("新事件"))
        .count();
    assert_eq!(opened, 1, "opened once");

    // A late reporter joins at once; an unrelated report does not.
    let (t4, r4) = d.report("zhaoliu", "交易不了，委托下单一直失败", T0 + 6 * MIN);
    assert_eq!(r4.incident.as_ref().map(|i| &i.number), Some(&inc.number));
    let linked = d
        .tickets
        .by_number(&t4.number)
        .expect("read")
        .expect("there");
    assert_eq!(linked.incident.as_deref(), Some(inc.number.as_str()));
    let (_, other) = d.report("qianqi", "银证转账提示余额不足", T0 + 7 * MIN);
    assert!(other.incident.is_none());
    // A question without a ticket subscribes its asker.
    let asked = d.ask("sunba", "交易委托下单失败怎么办", T0 + 8 * MIN);
    let i = asked.incident.expect("joined");
    assert!(i.subscribers.contains(&"sunba".to_owned()));
}

#[test]
fn one_agent_repeating_or_sending_an_identifier_is_no_outbreak() {
    let d = Desk::new();
    for n in 0..4 {
        let (_, r) = d.report("zhangsan", "股票交易不了，委托一直失败", T0 + n * MIN);
        assert!(r.incident.is_none(), "one reporter, however often");
    }
    for (n, who) in ["lisi", "wangwu", "zhaoliu"].iter().enumerate() {
        let (_, r) = d.report(who, "110105194912310021", T0 + (10 + n as i64) * MIN);
        assert!(
            r.incident.is_none(),
            "an identifier alone never seeds a cluster"
        );
    }
    assert!(d.incidents.recent(10).expect("list").is_empty());
}

#[test]
fn reports_outside_the_window_do_not_add_up() {
    let d = Desk::new();
    d.report("zhangsan", "股票交易不了，委托一直失败", T0);
    d.report("lisi", "客户委托下单失败，交易不了", T0 + 40 * MIN);
    let (_, r) = d.report("wangwu", "交易委托失败 下单不了", T0 + 80 * MIN);
    assert!(
        r.incident.is_none(),
        "three reports, but never two within 30 minutes"
    );
}

#[test]
fn a_busy_system_needs_more_than_a_quiet_one() {
    // A week of history: 12 unrelated reports in this window every day.
    let d = Desk::new();
    let texts = [
        "开户视频见证失败",
        "密码忘记了怎么重置",
        "理财产品到期没有到账",
        "融资额度怎么提高",
    ];
    for day in (1..=7).rev() {
        for n in 0..12 {
            let at = T0 - day * 24 * 60 * MIN - 25 * MIN + n * 2 * MIN;
            d.report(&format!("bg{n}"), texts[n as usize % texts.len()], at);
        }
    }
    d.report("zhangsan", "股票交易不了，委托一直失败", T0);
    d.report("lisi", "客户委托下单失败，交易不了", T0 + MIN);
    let (_, r) = d.report("wangwu", "交易委托失败 下单不了", T0 + 2 * MIN);
    assert!(
        r.incident.is_none(),
        "3 reports are ordinary where 12 are usual"
    );
    // A real outage: the window fills far beyond the usual.
    let mut last = None;
    for n in 0..30 {
        let (_, r) = d.report(
            &format!("agent{n}"),
            "交易委托下单失败，交易不了",
            T0 + 3 * MIN + n * 10_000,
        );
        if r.incident.is_some() {
            last = r.incident;
            break;
        }
    }
    assert!(
        last.is_some(),
        "a burst far above the baseline is an outbreak"
    );
}

#[test]
fn an_alert_incident_and_a_burst_of_reports_are_one_incident() {
    let d = Desk::new();
    let mut a = alert("a1", Action::Fire, 1, Severity::Warning);
    a.system = "交易系统".into();
    let alerted = d.incidents.ingest(&batch(vec![a])).expect("alert");
    let number = alerted.incidents[0].clone();
    d.report("zhangsan", "银证转账一直失败", T0);
    d.report("lisi", "转账失败，银证转账不了", T0 + MIN);
    let (_, r) = d.report("wangwu", "银证转账失败", T0 + 2 * MIN);
    let inc = r.incident.expect("correlated");
    assert_eq!(inc.number, number, "the burst joins the alert's incident");
    assert!(inc.sources.contains(&Source::Alertmanager) && inc.sources.contains(&Source::Outbreak));
    assert_eq!(inc.tickets.len(), 3);
    assert_eq!(d.incidents.recent(10).expect("list").len(), 1);
}

#[test]
fn resolving_resolves_the_children_with_a_rating_card_and_no_second_message() {
    let d = Desk::new();
    for (n, who) in ["zhangsan", "lisi", "wangwu"].iter().enumerate() {
        d.report(who, "股票交易不了，委托一直失败", T0 + n as i64 * MIN);
    }
    d.ask("zhaoliu", "交易委托下单失败怎么办", T0 + 5 * MIN);
    let inc = d.incidents.active().expect("list").remove(0);
    d.incidents
        .act(
            &inc.number,
            "handler",
            &Op::Resolve("交易网关已恢复".into()),
        )
        .expect("resolve");
    for number in &inc.tickets {
        let t = d.tickets.by_number(number).expect("read").expect("there");
        assert_eq!(t.status, crate::tickets::Status::Resolved);
        assert_eq!(t.category, Some(crate::tickets::Category::Program));
    }
    let jobs = d.outbox.pending().expect("outbox");
    for who in ["zhangsan", "lisi", "wangwu"] {
        let lane = format!("member/{who}");
        let texts: Vec<String> = d
            .sent(&lane)
            .into_iter()
            .filter(|m| m.contains("已恢复"))
            .collect();
        assert_eq!(
            texts.len(),
            1,
            "{who}: one 已解决 notice with the note: {texts:?}"
        );
        assert!(texts[0].contains("交易网关已恢复"));
        let cards = jobs
            .iter()
            .filter(|j| j.dest.lane() == lane && matches!(j.msg, Message::TemplateCard { .. }))
            .count();
        assert_eq!(cards, 1, "{who}: the rating card");
    }
    // The subscriber (no ticket) hears the resolution once.
    let asked: Vec<String> = d
        .sent("member/zhaoliu")
        .into_iter()
        .filter(|m| m.contains("已恢复"))
        .collect();
    assert_eq!(asked.len(), 1);
}

#[test]
fn a_reporter_detaches_and_handlers_merge_split_and_tune() {
    let d = Desk::new();
    let mut tickets = Vec::new();
    for (n, who) in ["zhangsan", "lisi", "wangwu"].iter().enumerate() {
        tickets.push(
            d.report(who, "股票交易不了，委托一直失败", T0 + n as i64 * MIN)
                .0,
        );
    }
    let inc = d.incidents.active().expect("list").remove(0);
    // The reporter says it is another problem.
    let left = d
        .store
        .transaction(&d.incidents.trees(), |tx| {
            d.incidents.detach_in::<Infallible>(
                tx,
                "lisi",
                Some(&tickets[1]),
                &inc.number,
                T0 + 9 * MIN,
            )
        })
        .expect("detach")
        .expect("left");
    assert_eq!(left.tickets.len(), 2);
    assert!(
        d.tickets
            .by_number(&tickets[1].number)
            .expect("read")
            .expect("there")
            .incident
            .is_none()
    );

    // Split a wrongly merged report into an incident of its own.
    let split = d
        .incidents
        .act(
            &inc.number,
            "handler",
            &Op::Split(tickets[2].number.clone()),
        )
        .expect("split");
    assert_eq!(split.tickets.len(), 1);
    let own = d
        .tickets
        .by_number(&tickets[2].number)
        .expect("read")
        .expect("there");
    let other = own.incident.expect("in a new incident");
    assert_ne!(other, inc.number);

    // Merge it back: one incident, the other resolved as merged.
    let merged = d
        .incidents
        .act(&other, "handler", &Op::Merge(inc.number.clone()))
        .expect("merge");
    assert_eq!(merged.merged_into.as_deref(), Some(inc.number.as_str()));
    assert_eq!(merged.status, IncidentStatus::Resolved);
    let into = d
        .incidents
        .by_number(&inc.number)
        .expect("read")
        .expect("there");
    assert_eq!(into.tickets.len(), 2);
    assert!(matches!(
        d.incidents
            .act(&inc.number, "handler", &Op::Merge(inc.number.clone())),
        Err(IncidentError::MergeSelf)
    ));

    // Tune the system's cut-off: out of range refused, in range on the timeline.
    assert!(matches!(
        d.incidents.set_cutoff(&inc.number, "handler", 1.5),
        Err(IncidentError::BadCutoff)
    ));
    d.incidents
        .set_cutoff(&inc.number, "handler", 0.5)
        .expect("cutoff");
    assert_eq!(d.incidents.cutoff("交易系统").expect("read"), 0.5);
    let events = d.incidents.events(into.id).expect("events");
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::CutoffSet { .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Detached { .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::MergedFrom { .. }))
    );
}

#[test]
fn a_flood_of_a_thousand_reports_in_a_minute_is_one_incident_and_nobody_is_told_twice() {
    let d = Desk::new();
    let phrasings = [
        "股票交易不了，委托一直失败",
        "客户委托下单失败，交易不了",
        "交易委托失败，下单不了",
        "买入委托失败，交易不了",
    ];
    let mut joined = 0;
    for n in 0..1000_i64 {
        let who = format!("agent{}", n % 700); // some agents report twice
        let (_, r) = d.report(&who, phrasings[n as usize % phrasings.len()], T0 + n * 60);
        if r.incident.is_some() {
            joined += 1;
        }
    }
    let all = d.incidents.recent(10).expect("list");
    assert_eq!(all.len(), 1, "one incident");
    let inc = &all[0];
    assert_eq!(inc.tickets.len(), 1000, "every report's ticket linked");
    assert!(joined >= 997);
    let mut unique = inc.tickets.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1000, "no ticket linked twice");
    // The reporters before the incident were told once each; nobody got a second notice.
    let jobs = d.outbox.pending().expect("outbox");
    let mut per_lane: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for j in jobs.iter().filter(|j| j.dest.lane().starts_with("member/")) {
        *per_lane.entry(j.dest.lane()).or_default() += 1;
    }
    assert!(per_lane.values().all(|n| *n == 1), "{per_lane:?}");
}
