//! Threshold beacons over the host's resources, as Salt's: `diskusage` (per mount,
//! `{diskusage: pct, mount}`), `memusage` (`{memusage: pct}`) and `load` (the three
//! averages when one leaves its range). Like Salt's, `diskusage` and `memusage` fire
//! at every interval while the threshold is reached; `load` with `onchangeonly` fires
//! only when an average crosses a bound.

use super::{only_keys, percent_of, read, Beacon, Env, Fired};
use brine_proto::{Map, Value};
use regex::Regex;
use serde_json::json;

/// Rounds a percentage to one decimal, as psutil reports it.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

struct DiskUsage {
    /// Mount pattern (anchored at both ends, like Salt's) and its threshold.
    mounts: Vec<(Regex, f64)>,
}

/// `[beacons.diskusage]`: `"<mount regex>" = "<percent>"` for each mount to watch,
/// e.g. `"/" = "90%"`, `"^/mnt/.*" = 80`.
pub(crate) fn build_diskusage(_: &str, options: &Map, _: &Env) -> Result<Box<dyn Beacon>, String> {
    if options.is_empty() {
        return Err("name at least one mount with its threshold, e.g. \"/\" = \"90%\"".into());
    }
    let mounts = options
        .iter()
        .map(|(mount, limit)| {
            let pattern = if mount.ends_with('$') { format!("^(?:{mount})") } else { format!("^(?:{mount})$") };
            let re = regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("mount {mount:?} is not a regular expression: {e}"))?;
            Ok((re, percent_of(limit).map_err(|e| format!("mount {mount:?}: {e}"))?))
        })
        .collect::<Result<_, String>>()?;
    Ok(Box::new(DiskUsage { mounts }))
}

/// Undoes the octal escapes of `/proc/mounts` (`\040` is a space).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points of the host, in `/proc/self/mounts` order, without repeats.
fn mount_points() -> Result<Vec<String>, String> {
    let text = read("/proc/self/mounts")?;
    let mut seen = Vec::new();
    for line in text.lines() {
        if let Some(m) = line.split_whitespace().nth(1).map(unescape_mount) {
            if !seen.contains(&m) {
                seen.push(m);
            }
        }
    }
    Ok(seen)
}

/// How full a mounted filesystem is, in percent, as psutil computes it (space
/// reserved for root counts as neither used nor free).
fn disk_percent(mount: &str) -> Option<f64> {
    let st = nix::sys::statvfs::statvfs(mount).ok()?;
    let frsize = st.fragment_size() as f64;
    let used = (st.blocks() as f64 - st.blocks_free() as f64) * frsize;
    let free = st.blocks_available() as f64 * frsize;
    if used + free <= 0.0 {
        return None;
    }
    Some(round1(used / (used + free) * 100.0))
}

impl Beacon for DiskUsage {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        let mounts = mount_points()?;
        let mut out = Vec::new();
        for (re, limit) in &self.mounts {
            for m in mounts.iter().filter(|m| re.is_match(m)) {
                let Some(pct) = disk_percent(m) else { continue };
                if pct >= *limit {
                    out.push(Fired::new(map(json!({"diskusage": pct, "mount": m}))));
                }
            }
        }
        Ok(out)
    }
}

fn map(v: Value) -> Map {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

struct MemUsage {
    percent: f64,
}

/// `[beacons.memusage]`: `percent = "63%"`.
pub(crate) fn build_memusage(_: &str, options: &Map, _: &Env) -> Result<Box<dyn Beacon>, String> {
    only_keys(options, &["percent"])?;
    let percent = percent_of(options.get("percent").ok_or("memusage requires percent, e.g. percent = \"90%\"")?)?;
    Ok(Box::new(MemUsage { percent }))
}

/// Used memory in percent, as psutil's `virtual_memory().percent`.
fn mem_percent(meminfo: &str) -> Option<f64> {
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.split_whitespace().next()?.parse::<f64>().ok())
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").or_else(|| Some(field("MemFree")? + field("Buffers")? + field("Cached")?))?;
    (total > 0.0).then(|| round1((total - available) / total * 100.0))
}

impl Beacon for MemUsage {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        let pct = mem_percent(&read("/proc/meminfo")?).ok_or("cannot read the memory figures of /proc/meminfo")?;
        Ok(if pct >= self.percent { vec![Fired::new(map(json!({ "memusage": pct })))] } else { Vec::new() })
    }
}

const AVERAGES: [&str; 3] = ["1m", "5m", "15m"];

struct Load {
    /// For each average watched: its low and high bound.
    ranges: Vec<(usize, f64, f64)>,
    onchangeonly: bool,
    emitatstartup: bool,
    last: Option<[f64; 3]>,
    read: fn() -> Result<[f64; 3], String>,
}

/// `[beacons.load]`: `averages = { 1m = [0.0, 2.0], 5m = [0.0, 1.5] }`, with
/// `onchangeonly` (default false) and `emitatstartup` (default true).
pub(crate) fn build_load(_: &str, options: &Map, _: &Env) -> Result<Box<dyn Beacon>, String> {
    only_keys(options, &["averages", "onchangeonly", "emitatstartup"])?;
    let Some(Value::Object(averages)) = options.get("averages") else {
        return Err("load requires averages, e.g. averages = { 1m = [0.0, 2.0] }".into());
    };
    let mut ranges = Vec::new();
    for (k, v) in averages {
        let i = AVERAGES.iter().position(|a| a == k).ok_or_else(|| format!("averages: {k:?} is not 1m, 5m or 15m"))?;
        let bounds = v.as_array().filter(|a| a.len() == 2).and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
        let (lo, hi) = bounds.ok_or_else(|| format!("averages.{k} must be [low, high], two numbers"))?;
        ranges.push((i, lo, hi));
    }
    let flag = |key: &str, default: bool| match options.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{key} must be true or false, not {other}")),
    };
    Ok(Box::new(Load {
        ranges,
        onchangeonly: flag("onchangeonly", false)?,
        emitatstartup: flag("emitatstartup", true)?,
        last: None,
        read: loadavg,
    }))
}

fn loadavg() -> Result<[f64; 3], String> {
    let text = read("/proc/loadavg")?;
    let mut it = text.split_whitespace().map(|w| w.parse::<f64>().map_err(|e| format!("/proc/loadavg: {e}")));
    let mut next = || it.next().unwrap_or_else(|| Err("/proc/loadavg is short".into()));
    Ok([next()?, next()?, next()?])
}

impl Load {
    fn check(&mut self, now: [f64; 3]) -> Vec<Fired> {
        let first = self.last.is_none();
        let last = *self.last.get_or_insert(now);
        let fire = if self.onchangeonly {
            if first && !self.emitatstartup {
                false
            } else {
                // Crossing a bound from inside (Salt compares with the last reading).
                self.ranges.iter().any(|&(i, lo, hi)| (now[i] > hi && last[i] < hi) || (now[i] < lo && last[i] > lo))
            }
        } else {
            self.ranges.iter().any(|&(i, lo, hi)| now[i] < lo || now[i] > hi)
        };
        if self.onchangeonly {
            self.last = Some(now);
        }
        if fire {
            vec![Fired::new(map(json!({"1m": now[0], "5m": now[1], "15m": now[2]})))]
        } else {
            Vec::new()
        }
    }
}

impl Beacon for Load {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        let now = (self.read)()?;
        Ok(self.check(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env { id: "m".into(), data_dir: std::env::temp_dir() }
    }

    #[test]
    fn diskusage_fires_for_matching_mounts_at_or_over_the_threshold() {
        let opts = map(json!({"/": "0%"}));
        let fired = build_diskusage("d", &opts, &env()).unwrap().poll().unwrap();
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].data["mount"], "/");
        let pct = fired[0].data["diskusage"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct));
        let none = build_diskusage("d", &map(json!({"/": 100.1})), &env()).unwrap().poll().unwrap();
        assert!(none.is_empty());
        // Anchored like Salt's: "/" does not match "/proc".
        assert!(build_diskusage("d", &map(json!({"/pro": "0%"})), &env()).unwrap().poll().unwrap().is_empty());
        assert!(build_diskusage("d", &map(json!({"(": "1%"})), &env()).is_err());
        assert!(build_diskusage("d", &map(json!({"/": "lots"})), &env()).err().unwrap().contains("percentage"));
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
    }

    #[test]
    fn memusage_reads_like_psutil() {
        let text = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n";
        assert_eq!(mem_percent(text), Some(75.0));
        assert!(build_memusage("m", &Map::new(), &env()).err().unwrap().contains("percent"));
        assert_eq!(build_memusage("m", &map(json!({"percent": 0})), &env()).unwrap().poll().unwrap().len(), 1);
    }

    #[test]
    fn load_fires_outside_the_range_or_when_crossing_with_onchangeonly() {
        let mut b = Load {
            ranges: vec![(0, 0.5, 2.0)],
            onchangeonly: false,
            emitatstartup: true,
            last: None,
            read: || Ok([0.0; 3]),
        };
        assert!(b.check([1.0, 1.0, 1.0]).is_empty());
        let fired = b.check([3.0, 1.0, 1.0]);
        assert_eq!(fired[0].data, map(json!({"1m": 3.0, "5m": 1.0, "15m": 1.0})));
        assert_eq!(b.check([3.0, 1.0, 1.0]).len(), 1, "fires while outside");
        b.onchangeonly = true;
        b.last = None;
        assert!(b.check([1.0, 1.0, 1.0]).is_empty());
        assert_eq!(b.check([3.0, 1.0, 1.0]).len(), 1, "crossed the high bound");
        assert!(b.check([3.5, 1.0, 1.0]).is_empty(), "still above: no change");
        assert!(build_load("l", &map(json!({"averages": {"2m": [0, 1]}})), &env()).is_err());
    }
}
