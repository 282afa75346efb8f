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
            description: "股票交易不了".into(),
            screenshots: Vec::new(),
        };
        self.store
            .transaction(&self.tickets.trees(), |tx| {
                self.tickets
                    .create_in::<Infallible>(tx, &new, crate::util::unix_millis())
            })
            .expect("file")
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
    for lane in ["member/zhangsan", "member/lisi"] {
        let resolved: Vec<_> = d
            .sent(lane)
            .into_iter()
            .filter(|m| m.contains("已恢复") && m.contains("网关已切换"))
            .collect();
        assert_eq!(resolved.len(), 1, "{lane}");
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
        matches!(&events.last().expect("some").kind, EventKind::Resolved { note } if note.contains("未收到告警"))
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
