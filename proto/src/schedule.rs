//! Schedules, as Salt's scheduler runs them: named entries that run a function every
//! `seconds`/`minutes`/`hours`/`days`, on a `cron` expression, or `once` at a time,
//! with `splay`, a time `range`, `maxrunning`, `run_on_start` and `enabled`.
//!
//! This is the pure part shared by the minion's and the master's schedulers: an
//! entry's validation ([`Entry::parse`]) and the bookkeeping of when each entry runs
//! next ([`Schedule`]), driven by the caller's clock (`now`, Unix milliseconds, UTC)
//! so it is tested with fixed clocks. The caller launches what [`Schedule::due`]
//! returns and reports each run's end with [`Schedule::finished`].

use crate::cron::Cron;
use crate::time::Civil;
use crate::{Map, Value};
use std::collections::BTreeMap;

/// Keys that are not entries in a schedule map (Salt keeps these beside the entries).
pub const RESERVED: &[&str] = &["enabled", "skip_function", "skip_during_range"];

/// The keys Salt's scheduler knows (what `schedule.list` shows), plus brine's master
/// keys `tgt` and `tgt_type`, and the `job_args`/`job_kwargs` spellings of
/// `schedule.add`.
const KNOWN: &[&str] = &[
    "name",
    "maxrunning",
    "function",
    "splay",
    "range",
    "when",
    "once",
    "once_fmt",
    "returner",
    "jid_include",
    "args",
    "kwargs",
    "job_args",
    "job_kwargs",
    "_seconds",
    "seconds",
    "minutes",
    "hours",
    "days",
    "enabled",
    "return_job",
    "metadata",
    "cron",
    "until",
    "after",
    "return_config",
    "return_kwargs",
    "run_on_start",
    "skip_during_range",
    "run_after_skip_range",
    "tgt",
    "tgt_type",
];

/// Keys Salt accepts that brine does not implement: refused rather than silently
/// ignored, since a schedule that never runs as written is worse than an error.
const UNSUPPORTED: &[&str] = &["when", "until", "after", "once_fmt", "skip_during_range", "run_after_skip_range"];

/// When an entry runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Timing {
    /// Every this many milliseconds (the sum of seconds, minutes, hours and days).
    Every(u64),
    /// On a cron expression.
    Cron(Cron),
    /// Once, at this Unix millisecond.
    Once(u64),
}

/// A moment in a `range`: a time of day (every day) or a date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Seconds after midnight, UTC.
    TimeOfDay(u32),
    /// Unix milliseconds.
    At(u64),
}

/// A `range`: runs only between `start` and `end` (or only outside with `invert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Moment,
    pub end: Moment,
    pub invert: bool,
}

impl Window {
    /// Whether an entry with this range may run at `now`.
    pub fn allows(&self, now: u64) -> bool {
        let pos = |m: Moment| match m {
            Moment::TimeOfDay(s) => (now - now % 86_400_000) + u64::from(s) * 1000,
            Moment::At(ms) => ms,
        };
        let inside = pos(self.start) <= now && now <= pos(self.end);
        inside != self.invert
    }
}

/// One validated schedule entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub function: String,
    pub args: Vec<Value>,
    pub kwargs: Map,
    pub timing: Timing,
    /// Seconds of random delay added to each run: `(start, end)`.
    pub splay: Option<(u64, u64)>,
    pub range: Option<Window>,
    /// Runs of this entry allowed at the same time (Salt's default: 1).
    pub maxrunning: u32,
    /// Run as soon as the scheduler starts instead of one interval later.
    pub run_on_start: bool,
    pub enabled: bool,
    /// Whether the run is registered as a job (`saltutil.running`), as Salt's.
    pub jid_include: bool,
    /// Master schedules: the target and its type (`glob`, `list`, `grain`, …).
    pub tgt: Option<String>,
    pub tgt_type: String,
}

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule entry {name:?}: {reason}")]
pub struct EntryError {
    pub name: String,
    pub reason: String,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// Parses `2026-11-23T10:00:00`, `2026-11-23 10:00`, with optional fractional
/// seconds and `Z` or `±HH:MM` (no offset means UTC) into Unix milliseconds.
pub fn parse_datetime(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, rest) = s.split_at_checked(10)?;
    let mut d = date.split('-');
    let (year, month, day) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let rest = rest.strip_prefix(['T', ' ']).unwrap_or(rest);
    let (time, offset_secs): (&str, i64) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|i| *i >= 5) {
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        let (h, m) = (h.parse::<i64>().ok().filter(|h| *h <= 23)?, m.parse::<i64>().ok().filter(|m| *m <= 59)?);
        (t, sign * (h * 3600 + m * 60))
    } else {
        (rest, 0)
    };
    let secs = if time.is_empty() { 0 } else { time_of_day_24(time)? };
    let civil = Civil { year, month, day, hour: secs / 3600, minute: secs % 3600 / 60, second: secs % 60, micros: 0 };
    let local = civil.to_unix_micros()? / 1000;
    u64::try_from(local as i64 - offset_secs * 1000).ok()
}

/// `HH:MM[:SS[.frac]]` into seconds after midnight.
fn time_of_day_24(s: &str) -> Option<u32> {
    let mut parts = s.split(':');
    let h: u32 = parts.next()?.trim().parse().ok()?;
    let m: u32 = parts.next().map(|m| m.trim().parse().ok()).unwrap_or(Some(0))?;
    let sec: u32 = match parts.next() {
        Some(s) => s.split('.').next()?.trim().parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

/// A value as written, with an unquoted TOML date-time (which reaches us as
/// `{"$__toml_private_datetime": "…"}`) turned into its text.
fn toml_datetime(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 => match m.get("$__toml_private_datetime") {
            Some(Value::String(s)) => Value::String(s.clone()),
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

/// A range bound: a date and time, or a time of day (`15:00`, `3pm`, `5:30 PM`).
pub fn parse_moment(s: &str) -> Option<Moment> {
    if let Some(ms) = parse_datetime(s) {
        return Some(Moment::At(ms));
    }
    let lower = s.trim().to_ascii_lowercase();
    let (clock, pm) = match (lower.strip_suffix("am"), lower.strip_suffix("pm")) {
        (Some(c), _) => (c.trim(), Some(false)),
        (_, Some(c)) => (c.trim(), Some(true)),
        _ => (lower.as_str(), None),
    };
    let secs = time_of_day_24(clock)?;
    match pm {
        None => Some(Moment::TimeOfDay(secs)),
        Some(pm) => {
            let h = secs / 3600;
            if !(1..=12).contains(&h) {
                return None;
            }
            let h24 = match (h, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, true) => h + 12,
                (h, false) => h,
            };
            Some(Moment::TimeOfDay(h24 * 3600 + secs % 3600))
        }
    }
}

impl Entry {
    /// Validates one entry (Salt's item map). `master` allows (and requires) `tgt`.
    pub fn parse(name: &str, item: &Map, master: bool) -> Result<Entry, EntryError> {
        let err = |reason: String| EntryError { name: name.to_string(), reason };
        if name.is_empty() {
            return Err(err("a schedule entry needs a name".into()));
        }
        if RESERVED.contains(&name) {
            return Err(err(format!("{name:?} is a reserved word of the schedule, not an entry name")));
        }
        for key in item.keys() {
            if UNSUPPORTED.contains(&key.as_str()) {
                return Err(err(format!("{key:?} is not supported by brine's scheduler; use cron, once or range")));
            }
            if !KNOWN.contains(&key.as_str()) {
                return Err(err(format!("unknown key {key:?}")));
            }
        }
        let function = match item.get("function") {
            Some(Value::String(f)) if f.split_once('.').is_some_and(|(m, f)| !m.is_empty() && !f.is_empty()) => {
                f.clone()
            }
            Some(other) => return Err(err(format!("function must be module.function, e.g. test.ping, not {other}"))),
            None => return Err(err("function is required (module.function, e.g. test.ping)".into())),
        };
        let args = match item.get("args").or_else(|| item.get("job_args")) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(err("job_args is not a list. please correct and try again.".into())),
        };
        let kwargs = match item.get("kwargs").or_else(|| item.get("job_kwargs")) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(err("job_kwargs is not a dict. please correct and try again.".into())),
        };
        let mut every_ms = 0f64;
        let mut interval = false;
        for (key, unit) in [("seconds", 1.0), ("minutes", 60.0), ("hours", 3600.0), ("days", 86_400.0)] {
            if let Some(v) = item.get(key).filter(|v| !v.is_null()) {
                let n = number(v)
                    .filter(|n| n.is_finite() && *n >= 0.0 && *n < 1e9)
                    .ok_or_else(|| err(format!("{key} must be a non-negative number, not {v}")))?;
                every_ms += n * unit * 1000.0;
                interval = true;
            }
        }
        let cron = item.get("cron").filter(|v| !v.is_null());
        let once = item.get("once").filter(|v| !v.is_null()).map(toml_datetime);
        let timing = match (interval, cron, once) {
            (true, None, None) => {
                if every_ms < 1000.0 {
                    return Err(err("the interval must be at least one second".into()));
                }
                Timing::Every(every_ms as u64)
            }
            (false, Some(Value::String(c)), None) => Timing::Cron(c.parse::<Cron>().map_err(|e| err(e.to_string()))?),
            (false, Some(other), None) => return Err(err(format!("cron must be a string, not {other}"))),
            (false, None, Some(Value::String(t))) => Timing::Once(parse_datetime(&t).ok_or_else(|| {
                err(format!(
                    "once {t:?} is not a date and time (e.g. 2026-11-23T10:00:00, UTC unless an offset is given)"
                ))
            })?),
            (false, None, Some(other)) => return Err(err(format!("once must be a date and time string, not {other}"))),
            (false, None, None) => {
                return Err(err("needs seconds, minutes, hours, days, cron or once to say when it runs".into()))
            }
            _ => return Err(err(
                "Unable to use \"seconds\", \"minutes\", \"hours\", or \"days\" with \"when\" or \"cron\" options, \
                     nor \"cron\" with \"once\"."
                    .into(),
            )),
        };
        let splay = match item.get("splay") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let bound = |k: &str| {
                    m.get(k)
                        .and_then(number)
                        .filter(|n| *n >= 0.0 && *n < 1e9)
                        .map(|n| n as u64)
                        .ok_or_else(|| err(format!("splay needs {k} as a number of seconds")))
                };
                let (start, end) = (bound("start")?, bound("end")?);
                if start > end {
                    return Err(err("splay end must be larger than start".into()));
                }
                Some((start, end))
            }
            Some(v) => match number(v).filter(|n| *n >= 0.0 && *n < 1e9) {
                Some(n) => Some((0, n as u64)),
                None => return Err(err(format!("splay must be seconds or {{start, end}}, not {v}"))),
            },
        };
        let range = match item.get("range") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let bound = |k: &str| {
                    let v = m.get(k).map(toml_datetime);
                    let s = v.as_ref().and_then(Value::as_str).ok_or_else(|| err(format!("range needs {k}")))?;
                    parse_moment(s).ok_or_else(|| err(format!("range {k} {s:?} is not a time (e.g. 08:00, 5pm)")))
                };
                let (start, end) = (bound("start")?, bound("end")?);
                let ordered = match (start, end) {
                    (Moment::TimeOfDay(a), Moment::TimeOfDay(b)) => a <= b,
                    (Moment::At(a), Moment::At(b)) => a <= b,
                    _ => return Err(err("range start and end must both be times of day or both dates".into())),
                };
                if !ordered {
                    return Err(err("Invalid range, end must be larger than start".into()));
                }
                let invert = match m.get("invert") {
                    None | Some(Value::Null) => false,
                    Some(v) => boolean(v).ok_or_else(|| err(format!("range invert must be true or false, not {v}")))?,
                };
                Some(Window { start, end, invert })
            }
            Some(v) => return Err(err(format!("range must be {{start, end}}, not {v}"))),
        };
        let flag = |key: &str, default: bool| match item.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => boolean(v).ok_or_else(|| err(format!("{key} must be true or false, not {v}"))),
        };
        let maxrunning = match item.get("maxrunning") {
            None | Some(Value::Null) => 1,
            Some(v) => number(v)
                .filter(|n| *n >= 1.0 && *n <= 1e6 && n.fract() == 0.0)
                .map(|n| n as u32)
                .ok_or_else(|| err(format!("maxrunning must be a whole number of at least 1, not {v}")))?,
        };
        let tgt = match item.get("tgt") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
            Some(v) => return Err(err(format!("tgt must be a target string, not {v}"))),
        };
        let tgt_type = match item.get("tgt_type") {
            None | Some(Value::Null) => "glob".to_string(),
            Some(Value::String(t)) => t.clone(),
            Some(v) => return Err(err(format!("tgt_type must be a string, not {v}"))),
        };
        match (master, &tgt) {
            (true, None) => return Err(err("a master schedule needs tgt, the minions to run the job on".into())),
            (false, Some(_)) => {
                return Err(err("tgt is for master schedules; a minion runs its schedule itself".into()))
            }
            _ => {}
        }
        Ok(Entry {
            function,
            args,
            kwargs,
            timing,
            splay,
            range,
            maxrunning,
            run_on_start: flag("run_on_start", false)?,
            enabled: flag("enabled", true)?,
            jid_include: flag("jid_include", true)?,
            tgt,
            tgt_type,
        })
    }
}

/// Salt's normal form of an item as `schedule.add` stores it: `job_args`/`job_kwargs`
/// become `args`/`kwargs`, and `maxrunning`, `name`, `enabled` and `jid_include` are
/// filled in with their defaults.
pub fn normalize(name: &str, item: &Map) -> Map {
    let mut out = Map::new();
    for (k, v) in item {
        let key = match k.as_str() {
            "job_args" => "args",
            "job_kwargs" => "kwargs",
            k => k,
        };
        if !v.is_null() {
            out.insert(key.to_string(), v.clone());
        }
    }
    out.entry("maxrunning").or_insert(Value::from(1));
    out.entry("name").or_insert(Value::from(name));
    out.entry("enabled").or_insert(Value::Bool(true));
    out.entry("jid_include").or_insert(Value::Bool(true));
    out
}

/// One run to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The entry's name.
    pub name: String,
    pub function: String,
    pub args: Vec<Value>,
    pub kwargs: Map,
    pub jid_include: bool,
    pub tgt: Option<String>,
    pub tgt_type: String,
}

/// Why a due run did not start (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// The whole schedule or this entry is disabled.
    Disabled,
    /// Outside its `range`.
    OutOfRange,
    /// `maxrunning` runs are still going.
    MaxRunning(u32),
}

struct Slot {
    item: Map,
    entry: Entry,
    /// When the entry is next due, before splay; `None` once a `once` has run.
    next: Option<u64>,
    /// `next` plus this run's splay.
    fire_at: Option<u64>,
    running: u32,
}

/// A set of entries and when each runs next.
pub struct Schedule {
    enabled: bool,
    slots: BTreeMap<String, Slot>,
    master: bool,
}

/// Picks a splay in `[start, end]` seconds, as milliseconds.
pub type Splay<'a> = &'a mut dyn FnMut(u64, u64) -> u64;

/// A splay in `[start, end]` seconds, as milliseconds, from the OS's randomness.
pub fn random_splay(start: u64, end: u64) -> u64 {
    let mut b = [0u8; 8];
    let r = getrandom::getrandom(&mut b).map(|()| u64::from_le_bytes(b)).unwrap_or(0);
    start.saturating_mul(1000) + r % (end.saturating_sub(start).saturating_mul(1000) + 1)
}

impl Schedule {
    /// An empty, enabled schedule (`master`: entries run jobs on targets).
    pub fn new(master: bool) -> Schedule {
        Schedule { enabled: true, slots: BTreeMap::new(), master }
    }

    /// Loads a schedule map (entries by name, and `enabled`); entries that do not
    /// validate are left out and returned as errors.
    pub fn load(items: &Map, master: bool, now: u64, splay: Splay<'_>) -> (Schedule, Vec<EntryError>) {
        let mut s = Schedule::new(master);
        let mut errors = Vec::new();
        for (name, item) in items {
            if name == "enabled" {
                s.enabled = boolean(item).unwrap_or(true);
                continue;
            }
            if RESERVED.contains(&name.as_str()) {
                continue;
            }
            let Value::Object(item) = item else {
                errors.push(EntryError {
                    name: name.clone(),
                    reason: format!("must be a table of settings, not {item}"),
                });
                continue;
            };
            if let Err(e) = s.set(name, item.clone(), now, splay) {
                errors.push(e);
            }
        }
        (s, errors)
    }

    /// Adds or replaces an entry; its timing starts afresh (`run_on_start` included).
    pub fn set(&mut self, name: &str, item: Map, now: u64, splay: Splay<'_>) -> Result<(), EntryError> {
        let entry = Entry::parse(name, &item, self.master)?;
        let next = match &entry.timing {
            Timing::Every(_) if entry.run_on_start => Some(now),
            Timing::Every(ms) => Some(now + ms),
            Timing::Cron(c) => c.next_after(now),
            // A `once` more than a minute past when loaded has been missed: it never runs.
            Timing::Once(at) => Some(*at).filter(|at| at + 60_000 >= now),
        };
        let running = self.slots.get(name).map_or(0, |s| s.running);
        let mut slot = Slot { item, entry, next, fire_at: None, running };
        slot.fire_at = slot.next.map(|n| n + pick_splay(&slot.entry, splay));
        self.slots.insert(name.to_string(), slot);
        Ok(())
    }

    /// Removes an entry; whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        self.slots.remove(name).is_some()
    }

    /// Enables or disables one entry; whether it exists.
    pub fn set_entry_enabled(&mut self, name: &str, enabled: bool) -> bool {
        match self.slots.get_mut(name) {
            Some(slot) => {
                slot.entry.enabled = enabled;
                slot.item.insert("enabled".into(), Value::Bool(enabled));
                true
            }
            None => false,
        }
    }

    /// Enables or disables the whole schedule.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The schedule as Salt's `opts['schedule']`: every entry's item by name, and
    /// `enabled: false` when the whole schedule is disabled.
    pub fn to_map(&self) -> Map {
        let mut m = Map::new();
        for (name, slot) in &self.slots {
            m.insert(name.clone(), Value::Object(slot.item.clone()));
        }
        if !self.enabled {
            m.insert("enabled".into(), Value::Bool(false));
        }
        m
    }

    /// One entry's item.
    pub fn item(&self, name: &str) -> Option<&Map> {
        self.slots.get(name).map(|s| &s.item)
    }

    /// Runs of `name` going on now.
    pub fn running(&self, name: &str) -> u32 {
        self.slots.get(name).map_or(0, |s| s.running)
    }

    /// When the next entry is due (with splay), if any.
    pub fn next_wake(&self) -> Option<u64> {
        self.slots.values().filter_map(|s| s.fire_at).min()
    }

    /// The runs due at `now`, each counted as running until [`Schedule::finished`];
    /// due entries that may not run now are skipped (and returned for the log). Each
    /// due entry moves on to its next time: missed intervals are not made up.
    pub fn due(&mut self, now: u64, splay: Splay<'_>) -> (Vec<Launch>, Vec<(String, Skipped)>) {
        let mut launches = Vec::new();
        let mut skipped = Vec::new();
        let enabled = self.enabled;
        for (name, slot) in self.slots.iter_mut() {
            let (Some(fire_at), Some(next)) = (slot.fire_at, slot.next) else { continue };
            if fire_at > now {
                continue;
            }
            slot.next = match &slot.entry.timing {
                Timing::Every(ms) => {
                    let n = next + ms;
                    Some(if n <= now { now + ms } else { n })
                }
                Timing::Cron(c) => c.next_after(now.max(next)),
                Timing::Once(_) => None,
            };
            slot.fire_at = slot.next.map(|n| n + pick_splay(&slot.entry, splay));
            let why = if !enabled || !slot.entry.enabled {
                Some(Skipped::Disabled)
            } else if slot.entry.range.is_some_and(|r| !r.allows(now)) {
                Some(Skipped::OutOfRange)
            } else if slot.running >= slot.entry.maxrunning {
                Some(Skipped::MaxRunning(slot.entry.maxrunning))
            } else {
                None
            };
            match why {
                Some(why) => skipped.push((name.clone(), why)),
                None => {
                    slot.running += 1;
                    launches.push(launch_of(name, &slot.entry));
                }
            }
        }
        (launches, skipped)
    }

    /// Starts `name` now, out of its schedule (`schedule.run_job`): disabled entries
    /// only with `force`, and never beyond `maxrunning`.
    pub fn run_now(&mut self, name: &str, force: bool) -> Result<Launch, Skipped> {
        let slot = self.slots.get_mut(name).ok_or(Skipped::Disabled)?;
        if !slot.entry.enabled && !force {
            return Err(Skipped::Disabled);
        }
        if slot.running >= slot.entry.maxrunning {
            return Err(Skipped::MaxRunning(slot.entry.maxrunning));
        }
        slot.running += 1;
        Ok(launch_of(name, &slot.entry))
    }

    /// A run of `name` ended.
    pub fn finished(&mut self, name: &str) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.running = slot.running.saturating_sub(1);
        }
    }
}

fn launch_of(name: &str, e: &Entry) -> Launch {
    Launch {
        name: name.to_string(),
        function: e.function.clone(),
        args: e.args.clone(),
        kwargs: e.kwargs.clone(),
        jid_include: e.jid_include,
        tgt: e.tgt.clone(),
        tgt_type: e.tgt_type.clone(),
    }
}

fn pick_splay(e: &Entry, splay: Splay<'_>) -> u64 {
    match e.splay {
        Some((start, end)) => splay(start, end),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Map {
        v.as_object().unwrap().clone()
    }

    fn no_splay() -> impl FnMut(u64, u64) -> u64 {
        |_, _| 0
    }

    /// 2026-11-23T10:07:00Z
    const NOW: u64 = 1_795_428_420_000;

    #[test]
    fn intervals_run_one_interval_after_start_then_every_interval() {
        let mut s = Schedule::new(false);
        let mut sp = no_splay();
        s.set("ping", item(json!({"function": "test.ping", "seconds": 10})), NOW, &mut sp).unwrap();
        assert_eq!(s.next_wake(), Some(NOW + 10_000));
        assert!(s.due(NOW + 9_999, &mut sp).0.is_empty());
        let (l, _) = s.due(NOW + 10_000, &mut sp);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].name.as_str(), l[0].function.as_str()), ("ping", "test.ping"));
        s.finished("ping");
        assert_eq!(s.next_wake(), Some(NOW + 20_000));
        // Missed runs are not made up: one run, then the next interval from now.
        let (l, _) = s.due(NOW + 65_000, &mut sp);
        assert_eq!(l.len(), 1);
        assert_eq!(s.next_wake(), Some(NOW + 75_000));
    }

    #[test]
    fn units_add_up_and_run_on_start_runs_at_once() {
        let mut s = Schedule::new(false);
        let mut sp = no_splay();
        let it = item(
            json!({"function": "test.ping", "minutes": 1, "hours": 1, "days": 1, "seconds": "5", "run_on_start": true}),
        );
        s.set("j", it, NOW, &mut sp).unwrap();
        assert_eq!(s.due(NOW, &mut sp).0.len(), 1);
        assert_eq!(s.next_wake(), Some(NOW + (86_400 + 3600 + 60 + 5) * 1000));
    }

    #[test]
    fn maxrunning_skips_runs_while_earlier_ones_go_on() {
        let mut s = Schedule::new(false);
        let mut sp = no_splay();
        s.set("slow", item(json!({"function": "test.sleep", "args": [3], "seconds": 1})), NOW, &mut sp).unwrap();
        assert_eq!(s.due(NOW + 1000, &mut sp).0.len(), 1);
        let (l, skipped) = s.due(NOW + 2000, &mut sp);
        assert!(l.is_empty());
        assert_eq!(skipped, vec![("slow".to_string(), Skipped::MaxRunning(1))]);
        assert_eq!(s.run_now("slow", false), Err(Skipped::MaxRunning(1)));
        s.finished("slow");
        assert_eq!(s.due(NOW + 3000, &mut sp).0.len(), 1);
        let mut two = Schedule::new(false);
        two.set("slow", item(json!({"function": "test.sleep", "seconds": 1, "maxrunning": 2})), NOW, &mut sp).unwrap();
        assert_eq!(two.due(NOW + 1000, &mut sp).0.len(), 1);
        assert_eq!(two.due(NOW + 2000, &mut sp).0.len(), 1);
        assert_eq!(two.due(NOW + 3000, &mut sp).0.len(), 0);
        assert_eq!(two.running("slow"), 2);
    }

    #[test]
    fn cron_entries_follow_the_expression() {
        let mut s = Schedule::new(false);
        let mut sp = no_splay();
        s.set("c", item(json!({"function": "test.ping", "cron": "*/15 * * * *"})), NOW, &mut sp).unwrap();
        assert_eq!(s.next_wake(), Some(NOW + 8 * 60_000)); // 10:15
        assert_eq!(s.due(NOW + 8 * 60_000, &mut sp).0.len(), 1);
        assert_eq!(s.next_wake(), Some(NOW + 23 * 60_000)); // 10:30
    }

    #[test]
    fn once_runs_once_and_a_missed_once_never() {
        let mut s = Schedule::new(false);
        let mut sp = no_splay();
        s.set("o", item(json!({"function": "test.ping", "once": "2026-11-23T10:10:00"})), NOW, &mut sp).unwrap();
        assert_eq!(s.next_wake(), Some(NOW + 3 * 60_000));
        assert_eq!(s.due(NOW + 3 * 60_000, &mut sp).0.len(), 1);
        assert_eq!(s.next_wake(), None);
        assert!(s.due(NOW + 1_000_000, &mut sp).0.is_empty());
        s.set("late", item(json!({"function": "test.ping", "once": "2026-11-23T09:00:00Z"})), NOW, &mut sp).unwrap();
        assert_eq!(s.next_wake(), None);
        // An offset is honoured: 12:10+02:00 is 10:10Z.
        s.set("tz", item(json!({"function": "test.ping", "once": "2026-11-23 12:10:00+02:00"})), NOW, &mut sp).unwrap();
        assert_eq!(s.next_wake(), Some(NOW + 3 * 60_000));
    }

    #[test]
    fn splay_delays_each_run_without_drift() {
        let mut s = Schedule::new(false);
        let mut asked = Vec::new();
        let mut sp = |a: u64, b: u64| {
            asked.push((a, b));
            4_000
        };
        s.set(
            "s",
            item(json!({"function": "test.ping", "seconds": 60, "splay": {"start": 2, "end": 8}})),
            NOW,
            &mut sp,
        )
        .unwrap();
        assert_eq!(s.next_wake(), Some(NOW + 64_000));
        assert!(s.due(NOW + 63_000, &mut sp).0.is_empty());
        assert_eq!(s.due(NOW + 64_000, &mut sp).0.len(), 1);
        assert_eq!(s.next_wake(), Some(NOW + 124_000), "the nominal time stays on the interval");
        // The closure's borrow of `asked` ends with its last use above.
        assert_eq!(asked, vec![(2, 8), (2, 8)]);
        let e = Entry::parse("s", &item(json!({"function": "a.b", "seconds": 1, "splay": 30})), false).unwrap();
        assert_eq!(e.splay, Some((0, 30)));
    }

    #[test]
    fn range_and_invert_gate_runs() {
        let mut s = Schedule::new(false);
        let mut sp = no_splay();
        // 10:07 is inside 9am-5pm; outside with invert.
        s.set(
            "in",
            item(json!({"function": "test.ping", "seconds": 1, "range": {"start": "9am", "end": "5pm"}})),
            NOW,
            &mut sp,
        )
        .unwrap();
        s.set(
            "out",
            item(json!({"function": "test.ping", "seconds": 1, "range": {"start": "09:00", "end": "17:00", "invert": true}})),
            NOW,
            &mut sp,
        )
        .unwrap();
        let (l, skipped) = s.due(NOW + 1000, &mut sp);
        assert_eq!(l.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), vec!["in"]);
        assert_eq!(skipped, vec![("out".to_string(), Skipped::OutOfRange)]);
        let bad = Entry::parse(
            "r",
            &item(json!({"function": "a.b", "seconds": 1, "range": {"start": "5pm", "end": "9am"}})),
            false,
        );
        assert!(bad.unwrap_err().to_string().contains("end must be larger than start"));
    }

    #[test]
    fn disabled_entries_and_schedules_skip_and_enable_again() {
        let mut sp = no_splay();
        let items = item(json!({"a": {"function": "test.ping", "seconds": 1}, "enabled": false}));
        let (mut s, errors) = Schedule::load(&items, false, NOW, &mut sp);
        assert!(errors.is_empty());
        assert_eq!(s.to_map().get("enabled"), Some(&json!(false)));
        assert_eq!(s.due(NOW + 1000, &mut sp).1, vec![("a".to_string(), Skipped::Disabled)]);
        s.set_enabled(true);
        assert!(s.set_entry_enabled("a", false));
        assert_eq!(s.item("a").unwrap()["enabled"], json!(false));
        assert!(s.due(NOW + 2000, &mut sp).0.is_empty());
        assert_eq!(s.run_now("a", false), Err(Skipped::Disabled));
        assert!(s.run_now("a", true).is_ok(), "force runs a disabled entry");
        s.finished("a");
        assert!(s.set_entry_enabled("a", true));
        assert_eq!(s.due(NOW + 3000, &mut sp).0.len(), 1);
        assert!(!s.set_entry_enabled("nope", true));
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for (it, why) in [
            (json!({"seconds": 1}), "function is required"),
            (json!({"function": "ping", "seconds": 1}), "module.function"),
            (json!({"function": "a.b"}), "needs seconds, minutes, hours, days, cron or once"),
            (json!({"function": "a.b", "seconds": 1, "cron": "* * * * *"}), "Unable to use"),
            (json!({"function": "a.b", "cron": "* * *"}), "expected 5 fields"),
            (json!({"function": "a.b", "seconds": -1}), "non-negative number"),
            (json!({"function": "a.b", "seconds": 0.5}), "at least one second"),
            (json!({"function": "a.b", "once": "tomorrow"}), "is not a date and time"),
            (json!({"function": "a.b", "seconds": 1, "maxrunning": 0}), "maxrunning"),
            (json!({"function": "a.b", "seconds": 1, "job_args": "x"}), "job_args is not a list"),
            (json!({"function": "a.b", "seconds": 1, "kwargs": [1]}), "job_kwargs is not a dict"),
            (json!({"function": "a.b", "seconds": 1, "when": "3pm"}), "not supported"),
            (json!({"function": "a.b", "seconds": 1, "colour": "red"}), "unknown key \"colour\""),
            (json!({"function": "a.b", "seconds": 1, "tgt": "*"}), "tgt is for master schedules"),
            (json!({"function": "a.b", "seconds": 1, "enabled": "maybe"}), "enabled must be true or false"),
        ] {
            let e = Entry::parse("x", it.as_object().unwrap(), false).unwrap_err().to_string();
            assert!(e.contains(why), "{it}: {e}");
        }
        let e = Entry::parse("x", &item(json!({"function": "a.b", "seconds": 1})), true).unwrap_err();
        assert!(e.to_string().contains("needs tgt"), "{e}");
        let m = Entry::parse("x", &item(json!({"function": "a.b", "seconds": 1, "tgt": "web*"})), true).unwrap();
        assert_eq!((m.tgt.as_deref(), m.tgt_type.as_str()), (Some("web*"), "glob"));
    }

    #[test]
    fn normalize_fills_salts_defaults() {
        let n = normalize("job1", &item(json!({"function": "cmd.run", "job_args": ["date"], "seconds": 60})));
        assert_eq!(
            Value::Object(n),
            json!({"function": "cmd.run", "args": ["date"], "seconds": 60, "maxrunning": 1, "name": "job1",
                   "enabled": true, "jid_include": true})
        );
    }

    #[test]
    fn moments_parse_in_every_form() {
        assert_eq!(parse_moment("3pm"), Some(Moment::TimeOfDay(15 * 3600)));
        assert_eq!(parse_moment("5:30 PM"), Some(Moment::TimeOfDay(17 * 3600 + 1800)));
        assert_eq!(parse_moment("12am"), Some(Moment::TimeOfDay(0)));
        assert_eq!(parse_moment("08:15"), Some(Moment::TimeOfDay(8 * 3600 + 900)));
        assert_eq!(parse_moment("2026-11-23T10:07:00Z"), Some(Moment::At(NOW)));
        assert_eq!(parse_moment("13pm"), None);
        assert_eq!(parse_moment("25:00"), None);
        assert_eq!(parse_datetime("2026-11-23"), Some(NOW - (10 * 3600 + 7 * 60) * 1000));
        assert_eq!(parse_datetime("2026-02-30T00:00:00"), None);
        assert_eq!(parse_datetime("2026-11-23T10:07:00-99999999999999999:00"), None, "no overflow");
        assert_eq!(parse_datetime("2026-11-23T12:07:00+02:00"), Some(NOW));
    }
}
