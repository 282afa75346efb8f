//! Business time on the desk's calendar (`[business_hours]`): working weekdays, hours,
//! holidays and 调休 working days, in local time. Durations are measured when they end and
//! stored with the ticket, so a later change of the calendar does not rewrite history.

use chrono::{Datelike, FixedOffset, NaiveDate, TimeZone};

use crate::config::BusinessHours;

/// Whether `day` is a working day.
pub fn is_working_day(cal: &BusinessHours, day: NaiveDate) -> bool {
    if cal.workdays.contains(&day) {
        return true;
    }
    if cal.holidays.contains(&day) {
        return false;
    }
    cal.weekdays.contains(&day.weekday().number_from_monday())
}

/// Milliseconds of business time between `from` and `to` (unix ms); 0 when `to <= from`.
pub fn business_ms(cal: &BusinessHours, offset: FixedOffset, from: i64, to: i64) -> i64 {
    if to <= from {
        return 0;
    }
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&offset)
            .date_naive()
    };
    let (first, last) = (local(from), local(to));
    let mut total = 0;
    let mut day = first;
    // Ten years at most: a duration is never longer.
    for _ in 0..3660 {
        if day > last {
            break;
        }
        if is_working_day(cal, day) {
            let at = |t: chrono::NaiveTime| {
                offset
                    .from_local_datetime(&day.and_time(t))
                    .single()
                    .map_or(0, |d| d.timestamp_millis())
            };
            let (open, close) = (at(cal.start), at(cal.end));
            total += (close.min(to) - open.max(from)).max(0);
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal() -> BusinessHours {
        BusinessHours {
            weekdays: vec![1, 2, 3, 4, 5],
            start: chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
            end: chrono::NaiveTime::from_hms_opt(18, 0, 0).expect("time"),
            holidays: vec![NaiveDate::from_ymd_opt(2026, 11, 30).expect("date")],
            workdays: vec![NaiveDate::from_ymd_opt(2026, 11, 29).expect("date")],
        }
    }

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        let offset = FixedOffset::east_opt(8 * 3600).expect("offset");
        offset
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("time")
            .timestamp_millis()
    }

    const H: i64 = 3_600_000;

    #[test]
    fn weekends_nights_holidays_and_workdays() {
        let offset = FixedOffset::east_opt(8 * 3600).expect("offset");
        let c = cal();
        // Friday 2026-11-20 17:00 → Monday 2026-11-23 10:00: 1 h Friday + 1 h Monday.
        assert_eq!(
            business_ms(&c, offset, at(2026, 11, 20, 17, 0), at(2026, 11, 23, 10, 0)),
            2 * H
        );
        // Within one working day.
        assert_eq!(
            business_ms(&c, offset, at(2026, 11, 24, 8, 0), at(2026, 11, 24, 12, 30)),
            3 * H + H / 2
        );
        // Saturday 11-28 → Tuesday 12-01 10:00: Sunday 11-29 is a 调休 working day (9 h),
        // Monday 11-30 a holiday, Tuesday 1 h.
        assert_eq!(
            business_ms(&c, offset, at(2026, 11, 28, 10, 0), at(2026, 12, 1, 10, 0)),
            10 * H
        );
        assert_eq!(
            business_ms(&c, offset, at(2026, 12, 1, 10, 0), at(2026, 12, 1, 9, 0)),
            0
        );
    }
}
