//! Report periods: local dates, both inclusive, at the desk's UTC offset.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone};

/// The longest period a report covers.
pub const MAX_DAYS: i64 = 366;

/// Why a period was refused (shown to the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("日期格式应为 YYYY-MM-DD：{0}")]
    Date(String),
    #[error("开始日期不能晚于结束日期")]
    Reversed,
    #[error("时间范围最长 {MAX_DAYS} 天")]
    TooLong,
    #[error("周的格式应为 2026-W48：{0}")]
    Week(String),
    #[error("月份的格式应为 2026-11：{0}")]
    Month(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub offset: FixedOffset,
}

fn date(s: &str) -> Result<NaiveDate, PeriodError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| PeriodError::Date(s.to_owned()))
}

impl Period {
    pub fn new(from: NaiveDate, to: NaiveDate, offset: FixedOffset) -> Result<Period, PeriodError> {
        if from > to {
            return Err(PeriodError::Reversed);
        }
        if (to - from).num_days() + 1 > MAX_DAYS {
            return Err(PeriodError::TooLong);
        }
        Ok(Period { from, to, offset })
    }

    /// `from` and `to` as `YYYY-MM-DD`.
    pub fn parse(from: &str, to: &str, offset: FixedOffset) -> Result<Period, PeriodError> {
        Period::new(date(from)?, date(to)?, offset)
    }

    /// An ISO week, `2026-W48`.
    pub fn iso_week(week: &str, offset: FixedOffset) -> Result<Period, PeriodError> {
        let bad = || PeriodError::Week(week.to_owned());
        let (y, w) = week.trim().split_once("-W").ok_or_else(bad)?;
        let (y, w): (i32, u32) = (y.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?);
        let monday = NaiveDate::from_isoywd_opt(y, w, chrono::Weekday::Mon).ok_or_else(bad)?;
        Period::new(monday, monday + Duration::days(6), offset)
    }

    /// A month, `2026-11`.
    pub fn month(month: &str, offset: FixedOffset) -> Result<Period, PeriodError> {
        let bad = || PeriodError::Month(month.to_owned());
        let first = NaiveDate::parse_from_str(&format!("{}-01", month.trim()), "%Y-%m-%d")
            .map_err(|_| bad())?;
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .ok_or_else(bad)?;
        Period::new(first, next - Duration::days(1), offset)
    }

    fn today(now: i64, offset: FixedOffset) -> NaiveDate {
        DateTime::from_timestamp_millis(now)
            .unwrap_or_default()
            .with_timezone(&offset)
            .date_naive()
    }

    /// The local day of `now`.
    pub fn day_of(now: i64, offset: FixedOffset) -> Period {
        let d = Period::today(now, offset);
        Period {
            from: d,
            to: d,
            offset,
        }
    }

    /// Monday to Sunday of the week of `now`.
    pub fn week_of(now: i64, offset: FixedOffset) -> Period {
        let d = Period::today(now, offset);
        let monday = d - Duration::days(i64::from(d.weekday().num_days_from_monday()));
        Period {
            from: monday,
            to: monday + Duration::days(6),
            offset,
        }
    }

    /// The week before the week of `now`.
    pub fn last_week(now: i64, offset: FixedOffset) -> Period {
        Period::week_of(now, offset).previous()
    }

    /// The ISO week label, `2026-W48` (of its first day).
    pub fn week_label(&self) -> String {
        let w = self.from.iso_week();
        format!("{}-W{:02}", w.year(), w.week())
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The period of the same length just before.
    pub fn previous(&self) -> Period {
        let n = Duration::days(self.days());
        Period {
            from: self.from - n,
            to: self.to - n,
            offset: self.offset,
        }
    }

    fn midnight(&self, d: NaiveDate) -> i64 {
        self.offset
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .single()
            .map_or(0, |t| t.timestamp_millis())
    }

    /// First instant (unix ms).
    pub fn start_ms(&self) -> i64 {
        self.midnight(self.from)
    }

    /// The instant after the last (unix ms).
    pub fn end_ms(&self) -> i64 {
        self.midnight(self.to + Duration::days(1))
    }

    pub fn contains(&self, at: i64) -> bool {
        (self.start_ms()..self.end_ms()).contains(&at)
    }

    /// The local time of `at`.
    pub fn local(&self, at: i64) -> DateTime<FixedOffset> {
        DateTime::from_timestamp_millis(at)
            .unwrap_or_default()
            .with_timezone(&self.offset)
    }

    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let from = self.from;
        (0..self.days()).map(move |i| from + Duration::days(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cst() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).expect("offset")
    }

    #[test]
    fn bad_periods_are_refused() {
        assert_eq!(
            Period::parse("2026-11-30", "2026-11-01", cst()),
            Err(PeriodError::Reversed)
        );
        assert!(matches!(
            Period::parse("2026-13-01", "2026-12-01", cst()),
            Err(PeriodError::Date(_))
        ));
        assert_eq!(
            Period::parse("2025-01-01", "2026-06-01", cst()),
            Err(PeriodError::TooLong)
        );
        assert!(Period::iso_week("2026W48", cst()).is_err());
        assert!(Period::month("2026-13", cst()).is_err());
    }

    #[test]
    fn weeks_months_and_local_midnights() {
        let w = Period::iso_week("2026-W48", cst()).expect("week");
        assert_eq!(
            (w.from.to_string(), w.to.to_string()),
            ("2026-11-23".into(), "2026-11-29".into())
        );
        assert_eq!(w.week_label(), "2026-W48");
        // Local midnight of 2026-11-23 in UTC+8 is 16:00 UTC the day before.
        assert_eq!(w.start_ms(), 1_795_363_200_000);
        assert_eq!(w.end_ms() - w.start_ms(), 7 * 86_400_000);
        assert_eq!(w.previous().from.to_string(), "2026-11-16");
        let m = Period::month("2026-02", cst()).expect("month");
        assert_eq!(m.days(), 28);
        // Monday 2026-11-30 10:00 local: this week starts that day, last week is W48.
        let now = 1_796_004_000_000;
        assert_eq!(Period::week_of(now, cst()).from.to_string(), "2026-11-30");
        assert_eq!(Period::last_week(now, cst()).week_label(), "2026-W48");
    }
}
