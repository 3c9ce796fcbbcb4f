//! Wall-clock helpers. Message stamps are Unix milliseconds so that peers with
//! different clocks can reason about skew in plain numbers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_micros() as u64
}

/// A civil date and time in UTC, as used by JIDs and displayed timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Civil {
    /// Splits Unix microseconds into a UTC calendar date and time.
    pub fn from_unix_micros(micros: u64) -> Civil {
        let secs = micros / 1_000_000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            micros: (micros % 1_000_000) as u32,
        }
    }

    /// Joins a UTC calendar date and time back into Unix microseconds, or `None` if a
    /// field is out of range or the moment lies before 1970.
    pub fn to_unix_micros(&self) -> Option<u64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
            || self.micros > 999_999
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        if days < 0 {
            return None;
        }
        // A year far enough out overflows microseconds in u64: no such moment either.
        let secs = (days as u64)
            .checked_mul(86_400)?
            .checked_add(self.hour as u64 * 3600 + self.minute as u64 * 60 + self.second as u64)?;
        secs.checked_mul(1_000_000)?.checked_add(self.micros as u64)
    }
}

impl std::fmt::Display for Civil {
    /// RFC 3339 with microseconds, the way brine shows times to people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }
}

/// Formats Unix milliseconds for people (UTC, RFC 3339).
pub fn format_ms(ms: u64) -> String {
    Civil::from_unix_micros(ms.saturating_mul(1000)).to_string()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

// Days since 1970-01-01 <-> proleptic Gregorian date; the era-based method that
// handles every day without loops.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_beyond_microseconds_in_u64_is_no_moment() {
        let far = Civil { year: 800_182, month: 7, day: 4, hour: 0, minute: 0, second: 0, micros: 0 };
        assert_eq!(far.to_unix_micros(), None);
        let near = Civil { year: 2026, month: 11, day: 23, hour: 16, minute: 0, second: 0, micros: 0 };
        assert_eq!(Civil::from_unix_micros(near.to_unix_micros().unwrap()), near);
    }

    #[test]
    fn civil_round_trips_across_leap_years_and_eras() {
        for micros in [
            0u64,
            951_782_400_000_000,   // 2000-02-29
            1_709_164_800_123_456, // 2024-02-29
            4_102_444_799_999_999, // 2099-12-31T23:59:59.999999
        ] {
            let c = Civil::from_unix_micros(micros);
            assert_eq!(c.to_unix_micros(), Some(micros), "{c}");
        }
        let c = Civil::from_unix_micros(951_782_400_000_000);
        assert_eq!((c.year, c.month, c.day), (2000, 2, 29));
    }

    #[test]
    fn civil_rejects_impossible_dates() {
        let bad = Civil { year: 2023, month: 2, day: 29, hour: 0, minute: 0, second: 0, micros: 0 };
        assert_eq!(bad.to_unix_micros(), None);
        let bad = Civil { year: 1969, month: 12, day: 31, hour: 0, minute: 0, second: 0, micros: 0 };
        assert_eq!(bad.to_unix_micros(), None);
    }
}
