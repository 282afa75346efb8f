//! SLA clocks: time to first response and to resolution, with targets per priority.
//!
//! A ticket's clock runs from filing, minus the time spent in 待补充 (waiting for the agent).
//! The first-response clock stops at the first handler action; the resolution clock at 已解决.

use std::time::Duration;

use super::{Status, Ticket};
use crate::config::SlaConfig;

/// One SLA clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Stopped in time (`late: false`) or after the target.
    Met { late: bool },
    /// Running; milliseconds left (never negative here).
    Running { left_ms: i64 },
    /// Paused while the ticket waits for the agent; milliseconds left.
    Paused { left_ms: i64 },
    /// Running and past the target by this much.
    Overdue { by_ms: i64 },
}

impl Clock {
    pub fn is_overdue(self) -> bool {
        matches!(self, Clock::Overdue { .. })
    }

    /// Milliseconds left (negative when overdue); `None` once met.
    pub fn left_ms(self) -> Option<i64> {
        match self {
            Clock::Met { .. } => None,
            Clock::Running { left_ms } | Clock::Paused { left_ms } => Some(left_ms),
            Clock::Overdue { by_ms } => Some(-by_ms),
        }
    }

    /// "剩余 1小时20分", "已超时 15分", "已暂停", "按时完成".
    pub fn label(self) -> String {
        match self {
            Clock::Met { late: false } => "按时完成".into(),
            Clock::Met { late: true } => "超时完成".into(),
            Clock::Running { left_ms } => format!("剩余 {}", human(left_ms)),
            Clock::Paused { left_ms } => format!("已暂停（剩余 {}）", human(left_ms)),
            Clock::Overdue { by_ms } => format!("已超时 {}", human(by_ms)),
        }
    }
}

/// "2天3小时", "1小时20分", "5分", "不足1分".
pub fn human(ms: i64) -> String {
    let mins = ms.max(0) / 60_000;
    let (d, h, m) = (mins / 1440, (mins % 1440) / 60, mins % 60);
    match (d, h, m) {
        (0, 0, 0) => "不足1分".into(),
        (0, 0, m) => format!("{m}分"),
        (0, h, m) => format!("{h}小时{m}分"),
        (d, h, _) => format!("{d}天{h}小时"),
    }
}

/// Both clocks of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaState {
    pub first_response: Clock,
    pub resolution: Clock,
}

impl SlaState {
    /// The most urgent running clock's time left (for sorting); `i64::MAX` when none runs.
    pub fn urgency(&self) -> i64 {
        [self.first_response, self.resolution]
            .into_iter()
            .filter_map(Clock::left_ms)
            .min()
            .unwrap_or(i64::MAX)
    }

    pub fn is_overdue(&self) -> bool {
        self.first_response.is_overdue() || self.resolution.is_overdue()
    }
}

fn target(list: &[Duration; 4], t: &Ticket) -> i64 {
    list[t.priority.index()].as_millis() as i64
}

/// Working time of `t` up to `at`: elapsed since filing minus paused time.
fn active_ms(t: &Ticket, at: i64) -> i64 {
    let current_pause = match (t.status, t.paused_since) {
        (Status::NeedInfo, Some(since)) if at >= since => at - since,
        _ => 0,
    };
    (at - t.created_at - t.paused_ms - current_pause).max(0)
}

fn clock(t: &Ticket, target_ms: i64, stopped_at: Option<i64>, now: i64) -> Clock {
    if let Some(at) = stopped_at {
        return Clock::Met {
            late: active_ms(t, at) > target_ms,
        };
    }
    let left = target_ms - active_ms(t, now);
    if left < 0 {
        Clock::Overdue { by_ms: -left }
    } else if t.status == Status::NeedInfo {
        Clock::Paused { left_ms: left }
    } else {
        Clock::Running { left_ms: left }
    }
}

pub fn state(t: &Ticket, cfg: &SlaConfig, now: i64) -> SlaState {
    let resolved = t.resolved_at.or(t.closed_at);
    SlaState {
        first_response: clock(
            t,
            target(&cfg.first_response, t),
            t.first_response_at.or(resolved),
            now,
        ),
        resolution: clock(t, target(&cfg.resolution, t), resolved, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::{CustomerId, IdKind};
    use crate::tickets::{NewTicket, Priority};
    use crate::wecom::{Channel, ChatType};

    fn cfg() -> SlaConfig {
        SlaConfig {
            first_response: [15, 30, 120, 480].map(|m| Duration::from_secs(m * 60)),
            resolution: [120, 480, 1440, 4320].map(|m| Duration::from_secs(m * 60)),
        }
    }

    fn ticket(priority: Priority) -> Ticket {
        let new = NewTicket {
            reporter: "u".into(),
            reporter_name: "U".into(),
            channel: Channel::App,
            chat_type: ChatType::Single,
            chat_id: "u".into(),
            customer_id: CustomerId {
                kind: IdKind::Mobile,
                value: "13812345678".into(),
            },
            system: "交易".into(),
            description: "d".into(),
            screenshots: Vec::new(),
        };
        Ticket {
            priority,
            ..Ticket::filed(1, "IT20261121-0001".into(), new, 0)
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn clocks_run_pause_and_stop() {
        let mut t = ticket(Priority::P1);
        let s = state(&t, &cfg(), 10 * MIN);
        assert_eq!(s.first_response, Clock::Running { left_ms: 5 * MIN });
        assert_eq!(s.first_response.label(), "剩余 5分");
        let s = state(&t, &cfg(), 20 * MIN);
        assert_eq!(s.first_response, Clock::Overdue { by_ms: 5 * MIN });
        assert!(s.is_overdue());
        // Answered at minute 12: met in time; resolution still runs.
        t.first_response_at = Some(12 * MIN);
        t.status = Status::InProgress;
        let s = state(&t, &cfg(), 20 * MIN);
        assert_eq!(s.first_response, Clock::Met { late: false });
        assert_eq!(s.resolution, Clock::Running { left_ms: 100 * MIN });
        assert_eq!(s.urgency(), 100 * MIN);
        // 待补充 from minute 30: the clock pauses.
        t.status = Status::NeedInfo;
        t.paused_since = Some(30 * MIN);
        let s = state(&t, &cfg(), 90 * MIN);
        assert_eq!(s.resolution, Clock::Paused { left_ms: 90 * MIN });
        // Back in progress at minute 90 with 60 minutes paused.
        t.status = Status::InProgress;
        t.paused_since = None;
        t.paused_ms = 60 * MIN;
        let s = state(&t, &cfg(), 100 * MIN);
        assert_eq!(s.resolution, Clock::Running { left_ms: 80 * MIN });
        t.resolved_at = Some(200 * MIN);
        t.status = Status::Resolved;
        let s = state(&t, &cfg(), 300 * MIN);
        assert_eq!(s.resolution, Clock::Met { late: true });
        assert_eq!(s.urgency(), i64::MAX);
    }

    #[test]
    fn targets_follow_priority_and_labels_read_well() {
        let t = ticket(Priority::P4);
        assert_eq!(
            state(&t, &cfg(), 0).resolution,
            Clock::Running {
                left_ms: 4320 * MIN
            }
        );
        assert_eq!(human(0), "不足1分");
        assert_eq!(human(80 * MIN), "1小时20分");
        assert_eq!(human(3 * 1440 * MIN + 2 * 60 * MIN), "3天2小时");
    }
}
