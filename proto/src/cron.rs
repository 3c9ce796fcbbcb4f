//! Five-field cron expressions (`minute hour day-of-month month day-of-week`), as
//! schedules write them: `*`, lists (`1,15`), ranges (`1-5`), steps (`*/10`, `0-30/5`,
//! `5/15`), month and weekday names (`jan`, `mon-fri`), `7` for Sunday, and the
//! `@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly` shorthands. Times are UTC.
//!
//! As in Vixie cron, when both day fields are restricted a day matches if either
//! does (`0 0 1 * mon` runs on the 1st *and* on Mondays).

use crate::time::Civil;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Whether each day field was restricted (did not start with `*`).
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why an expression is not a cron expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {expr:?}: {reason}")]
pub struct CronError {
    pub expr: String,
    pub reason: String,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    what: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field { what: "minute", min: 0, max: 59, names: &[] },
    Field { what: "hour", min: 0, max: 23, names: &[] },
    Field { what: "day of month", min: 1, max: 31, names: &[] },
    Field { what: "month", min: 1, max: 12, names: &MONTHS },
    // 7 is Sunday too; folded into 0 below.
    Field { what: "day of week", min: 0, max: 7, names: &WEEKDAYS },
];

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            // Month names count from 1 (January), weekday names from 0 (Sunday).
            return Ok(i as u32 + self.min);
        }
        let v: u32 = s.parse().map_err(|_| format!("{:?} is not a {}", s, self.what))?;
        if v < self.min || v > self.max {
            return Err(format!("{} {v} is out of range {}-{}", self.what, self.min, self.max));
        }
        Ok(v)
    }

    /// The bit set of the values one field allows.
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for part in text.split(',') {
            if part.is_empty() {
                return Err(format!("empty list item in the {} field", self.what));
            }
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 =
                        s.parse().map_err(|_| format!("step {s:?} in the {} field is not a number", self.what))?;
                    if step == 0 {
                        return Err(format!("step 0 in the {} field", self.what));
                    }
                    (r, step)
                }
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!("range {range} in the {} field goes backwards", self.what));
                }
                (a, b)
            } else {
                let v = self.value(range)?;
                // `5/15` means from 5 to the end in steps of 15.
                (v, if part.contains('/') { self.max } else { v })
            };
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                // A step past the field's end ends the range (and cannot overflow).
                v = v.saturating_add(step);
            }
        }
        Ok(bits)
    }
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(expr: &str) -> Result<Cron, CronError> {
        let err = |reason: String| CronError { expr: expr.to_string(), reason };
        let expanded = match expr.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(err(format!("unknown shorthand {s}"))),
            s => s,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                parts.len()
            )));
        }
        let mut bits = [0u64; 5];
        for (i, (field, text)) in FIELDS.iter().zip(&parts).enumerate() {
            bits[i] = field.parse(text).map_err(err)?;
        }
        let mut weekdays = bits[4];
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            minutes: bits[0],
            hours: bits[1] as u32,
            days: bits[2] as u32,
            months: bits[3] as u16,
            weekdays: weekdays as u8,
            days_restricted: !parts[2].starts_with('*'),
            weekdays_restricted: !parts[4].starts_with('*'),
        })
    }
}

impl Cron {
    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let d = self.days & (1 << day) != 0;
        let w = self.weekdays & (1 << weekday) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => d || w,
            _ => d && w,
        }
    }

    /// The first whole minute strictly after `after_ms` (Unix milliseconds, UTC) that
    /// the expression matches, or `None` if none comes within eight years (`0 0 30 2 *`).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        const MINUTE: u64 = 60_000;
        const DAY: u64 = 86_400_000;
        let start = (after_ms / MINUTE + 1) * MINUTE;
        let first_day = start / DAY;
        for day in first_day..first_day + 8 * 366 {
            let c = Civil::from_unix_micros(day * DAY * 1000);
            let weekday = ((day + 4) % 7) as u32; // 1970-01-01 was a Thursday
            if self.months & (1 << c.month) == 0 || !self.day_matches(c.day, weekday) {
                continue;
            }
            let from = if day == first_day { start % DAY / MINUTE } else { 0 };
            for minute_of_day in from..24 * 60 {
                let (h, m) = (minute_of_day / 60, minute_of_day % 60);
                if self.hours & (1 << h) != 0 && self.minutes & (1 << m) != 0 {
                    return Some(day * DAY + minute_of_day * MINUTE);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a UTC date and time.
    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        Civil { year: y, month: mo, day: d, hour: h, minute: mi, second: 0, micros: 0 }.to_unix_micros().unwrap() / 1000
    }

    fn next(expr: &str, after: u64) -> u64 {
        expr.parse::<Cron>().unwrap().next_after(after).unwrap()
    }

    #[test]
    fn every_form_of_field_parses() {
        // 2026-11-23 is a Monday.
        let now = at(2026, 11, 23, 10, 7);
        assert_eq!(next("* * * * *", now), at(2026, 11, 23, 10, 8));
        assert_eq!(next("* * * * *", now + 30_000), at(2026, 11, 23, 10, 8), "whole minutes only");
        assert_eq!(next("*/15 * * * *", now), at(2026, 11, 23, 10, 15));
        assert_eq!(next("0-30/10 * * * *", now), at(2026, 11, 23, 10, 10));
        assert_eq!(next("5/20 * * * *", now), at(2026, 11, 23, 10, 25));
        assert_eq!(next("7/4294967295 * * * *", now), at(2026, 11, 23, 11, 7), "a huge step is one value");
        assert_eq!(next("0,45 9,17 * * *", now), at(2026, 11, 23, 17, 0));
        assert_eq!(next("30 2 * * *", now), at(2026, 11, 24, 2, 30));
        assert_eq!(next("0 0 1 jan *", now), at(2027, 1, 1, 0, 0));
        assert_eq!(next("0 12 * * sat", now), at(2026, 11, 28, 12, 0));
        assert_eq!(next("0 12 * * SUN", now), at(2026, 11, 29, 12, 0));
        assert_eq!(next("0 12 * * 7", now), at(2026, 11, 29, 12, 0), "7 is Sunday");
        assert_eq!(next("0 12 * * mon-fri", at(2026, 11, 27, 13, 0)), at(2026, 11, 30, 12, 0));
        assert_eq!(next("0 0 29 feb *", now), at(2028, 2, 29, 0, 0));
        assert_eq!(next("@hourly", now), at(2026, 11, 23, 11, 0));
        assert_eq!(next("@daily", now), at(2026, 11, 24, 0, 0));
        assert_eq!(next("@weekly", now), at(2026, 11, 29, 0, 0));
        assert_eq!(next("@monthly", now), at(2026, 12, 1, 0, 0));
        assert_eq!(next("@yearly", now), at(2027, 1, 1, 0, 0));
    }

    #[test]
    fn restricted_day_fields_match_either_day() {
        let now = at(2026, 11, 23, 10, 7); // Monday the 23rd
                                           // The 1st of the month or any Wednesday: Wednesday the 25th comes first.
        assert_eq!(next("0 0 1 * wed", now), at(2026, 11, 25, 0, 0));
        // With one day field a wildcard, both must match: the 1st only if a Wednesday.
        assert_eq!(next("0 0 * * wed", now), at(2026, 11, 25, 0, 0));
        assert_eq!(next("0 0 1 * *", now), at(2026, 12, 1, 0, 0));
    }

    #[test]
    fn crossing_months_and_years() {
        assert_eq!(next("59 23 31 12 *", at(2026, 12, 31, 23, 59)), at(2027, 12, 31, 23, 59));
        assert_eq!(next("0 0 31 * *", at(2026, 11, 1, 0, 0)), at(2026, 12, 31, 0, 0));
        assert_eq!("0 0 30 feb *".parse::<Cron>().unwrap().next_after(at(2026, 1, 1, 0, 0)), None);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, why) in [
            ("* * * *", "expected 5 fields"),
            ("* * * * * *", "expected 5 fields"),
            ("60 * * * *", "minute 60 is out of range 0-59"),
            ("* 24 * * *", "hour 24 is out of range 0-23"),
            ("* * 0 * *", "day of month 0 is out of range 1-31"),
            ("* * * 13 *", "month 13 is out of range 1-12"),
            ("* * * * 8", "day of week 8 is out of range 0-7"),
            ("*/0 * * * *", "step 0"),
            ("5-1 * * * *", "goes backwards"),
            ("a * * * *", "\"a\" is not a minute"),
            ("1,,2 * * * *", "empty list item"),
            ("* * * foo *", "\"foo\" is not a month"),
            ("@often", "unknown shorthand"),
            ("*/x * * * *", "is not a number"),
        ] {
            let e = expr.parse::<Cron>().unwrap_err().to_string();
            assert!(e.contains(why), "{expr}: {e}");
        }
    }
}
