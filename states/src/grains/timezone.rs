//! The local time zone's current abbreviation (`CET`, `AEDT`, `UTC`), for the
//! `locale_info:timezone` grain.
//!
//! Salt asks Python (`datetime.now(tzlocal()).tzname()`), which asks the C library:
//! the zone comes from `TZ`, else `/etc/localtime`. brine reads the same sources itself
//! rather than spawning `date`: a TZif file (RFC 8536) gives the abbreviation in force
//! at a moment, and past its last transition its footer, a POSIX `TZ` rule such as
//! `CET-1CEST,M3.5.0,M10.5.0/3`, says whether daylight time is on.

use std::path::Path;

/// Where the system keeps zone files named in `TZ`.
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The abbreviation in force now for this process's time zone; `None` when the zone
/// cannot be read.
pub fn abbreviation_now() -> Option<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let now = i64::try_from(now).ok()?;
    match std::env::var("TZ") {
        Err(_) => Some(from_file(Path::new("/etc/localtime"), now).unwrap_or_else(|| "UTC".into())),
        Ok(tz) => abbreviation_for_tz(&tz, now),
    }
}

/// What the C library makes of a `TZ` value: empty is UTC, `:file` or a zone name is a
/// zone file, anything else a POSIX rule.
fn abbreviation_for_tz(tz: &str, t: i64) -> Option<String> {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if name.is_empty() {
        return Some("UTC".into());
    }
    if name.starts_with('/') {
        return from_file(Path::new(name), t);
    }
    if !name.split('/').any(|part| part == "..") {
        if let Some(abbr) = from_file(&Path::new(ZONEINFO).join(name), t) {
            return Some(abbr);
        }
    }
    PosixRule::parse(name).map(|rule| rule.abbreviation_at(t).to_string())
}

fn from_file(path: &Path, t: i64) -> Option<String> {
    abbreviation_at(&std::fs::read(path).ok()?, t)
}

/// The counts in a TZif header.
struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

const HEADER_LEN: usize = 44;

fn header(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER_LEN || &b[..4] != b"TZif" {
        return None;
    }
    let count = |i: usize| -> Option<usize> {
        let raw = b.get(20 + 4 * i..24 + 4 * i)?;
        usize::try_from(u32::from_be_bytes(raw.try_into().ok()?)).ok()
    };
    Some(Header {
        version: b[4],
        isutcnt: count(0)?,
        isstdcnt: count(1)?,
        leapcnt: count(2)?,
        timecnt: count(3)?,
        typecnt: count(4)?,
        charcnt: count(5)?,
    })
}

impl Header {
    /// The length of the data block after this header, with `time_size`-byte times.
    fn data_len(&self, time_size: usize) -> usize {
        self.timecnt * (time_size + 1)
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * (time_size + 4)
            + self.isstdcnt
            + self.isutcnt
    }
}

/// The abbreviation a TZif file gives for the instant `t` (seconds since the epoch).
pub fn abbreviation_at(tzif: &[u8], t: i64) -> Option<String> {
    let first = header(tzif)?;
    // Version 2 and later repeat the data with 64-bit times, then add a footer rule.
    let (h, data, time_size, footer) = if first.version >= b'2' {
        let second_at = HEADER_LEN + first.data_len(4);
        let h = header(tzif.get(second_at..)?)?;
        let data_at = second_at + HEADER_LEN;
        let footer_at = data_at + h.data_len(8);
        let footer = tzif.get(footer_at..).and_then(|f| {
            let f = std::str::from_utf8(f).ok()?.strip_prefix('\n')?;
            Some(f.split('\n').next().unwrap_or_default().to_string())
        });
        (h, tzif.get(data_at..footer_at)?, 8, footer.filter(|f| !f.is_empty()))
    } else {
        (first, tzif.get(HEADER_LEN..)?, 4, None)
    };
    let times: Vec<i64> = (0..h.timecnt)
        .map(|i| {
            let raw = data.get(i * time_size..(i + 1) * time_size)?;
            Some(if time_size == 8 {
                i64::from_be_bytes(raw.try_into().ok()?)
            } else {
                i64::from(i32::from_be_bytes(raw.try_into().ok()?))
            })
        })
        .collect::<Option<_>>()?;
    let indices = data.get(h.timecnt * time_size..h.timecnt * (time_size + 1))?;
    let types_at = h.timecnt * (time_size + 1);
    let chars_at = types_at + h.typecnt * 6;
    let chars = data.get(chars_at..chars_at + h.charcnt)?;

    let past_last = times.last().is_none_or(|last| t >= *last);
    if past_last {
        if let Some(rule) = footer.as_deref().and_then(PosixRule::parse) {
            return Some(rule.abbreviation_at(t).to_string());
        }
    }
    // Before the first transition the first type applies (RFC 8536 §3.2).
    let kind = match times.partition_point(|x| *x <= t) {
        0 => 0,
        n => usize::from(*indices.get(n - 1)?),
    };
    let ttinfo = data.get(types_at + kind * 6..types_at + kind * 6 + 6)?;
    let from = usize::from(ttinfo[5]);
    let abbr = chars.get(from..)?;
    let end = abbr.iter().position(|b| *b == 0).unwrap_or(abbr.len());
    Some(String::from_utf8_lossy(&abbr[..end]).into_owned())
}

/// A POSIX `TZ` rule: `std offset [dst [offset] [,start[/time],end[/time]]]`.
#[derive(Debug, Clone, PartialEq)]
struct PosixRule {
    std: String,
    /// Seconds east of UTC (POSIX writes offsets west-positive).
    std_east: i64,
    dst: Option<Daylight>,
}

#[derive(Debug, Clone, PartialEq)]
struct Daylight {
    name: String,
    east: i64,
    start: (DateRule, i64),
    end: (DateRule, i64),
}

/// When in the year a change happens.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DateRule {
    /// `Jn`: day 1..=365, February 29 never counted.
    Julian(i64),
    /// `n`: day 0..=365, February 29 counted.
    Zero(i64),
    /// `Mm.w.d`: weekday d (0 = Sunday) of week w (5 = last) of month m.
    Month { m: i64, w: i64, d: i64 },
}

impl PosixRule {
    fn parse(s: &str) -> Option<PosixRule> {
        let mut rest = s;
        let std = take_name(&mut rest)?;
        let std_east = -take_offset(&mut rest)?;
        if rest.is_empty() {
            return Some(PosixRule { std, std_east, dst: None });
        }
        let name = take_name(&mut rest)?;
        let east = if rest.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
            -take_offset(&mut rest)?
        } else {
            std_east + 3600
        };
        // Without rules, the C library uses the US rules.
        let (start, end) = match rest.strip_prefix(',') {
            None if rest.is_empty() => {
                ((DateRule::Month { m: 3, w: 2, d: 0 }, 7200), (DateRule::Month { m: 11, w: 1, d: 0 }, 7200))
            }
            None => return None,
            Some(r) => {
                let (a, b) = r.split_once(',')?;
                (take_change(a)?, take_change(b)?)
            }
        };
        Some(PosixRule { std, std_east, dst: Some(Daylight { name, east, start, end }) })
    }

    fn abbreviation_at(&self, t: i64) -> &str {
        let Some(dst) = &self.dst else { return &self.std };
        let year = civil_year((t + self.std_east).div_euclid(86_400));
        // Daylight time starts at a standard-time clock reading and ends at a
        // daylight-time one.
        let start = dst.start.0.day(year) * 86_400 + dst.start.1 - self.std_east;
        let end = dst.end.0.day(year) * 86_400 + dst.end.1 - dst.east;
        let on = if start < end { start <= t && t < end } else { !(end <= t && t < start) };
        if on {
            &dst.name
        } else {
            &self.std
        }
    }
}

/// `CET` or `<+03>`.
fn take_name(rest: &mut &str) -> Option<String> {
    let (name, tail) = if let Some(quoted) = rest.strip_prefix('<') {
        let (name, tail) = quoted.split_once('>')?;
        (name, tail)
    } else {
        let end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        rest.split_at(end)
    };
    if name.is_empty() {
        return None;
    }
    *rest = tail;
    Some(name.to_string())
}

/// `[+-]h[:mm[:ss]]` in seconds.
fn take_offset(rest: &mut &str) -> Option<i64> {
    let end = rest.find(|c: char| !(c.is_ascii_digit() || matches!(c, ':' | '+' | '-'))).unwrap_or(rest.len());
    let (text, tail) = rest.split_at(end);
    *rest = tail;
    let (sign, digits) = match text.strip_prefix('-') {
        Some(d) => (-1, d),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let mut parts = digits.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let s: i64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some(sign * (h * 3600 + m * 60 + s))
}

/// `date[/time]`, the time defaulting to 02:00.
fn take_change(s: &str) -> Option<(DateRule, i64)> {
    let (date, time) = match s.split_once('/') {
        Some((d, t)) => {
            let mut t = t;
            (d, take_offset(&mut t)?)
        }
        None => (s, 7200),
    };
    let rule = if let Some(n) = date.strip_prefix('J') {
        DateRule::Julian(n.parse().ok()?)
    } else if let Some(mwd) = date.strip_prefix('M') {
        let mut it = mwd.split('.').map(|p| p.parse::<i64>().ok());
        DateRule::Month { m: it.next()??, w: it.next()??, d: it.next()?? }
    } else {
        DateRule::Zero(date.parse().ok()?)
    };
    Some((rule, time))
}

impl DateRule {
    /// The day (since the epoch) this rule names in `year`.
    fn day(self, year: i64) -> i64 {
        let jan1 = days_from_civil(year, 1, 1);
        match self {
            DateRule::Julian(n) => jan1 + n - 1 + i64::from(is_leap(year) && n >= 60),
            DateRule::Zero(n) => jan1 + n,
            DateRule::Month { m, w, d } => {
                let first = days_from_civil(year, m, 1);
                // 1970-01-01 was a Thursday (4).
                let weekday = (first + 4).rem_euclid(7);
                let mut offset = (d - weekday).rem_euclid(7) + (w - 1) * 7;
                let len = days_from_civil(if m == 12 { year + 1 } else { year }, m % 12 + 1, 1) - first;
                while offset >= len {
                    offset -= 7;
                }
                first + offset
            }
        }
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a day since 1970-01-01.
fn civil_year(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    yoe + era * 400 + i64::from(mp >= 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-15 12:00 UTC and 2025-07-15 12:00 UTC.
    const WINTER: i64 = 1_736_942_400;
    const SUMMER: i64 = 1_752_580_800;

    #[test]
    fn calendar_arithmetic_is_right() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2025, 1, 15), WINTER / 86_400);
        for days in [-1, 0, 365, 11_016, 11_017, WINTER / 86_400, SUMMER / 86_400] {
            let y = civil_year(days);
            assert!(days_from_civil(y, 1, 1) <= days && days < days_from_civil(y + 1, 1, 1), "{days}");
        }
        // The last Sunday of March 2025 is the 30th; the first Sunday of November the 2nd.
        assert_eq!(DateRule::Month { m: 3, w: 5, d: 0 }.day(2025), days_from_civil(2025, 3, 30));
        assert_eq!(DateRule::Month { m: 11, w: 1, d: 0 }.day(2025), days_from_civil(2025, 11, 2));
        assert_eq!(DateRule::Julian(60).day(2024), days_from_civil(2024, 3, 1));
        assert_eq!(DateRule::Zero(59).day(2024), days_from_civil(2024, 2, 29));
    }

    #[test]
    fn posix_rules_pick_standard_or_daylight_time() {
        let paris = PosixRule::parse("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(paris.std_east, 3600);
        assert_eq!((paris.abbreviation_at(WINTER), paris.abbreviation_at(SUMMER)), ("CET", "CEST"));
        // Southern hemisphere: daylight time spans the new year.
        let sydney = PosixRule::parse("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!((sydney.abbreviation_at(WINTER), sydney.abbreviation_at(SUMMER)), ("AEDT", "AEST"));
        let sao_paulo = PosixRule::parse("<-03>3").unwrap();
        assert_eq!(sao_paulo.abbreviation_at(SUMMER), "-03");
        // No rules: the US ones.
        let eastern = PosixRule::parse("EST5EDT").unwrap();
        assert_eq!((eastern.abbreviation_at(WINTER), eastern.abbreviation_at(SUMMER)), ("EST", "EDT"));
        // The change happens at 01:00 UTC in Paris on 2025-03-30.
        let change = days_from_civil(2025, 3, 30) * 86_400 + 3600;
        assert_eq!((paris.abbreviation_at(change - 1), paris.abbreviation_at(change)), ("CET", "CEST"));
        assert!(PosixRule::parse("").is_none() && PosixRule::parse("CET-1CEST,M3.5.0").is_none());
        assert_eq!(abbreviation_for_tz("", SUMMER).as_deref(), Some("UTC"));
        assert_eq!(abbreviation_for_tz("JST-9", SUMMER).as_deref(), Some("JST"));
    }

    #[test]
    fn zone_files_give_the_abbreviation_in_force() {
        let zone = |name: &str| std::fs::read(Path::new(ZONEINFO).join(name)).ok();
        let (Some(paris), Some(sydney), Some(utc)) = (zone("Europe/Paris"), zone("Australia/Sydney"), zone("Etc/UTC"))
        else {
            eprintln!("skipped: no tzdata in {ZONEINFO}");
            return;
        };
        assert_eq!(abbreviation_at(&paris, WINTER).as_deref(), Some("CET"));
        assert_eq!(abbreviation_at(&paris, SUMMER).as_deref(), Some("CEST"));
        // Far past the file's transitions, the footer rule decides.
        assert_eq!(abbreviation_at(&paris, SUMMER + 40 * 365 * 86_400).as_deref(), Some("CEST"));
        // Before the first transition: local mean time.
        assert_eq!(abbreviation_at(&paris, -5_000_000_000).as_deref(), Some("LMT"));
        assert_eq!(abbreviation_at(&sydney, WINTER).as_deref(), Some("AEDT"));
        assert_eq!(abbreviation_at(&utc, SUMMER).as_deref(), Some("UTC"));
        assert_eq!(abbreviation_for_tz(":Europe/Paris", WINTER).as_deref(), Some("CET"));
        assert_eq!(abbreviation_for_tz("../../etc/passwd", WINTER), None);
        assert_eq!(abbreviation_at(b"not a zone file", 0), None);
        assert_eq!(abbreviation_at(&paris[..60], 0), None, "truncated");
    }
}
