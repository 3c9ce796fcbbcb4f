//! Pieces shared by the master's and the minion's config files.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// The longest duration accepted, in seconds (about 31 700 years).
const MAX_SECS: f64 = 1e12;

/// Parses a duration as written in config files and flags: a bare number of seconds
/// (`5`, `0.5`) or a number with a unit (`250ms`, `10s`, `5m`, `2h`, `1d`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(format!("{s:?} is not a duration (examples: 30, 500ms, 10s, 5m, 2h, 1d)"));
    }
    let nanos_per_unit: u128 = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" | "min" | "mins" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        u => return Err(format!("{s:?} has an unknown unit {u:?} (use ms, s, m, h or d)")),
    };
    // Decimal arithmetic in nanoseconds, not floating point: `44974091148ms` is exactly
    // that, and formats back the same. Digits past the 18th are below a nanosecond.
    let frac = &frac[..frac.len().min(18)];
    let scale = 10u128.pow(frac.len() as u32);
    let digits = |d: &str| if d.is_empty() { Some(0) } else { d.parse::<u128>().ok() };
    let nanos = digits(int)
        .and_then(|i| i.checked_mul(scale))
        .zip(digits(frac))
        .and_then(|(i, f)| i.checked_add(f))
        .and_then(|n| n.checked_mul(nanos_per_unit))
        .map(|n| n / scale)
        .filter(|&n| n <= MAX_SECS as u128 * 1_000_000_000)
        .ok_or_else(|| format!("{s:?} is out of range"))?;
    Ok(Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32))
}

/// Writes a duration in the shortest exact form [`parse_duration`] reads back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 86_400_000 == 0 && ms > 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Serde adapter: `#[serde(with = "brine_proto::config::duration")]`.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) if n.is_finite() && n >= 0.0 => {
                // The same bound as for text; `from_secs_f64` would panic past u64 seconds.
                if n > MAX_SECS {
                    return Err(serde::de::Error::custom(format!("{n} is out of range")));
                }
                Ok(Duration::from_secs_f64(n))
            }
            Raw::Secs(n) => Err(serde::de::Error::custom(format!("{n} is not a duration"))),
            Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// How the daemons write their logs (`log_format` in both config files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (without timestamps under systemd, which adds its own).
    #[default]
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

/// Checks a log filter as `log_level` and `--log-level` take it: a level (`error`,
/// `warn`, `info`, `debug`, `trace`, `off`) or comma-separated `target=level`
/// directives, possibly after a level (`info,brine_minion=debug`). A bare word that is
/// not a level would silently become a target filter (`inf` logs nothing), so it is
/// refused here.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for directive in filter.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            Some(_) => return Err(format!("{directive:?} names no target before '='")),
            None => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{level:?} is not a log level (use error, warn, info, debug, trace or off, or target=level)"
            ));
        }
    }
    Ok(())
}

/// The 1-based line where a config `key` is set in TOML `text`, for error messages:
/// `nats.listen` is the `listen = …` line under `[nats]`, `operators.alice` (or
/// `operators.alice.acl[0]`) the table's header. `None` when the key is not written
/// (it took its default) or is written in a form this simple reader does not follow.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let key = key.split('[').next().unwrap_or(key);
    let (table, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let name: String =
                header.trim_start_matches('[').split(']').next().unwrap_or("").split_whitespace().collect();
            if name == key {
                return Some(i + 1);
            }
            current = name;
        } else if current == table {
            let name = line.split('=').next().unwrap_or("").trim().trim_matches('"');
            if line.contains('=') && name == leaf {
                return Some(i + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_are_levels_or_target_directives() {
        for ok in ["info", "DEBUG", "off", "info,brine_minion=debug", "sled=warn"] {
            assert_eq!(check_log_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["inf", "loud=", "=info", "", "info,,debug", "info,verbose"] {
            assert!(check_log_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_keys_are_found_by_line() {
        let text = "prefix = \"a b\"\n#listen = \"x\"\n[nats]\nlisten = \"nowhere\"\n[operators.alice]\nkey = \"k\"\n\
                    [[operators.alice.acl]]\ntarget = \"*\"\n";
        assert_eq!(line_of(text, "prefix"), Some(1));
        assert_eq!(line_of(text, "nats.listen"), Some(4));
        assert_eq!(line_of(text, "operators.alice"), Some(5));
        assert_eq!(line_of(text, "operators.alice.key"), Some(6));
        assert_eq!(line_of(text, "operators.alice.acl[0]"), Some(7));
        assert_eq!(line_of(text, "keep_jobs"), None);
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
        assert!(parse_duration("1.2.3s").unwrap_err().contains("not a duration"));
        assert!(parse_duration("1e3").unwrap_err().contains("unknown unit"));
        assert!(parse_duration(&"9".repeat(40)).unwrap_err().contains("out of range"));
        assert!(parse_duration("1000000000001").unwrap_err().contains("out of range"));
        assert_eq!(parse_duration(".5m").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1.").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("0.1").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1.0000000001").unwrap(), Duration::from_secs(1), "below a nanosecond");
    }

    #[test]
    fn huge_numeric_durations_in_config_files_are_refused_not_a_panic() {
        #[derive(Debug, Deserialize)]
        struct T {
            #[serde(with = "duration")]
            #[allow(dead_code)]
            d: Duration,
        }
        // A bare number of seconds beyond what a Duration holds made
        // `Duration::from_secs_f64` panic (found writing the property tests).
        for text in [r#"{"d": 1e30}"#, r#"{"d": 1.8446744073709552e19}"#] {
            let err = serde_json::from_str::<T>(text).unwrap_err().to_string();
            assert!(err.contains("out of range"), "{text}: {err}");
        }
        let err = serde_json::from_str::<T>(r#"{"d": -1}"#).unwrap_err().to_string();
        assert!(err.contains("not a duration"), "{err}");
        assert_eq!(serde_json::from_str::<T>(r#"{"d": 1.5}"#).unwrap().d, Duration::from_millis(1500));
    }

    #[test]
    fn durations_format_back_exactly() {
        // 44974091148ms went through floating point and came back as ...147ms (found
        // by the property tests).
        for s in ["250ms", "10s", "5m", "2h", "1d", "0s", "90s", "44974091148ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
