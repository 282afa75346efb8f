//! Read-only aggregates for the board, the reports page, the exports and the weekly push.
//!
//! Definitions (the README's "Reports" section says the same):
//! - **Cohorts.** A ticket belongs to the period it was *filed* in for `filed`, the
//!   categories and systems, first-response times and the first-response SLA, the share
//!   resolved by now and the heatmap; *resolved* figures (`resolved`, 解决率's numerator,
//!   及时率, resolution times, reopen rate) count the tickets whose (last) 已解决 falls in the
//!   period; CSAT counts the ratings given in the period; deflection the FAQ questions asked
//!   in it; incidents those opened (and resolved) in it.
//! - **first response**: filed → the first handler reply or status change pushed to the agent.
//! - **resolution**: filed → 已解决 (the last time, after a reopen), calendar and business
//!   time, both stored when it happens.
//! - **解决率** (`resolution_rate`): resolved in the period ÷ filed in the period (can
//!   exceed 100% when older tickets are resolved); `resolved_share`: of the period's
//!   tickets, the share resolved or closed by now.
//! - **及时率** (`timely_rate`): resolved within the SLA resolution target of its priority
//!   (time in 待补充 excluded) ÷ resolved.
//! - **reopen rate**: resolved tickets that had left 已解决 for more work at least once ÷
//!   resolved (closing a resolved ticket is not a reopen).
//! - **CSAT**: ratings of 4–5 ÷ ratings with a score; response rate: ratings ÷ resolved.
//! - **FAQ deflection**: questions answered and not followed by 未解决 or a ticket ÷ all.
//! - **MTTR** / **time to acknowledge**: incidents opened → resolved / → acknowledged.
//! - Every duration: average, median (the mean of the middle two for an even count) and
//!   P90 (nearest rank), in seconds; none when there is nothing to measure.

pub mod charts;
pub mod export;
pub mod period;
pub mod weekly;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::SlaConfig;
use crate::incidents::{Incident, Incidents};
use crate::kb::log::{FaqLog, Report as FaqReport};
use crate::store;
use crate::tickets::sla;
use crate::tickets::{Category, Status, Ticket, Tickets};

pub use period::{Period, PeriodError};

/// Average, median and P90 of some durations, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    pub count: usize,
    pub avg: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

impl Stats {
    /// Of durations in milliseconds.
    pub fn of_ms(mut ms: Vec<i64>) -> Stats {
        if ms.is_empty() {
            return Stats::default();
        }
        ms.sort_unstable();
        let n = ms.len();
        let secs = |v: i64| v as f64 / 1000.0;
        let median = if n % 2 == 1 {
            secs(ms[n / 2])
        } else {
            (secs(ms[n / 2 - 1]) + secs(ms[n / 2])) / 2.0
        };
        let rank = (0.9 * n as f64).ceil() as usize;
        Stats {
            count: n,
            avg: Some(ms.iter().map(|v| secs(*v)).sum::<f64>() / n as f64),
            median: Some(median),
            p90: Some(secs(ms[rank.clamp(1, n) - 1])),
        }
    }
}

/// A duration in calendar and in business time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub avg: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub business: Stats,
}

impl Durations {
    fn of(calendar: Vec<i64>, business: Vec<i64>) -> Durations {
        let c = Stats::of_ms(calendar);
        Durations {
            count: c.count,
            avg: c.avg,
            median: c.median,
            p90: c.p90,
            business: Stats::of_ms(business),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IncidentFigures {
    pub opened: usize,
    pub resolved: usize,
    pub major: usize,
    pub from_outbreaks: usize,
    /// Opened → resolved, over those resolved in the period.
    pub mttr: Stats,
    /// Opened → acknowledged, over those resolved in the period.
    pub tta: Stats,
}

/// Tickets filed on one local day, by category.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Day {
    pub date: String,
    pub filed: usize,
    pub resolved: usize,
    pub by_category: BTreeMap<&'static str, usize>,
    /// 及时率 of the tickets resolved that day.
    pub timely_rate: Option<f64>,
}

/// The figures of a period (`GET /api/v1/reports/summary`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub from: String,
    pub to: String,
    pub filed: usize,
    pub resolved: usize,
    pub resolution_rate: Option<f64>,
    pub resolved_share: Option<f64>,
    pub timely_rate: Option<f64>,
    pub first_response_sla_rate: Option<f64>,
    pub reopen_rate: Option<f64>,
    pub by_category: BTreeMap<&'static str, usize>,
    pub by_system: BTreeMap<String, usize>,
    pub first_response: Durations,
    pub resolution: Durations,
    pub csat: Option<f64>,
    pub ratings: usize,
    pub rating_response_rate: Option<f64>,
    pub deflection: Option<f64>,
    pub faq_questions: usize,
    pub incidents: IncidentFigures,
    pub days: Vec<Day>,
    /// Reports filed by local weekday (Monday first) × hour.
    pub heatmap: Vec<Vec<usize>>,
    /// Resolution times of the period's resolved tickets in buckets (`< 1 小时` …).
    pub resolution_buckets: Vec<(String, usize)>,
    /// FAQ: most answered entries and questions it could not answer (masked).
    pub faq_hot: Vec<(String, usize)>,
    pub faq_unanswered: Vec<(String, usize)>,
}

fn rate(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The category keys of the report, 未分类 last.
pub const CATEGORY_KEYS: [&str; 5] = ["consulting", "data", "program", "other", "uncategorised"];

fn category_key(t: &Ticket) -> &'static str {
    t.category.map_or("uncategorised", Category::key)
}

/// Whether a resolved ticket met its SLA resolution target (time in 待补充 excluded).
fn timely(t: &Ticket, cfg: &SlaConfig) -> bool {
    let took = t
        .resolution_ms
        .or_else(|| t.resolved_at.map(|r| r - t.created_at))
        .unwrap_or(i64::MAX);
    took - t.paused_ms <= cfg.resolution[t.priority.index()].as_millis() as i64
}

const BUCKETS: [(i64, &str); 6] = [
    (3_600_000, "< 1 小时"),
    (4 * 3_600_000, "1–4 小时"),
    (24 * 3_600_000, "4–24 小时"),
    (3 * 24 * 3_600_000, "1–3 天"),
    (7 * 24 * 3_600_000, "3–7 天"),
    (i64::MAX, "≥ 7 天"),
];

/// The figures of `period` over `tickets` and `incidents` (any order, any period: the
/// cohorts are chosen here), with the FAQ's figures of the period. Pure: the tests feed it
/// fixtures with fixed timestamps.
pub fn summarize(
    period: &Period,
    tickets: &[Ticket],
    incidents: &[Incident],
    faq: &FaqReport,
    sla_cfg: &SlaConfig,
) -> Summary {
    let (start, end) = (period.start_ms(), period.end_ms());
    let within = |at: i64| (start..end).contains(&at);
    let mut s = Summary {
        from: period.from.to_string(),
        to: period.to.to_string(),
        heatmap: vec![vec![0; 24]; 7],
        ..Summary::default()
    };
    for key in CATEGORY_KEYS {
        s.by_category.insert(key, 0);
    }
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    for date in period.dates() {
        let d = date.to_string();
        let mut day = Day {
            date: d.clone(),
            ..Day::default()
        };
        for key in CATEGORY_KEYS {
            day.by_category.insert(key, 0);
        }
        days.insert(d, day);
    }
    let mut day_timely: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut fr, mut fr_b, mut res, mut res_b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut responded, mut responded_in_time, mut done_now) = (0, 0, 0);
    let (mut timely_n, mut reopened) = (0, 0);
    let (mut scored, mut happy) = (0, 0);
    let mut buckets = vec![0usize; BUCKETS.len()];
    for t in tickets {
        if within(t.created_at) {
            s.filed += 1;
            *s.by_category.entry(category_key(t)).or_default() += 1;
            *s.by_system.entry(t.system.clone()).or_default() += 1;
            let local = period.local(t.created_at);
            if let Some(day) = days.get_mut(&local.date_naive().to_string()) {
                day.filed += 1;
                *day.by_category.entry(category_key(t)).or_default() += 1;
            }
            use chrono::{Datelike, Timelike};
            s.heatmap[local.weekday().num_days_from_monday() as usize][local.hour() as usize] += 1;
            if let Some(at) = t.first_response_at {
                let took = t.first_response_ms.unwrap_or(at - t.created_at);
                fr.push(took);
                fr_b.push(t.first_response_business_ms.unwrap_or(took));
                responded += 1;
                if took <= sla_cfg.first_response[t.priority.index()].as_millis() as i64 {
                    responded_in_time += 1;
                }
            }
            if matches!(t.status, Status::Resolved | Status::Closed) {
                done_now += 1;
            }
        }
        if let Some(at) = t.resolved_at.filter(|at| within(*at)) {
            s.resolved += 1;
            let took = t.resolution_ms.unwrap_or(at - t.created_at);
            res.push(took);
            res_b.push(t.resolution_business_ms.unwrap_or(took));
            let on_time = timely(t, sla_cfg);
            if on_time {
                timely_n += 1;
            }
            if t.reopens > 0 {
                reopened += 1;
            }
            if let Some(b) = BUCKETS.iter().position(|(limit, _)| took < *limit) {
                buckets[b] += 1;
            }
            let d = period.local(at).date_naive().to_string();
            if let Some(day) = days.get_mut(&d) {
                day.resolved += 1;
            }
            let e = day_timely.entry(d).or_default();
            e.1 += 1;
            if on_time {
                e.0 += 1;
            }
        }
        if let Some(r) = t.rating.as_ref().filter(|r| within(r.at))
            && let Some(score) = r.score
        {
            s.ratings += 1;
            scored += 1;
            if score >= 4 {
                happy += 1;
            }
        }
    }
    for (d, (on_time, all)) in day_timely {
        if let Some(day) = days.get_mut(&d) {
            day.timely_rate = rate(on_time, all);
        }
    }
    s.resolution_rate = rate(s.resolved, s.filed);
    s.resolved_share = rate(done_now, s.filed);
    s.timely_rate = rate(timely_n, s.resolved);
    s.first_response_sla_rate = rate(responded_in_time, responded);
    s.reopen_rate = rate(reopened, s.resolved);
    s.first_response = Durations::of(fr, fr_b);
    s.resolution = Durations::of(res, res_b);
    s.csat = rate(happy, scored);
    s.rating_response_rate = rate(s.ratings, s.resolved);
    s.faq_questions = faq.questions;
    s.deflection = rate(faq.deflected, faq.questions);
    s.faq_hot = faq.hot.clone();
    s.faq_unanswered = faq.unanswered.clone();
    s.days = days.into_values().collect();
    s.resolution_buckets = BUCKETS
        .iter()
        .zip(buckets)
        .map(|((_, label), n)| ((*label).to_owned(), n))
        .collect();
    let (mut mttr, mut tta) = (Vec::new(), Vec::new());
    for i in incidents {
        if within(i.opened_at) {
            s.incidents.opened += 1;
            if i.major.is_some() {
                s.incidents.major += 1;
            }
            if i.sources.contains(&crate::incidents::Source::Outbreak) {
                s.incidents.from_outbreaks += 1;
            }
        }
        if let Some(at) = i.resolved_at.filter(|at| within(*at))
            && i.merged_into.is_none()
        {
            s.incidents.resolved += 1;
            mttr.push(i.mttr_ms.unwrap_or(at - i.opened_at));
            if let Some(tta_ms) = i.tta_ms {
                tta.push(tta_ms);
            }
        }
    }
    s.incidents.mttr = Stats::of_ms(mttr);
    s.incidents.tta = Stats::of_ms(tta);
    s
}

/// The live board's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Board {
    pub by_status: Vec<(&'static str, &'static str, usize)>,
    pub open: usize,
    pub unassigned: usize,
    pub no_first_reply: usize,
    pub overdue: usize,
    pub open_incidents: usize,
    pub major_incidents: usize,
    pub filed_today: usize,
    pub resolved_today: usize,
    pub today: String,
}

/// The reports' service: reads tickets, incidents and the FAQ log.
#[derive(Clone)]
pub struct Dashboard {
    pub tickets: Tickets,
    pub incidents: Incidents,
    pub faq_log: FaqLog,
    pub sla: SlaConfig,
    pub utc_offset: chrono::FixedOffset,
}

impl Dashboard {
    /// The figures of `period` (reads every ticket and incident once).
    pub fn summary(&self, period: &Period) -> store::Result<Summary> {
        let tickets = self.tickets.list()?;
        let incidents = self.incidents.recent(usize::MAX)?;
        let faq = self
            .faq_log
            .report_between(period.start_ms(), period.end_ms(), 10)?;
        Ok(summarize(period, &tickets, &incidents, &faq, &self.sla))
    }

    /// The figures of `period` and of the period of the same length before it.
    pub fn summary_with_previous(&self, period: &Period) -> store::Result<(Summary, Summary)> {
        let tickets = self.tickets.list()?;
        let incidents = self.incidents.recent(usize::MAX)?;
        let prev = period.previous();
        let faq = |p: &Period| self.faq_log.report_between(p.start_ms(), p.end_ms(), 10);
        Ok((
            summarize(period, &tickets, &incidents, &faq(period)?, &self.sla),
            summarize(&prev, &tickets, &incidents, &faq(&prev)?, &self.sla),
        ))
    }

    /// The live board at `now`.
    pub fn board(&self, now: i64) -> store::Result<Board> {
        let open =
            self.tickets
                .in_statuses(&[Status::New, Status::InProgress, Status::NeedInfo])?;
        let today = Period::day_of(now, self.utc_offset);
        let mut b = Board {
            by_status: self
                .tickets
                .status_counts()?
                .into_iter()
                .map(|(s, n)| (s.key(), s.label(), n))
                .collect(),
            open: open.len(),
            today: today.from.to_string(),
            ..Board::default()
        };
        for t in &open {
            if t.assignee.is_none() {
                b.unassigned += 1;
            }
            if t.first_response_at.is_none() {
                b.no_first_reply += 1;
            }
            if sla::state(t, &self.sla, now).is_overdue() {
                b.overdue += 1;
            }
        }
        // Today's figures read only the newest tickets (ids grow with time).
        for t in self
            .tickets
            .newest_while(|t| t.created_at >= today.start_ms() - 30 * 86_400_000)?
        {
            if today.contains(t.created_at) {
                b.filed_today += 1;
            }
            if t.resolved_at.is_some_and(|at| today.contains(at)) {
                b.resolved_today += 1;
            }
        }
        let active = self.incidents.active()?;
        b.open_incidents = active.len();
        b.major_incidents = active.iter().filter(|i| i.major.is_some()).count();
        Ok(b)
    }
}

#[cfg(test)]
mod tests;
