//! `status.*`: how this host is doing right now — uptime, load, memory, CPU and
//! filesystem space — read from `/proc` and the kernel, in the shapes Salt's `status`
//! module returns on Linux.
//!
//! Each reader is a pure parser of the `/proc` file's text (tested on captured
//! fixtures) plus a thin function that reads the live file.

use super::host::{fnmatch, which, CommandLine, Host, Runner};
use super::test::NoArgs;
use super::{CallError, Context, Function, Output, Param};
use brine_proto::time::Civil;
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

fn read(path: &str) -> Result<String, CallError> {
    std::fs::read_to_string(path).map_err(|e| CallError::failed(format!("cannot read {path}: {e}")))
}

/// A UTC moment the way Python's `datetime.isoformat()` prints it:
/// `2026-11-23T02:20:27.231343`, without the fraction when it is zero.
fn python_iso(unix_micros: u64) -> String {
    let c = Civil::from_unix_micros(unix_micros);
    let base = format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second);
    if c.micros == 0 {
        base
    } else {
        format!("{base}.{:06}", c.micros)
    }
}

/// `status.uptime` from `/proc/uptime`'s text, the current time (Unix microseconds)
/// and, when `who` exists, the number of logged-in sessions.
fn uptime(proc_uptime: &str, now_micros: u64, users: Option<usize>) -> Result<Value, CallError> {
    let seconds = proc_uptime
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| CallError::failed(format!("cannot read the uptime from /proc/uptime: {proc_uptime:?}")))?
        as u64;
    let boot = now_micros.saturating_sub(seconds * 1_000_000);
    let mut out = Map::new();
    out.insert("seconds".into(), seconds.into());
    out.insert("since_iso".into(), python_iso(boot).into());
    out.insert("since_t".into(), (boot / 1_000_000).into());
    out.insert("days".into(), (seconds / 86_400).into());
    // Hours and minutes of the last partial day, minutes not padded: "0:40", "3:5".
    out.insert("time".into(), format!("{}:{}", seconds % 86_400 / 3600, seconds % 3600 / 60).into());
    if let Some(users) = users {
        out.insert("users".into(), users.into());
    }
    Ok(Value::Object(out))
}

/// `status.meminfo` from `/proc/meminfo`: `{"MemTotal": {"value": "24684092", "unit": "kB"}}`.
fn meminfo(text: &str) -> Value {
    let mut out = Map::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else { continue };
        let mut entry = Map::new();
        entry.insert("value".into(), value.into());
        if let Some(unit) = words.next() {
            entry.insert("unit".into(), unit.into());
        }
        out.insert(key.trim_end_matches(':').to_string(), Value::Object(entry));
    }
    Value::Object(out)
}

/// `status.cpuinfo` from `/proc/cpuinfo`: one map of `key: value` where later
/// processors overwrite earlier ones (as in Salt), and `flags` is a list.
fn cpuinfo(text: &str) -> Value {
    let mut out = Map::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        let value = if key == "flags" {
            json!(value.split_whitespace().collect::<Vec<_>>())
        } else {
            Value::String(value.trim().to_string())
        };
        out.insert(key.to_string(), value);
    }
    Value::Object(out)
}

/// Undoes the octal escapes of `/proc/mounts` (`\040` for a space).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points `status.diskusage` reports: the given paths (words starting with
/// `/`), then every mount point whose filesystem type matches one of the other words
/// (globs such as `ext?`); no words means every mount.
fn diskusage_targets(words: &[String], proc_mounts: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |p: String| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    let (paths, fstypes): (Vec<&String>, Vec<&String>) = words.iter().partition(|w| w.starts_with('/'));
    for p in paths {
        push(p.clone());
    }
    if words.is_empty() || !fstypes.is_empty() {
        for line in proc_mounts.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [_, mount, fstype, ..] = cols[..] else { continue };
            if words.is_empty() || fstypes.iter().any(|t| fnmatch(t, fstype)) {
                push(unescape_mount(mount));
            }
        }
    }
    out
}

/// Space on the filesystem holding `path`, in bytes, counted in `f_bsize` units as
/// Salt does.
fn space(path: &str) -> Result<Value, CallError> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| CallError::failed(format!("cannot read filesystem usage of {path}: {e}")))?;
    let bsize = st.block_size();
    Ok(json!({"available": st.blocks_available().saturating_mul(bsize), "total": st.blocks().saturating_mul(bsize)}))
}

pub struct Uptime;
impl Function for Uptime {
    const NAME: &'static str = "status.uptime";
    const DOC: &'static str = "Returns how long the host has been up: {seconds, since_iso, since_t, days, \
        time (\"H:M\" of the last partial day), users (logged-in sessions)}.\n\n\
        CLI example: brine run '*' status.uptime";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        // Sessions as `who` lists them; left out when `who` is missing or fails.
        let users = which("who")
            .and_then(|_| Host::new(ctx).run(&CommandLine::new("who")).ok())
            .filter(|ran| ran.success())
            .map(|ran| ran.stdout.lines().filter(|l| !l.trim().is_empty()).count());
        Ok(Output::ok(uptime(&read("/proc/uptime")?, now, users)?))
    }
}

pub struct Loadavg;
impl Function for Loadavg {
    const NAME: &'static str = "status.loadavg";
    const DOC: &'static str = "Returns the load averages: {\"1-min\", \"5-min\", \"15-min\"}.\n\n\
        CLI example: brine run '*' status.loadavg";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, _: &Context, _: NoArgs) -> Result<Output, CallError> {
        let info = nix::sys::sysinfo::sysinfo()
            .map_err(|e| CallError::failed(format!("status.loadavg is not available: sysinfo failed: {e}")))?;
        let (one, five, fifteen) = info.load_average();
        Ok(Output::ok(json!({"1-min": one, "5-min": five, "15-min": fifteen})))
    }
}

pub struct Meminfo;
impl Function for Meminfo {
    const NAME: &'static str = "status.meminfo";
    const DOC: &'static str = "Returns /proc/meminfo as {field: {value, unit}} (values are strings, \
        units usually kB).\n\n\
        CLI example: brine run '*' status.meminfo";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, _: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(meminfo(&read("/proc/meminfo")?)))
    }
}

pub struct Cpuinfo;
impl Function for Cpuinfo {
    const NAME: &'static str = "status.cpuinfo";
    const DOC: &'static str = "Returns /proc/cpuinfo as one {field: value} map (the last processor's \
        values, as Salt does), with flags as a list.\n\n\
        CLI example: brine run '*' status.cpuinfo";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, _: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(cpuinfo(&read("/proc/cpuinfo")?)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskusageArgs {
    args: Vec<Value>,
}

pub struct Diskusage;
impl Function for Diskusage {
    const NAME: &'static str = "status.diskusage";
    const DOC: &'static str = "Returns {mount point: {available, total}} in bytes. Arguments choose \
        what to report: paths (/, /var) and filesystem types or globs of them (ext4, ext?); none \
        means every mounted filesystem.\n\n\
        CLI example: brine run '*' status.diskusage / ext?";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = DiskusageArgs;
    fn call(&self, _: &Context, a: DiskusageArgs) -> Result<Output, CallError> {
        let words: Vec<String> = a.args.iter().map(super::host::word_text).collect();
        let needs_mounts = words.is_empty() || words.iter().any(|w| !w.starts_with('/'));
        let mounts = if needs_mounts { read("/proc/mounts")? } else { String::new() };
        let mut out = Map::new();
        for path in diskusage_targets(&words, &mounts) {
            match space(&path) {
                Ok(v) => {
                    out.insert(path, v);
                }
                // A path the caller named must exist; a mount found by type may be
                // unreadable (a dead network mount) and is left out.
                Err(e) if words.contains(&path) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(Output::ok(Value::Object(out)))
    }
}

/// The `status` execution module.
pub static MODULE: super::Module = super::Module {
    name: "status",
    doc: "How this host is doing: uptime, load, memory, CPU and disk space.",
    functions: &[&Cpuinfo, &Diskusage, &Loadavg, &Meminfo, &Uptime],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::call;

    #[test]
    fn uptime_matches_salts_fields() {
        // Booted 2428 s before 2026-11-23T03:00:55.231343Z.
        let now = Civil { year: 2026, month: 11, day: 23, hour: 3, minute: 0, second: 55, micros: 231_343 };
        let now = now.to_unix_micros().unwrap();
        let got = uptime("2428.91 4711.02\n", now, Some(1)).unwrap();
        assert_eq!(
            got,
            json!({"seconds": 2428, "since_iso": "2026-11-23T02:20:27.231343", "since_t": now / 1_000_000 - 2428,
                   "days": 0, "time": "0:40", "users": 1})
        );
        let got = uptime("356400.5 1.0", now, None).unwrap();
        assert_eq!((got["days"].clone(), got["time"].clone()), (json!(4), json!("3:0")));
        assert!(got.get("users").is_none());
        assert_eq!(python_iso(1_000_000), "1970-01-01T00:00:01");
        assert!(uptime("garbage", now, None).is_err());
    }

    #[test]
    fn meminfo_and_cpuinfo_parse_like_salt() {
        let mem = "MemTotal:       24684092 kB\nMemFree:        21105024 kB\nHugePages_Total:       0\n";
        assert_eq!(
            meminfo(mem),
            json!({"MemTotal": {"value": "24684092", "unit": "kB"}, "MemFree": {"value": "21105024", "unit": "kB"},
                   "HugePages_Total": {"value": "0"}})
        );
        let cpu = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu vme de\npower management:\n\n\
                   processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu vme de\npower management:\n";
        assert_eq!(
            cpuinfo(cpu),
            json!({"processor": "1", "model name": "AMD EPYC", "flags": ["fpu", "vme", "de"], "power management": ""})
        );
    }

    #[test]
    fn diskusage_selects_paths_and_filesystem_types() {
        let mounts = "/dev/vda / ext4 rw,relatime 0 0\n\
                      proc /proc proc rw 0 0\n\
                      tmpfs /dev/shm tmpfs rw 0 0\n\
                      /dev/vdb /srv/my\\040data ext3 rw 0 0\n";
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(diskusage_targets(&words(&[]), mounts), ["/", "/proc", "/dev/shm", "/srv/my data"]);
        assert_eq!(diskusage_targets(&words(&["ext?"]), mounts), ["/", "/srv/my data"]);
        assert_eq!(diskusage_targets(&words(&["/tmp", "tmpfs", "/"]), mounts), ["/tmp", "/", "/dev/shm"]);
        assert_eq!(diskusage_targets(&words(&["/tmp"]), ""), ["/tmp"]);
    }

    /// Against this host's real /proc and kernel.
    #[test]
    fn real_status_functions_answer() {
        let ctx = Context::default();
        let run = |f: &str, args: Vec<Value>| call(f, &ctx, args, Map::new()).unwrap().ret;
        let up = run("status.uptime", vec![]);
        assert!(up["seconds"].as_u64().is_some() && up["since_iso"].as_str().is_some_and(|s| s.contains('T')));
        let load = run("status.loadavg", vec![]);
        assert!(["1-min", "5-min", "15-min"].iter().all(|k| load[*k].as_f64().is_some_and(|v| v >= 0.0)));
        let mem = run("status.meminfo", vec![]);
        assert_eq!(mem["MemTotal"]["unit"], json!("kB"));
        let cpu = run("status.cpuinfo", vec![]);
        assert!(cpu.get("processor").is_some());
        let disk = run("status.diskusage", vec![json!("/")]);
        let root = &disk["/"];
        assert!(root["total"].as_u64().unwrap() >= root["available"].as_u64().unwrap());
        let err = call("status.diskusage", &ctx, vec![json!("/nonexistent/brine")], Map::new()).unwrap_err();
        assert!(err.to_string().contains("cannot read filesystem usage of /nonexistent/brine"), "{err}");
    }
}
