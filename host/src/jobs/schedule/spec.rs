//! When a schedule runs: `daily HH:MM` or a 5-field cron expression (`minute hour day-of-month
//! month day-of-week`, UTC), parsed into bit sets, and [`ScheduleSpec::next_after`], the first
//! minute after a time that matches.
//!
//! Cron fields take `*`, `N`, `A-B`, `*/S`, `A-B/S` and comma lists of those; day-of-week is 0–7
//! (0 and 7 are Sunday). As in classic cron, when both day-of-month and day-of-week are restricted
//! a day matching either runs. Month and day names are not accepted (the error says so).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

/// Why a schedule string is not usable; the message names the field and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {text:?}: {reason}; use \"daily HH:MM\" or 5-field cron \"MIN HOUR DOM MON DOW\" (UTC)")]
pub struct BadSchedule {
    /// The schedule as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed schedule: the minutes, hours, days, months and weekdays it runs at (bit sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether day-of-month / day-of-week were restricted (not `*`).
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// How far ahead [`ScheduleSpec::next_after`] looks (covers `29 2 29 2 *`, a leap day).
const MAX_DAYS_AHEAD: i64 = 366 * 8;

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
    },
];

impl ScheduleSpec {
    /// Parses `daily HH:MM` or a 5-field cron expression.
    pub fn parse(text: &str) -> Result<Self, BadSchedule> {
        let bad = |reason: String| BadSchedule {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        if let Some(at) = trimmed.strip_prefix("daily") {
            let at = at.trim();
            let time = NaiveTime::parse_from_str(at, "%H:%M")
                .map_err(|_| bad(format!("{at:?} is not a time HH:MM (00:00 to 23:59)")))?;
            return Self::parse(&format!(
                "{} {} * * *",
                time.format("%M"),
                time.format("%H")
            ))
            .map_err(|e| bad(e.reason));
        }
        let parts: Vec<&str> = trimmed.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(bad(format!("has {} fields, cron needs 5", parts.len())));
        }
        let mut sets = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(&FIELDS).enumerate() {
            sets[i] = parse_field(part, field).map_err(bad)?;
        }
        // Sunday is 0 and 7.
        if sets[4] & (1 << 7) != 0 {
            sets[4] |= 1;
        }
        Ok(ScheduleSpec {
            minutes: sets[0],
            hours: sets[1],
            days: sets[2],
            months: sets[3],
            weekdays: sets[4],
            days_restricted: parts[2] != "*",
            weekdays_restricted: parts[4] != "*",
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first matching minute strictly after `after`; `None` when none comes within eight
    /// years (`0 0 31 2 *`, February 31st).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after + Duration::minutes(1);
        let start_date = start.date_naive();
        for offset in 0..MAX_DAYS_AHEAD {
            let date = start_date + Duration::days(offset);
            if !self.day_matches(date) {
                continue;
            }
            for hour in bits(self.hours) {
                for minute in bits(self.minutes) {
                    let at = Utc.from_utc_datetime(&date.and_hms_opt(hour, minute, 0)?);
                    if at >= start.with_second_zero() {
                        return Some(at);
                    }
                }
            }
        }
        None
    }
}

trait SecondZero {
    fn with_second_zero(self) -> Self;
}

impl SecondZero for DateTime<Utc> {
    fn with_second_zero(self) -> Self {
        use chrono::Timelike;
        self.with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(self)
    }
}

fn bits(set: u64) -> impl Iterator<Item = u32> {
    (0..64).filter(move |b| set & (1 << b) != 0)
}

fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{} step {step:?} is not a positive number", field.name)
                })?;
                (range, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a, field)?, number(b, field)?)
        } else {
            let n = number(range, field)?;
            // `N/S` means from N to the end, stepping S.
            (n, if item.contains('/') { field.max } else { n })
        };
        if lo > hi {
            return Err(format!("{} range {range:?} runs backwards", field.name));
        }
        for v in (lo..=hi).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

fn number(text: &str, field: &Field) -> Result<u32, String> {
    let n: u32 = text.parse().map_err(|_| {
        format!(
            "{} {text:?} is not a number (names such as MON or JAN are not accepted)",
            field.name
        )
    })?;
    if n < field.min || n > field.max {
        return Err(format!(
            "{} {n} is outside {}-{}",
            field.name, field.min, field.max
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn daily_runs_at_its_minute_every_day() {
        let spec = ScheduleSpec::parse("daily 02:00").unwrap();
        assert_eq!(spec, ScheduleSpec::parse("0 2 * * *").unwrap());
        let t = at("2026-12-01T01:59:30Z");
        assert_eq!(spec.next_after(t), Some(at("2026-12-01T02:00:00Z")));
        assert_eq!(
            spec.next_after(at("2026-12-01T02:00:00Z")),
            Some(at("2026-12-02T02:00:00Z"))
        );
        assert_eq!(
            spec.next_after(at("2026-12-31T03:00:00Z")),
            Some(at("2027-01-01T02:00:00Z"))
        );
    }

    #[test]
    fn cron_fields_steps_lists_and_weekdays() {
        let every_15 = ScheduleSpec::parse("*/15 * * * *").unwrap();
        assert_eq!(
            every_15.next_after(at("2026-12-01T10:16:00Z")),
            Some(at("2026-12-01T10:30:00Z"))
        );
        // 2026-12-06 is a Sunday; 7 is Sunday too.
        let sunday = ScheduleSpec::parse("30 4 * * 7").unwrap();
        assert_eq!(
            sunday.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-06T04:30:00Z"))
        );
        // Day-of-month OR day-of-week when both are restricted.
        let either = ScheduleSpec::parse("0 0 3 * 0").unwrap();
        assert_eq!(
            either.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-03T00:00:00Z"))
        );
        let list = ScheduleSpec::parse("0 6,18 1-2 1 *").unwrap();
        assert_eq!(
            list.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2027-01-01T06:00:00Z"))
        );
        let leap = ScheduleSpec::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at("2026-03-01T00:00:00Z")),
            Some(at("2028-02-29T00:00:00Z"))
        );
        assert_eq!(
            ScheduleSpec::parse("0 0 31 2 *")
                .unwrap()
                .next_after(at("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let cases = [
            ("daily 25:00", "is not a time HH:MM"),
            ("weekly", "has 1 fields"),
            ("61 * * * *", "minute 61 is outside 0-59"),
            ("0 0 * JAN *", "month \"JAN\" is not a number"),
            ("*/0 * * * *", "minute step \"0\""),
            ("5-2 * * * *", "runs backwards"),
            ("0 0 0 * *", "day-of-month 0 is outside 1-31"),
        ];
        for (text, want) in cases {
            let err = ScheduleSpec::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("daily HH:MM"), "{err}");
        }
    }
}
