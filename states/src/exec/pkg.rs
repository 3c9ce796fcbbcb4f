//! `pkg.*`: install, remove, upgrade and query packages with the host's package
//! manager — apt (Debian family), dnf (RedHat family) or apk (Alpine), chosen from the
//! `os_family` grain (or, without grains, from the tools found in `PATH`).
//!
//! Names, argument order, keywords and return shapes follow Salt's `aptpkg`, `yumpkg`
//! and `apkpkg`: `list_pkgs` maps names to versions (several versions joined by `,`),
//! and every change returns `{name: {"old": …, "new": …}}` computed by listing the
//! packages before and after, so the diff shows what really happened, not what was
//! asked for. A failed package command fails the call with Salt's "Problem
//! encountered … Additional info follows" message, which carries the changes made
//! anyway and the tool's stderr.
//!
//! Each backend is a set of pure functions (command lines from arguments, values from
//! command output); the functions here glue them to a [`Runner`], so fixture tests
//! drive whole calls against captured output.

use super::host::{fnmatch, is_glob, word_text, CommandLine, Host, Runner, Word};
use super::{opt, CallError, Context, Function, Output, Param};
use brine_proto::output::{nested, Color};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Installed versions by package name (several for multi-version packages such as
/// kernels on RedHat).
type Versions = BTreeMap<String, Vec<String>>;

/// Environment for every apt/dpkg run that may prompt: Salt's `DPKG_ENV_VARS`.
const DPKG_ENV: [(&str, &str); 4] = [
    ("APT_LISTBUGS_FRONTEND", "none"),
    ("APT_LISTCHANGES_FRONTEND", "none"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("UCF_FORCE_CONFFOLD", "1"),
];

/// Where apt keeps downloaded package lists; its mtime is the last refresh.
const APT_LISTS: &str = "/var/lib/apt/lists";

/// The package manager family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Apt,
    Dnf,
    Apk,
}

/// The package manager of this host and its native architecture (packages of other
/// architectures are listed as `name:arch` on apt and `name.arch` on dnf, like Salt).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Backend {
    manager: Manager,
    arch: Option<String>,
}

impl Backend {
    /// Chooses the backend from the `os_family` grain; without it, from the tools
    /// found in `PATH`.
    fn for_host(grains: &Map) -> Result<Backend, CallError> {
        let family = grains.get("os_family").and_then(Value::as_str);
        let manager = match family {
            Some("Debian") => Manager::Apt,
            Some("RedHat") => Manager::Dnf,
            Some("Alpine") => Manager::Apk,
            Some(other) => {
                return Err(CallError::failed(format!(
                    "pkg: no package backend for os_family '{other}'; brine supports Debian (apt), \
                     RedHat (dnf) and Alpine (apk)"
                )))
            }
            None if super::host::which("dpkg-query").is_some() => Manager::Apt,
            None if super::host::which("dnf").is_some() => Manager::Dnf,
            None if super::host::which("apk").is_some() => Manager::Apk,
            None => {
                return Err(CallError::failed(
                    "pkg: the os_family grain is missing and no apt, dnf or apk was found in PATH",
                ))
            }
        };
        let grain = |k: &str| grains.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let arch = grain("osarch").map(String::from).or_else(|| {
            let cpu = grain("cpuarch").map(String::from).unwrap_or_else(|| std::env::consts::ARCH.to_string());
            native_arch(manager, &cpu)
        });
        Ok(Backend { manager, arch })
    }

    /// The command that lists installed packages.
    fn list_command(&self) -> CommandLine {
        match self.manager {
            Manager::Apt => CommandLine::new("dpkg-query").args([
                "--showformat",
                "${Status} ${Package} ${Version} ${Architecture}\n",
                "-W",
            ]),
            Manager::Dnf => CommandLine::new("rpm").args([
                "-qa",
                "--nodigest",
                "--nosignature",
                "--queryformat",
                "%{NAME}_|-%{EPOCH}_|-%{VERSION}_|-%{RELEASE}_|-%{ARCH}\n",
            ]),
            Manager::Apk => CommandLine::new("apk").args(["info", "-v"]),
        }
    }

    /// Reads the list command's output.
    fn parse_list(&self, out: &str) -> Inventory {
        match self.manager {
            Manager::Apt => parse_dpkg_query(out, self.arch.as_deref()),
            Manager::Dnf => parse_rpm_qa(out, self.arch.as_deref()),
            Manager::Apk => parse_apk_info(out),
        }
    }

    /// Orders two versions the way this package manager does.
    fn compare(&self, a: &str, b: &str) -> Ordering {
        match self.manager {
            Manager::Apt => dpkg_version_cmp(a, b),
            Manager::Dnf => rpm_version_cmp(a, b),
            Manager::Apk => apk_version_cmp(a, b),
        }
    }
}

/// The package architecture matching a `cpuarch` (`uname -m`).
fn native_arch(manager: Manager, cpu: &str) -> Option<String> {
    match manager {
        Manager::Apt => match cpu {
            "x86_64" => Some("amd64"),
            "aarch64" | "arm64" => Some("arm64"),
            "i386" | "i486" | "i586" | "i686" => Some("i386"),
            "armv7l" => Some("armhf"),
            "ppc64le" => Some("ppc64el"),
            "s390x" => Some("s390x"),
            "riscv64" => Some("riscv64"),
            _ => None,
        }
        .map(String::from),
        Manager::Dnf => Some(cpu.to_string()),
        Manager::Apk => None,
    }
}

/// What the package database holds.
#[derive(Debug, Clone, Default, PartialEq)]
struct Inventory {
    installed: Versions,
    /// Removed but not purged (apt's `deinstall … config-files`).
    removed: Versions,
    /// Marked for purge but still installed as a dependency (apt).
    purge_desired: Versions,
}

impl Inventory {
    /// What `list_pkgs` shows by default: installed packages, including those only
    /// kept as dependencies.
    fn current(&self) -> Versions {
        let mut all = self.purge_desired.clone();
        all.extend(self.installed.clone());
        all
    }
}

fn add_version(map: &mut Versions, name: String, version: String) {
    let versions = map.entry(name).or_default();
    versions.push(version);
    versions.sort();
}

/// Parses `dpkg-query --showformat '${Status} ${Package} ${Version} ${Architecture}\n' -W`:
/// `install ok installed zsh 5.9-4 amd64`, `deinstall ok config-files mc 3:4.8.29-2 amd64`.
fn parse_dpkg_query(out: &str, native: Option<&str>) -> Inventory {
    let mut inv = Inventory::default();
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [want, _, status, name, version, arch, ..] = cols[..] else { continue };
        let name = match native {
            Some(native) if arch != "all" && arch != native => format!("{name}:{arch}"),
            _ => name.to_string(),
        };
        match (want, status) {
            ("install" | "hold", "installed") => add_version(&mut inv.installed, name, version.into()),
            ("deinstall", _) => add_version(&mut inv.removed, name, version.into()),
            ("purge", "installed") => add_version(&mut inv.purge_desired, name, version.into()),
            _ => {}
        }
    }
    inv
}

/// Parses `rpm -qa --queryformat '%{NAME}_|-%{EPOCH}_|-%{VERSION}_|-%{RELEASE}_|-%{ARCH}\n'`
/// into `[epoch:]version-release` versions; foreign-architecture packages are named
/// `name.arch`.
fn parse_rpm_qa(out: &str, native: Option<&str>) -> Inventory {
    let mut inv = Inventory::default();
    for line in out.lines() {
        let cols: Vec<&str> = line.trim().split("_|-").collect();
        let [name, epoch, version, release, arch] = cols[..] else { continue };
        let mut v = version.to_string();
        if !release.is_empty() && release != "(none)" {
            v = format!("{v}-{release}");
        }
        if epoch != "(none)" && epoch != "0" && !epoch.is_empty() {
            v = format!("{epoch}:{v}");
        }
        let foreign = !matches!(arch, "noarch" | "(none)")
            && native.is_some_and(|n| n != arch && !(is_x86_32(n) && is_x86_32(arch)));
        let name = if foreign { format!("{name}.{arch}") } else { name.to_string() };
        add_version(&mut inv.installed, name, v);
    }
    inv
}

fn is_x86_32(arch: &str) -> bool {
    matches!(arch, "i386" | "i486" | "i586" | "i686" | "athlon")
}

/// Parses `apk info -v`: `musl-1.2.4-r2` is package `musl`, version `1.2.4-r2`.
fn parse_apk_info(out: &str) -> Inventory {
    let mut inv = Inventory::default();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("WARNING")) {
        if let Some((name, version)) = split_apk_name(line) {
            add_version(&mut inv.installed, name.to_string(), version.to_string());
        }
    }
    inv
}

/// Splits `name-version-rN` at the second-to-last dash.
fn split_apk_name(s: &str) -> Option<(&str, &str)> {
    let last = s.rfind('-')?;
    let cut = s[..last].rfind('-')?;
    Some((&s[..cut], &s[cut + 1..]))
}

/// One version per package, several joined by `,` (Salt's `stringify`).
fn flatten(v: &Versions) -> BTreeMap<String, String> {
    v.iter().map(|(k, vs)| (k.clone(), vs.join(","))).collect()
}

fn to_value(v: &Versions, as_list: bool) -> Value {
    let map: Map = if as_list {
        v.iter().map(|(k, vs)| (k.clone(), json!(vs))).collect()
    } else {
        flatten(v).into_iter().map(|(k, s)| (k, Value::String(s))).collect()
    };
    Value::Object(map)
}

/// `{name: {"old": …, "new": …}}` for every package whose version changed; a missing
/// side is `""`.
fn diff(old: &Versions, new: &Versions) -> Map {
    let (old, new) = (flatten(old), flatten(new));
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = Map::new();
    for name in names {
        let (o, n) = (old.get(name), new.get(name));
        if o != n {
            out.insert(
                name.clone(),
                json!({"old": o.cloned().unwrap_or_default(), "new": n.cloned().unwrap_or_default()}),
            );
        }
    }
    out
}

/// Salt's `CommandExecutionError(message, info=…)`: the message, then the info in the
/// nested layout.
fn problem(summary: &str, info: Value) -> CallError {
    let text = nested(&info, Color::Off);
    CallError::failed(format!("{summary}. Additional info follows:\n\n{}", text.trim_end()))
}

fn list(r: &dyn Runner, b: &Backend) -> Result<Inventory, CallError> {
    let cmd = b.list_command();
    Ok(b.parse_list(&r.run_ok(&cmd)?.stdout))
}

// ---------------------------------------------------------------------------------
// Version ordering.

/// Orders Debian versions like `dpkg --compare-versions`: epoch, then upstream
/// version, then revision, each compared with dpkg's rules (`~` sorts before
/// everything, digit runs numerically).
fn dpkg_version_cmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((upstream, revision)) => (epoch, upstream, revision),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<&u8>) -> i32 {
        match c {
            None => 0,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
            Some(b'~') => -1,
            Some(c) => i32::from(*c) + 256,
        }
    }
    fn part(a: &[u8], b: &[u8]) -> Ordering {
        let (mut i, mut j) = (0, 0);
        let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
        while i < a.len() || j < b.len() {
            while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
                let (x, y) = (order(a.get(i)), order(b.get(j)));
                if x != y {
                    return x.cmp(&y);
                }
                i += 1;
                j += 1;
            }
            while a.get(i) == Some(&b'0') {
                i += 1;
            }
            while b.get(j) == Some(&b'0') {
                j += 1;
            }
            let mut first_diff = Ordering::Equal;
            while digit(a, i) && digit(b, j) {
                if first_diff == Ordering::Equal {
                    first_diff = a[i].cmp(&b[j]);
                }
                i += 1;
                j += 1;
            }
            if digit(a, i) {
                return Ordering::Greater;
            }
            if digit(b, j) {
                return Ordering::Less;
            }
            if first_diff != Ordering::Equal {
                return first_diff;
            }
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb).then_with(|| part(ua.as_bytes(), ub.as_bytes())).then_with(|| part(ra.as_bytes(), rb.as_bytes()))
}

/// Orders RPM versions (`[epoch:]version[-release]`) like rpm's `rpmvercmp`: epoch,
/// version, then release when both have one.
fn rpm_version_cmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.split_once('-') {
            Some((version, release)) => (epoch, version, release),
            None => (epoch, rest, ""),
        }
    }
    let (ea, va, ra) = split(a);
    let (eb, vb, rb) = split(b);
    ea.cmp(&eb).then_with(|| rpmvercmp(va, vb)).then_with(|| {
        if ra.is_empty() || rb.is_empty() {
            Ordering::Equal
        } else {
            rpmvercmp(ra, rb)
        }
    })
}

/// rpm's segment-by-segment comparison of one version part.
fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^';
    loop {
        while a.get(i).is_some_and(sep) {
            i += 1;
        }
        while b.get(j).is_some_and(sep) {
            j += 1;
        }
        let (at, bt) = (a.get(i) == Some(&b'~'), b.get(j) == Some(&b'~'));
        if at || bt {
            if !at {
                return Ordering::Greater;
            }
            if !bt {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (ac, bc) = (a.get(i) == Some(&b'^'), b.get(j) == Some(&b'^'));
        if ac || bc {
            if i >= a.len() {
                return Ordering::Less;
            }
            if j >= b.len() {
                return Ordering::Greater;
            }
            if !ac {
                return Ordering::Greater;
            }
            if !bc {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if i >= a.len() || j >= b.len() {
            break;
        }
        let numeric = a[i].is_ascii_digit();
        let kind = |c: &u8| if numeric { c.is_ascii_digit() } else { c.is_ascii_alphabetic() };
        let end = |s: &[u8], k: usize| k + s[k..].iter().take_while(|c| kind(c)).count();
        let (ie, je) = (end(a, i), end(b, j));
        if je == j {
            // Segments of different kinds: a number is newer than letters.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let (mut sa, mut sb) = (&a[i..ie], &b[j..je]);
        let ord = if numeric {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            sa.len().cmp(&sb.len()).then_with(|| sa.cmp(sb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        i = ie;
        j = je;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// Orders Alpine versions (`1.2.4-r2`): close enough to rpm's rules for deciding
/// upgrade versus downgrade (`_rc` style suffixes aside).
fn apk_version_cmp(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (String, u64) {
        match v.rsplit_once("-r") {
            Some((ver, rel)) if rel.bytes().all(|c| c.is_ascii_digit()) => (ver.to_string(), rel.parse().unwrap_or(0)),
            _ => (v.to_string(), 0),
        }
    };
    let ((va, ra), (vb, rb)) = (split(a), split(b));
    rpmvercmp(&va, &vb).then(ra.cmp(&rb))
}

/// The highest of several `,`-joined versions.
fn highest<'a>(b: &Backend, joined: &'a str) -> &'a str {
    joined.split(',').max_by(|x, y| b.compare(x, y)).unwrap_or(joined)
}

// ---------------------------------------------------------------------------------
// Targets.

/// One package a call asks for, with an optional version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    name: String,
    version: Option<String>,
}

/// What to install: packages from repositories, or package files.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Targets {
    Repository(Vec<Target>),
    Files(Vec<String>),
}

/// Reads `name` (a `,`-separated list allowed), `pkgs` (names or `{name: version}`
/// maps) and `sources` (`{name: /path/to/file}` maps), like Salt's `parse_targets`.
fn parse_targets(
    name: Option<&Word>,
    pkgs: Option<&[Value]>,
    sources: Option<&[Value]>,
    version: Option<&Word>,
) -> Result<Targets, CallError> {
    if pkgs.is_some() && sources.is_some() {
        return Err(CallError::failed("Only one of \"pkgs\" and \"sources\" can be used."));
    }
    if let Some(pkgs) = pkgs {
        let mut out = Vec::new();
        for item in pkgs {
            match item {
                Value::Object(m) if m.len() == 1 => {
                    for (n, v) in m {
                        let version = match v {
                            Value::Null => None,
                            Value::Array(_) | Value::Object(_) => {
                                return Err(CallError::failed(format!("pkgs: the version of '{n}' must be a word")))
                            }
                            v => Some(word_text(v)),
                        };
                        out.push(Target { name: n.clone(), version });
                    }
                }
                Value::Array(_) | Value::Object(_) | Value::Null => {
                    return Err(CallError::failed(format!(
                        "pkgs: each entry must be a name or a one-key map {{name: version}}, not {item}"
                    )))
                }
                v => out.push(Target { name: word_text(v), version: None }),
            }
        }
        return Ok(Targets::Repository(out));
    }
    if let Some(sources) = sources {
        let mut files = Vec::new();
        for item in sources {
            let Value::Object(m) = item else {
                return Err(CallError::failed(format!("sources: each entry must be a map {{name: path}}, not {item}")));
            };
            for (n, path) in m {
                let path = word_text(path);
                if !path.starts_with('/') {
                    return Err(CallError::failed(format!(
                        "Path {path} for package {n} is not an absolute local path; brine installs \
                         package files from local paths only"
                    )));
                }
                files.push(path);
            }
        }
        return Ok(Targets::Files(files));
    }
    let Some(name) = name else { return Ok(Targets::Repository(Vec::new())) };
    let names: Vec<&str> = name.as_str().split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if version.is_some() && names.len() > 1 {
        return Err(CallError::failed("version can only be given with a single package name"));
    }
    Ok(Targets::Repository(
        names.into_iter().map(|n| Target { name: n.to_string(), version: version.map(|v| v.0.clone()) }).collect(),
    ))
}

/// The installed names matching the requested ones (globs expanded, like Salt's
/// `match_wildcard`), in request order without repeats.
fn matching_installed(targets: &[Target], installed: &Versions) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        let found: Vec<&String> = if is_glob(&t.name) {
            installed.keys().filter(|k| fnmatch(&t.name, k)).collect()
        } else {
            installed.get_key_value(&t.name).map(|(k, _)| k).into_iter().collect()
        };
        for f in found {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// refresh_db

fn refresh_db(r: &dyn Runner, b: &Backend, cache_valid_time: u64, failhard: bool) -> Result<Value, CallError> {
    match b.manager {
        Manager::Apt => {
            if cache_valid_time > 0 {
                let updated = std::fs::metadata(APT_LISTS).and_then(|m| m.modified()).ok();
                if updated.is_some_and(|t| fresh(t, SystemTime::now(), cache_valid_time)) {
                    return Ok(Value::Object(Map::new()));
                }
            }
            let cmd = CommandLine::new("apt-get").args(["-q", "update"]);
            let ran = r.run(&cmd)?;
            if !ran.success() {
                return Err(ran.failure(&cmd));
            }
            let (repos, errors) = parse_apt_update(&ran.stdout);
            if failhard && !errors.is_empty() {
                return Err(CallError::failed(format!("Error getting repos: {}", errors.join(", "))));
            }
            Ok(Value::Object(repos))
        }
        Manager::Dnf => {
            r.run(&CommandLine::new("dnf").args(["--quiet", "--assumeyes", "clean", "expire-cache"]))?;
            let ran = r.run(&CommandLine::new("dnf").args(["--quiet", "--assumeyes", "check-update"]))?;
            // check-update exits 100 when updates are available, 0 when none.
            Ok(match ran.retcode {
                100 => Value::Bool(true),
                0 => Value::Null,
                _ => Value::Bool(false),
            })
        }
        Manager::Apk => {
            r.run_ok(&CommandLine::new("apk").arg("update"))?;
            Ok(Value::Bool(true))
        }
    }
}

/// Whether a refresh at `updated` is younger than `valid_for` seconds at `now`.
fn fresh(updated: SystemTime, now: SystemTime, valid_for: u64) -> bool {
    now.duration_since(updated).is_ok_and(|age| age < Duration::from_secs(valid_for))
}

/// Reads `apt-get -q update` output: `Get:` lines were updated (true), `Hit:` were
/// current (None), `Ign:`/`Err:` failed (false); also returns the failed ones.
fn parse_apt_update(out: &str) -> (Map, Vec<String>) {
    let mut repos = Map::new();
    let mut errors = Vec::new();
    for line in out.lines() {
        let Some((kind, ident)) = line.trim().split_once(char::is_whitespace) else { continue };
        let ident = ident.split_whitespace().collect::<Vec<_>>().join(" ");
        let value = if kind.starts_with("Get") {
            // Drop the download size: "… InRelease [151 kB]".
            let ident = match ident.rfind(" [") {
                Some(i) if ident.ends_with("B]") => ident[..i].to_string(),
                _ => ident,
            };
            repos.insert(ident, Value::Bool(true));
            continue;
        } else if kind.starts_with("Hit") {
            Value::Null
        } else if kind.starts_with("Ign") {
            Value::Bool(false)
        } else if kind.starts_with("Err") {
            errors.push(ident.clone());
            Value::Bool(false)
        } else {
            continue;
        };
        repos.insert(ident, value);
    }
    (repos, errors)
}

// ---------------------------------------------------------------------------------
// install

/// The options of `pkg.install` that shape the command lines.
#[derive(Debug, Clone, Default)]
struct InstallOptions {
    fromrepo: Option<String>,
    skip_verify: bool,
    reinstall: bool,
    downloadonly: bool,
    install_recommends: Option<bool>,
    only_upgrade: bool,
    force_yes: bool,
    force_conf_new: bool,
}

/// The commands that install `targets` given the installed `old` versions, and the
/// names to report as reinstalled.
fn install_commands(
    b: &Backend,
    targets: &Targets,
    old: &BTreeMap<String, String>,
    o: &InstallOptions,
) -> Result<(Vec<CommandLine>, Vec<String>), CallError> {
    let mut fresh_targets = Vec::new();
    let mut downgrades = Vec::new();
    let mut reinstalls: Vec<(String, String)> = Vec::new();
    let files = matches!(targets, Targets::Files(_));
    match targets {
        Targets::Files(paths) => fresh_targets.extend(paths.iter().cloned()),
        Targets::Repository(list) => {
            for t in list {
                let installed = old.get(&t.name).map(|v| highest(b, v));
                let Some(version) = &t.version else {
                    if o.reinstall && installed.is_some() {
                        reinstalls.push((t.name.clone(), t.name.clone()));
                    } else {
                        fresh_targets.push(t.name.clone());
                    }
                    continue;
                };
                let version = version.trim_start_matches('=');
                if version.starts_with(['<', '>', '!']) {
                    return Err(CallError::failed(format!(
                        "{}: version comparisons ('{version}') are not supported; give an exact version",
                        t.name
                    )));
                }
                let spec = match b.manager {
                    Manager::Apt | Manager::Apk => format!("{}={version}", t.name),
                    Manager::Dnf => format!("{}-{version}", t.name),
                };
                match installed.map(|cur| b.compare(version, cur)) {
                    Some(Ordering::Equal) if o.reinstall => reinstalls.push((t.name.clone(), spec)),
                    None | Some(Ordering::Equal | Ordering::Greater) => fresh_targets.push(spec),
                    Some(Ordering::Less) => downgrades.push(spec),
                }
            }
        }
    }
    let mut cmds = Vec::new();
    match b.manager {
        Manager::Apt => {
            let mut prefix = CommandLine::new("apt-get").args(["-q", "-y"]);
            for (k, v) in DPKG_ENV {
                prefix = prefix.env(k, v);
            }
            if o.force_yes {
                prefix = prefix.arg("--force-yes");
            }
            prefix = if o.force_conf_new {
                prefix.args(["-o", "DPkg::Options::=--force-confnew"])
            } else {
                prefix.args(["-o", "DPkg::Options::=--force-confold", "-o", "DPkg::Options::=--force-confdef"])
            };
            match o.install_recommends {
                Some(false) => prefix = prefix.arg("--no-install-recommends"),
                Some(true) => prefix = prefix.arg("--install-recommends"),
                None => {}
            }
            if o.only_upgrade {
                prefix = prefix.arg("--only-upgrade");
            }
            if o.skip_verify {
                prefix = prefix.arg("--allow-unauthenticated");
            }
            if let (Some(repo), false) = (&o.fromrepo, files) {
                prefix = prefix.args(["-t", repo.as_str()]);
            }
            if o.downloadonly {
                prefix = prefix.arg("--download-only");
            }
            if !fresh_targets.is_empty() {
                cmds.push(prefix.clone().arg("install").args(fresh_targets));
            }
            if !downgrades.is_empty() {
                cmds.push(prefix.clone().args(["--allow-downgrades", "install"]).args(downgrades));
            }
            if !reinstalls.is_empty() {
                cmds.push(prefix.arg("install").arg("--reinstall").args(reinstalls.iter().map(|(_, s)| s.clone())));
            }
        }
        Manager::Dnf => {
            let mut prefix = CommandLine::new("dnf").arg("-y");
            if o.skip_verify {
                prefix = prefix.arg("--nogpgcheck");
            }
            if let (Some(repo), false) = (&o.fromrepo, files) {
                prefix = prefix.args(["--disablerepo=*".to_string(), format!("--enablerepo={repo}")]);
            }
            if o.downloadonly {
                prefix = prefix.arg("--downloadonly");
            }
            if !fresh_targets.is_empty() {
                cmds.push(prefix.clone().arg("install").args(fresh_targets));
            }
            if !downgrades.is_empty() {
                cmds.push(prefix.clone().arg("downgrade").args(downgrades));
            }
            if !reinstalls.is_empty() {
                cmds.push(prefix.arg("reinstall").args(reinstalls.iter().map(|(_, s)| s.clone())));
            }
        }
        Manager::Apk => {
            let mut prefix = CommandLine::new("apk").arg("add");
            if o.skip_verify || files {
                prefix = prefix.arg("--allow-untrusted");
            }
            if let Some(repo) = &o.fromrepo {
                prefix = prefix.args(["--repository", repo.as_str()]);
            }
            // apk has no reinstall; adding again is a no-op that keeps the call honest.
            let all: Vec<String> =
                fresh_targets.into_iter().chain(downgrades).chain(reinstalls.iter().map(|(_, s)| s.clone())).collect();
            if !all.is_empty() {
                cmds.push(prefix.args(all));
            }
        }
    }
    Ok((cmds, reinstalls.into_iter().map(|(n, _)| n).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallArgs {
    #[serde(default)]
    name: Option<Word>,
    #[serde(default)]
    refresh: bool,
    #[serde(default)]
    fromrepo: Option<Word>,
    #[serde(default)]
    skip_verify: bool,
    /// A local debconf answers file (apt only).
    #[serde(default)]
    debconf: Option<String>,
    #[serde(default)]
    pkgs: Option<Vec<Value>>,
    #[serde(default)]
    sources: Option<Vec<Value>>,
    #[serde(default)]
    reinstall: bool,
    #[serde(default)]
    downloadonly: bool,
    /// Only matters for version comparisons, which brine does not accept.
    #[serde(default)]
    #[allow(dead_code)]
    ignore_epoch: bool,
    #[serde(default)]
    version: Option<Word>,
    #[serde(default)]
    install_recommends: Option<bool>,
    #[serde(default)]
    only_upgrade: bool,
    #[serde(default)]
    force_yes: bool,
    #[serde(default)]
    force_conf_new: bool,
    #[serde(default)]
    cache_valid_time: u64,
}

fn install(r: &dyn Runner, b: &Backend, a: &InstallArgs) -> Result<Value, CallError> {
    let targets = parse_targets(a.name.as_ref(), a.pkgs.as_deref(), a.sources.as_deref(), a.version.as_ref())?;
    if matches!(&targets, Targets::Repository(t) if t.is_empty())
        || matches!(&targets, Targets::Files(f) if f.is_empty())
    {
        return Err(CallError::failed("pkg.install needs a package: give name, pkgs or sources"));
    }
    let options = InstallOptions {
        fromrepo: a.fromrepo.as_ref().map(|w| w.0.clone()),
        skip_verify: a.skip_verify,
        reinstall: a.reinstall,
        downloadonly: a.downloadonly,
        install_recommends: a.install_recommends,
        only_upgrade: a.only_upgrade,
        force_yes: a.force_yes,
        force_conf_new: a.force_conf_new,
    };
    if let Some(file) = &a.debconf {
        if b.manager != Manager::Apt {
            return Err(CallError::failed("debconf applies to apt (Debian family) hosts only"));
        }
        r.run_ok(&CommandLine::new("debconf-set-selections").arg(file.as_str()))?;
    }
    let old = list(r, b)?;
    let old_current = old.current();
    let (cmds, reinstalled) = install_commands(b, &targets, &flatten(&old_current), &options)?;
    if cmds.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    if a.refresh {
        refresh_db(r, b, a.cache_valid_time, false)?;
    }
    let mut errors = Vec::new();
    for cmd in &cmds {
        let ran = r.run(cmd)?;
        if !ran.success() {
            errors.push(failure_text(&ran));
        }
    }
    let new_current = list(r, b)?.current();
    let mut changes = diff(&old_current, &new_current);
    let (old_flat, new_flat) = (flatten(&old_current), flatten(&new_current));
    for name in reinstalled {
        changes.entry(name.clone()).or_insert_with(|| {
            json!({"old": old_flat.get(&name).cloned().unwrap_or_default(),
                   "new": new_flat.get(&name).cloned().unwrap_or_default()})
        });
    }
    if !errors.is_empty() {
        return Err(problem(
            "Problem encountered installing package(s)",
            json!({"errors": errors, "changes": Value::Object(changes)}),
        ));
    }
    Ok(Value::Object(changes))
}

/// What a failed package command said: its stderr, else its exit status.
fn failure_text(ran: &super::host::Ran) -> String {
    match ran.stderr.trim() {
        "" => format!("exit code {}{}", ran.retcode, tail(&ran.stdout)),
        err => err.to_string(),
    }
}

/// The last lines of a long output, for error messages.
fn tail(out: &str) -> String {
    let lines: Vec<&str> = out.trim().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(": {}", lines[lines.len().saturating_sub(5)..].join("\n"))
}

// ---------------------------------------------------------------------------------
// remove / purge

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    #[serde(default)]
    name: Option<Word>,
    #[serde(default)]
    pkgs: Option<Vec<Value>>,
}

fn uninstall(r: &dyn Runner, b: &Backend, a: &RemoveArgs, purge: bool) -> Result<Value, CallError> {
    let Targets::Repository(targets) = parse_targets(a.name.as_ref(), a.pkgs.as_deref(), None, None)? else {
        return Ok(Value::Object(Map::new()));
    };
    let old = list(r, b)?;
    let old_current = old.current();
    let mut names = matching_installed(&targets, &old_current);
    let apt_purge = purge && b.manager == Manager::Apt;
    if apt_purge {
        for n in matching_installed(&targets, &old.removed) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    if names.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let cmd = match b.manager {
        Manager::Apt => {
            let mut c = CommandLine::new("apt-get").args(["-q", "-y", if purge { "purge" } else { "remove" }]);
            for (k, v) in DPKG_ENV {
                c = c.env(k, v);
            }
            c.args(names)
        }
        Manager::Dnf => CommandLine::new("dnf").args(["-y", "remove"]).args(names),
        Manager::Apk => CommandLine::new("apk").arg("del").args(names),
    };
    let ran = r.run(&cmd)?;
    let new = list(r, b)?;
    let changes = Value::Object(diff(&old_current, &new.current()));
    let ret = if apt_purge {
        json!({"removed": Value::Object(diff(&old.removed, &new.removed)), "installed": changes})
    } else {
        changes
    };
    if !ran.success() {
        return Err(problem(
            "Problem encountered removing package(s)",
            json!({"errors": [failure_text(&ran)], "changes": ret}),
        ));
    }
    Ok(ret)
}

// ---------------------------------------------------------------------------------
// upgrade

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeArgs {
    #[serde(default = "yes")]
    refresh: bool,
    #[serde(default)]
    dist_upgrade: bool,
    #[serde(default)]
    cache_valid_time: u64,
    #[serde(default)]
    download_only: bool,
    #[serde(default)]
    downloadonly: bool,
    #[serde(default)]
    force_conf_new: bool,
    #[serde(default)]
    allow_downgrades: bool,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    force_yes: bool,
}

fn yes() -> bool {
    true
}

fn upgrade_command(b: &Backend, a: &UpgradeArgs) -> CommandLine {
    let download_only = a.download_only || a.downloadonly;
    match b.manager {
        Manager::Apt => {
            let mut c = CommandLine::new("apt-get").args(["-q", "-y"]);
            for (k, v) in DPKG_ENV {
                c = c.env(k, v);
            }
            c = if a.force_conf_new {
                c.args(["-o", "DPkg::Options::=--force-confnew"])
            } else {
                c.args(["-o", "DPkg::Options::=--force-confold", "-o", "DPkg::Options::=--force-confdef"])
            };
            for (on, flag) in [
                (a.force_yes, "--force-yes"),
                (a.skip_verify, "--allow-unauthenticated"),
                (download_only, "--download-only"),
                (a.allow_downgrades, "--allow-downgrades"),
            ] {
                if on {
                    c = c.arg(flag);
                }
            }
            c.arg(if a.dist_upgrade { "dist-upgrade" } else { "upgrade" })
        }
        Manager::Dnf => {
            let mut c = CommandLine::new("dnf").arg("-y");
            if a.skip_verify {
                c = c.arg("--nogpgcheck");
            }
            if download_only {
                c = c.arg("--downloadonly");
            }
            c.arg(if a.dist_upgrade { "distro-sync" } else { "upgrade" })
        }
        Manager::Apk => CommandLine::new("apk").arg("upgrade"),
    }
}

fn upgrade(r: &dyn Runner, b: &Backend, a: &UpgradeArgs) -> Result<Value, CallError> {
    if a.refresh {
        refresh_db(r, b, a.cache_valid_time, false)?;
    }
    let old = list(r, b)?.current();
    let cmd = upgrade_command(b, a);
    let ran = r.run(&cmd)?;
    let changes = Value::Object(diff(&old, &list(r, b)?.current()));
    if !ran.success() {
        return Err(problem(
            "Problem encountered upgrading packages",
            json!({"changes": changes, "result": {"retcode": ran.retcode, "stdout": ran.stdout.trim_end(),
                   "stderr": ran.stderr.trim_end()}}),
        ));
    }
    Ok(changes)
}

// ---------------------------------------------------------------------------------
// latest_version

/// Reads `apt-cache -q policy NAME…`: each package's candidate version (`""` for
/// `(none)`).
fn parse_apt_policy(out: &str) -> BTreeMap<String, String> {
    let mut candidates = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_suffix(':') {
            if !line.starts_with("Version table") {
                current = Some(name.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("Candidate:") {
            let candidate = rest.trim();
            let candidate = if candidate == "(none)" { "" } else { candidate };
            if let Some(name) = &current {
                candidates.insert(name.clone(), candidate.to_string());
            }
        }
    }
    candidates
}

/// Reads `dnf list --available NAME…` (`name.arch  [epoch:]version-release  repo`,
/// long names wrapped onto two lines) into `(name, arch, version)`.
fn parse_dnf_list(out: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for line in out.lines() {
        let t = line.trim();
        let lower = t.to_ascii_lowercase();
        if t.is_empty()
            || lower == "available packages"
            || lower == "installed packages"
            || lower.starts_with("last metadata expiration")
            || lower.starts_with("updating and loading")
            || lower.starts_with("repositories loaded")
        {
            continue;
        }
        pending.extend(t.split_whitespace());
        if pending.len() >= 3 {
            if let Some((name, arch)) = pending[0].rsplit_once('.') {
                found.push((name.to_string(), arch.to_string(), pending[1].to_string()));
            }
            pending.clear();
        }
    }
    found
}

/// Reads `apk upgrade -s`: `(1/2) Upgrading musl (1.2.4-r1 -> 1.2.4-r2)`.
fn parse_apk_upgrades(out: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [_, "Upgrading", name, _, "->", new, ..] = words[..] {
            found.insert(name.to_string(), new.trim_end_matches(')').to_string());
        }
    }
    found
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestArgs {
    args: Vec<Value>,
    #[serde(default = "yes")]
    refresh: bool,
    #[serde(default)]
    fromrepo: Option<Word>,
    #[serde(default)]
    show_installed: bool,
    #[serde(default)]
    cache_valid_time: u64,
}

fn latest_version(r: &dyn Runner, b: &Backend, a: &LatestArgs) -> Result<Value, CallError> {
    let names: Vec<String> = a.args.iter().map(word_text).collect();
    if names.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let installed = flatten(&list(r, b)?.current());
    if a.refresh {
        refresh_db(r, b, a.cache_valid_time, false)?;
    }
    let fromrepo = a.fromrepo.as_ref().map(|w| w.0.as_str());
    let newer = |name: &str, candidate: &str| -> bool {
        match installed.get(name) {
            None => true,
            Some(_) if a.show_installed => true,
            Some(cur) => cur.split(',').all(|v| b.compare(v, candidate) == Ordering::Less),
        }
    };
    let mut ret = Map::new();
    match b.manager {
        Manager::Apt => {
            let mut cmd = CommandLine::new("apt-cache").args(["-q", "policy"]).args(names.iter().cloned());
            if let Some(repo) = fromrepo {
                cmd = cmd.args(["-o".to_string(), format!("APT::Default-Release={repo}")]);
            }
            let candidates = parse_apt_policy(&r.run(&cmd)?.stdout);
            for name in &names {
                let c = candidates.get(name).map(String::as_str).unwrap_or_default();
                let v = if !c.is_empty() && newer(name, c) { c } else { "" };
                ret.insert(name.clone(), v.into());
            }
        }
        Manager::Dnf => {
            let mut cmd = CommandLine::new("dnf").arg("--quiet");
            if let Some(repo) = fromrepo {
                cmd = cmd.args(["--disablerepo=*".to_string(), format!("--enablerepo={repo}")]);
            }
            let cmd = cmd.args(["list", "--available"]).args(names.iter().cloned());
            // dnf exits 1 when nothing matches: that just means no candidate.
            let mut available = parse_dnf_list(&r.run(&cmd)?.stdout);
            available.sort_by(|x, y| b.compare(&y.2, &x.2));
            let native = b.arch.as_deref();
            for name in &names {
                let v = available
                    .iter()
                    .filter(|(n, arch, _)| {
                        n == name && (arch == "noarch" || Some(arch.as_str()) == native || is_x86_32(arch))
                    })
                    .find(|(_, _, v)| newer(name, v))
                    .map(|(_, _, v)| v.clone())
                    .unwrap_or_default();
                ret.insert(name.clone(), v.into());
            }
        }
        Manager::Apk => {
            let upgrades = parse_apk_upgrades(&r.run(&CommandLine::new("apk").args(["upgrade", "-s"]))?.stdout);
            for name in &names {
                let v = match upgrades.get(name) {
                    Some(v) => v.clone(),
                    None => {
                        let out = r.run(&CommandLine::new("apk").args(["search", name.as_str()]))?.stdout;
                        let found = out
                            .lines()
                            .filter_map(|l| split_apk_name(l.trim()))
                            .find(|(n, _)| n == name)
                            .map(|(_, v)| v.to_string());
                        match found {
                            Some(v) if installed.get(name) != Some(&v) || a.show_installed => v,
                            _ => String::new(),
                        }
                    }
                };
                ret.insert(name.clone(), v.into());
            }
        }
    }
    if names.len() == 1 {
        return Ok(ret.remove(&names[0]).unwrap_or_else(|| Value::String(String::new())));
    }
    Ok(Value::Object(ret))
}

// ---------------------------------------------------------------------------------
// version / list_pkgs

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionArgs {
    args: Vec<Value>,
    #[serde(default)]
    versions_as_list: bool,
}

/// `pkg.version`: one name gives a string (`""` when not installed); several names
/// or a glob give a map.
fn versions(inv: &Inventory, a: &VersionArgs) -> Value {
    let installed = inv.current();
    let names: Vec<String> = a.args.iter().map(word_text).collect();
    let mut found = Versions::new();
    let mut order = Vec::new();
    let mut globbed = false;
    for name in &names {
        if name.contains('*') {
            globbed = true;
            for (k, v) in installed.iter().filter(|(k, _)| fnmatch(name, k)) {
                found.insert(k.clone(), v.clone());
                order.push(k.clone());
            }
        } else {
            found.insert(name.clone(), installed.get(name).cloned().unwrap_or_default());
            order.push(name.clone());
        }
    }
    let one = |vs: &Vec<String>| if a.versions_as_list { json!(vs) } else { Value::String(vs.join(",")) };
    if found.len() == 1 && !globbed {
        return found.values().next().map(one).unwrap_or_else(|| Value::String(String::new()));
    }
    let mut out = Map::new();
    for name in order {
        if let Some(vs) = found.get(&name) {
            out.insert(name, one(vs));
        }
    }
    Value::Object(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    #[serde(default)]
    versions_as_list: bool,
    #[serde(default)]
    removed: bool,
    #[serde(default)]
    purge_desired: bool,
}

fn list_pkgs(inv: &Inventory, a: &ListArgs) -> Value {
    let chosen = if a.removed {
        inv.removed.clone()
    } else if a.purge_desired {
        inv.purge_desired.clone()
    } else {
        inv.current()
    };
    to_value(&chosen, a.versions_as_list)
}

// ---------------------------------------------------------------------------------
// Functions.

fn backend(ctx: &Context) -> Result<Backend, CallError> {
    Backend::for_host(&ctx.grains)
}

pub struct Install;
impl Function for Install {
    const NAME: &'static str = "pkg.install";
    const DOC: &'static str = "Installs packages and returns what changed: {name: {old, new}} from the \
        package lists before and after.\n\n\
        name: a package (or a comma-separated list). pkgs: a list of names or {name: version} maps. \
        sources: a list of {name: /local/path.deb|.rpm} maps. version: an exact version for name. \
        refresh: refresh the package database first (cache_valid_time: skip if refreshed that many \
        seconds ago). fromrepo: install from that repository (apt -t, dnf --enablerepo). skip_verify: \
        do not check signatures. reinstall: reinstall packages already at the wanted version. \
        downloadonly: only download. debconf: a local debconf answers file (apt). apt only: \
        install_recommends, only_upgrade, force_yes, force_conf_new. Version comparisons such as \
        '>=1.2' are not supported.\n\n\
        CLI example: brine run '*' pkg.install nginx refresh=True";
    const PARAMS: &'static [Param] = &[
        opt("name"),
        opt("refresh"),
        opt("fromrepo"),
        opt("skip_verify"),
        opt("debconf"),
        opt("pkgs"),
        opt("sources"),
        opt("reinstall"),
        opt("downloadonly"),
        opt("ignore_epoch"),
    ];
    type Args = InstallArgs;
    fn call(&self, ctx: &Context, a: InstallArgs) -> Result<Output, CallError> {
        Ok(Output::ok(install(&Host::new(ctx), &backend(ctx)?, &a)?))
    }
}

pub struct Remove;
impl Function for Remove {
    const NAME: &'static str = "pkg.remove";
    const DOC: &'static str = "Removes packages and returns what changed: {name: {old, new: \"\"}}.\n\n\
        name: a package, a comma-separated list or a glob. pkgs: a list of names. Packages that are \
        not installed are skipped; nothing to do returns {}.\n\n\
        CLI example: brine run '*' pkg.remove nginx";
    const PARAMS: &'static [Param] = &[opt("name"), opt("pkgs")];
    type Args = RemoveArgs;
    fn call(&self, ctx: &Context, a: RemoveArgs) -> Result<Output, CallError> {
        Ok(Output::ok(uninstall(&Host::new(ctx), &backend(ctx)?, &a, false)?))
    }
}

pub struct Purge;
impl Function for Purge {
    const NAME: &'static str = "pkg.purge";
    const DOC: &'static str = "Removes packages with their configuration files. On apt returns \
        {removed: {…}, installed: {…}} (configuration-only packages purged, installed packages \
        removed); elsewhere the same as pkg.remove.\n\n\
        name: a package, a comma-separated list or a glob. pkgs: a list of names.\n\n\
        CLI example: brine run '*' pkg.purge nginx";
    const PARAMS: &'static [Param] = &[opt("name"), opt("pkgs")];
    type Args = RemoveArgs;
    fn call(&self, ctx: &Context, a: RemoveArgs) -> Result<Output, CallError> {
        Ok(Output::ok(uninstall(&Host::new(ctx), &backend(ctx)?, &a, true)?))
    }
}

pub struct Upgrade;
impl Function for Upgrade {
    const NAME: &'static str = "pkg.upgrade";
    const DOC: &'static str = "Upgrades every package and returns what changed: {name: {old, new}}.\n\n\
        refresh (default True): refresh the package database first (cache_valid_time: skip if \
        refreshed that many seconds ago). dist_upgrade: apt dist-upgrade (dnf distro-sync). \
        download_only/downloadonly: only download. skip_verify: do not check signatures. apt only: \
        force_conf_new, allow_downgrades, force_yes.\n\n\
        CLI example: brine run '*' pkg.upgrade refresh=False";
    const PARAMS: &'static [Param] = &[opt("refresh"), opt("dist_upgrade")];
    type Args = UpgradeArgs;
    fn call(&self, ctx: &Context, a: UpgradeArgs) -> Result<Output, CallError> {
        Ok(Output::ok(upgrade(&Host::new(ctx), &backend(ctx)?, &a)?))
    }
}

pub struct ListPkgs;
impl Function for ListPkgs {
    const NAME: &'static str = "pkg.list_pkgs";
    const DOC: &'static str = "Lists installed packages as {name: version}; several installed versions \
        are joined by commas.\n\n\
        versions_as_list: give each version list as a list. removed (apt): packages removed but not \
        purged. purge_desired (apt): packages marked for purge but still installed.\n\n\
        CLI example: brine run '*' pkg.list_pkgs";
    const PARAMS: &'static [Param] = &[opt("versions_as_list"), opt("removed"), opt("purge_desired")];
    type Args = ListArgs;
    fn call(&self, ctx: &Context, a: ListArgs) -> Result<Output, CallError> {
        let inv = list(&Host::new(ctx), &backend(ctx)?)?;
        Ok(Output::ok(list_pkgs(&inv, &a)))
    }
}

pub struct Version;
impl Function for Version {
    const NAME: &'static str = "pkg.version";
    const DOC: &'static str = "Returns the installed version of a package (\"\" when not installed); \
        several names or a glob give {name: version}.\n\n\
        versions_as_list: give versions as lists.\n\n\
        CLI example: brine run '*' pkg.version bash openssl";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = VersionArgs;
    fn call(&self, ctx: &Context, a: VersionArgs) -> Result<Output, CallError> {
        let inv = list(&Host::new(ctx), &backend(ctx)?)?;
        Ok(Output::ok(versions(&inv, &a)))
    }
}

pub struct LatestVersion;
impl Function for LatestVersion {
    const NAME: &'static str = "pkg.latest_version";
    const DOC: &'static str = "Returns the newest version available to install or upgrade to; \"\" when \
        the newest is already installed or none is known. Several names give {name: version}.\n\n\
        refresh (default True): refresh the package database first (cache_valid_time: skip if \
        refreshed that many seconds ago). fromrepo: look in that repository only. show_installed: \
        report the candidate even when it is installed.\n\n\
        CLI example: brine run '*' pkg.latest_version nginx refresh=False";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = LatestArgs;
    fn call(&self, ctx: &Context, a: LatestArgs) -> Result<Output, CallError> {
        Ok(Output::ok(latest_version(&Host::new(ctx), &backend(ctx)?, &a)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshArgs {
    #[serde(default)]
    cache_valid_time: u64,
    #[serde(default)]
    failhard: bool,
}

pub struct RefreshDb;
impl Function for RefreshDb {
    const NAME: &'static str = "pkg.refresh_db";
    const DOC: &'static str = "Refreshes the package database. apt returns {repository: result} with \
        True (updated), None (already current) or False (failed); dnf returns True (updates \
        available), None (none) or False (failed); apk returns True.\n\n\
        cache_valid_time (apt): skip if refreshed that many seconds ago. failhard (apt): fail when a \
        repository could not be fetched.\n\n\
        CLI example: brine run '*' pkg.refresh_db";
    const PARAMS: &'static [Param] = &[opt("cache_valid_time"), opt("failhard")];
    type Args = RefreshArgs;
    fn call(&self, ctx: &Context, a: RefreshArgs) -> Result<Output, CallError> {
        Ok(Output::ok(refresh_db(&Host::new(ctx), &backend(ctx)?, a.cache_valid_time, a.failhard)?))
    }
}

/// The `pkg` execution module.
pub static MODULE: super::Module = super::Module {
    name: "pkg",
    doc: "Install, remove, upgrade and query packages (apt, dnf, apk).",
    functions: &[&Install, &LatestVersion, &ListPkgs, &Purge, &RefreshDb, &Remove, &Upgrade, &Version],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::host::script::Script;

    const DPKG: &str = "APT_LISTBUGS_FRONTEND=none APT_LISTCHANGES_FRONTEND=none \
        DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1";
    const DPKG_QUERY: &str = "dpkg-query --showformat '${Status} ${Package} ${Version} ${Architecture}\n' -W";
    const RPM_QA: &str = "rpm -qa --nodigest --nosignature --queryformat \
        '%{NAME}_|-%{EPOCH}_|-%{VERSION}_|-%{RELEASE}_|-%{ARCH}\n'";
    const CONF: &str = "-o DPkg::Options::=--force-confold -o DPkg::Options::=--force-confdef";

    fn apt() -> Backend {
        Backend { manager: Manager::Apt, arch: Some("amd64".into()) }
    }
    fn dnf() -> Backend {
        Backend { manager: Manager::Dnf, arch: Some("x86_64".into()) }
    }
    fn apk() -> Backend {
        Backend { manager: Manager::Apk, arch: None }
    }

    fn args<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    const DPKG_BEFORE: &str = "\
install ok installed bash 5.2.15-2+b8 amd64
install ok installed libc6 2.36-9+deb12u10 amd64
install ok installed libc6 2.36-9+deb12u10 i386
deinstall ok config-files nginx-common 1.22.1-9 all
purge ok installed libold1 1.0-1 amd64
hold ok installed openssl 3.0.16-1~deb12u1 amd64
install ok half-configured broken 1.0 amd64
unknown ok not-installed ghost 1.0 amd64
";

    #[test]
    fn the_backend_comes_from_os_family() {
        let grains = |v: Value| -> Map { serde_json::from_value(v).unwrap() };
        let b = Backend::for_host(&grains(json!({"os_family": "Debian", "cpuarch": "x86_64"}))).unwrap();
        assert_eq!(b, apt());
        let b = Backend::for_host(&grains(json!({"os_family": "RedHat", "cpuarch": "aarch64"}))).unwrap();
        assert_eq!(b, Backend { manager: Manager::Dnf, arch: Some("aarch64".into()) });
        let b = Backend::for_host(&grains(json!({"os_family": "Alpine"}))).unwrap();
        assert_eq!(b.manager, Manager::Apk);
        let err = Backend::for_host(&grains(json!({"os_family": "Arch"}))).unwrap_err().to_string();
        assert!(err.contains("no package backend for os_family 'Arch'"), "{err}");
    }

    #[test]
    fn dpkg_query_output_becomes_installed_removed_and_purge_desired() {
        let inv = parse_dpkg_query(DPKG_BEFORE, Some("amd64"));
        let flat = flatten(&inv.installed);
        assert_eq!(flat.get("bash").map(String::as_str), Some("5.2.15-2+b8"));
        assert_eq!(flat.get("libc6:i386").map(String::as_str), Some("2.36-9+deb12u10"), "foreign arch suffixed");
        assert_eq!(flat.get("openssl").map(String::as_str), Some("3.0.16-1~deb12u1"), "held counts as installed");
        assert!(!flat.contains_key("broken") && !flat.contains_key("ghost") && !flat.contains_key("nginx-common"));
        assert_eq!(flatten(&inv.removed).keys().collect::<Vec<_>>(), ["nginx-common"]);
        assert_eq!(flatten(&inv.purge_desired).keys().collect::<Vec<_>>(), ["libold1"]);
        let all = list_pkgs(&inv, &args(json!({})));
        assert_eq!(all["libold1"], json!("1.0-1"), "purge-desired packages are still installed");
        assert_eq!(list_pkgs(&inv, &args(json!({"removed": true}))), json!({"nginx-common": "1.22.1-9"}));
        assert_eq!(list_pkgs(&inv, &args(json!({"versions_as_list": true})))["bash"], json!(["5.2.15-2+b8"]));
    }

    #[test]
    fn rpm_and_apk_listings_parse_like_salt() {
        let out = "bash_|-(none)_|-5.1.8_|-9.el9_|-x86_64\n\
                   kernel-core_|-(none)_|-5.14.0_|-427.el9_|-x86_64\n\
                   kernel-core_|-(none)_|-5.14.0_|-362.el9_|-x86_64\n\
                   glibc_|-(none)_|-2.34_|-100.el9_|-i686\n\
                   tzdata_|-(none)_|-2024a_|-1.el9_|-noarch\n\
                   openssl_|-1_|-3.0.7_|-27.el9_|-x86_64\n\
                   gpg-pubkey_|-(none)_|-fd431d51_|-4ae0493b_|-(none)\n";
        let inv = parse_rpm_qa(out, Some("x86_64"));
        let v = to_value(&inv.installed, false);
        assert_eq!(v["bash"], json!("5.1.8-9.el9"));
        assert_eq!(v["kernel-core"], json!("5.14.0-362.el9,5.14.0-427.el9"));
        assert_eq!(v["glibc.i686"], json!("2.34-100.el9"));
        assert_eq!(v["tzdata"], json!("2024a-1.el9"));
        assert_eq!(v["openssl"], json!("1:3.0.7-27.el9"));
        assert_eq!(v["gpg-pubkey"], json!("fd431d51-4ae0493b"));
        let inv = parse_apk_info("musl-1.2.4-r2\nbusybox-binsh-1.36.1-r15\nWARNING: something\n");
        assert_eq!(to_value(&inv.installed, false), json!({"busybox-binsh": "1.36.1-r15", "musl": "1.2.4-r2"}));
    }

    #[test]
    fn versions_order_like_dpkg_and_rpm() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.9", "2.0", Greater),
            ("5.2.15-2+b13", "5.2.15-2+b8", Greater),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0-1", "1.0-1~bpo1", Greater),
            ("3.0.16-1~deb12u1", "3.0.15-1~deb12u1", Greater),
            ("0001", "1", Equal),
        ] {
            assert_eq!(dpkg_version_cmp(a, b), want, "dpkg {a} vs {b}");
        }
        for (a, b, want) in [
            ("1.0-1", "1.0-1", Equal),
            ("1.0-2.el9", "1.0-10.el9", Less),
            ("1:1.0-1", "2.0-1", Greater),
            ("1.0~rc1-1", "1.0-1", Less),
            ("1.0^git1-1", "1.0-1", Greater),
            ("1.0a", "1.0.1", Less),
            ("2.0", "2.0-5", Equal),
            ("1.010", "1.10", Equal),
        ] {
            assert_eq!(rpm_version_cmp(a, b), want, "rpm {a} vs {b}");
        }
        assert_eq!(apk_version_cmp("1.2.4-r10", "1.2.4-r2"), Greater);
    }

    #[test]
    fn install_with_apt_runs_one_command_and_reports_the_diff() {
        let after = format!("{DPKG_BEFORE}install ok installed nginx 1.22.1-9 amd64\n");
        let script = Script::new()
            .ok(DPKG_QUERY, DPKG_BEFORE)
            .ok("apt-get -q update", "Hit:1 http://deb.debian.org/debian bookworm InRelease\n")
            .ok(&format!("{DPKG} apt-get -q -y {CONF} install nginx"), "Setting up nginx (1.22.1-9) ...\n")
            .ok(DPKG_QUERY, &after);
        let got = install(&script, &apt(), &args(json!({"name": "nginx", "refresh": true}))).unwrap();
        script.done();
        assert_eq!(got, json!({"nginx": {"old": "", "new": "1.22.1-9"}}));
    }

    #[test]
    fn install_with_versions_splits_upgrades_downgrades_and_reinstalls() {
        let b = apt();
        let old: BTreeMap<String, String> =
            [("bash", "5.2.15-2+b8"), ("openssl", "3.0.16-1~deb12u1"), ("vim", "2:9.0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let targets = parse_targets(
            None,
            Some(&[
                json!({"bash": "5.2.15-2+b13"}),
                json!({"openssl": "3.0.11-1~deb12u2"}),
                json!({"vim": "2:9.0"}),
                json!("curl"),
            ]),
            None,
            None,
        )
        .unwrap();
        let o = InstallOptions {
            reinstall: true,
            install_recommends: Some(false),
            fromrepo: Some("bookworm-backports".into()),
            ..Default::default()
        };
        let (cmds, reinstalled) = install_commands(&b, &targets, &old, &o).unwrap();
        let shown: Vec<String> = cmds.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            [
                format!("apt-get -q -y {CONF} --no-install-recommends -t bookworm-backports install bash=5.2.15-2+b13 curl"),
                format!("apt-get -q -y {CONF} --no-install-recommends -t bookworm-backports --allow-downgrades install openssl=3.0.11-1~deb12u2"),
                format!("apt-get -q -y {CONF} --no-install-recommends -t bookworm-backports install --reinstall vim=2:9.0"),
            ]
        );
        assert_eq!(reinstalled, ["vim"]);

        let (cmds, _) =
            install_commands(&dnf(), &targets, &old, &InstallOptions { skip_verify: true, ..Default::default() })
                .unwrap();
        let shown: Vec<String> = cmds.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            [
                "dnf -y --nogpgcheck install bash-5.2.15-2+b13 vim-2:9.0 curl",
                "dnf -y --nogpgcheck downgrade openssl-3.0.11-1~deb12u2",
            ]
        );
        let (cmds, _) = install_commands(&apk(), &targets, &BTreeMap::new(), &InstallOptions::default()).unwrap();
        assert_eq!(cmds[0].to_string(), "apk add bash=5.2.15-2+b13 openssl=3.0.11-1~deb12u2 vim=2:9.0 curl");
    }

    #[test]
    fn install_targets_are_checked_before_anything_runs() {
        let script = Script::new();
        let b = apt();
        let err = install(&script, &b, &args(json!({}))).unwrap_err().to_string();
        assert!(err.contains("needs a package"), "{err}");
        let err = install(&script, &b, &args(json!({"name": "a,b", "version": "1.0"}))).unwrap_err().to_string();
        assert!(err.contains("single package name"), "{err}");
        let err = install(&script, &b, &args(json!({"sources": [{"foo": "salt://foo.deb"}]}))).unwrap_err().to_string();
        assert!(err.contains("not an absolute local path"), "{err}");
        let err = install(&script, &b, &args(json!({"pkgs": ["a"], "sources": [{"a": "/a.deb"}]}))).unwrap_err();
        assert!(err.to_string().contains("Only one of"), "{err}");
        let err = serde_json::from_value::<InstallArgs>(json!({"name": "x", "bogus": 1})).unwrap_err().to_string();
        assert!(err.contains("unknown field `bogus`"), "{err}");
        script.done();
        let script = Script::new().ok(DPKG_QUERY, DPKG_BEFORE);
        let err = install(&script, &b, &args(json!({"name": "bash", "version": ">=5"}))).unwrap_err().to_string();
        assert!(err.contains("version comparisons ('>=5') are not supported"), "{err}");
        script.done();
    }

    #[test]
    fn a_failed_install_is_salts_problem_message_with_stderr() {
        let script = Script::new()
            .ok(DPKG_QUERY, DPKG_BEFORE)
            .fails(
                &format!("{DPKG} apt-get -q -y {CONF} install nosuchpkg-brine"),
                100,
                "E: Unable to locate package nosuchpkg-brine\n",
            )
            .ok(DPKG_QUERY, DPKG_BEFORE);
        let err = install(&script, &apt(), &args(json!({"name": "nosuchpkg-brine"}))).unwrap_err();
        script.done();
        assert_eq!(
            err.to_string(),
            "Problem encountered installing package(s). Additional info follows:\n\n\
             changes:\n    ----------\nerrors:\n    - E: Unable to locate package nosuchpkg-brine"
        );
    }

    #[test]
    fn remove_and_purge_only_touch_installed_packages() {
        let after = DPKG_BEFORE.replace("hold ok installed openssl 3.0.16-1~deb12u1 amd64\n", "");
        let script = Script::new()
            .ok(DPKG_QUERY, DPKG_BEFORE)
            .ok(&format!("{DPKG} apt-get -q -y remove openssl"), "")
            .ok(DPKG_QUERY, &after);
        let got = uninstall(&script, &apt(), &args(json!({"name": "openssl,nosuchpkg"})), false).unwrap();
        script.done();
        assert_eq!(got, json!({"openssl": {"old": "3.0.16-1~deb12u1", "new": ""}}));

        let script = Script::new().ok(DPKG_QUERY, DPKG_BEFORE);
        assert_eq!(uninstall(&script, &apt(), &args(json!({"name": "nosuchpkg"})), true).unwrap(), json!({}));
        script.done();

        // Purge also clears configuration-only packages, and reports both kinds.
        let after = DPKG_BEFORE.replace("deinstall ok config-files nginx-common 1.22.1-9 all\n", "");
        let script = Script::new()
            .ok(DPKG_QUERY, DPKG_BEFORE)
            .ok(&format!("{DPKG} apt-get -q -y purge nginx-common"), "")
            .ok(DPKG_QUERY, &after);
        let got = uninstall(&script, &apt(), &args(json!({"pkgs": ["nginx*"]})), true).unwrap();
        script.done();
        assert_eq!(got, json!({"removed": {"nginx-common": {"old": "1.22.1-9", "new": ""}}, "installed": {}}));

        let script = Script::new()
            .ok(RPM_QA, "bash_|-(none)_|-5.1.8_|-9.el9_|-x86_64\nnginx_|-1_|-1.20.1_|-14.el9_|-x86_64\n")
            .ok("dnf -y remove nginx", "")
            .ok(RPM_QA, "bash_|-(none)_|-5.1.8_|-9.el9_|-x86_64\n");
        let got = uninstall(&script, &dnf(), &args(json!({"name": "nginx"})), true).unwrap();
        script.done();
        assert_eq!(got, json!({"nginx": {"old": "1:1.20.1-14.el9", "new": ""}}));
    }

    #[test]
    fn upgrade_refreshes_then_upgrades() {
        let after = DPKG_BEFORE.replace("bash 5.2.15-2+b8", "bash 5.2.15-2+b13");
        let script = Script::new()
            .ok("apt-get -q update", "")
            .ok(DPKG_QUERY, DPKG_BEFORE)
            .ok(&format!("{DPKG} apt-get -q -y {CONF} dist-upgrade"), "")
            .ok(DPKG_QUERY, &after);
        let got = upgrade(&script, &apt(), &args(json!({"dist_upgrade": true}))).unwrap();
        script.done();
        assert_eq!(got, json!({"bash": {"old": "5.2.15-2+b8", "new": "5.2.15-2+b13"}}));

        let script = Script::new()
            .ok("apk info -v", "musl-1.2.4-r1\n")
            .fails("apk upgrade", 1, "ERROR: unable to lock database\n")
            .ok("apk info -v", "musl-1.2.4-r1\n");
        let err = upgrade(&script, &apk(), &args(json!({"refresh": false}))).unwrap_err().to_string();
        script.done();
        assert!(err.starts_with("Problem encountered upgrading packages. Additional info follows:"), "{err}");
        assert!(err.contains("ERROR: unable to lock database"), "{err}");
    }

    const POLICY: &str = "\
bash:
  Installed: 5.2.15-2+b8
  Candidate: 5.2.15-2+b13
  Version table:
     5.2.15-2+b13 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 5.2.15-2+b8 100
        100 /var/lib/dpkg/status
coreutils:
  Installed: 9.1-1
  Candidate: 9.1-1
  Version table:
 *** 9.1-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
nginx:
  Installed: (none)
  Candidate: 1.22.1-9
ghost:
  Installed: (none)
  Candidate: (none)
";

    #[test]
    fn latest_version_reports_only_newer_candidates() {
        let dpkg = format!("{DPKG_BEFORE}install ok installed coreutils 9.1-1 amd64\n");
        let script =
            Script::new().ok(DPKG_QUERY, &dpkg).ok("apt-cache -q policy bash coreutils nginx ghost nosuch", POLICY);
        let a = args(json!({"args": ["bash", "coreutils", "nginx", "ghost", "nosuch"], "refresh": false}));
        let got = latest_version(&script, &apt(), &a).unwrap();
        script.done();
        assert_eq!(
            got,
            json!({"bash": "5.2.15-2+b13", "coreutils": "", "nginx": "1.22.1-9", "ghost": "", "nosuch": ""})
        );

        let script = Script::new()
            .ok(DPKG_QUERY, &dpkg)
            .ok("apt-get -q update", "")
            .ok("apt-cache -q policy bash -o APT::Default-Release=bookworm", POLICY);
        let a = args(json!({"args": ["bash"], "fromrepo": "bookworm"}));
        assert_eq!(latest_version(&script, &apt(), &a).unwrap(), json!("5.2.15-2+b13"));
        script.done();

        let dnf_out = "Last metadata expiration check: 0:01:02 ago on Mon 01 Jan 2024.\n\
                       Available Packages\n\
                       bash.x86_64      5.1.8-9.el9     baseos\n\
                       bash.x86_64      5.1.8-6.el9     baseos\n\
                       python3-a-very-long-package-name-indeed.noarch\n\
                       \x20                1.2-3.el9       appstream\n";
        let script = Script::new()
            .ok(RPM_QA, "bash_|-(none)_|-5.1.8_|-6.el9_|-x86_64\n")
            .ok("dnf --quiet list --available bash python3-a-very-long-package-name-indeed", dnf_out);
        let a = args(json!({"args": ["bash", "python3-a-very-long-package-name-indeed"], "refresh": false}));
        let got = latest_version(&script, &dnf(), &a).unwrap();
        script.done();
        assert_eq!(got, json!({"bash": "5.1.8-9.el9", "python3-a-very-long-package-name-indeed": "1.2-3.el9"}));

        let script = Script::new()
            .ok("apk info -v", "musl-1.2.4-r1\ncurl-8.5.0-r0\n")
            .ok("apk upgrade -s", "(1/1) Upgrading musl (1.2.4-r1 -> 1.2.4-r2)\nOK: 10 MiB in 20 packages\n")
            .ok("apk search curl", "curl-8.5.0-r0\ncurl-dev-8.5.0-r0\n");
        let a = args(json!({"args": ["musl", "curl"], "refresh": false}));
        assert_eq!(latest_version(&script, &apk(), &a).unwrap(), json!({"musl": "1.2.4-r2", "curl": ""}));
        script.done();
    }

    #[test]
    fn version_returns_a_string_for_one_name_and_a_map_otherwise() {
        let inv = parse_dpkg_query(DPKG_BEFORE, Some("amd64"));
        let v = |a: Value| versions(&inv, &args(a));
        assert_eq!(v(json!({"args": ["bash"]})), json!("5.2.15-2+b8"));
        assert_eq!(v(json!({"args": ["nosuchpkg"]})), json!(""));
        assert_eq!(v(json!({"args": ["nosuchpkg", "bash"]})), json!({"nosuchpkg": "", "bash": "5.2.15-2+b8"}));
        assert_eq!(
            v(json!({"args": ["libc6*"]})),
            json!({"libc6": "2.36-9+deb12u10", "libc6:i386": "2.36-9+deb12u10"})
        );
        assert_eq!(v(json!({"args": ["bash"], "versions_as_list": true})), json!(["5.2.15-2+b8"]));
        assert_eq!(v(json!({"args": []})), json!({}));
    }

    #[test]
    fn refresh_db_reads_apt_update_lines() {
        let out = "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\n\
                   Hit:2 http://deb.debian.org/debian-security bookworm-security InRelease\n\
                   Ign:3 http://example.invalid/repo stable InRelease\n\
                   Err:4 http://example.invalid/repo stable Release\n\
                   \x20 404  Not Found [IP: 192.0.2.1 80]\n\
                   Reading package lists...\n";
        let script = Script::new().ok("apt-get -q update", out);
        let got = refresh_db(&script, &apt(), 0, false).unwrap();
        assert_eq!(
            got,
            json!({
                "http://deb.debian.org/debian bookworm InRelease": true,
                "http://deb.debian.org/debian-security bookworm-security InRelease": null,
                "http://example.invalid/repo stable InRelease": false,
                "http://example.invalid/repo stable Release": false,
            })
        );
        let script = Script::new().ok("apt-get -q update", out);
        let err = refresh_db(&script, &apt(), 0, true).unwrap_err().to_string();
        assert_eq!(err, "Error getting repos: http://example.invalid/repo stable Release");
        let script = Script::new().ok("dnf --quiet --assumeyes clean expire-cache", "").step(
            "dnf --quiet --assumeyes check-update",
            super::super::host::Ran { retcode: 100, ..Default::default() },
        );
        assert_eq!(refresh_db(&script, &dnf(), 0, false).unwrap(), json!(true));
        script.done();
        let now = SystemTime::now();
        assert!(fresh(now - Duration::from_secs(10), now, 60) && !fresh(now - Duration::from_secs(100), now, 60));
    }

    /// Read-only checks against this host's real package database.
    #[test]
    fn real_list_pkgs_and_version_agree_with_dpkg() {
        if super::super::host::which("dpkg-query").is_none() {
            eprintln!("skipped: no dpkg-query on this host");
            return;
        }
        let grains: Map =
            serde_json::from_value(json!({"os_family": "Debian", "cpuarch": std::env::consts::ARCH})).unwrap();
        let ctx = Context { grains: std::sync::Arc::new(grains), ..Default::default() };
        let all = crate::exec::call("pkg.list_pkgs", &ctx, vec![], Map::new()).unwrap().ret;
        let bash = all.get("bash").and_then(Value::as_str).expect("bash is installed on a Debian host").to_string();
        let direct =
            std::process::Command::new("dpkg-query").args(["-W", "-f", "${Version}", "bash"]).output().unwrap();
        assert_eq!(bash, String::from_utf8_lossy(&direct.stdout));
        let v = crate::exec::call("pkg.version", &ctx, vec![json!("bash")], Map::new()).unwrap().ret;
        assert_eq!(v, json!(bash));
        let v = crate::exec::call("pkg.version", &ctx, vec![json!("brine-no-such-package")], Map::new()).unwrap().ret;
        assert_eq!(v, json!(""));
    }
}
