//! `pkg.*` states: packages installed, at their latest version, removed or purged,
//! through the `pkg.*` execution functions (apt, dnf or apk).
//!
//! Follows Salt's `pkg` states: the changes are what `pkg.install`, `pkg.remove` and
//! `pkg.purge` report (`{name: {"old": …, "new": …}}`, from the package lists before
//! and after), and the comments are Salt's ("All specified packages are already
//! installed", "The following packages were installed/updated: vim"). Test mode
//! predicts the same way Salt does: `installed` shows each target's candidate version
//! as "new" (or "installed" when the repositories do not say) and "old" as `""`;
//! `latest` shows installed and candidate versions; `removed` shows "removed".
//!
//! Where brine differs: versions are exact (or a glob such as `1.2*`, or `latest`);
//! comparisons like `>=1.2` fail the state, since the package manager is never asked
//! to resolve them. `refresh` is off unless asked for (Salt also refreshes on its
//! first run after start), and test mode never refreshes the package database.
//! `hold`, `update_holds`, `skip_suggestions`, `normalize` and `allow_updates` are
//! accepted and ignored; `pkg_verify` fails the state ("pkg.verify not implemented",
//! as Salt says where it has no `pkg.verify`). Packages marked for purge but kept as
//! dependencies count as installed rather than being "unpurged".

use super::calls::{py_str, truthy, Calls, Live, Ret};
use crate::exec::CallError;
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Installed versions by package name.
type Versions = BTreeMap<String, Vec<String>>;

/// The `pkg.install` keywords a state passes through when given.
const INSTALL_PASSTHROUGH: [&str; 7] = [
    "install_recommends",
    "only_upgrade",
    "force_yes",
    "force_conf_new",
    "cache_valid_time",
    "downloadonly",
    "debconf",
];

fn parse_versions(v: &Value) -> Versions {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, vs)| {
                    let list = match vs {
                        Value::Array(a) => a.iter().map(py_str).collect(),
                        other => py_str(other).split(',').map(String::from).collect(),
                    };
                    (k.clone(), list)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn list_pkgs(c: &dyn Calls, removed: bool) -> Result<Versions, CallError> {
    let mut kw = Map::new();
    kw.insert("versions_as_list".into(), json!(true));
    if removed {
        kw.insert("removed".into(), json!(true));
    }
    Ok(parse_versions(&c.call("pkg.list_pkgs", vec![], kw)?))
}

/// `{name: {"old", "new"}}` for every package whose versions differ.
fn diff(old: &Versions, new: &Versions) -> Map {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = Map::new();
    for n in names {
        let (o, v) = (old.get(n).map(|v| v.join(",")), new.get(n).map(|v| v.join(",")));
        if o != v {
            out.insert(n.clone(), json!({"old": o.unwrap_or_default(), "new": v.unwrap_or_default()}));
        }
    }
    out
}

/// An execution error's message without the changes it carries (Salt's
/// `strerror_without_changes`): the state reports changes itself.
fn without_changes(e: &CallError) -> String {
    let text = e.to_string();
    match text.find("\nchanges:") {
        Some(i) => text[..i].trim_end().to_string(),
        None => text,
    }
}

/// The packages a state names, in order, each with its wanted version.
type Desired = Vec<(String, Option<String>)>;

/// Reads `pkgs` (names or one-key `{name: version}` maps) like Salt's `_repack_pkgs`;
/// `None` when it is malformed.
fn repack(pkgs: &[Value]) -> Option<Desired> {
    let mut out: Desired = Vec::new();
    for item in pkgs {
        let (name, version) = match item {
            Value::Object(m) if m.len() == 1 => {
                let (k, v) = m.iter().next()?;
                let version = match v {
                    Value::Null => None,
                    Value::Array(_) | Value::Object(_) => return None,
                    v => Some(py_str(v)),
                };
                (k.clone(), version)
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => (py_str(item), None),
            _ => return None,
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = version,
            None => out.push((name, version)),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A version condition: `==` (exact or glob) is all brine resolves.
fn exact(version: &str) -> Result<String, String> {
    let v = version.trim();
    let rest = v.trim_start_matches("==").trim_start_matches('=').trim();
    if rest.starts_with(['<', '>', '!']) || v.starts_with(['<', '>', '!']) || v.contains(',') {
        return Err(format!(
            "Version comparisons ('{v}') are not supported by brine's pkg states; give an exact version"
        ));
    }
    Ok(rest.to_string())
}

/// Whether an installed version satisfies a wanted one: equal (the epoch ignored when
/// the wanted version has none, as Salt does by default) or matching as a glob.
fn fulfills(installed: &[String], wanted: &str, ignore_epoch: Option<bool>) -> bool {
    let strip = ignore_epoch.unwrap_or(!wanted.contains(':'));
    let glob = globset::Glob::new(wanted).ok().map(|g| g.compile_matcher());
    installed.iter().any(|v| {
        let bare = if strip { v.split_once(':').map_or(v.as_str(), |(_, r)| r) } else { v.as_str() };
        v == wanted || bare == wanted || glob.as_ref().is_some_and(|g| g.is_match(v.as_str()) || g.is_match(bare))
    })
}

/// `name=version` as Salt's comments name a package with a version.
fn desired_pkg(name: &str, version: Option<&str>) -> String {
    match version {
        None | Some("") => name.to_string(),
        Some(v) if v.starts_with(['<', '>', '=']) => format!("{name}{v}"),
        Some(v) => format!("{name}={v}"),
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, Default)]
pub struct InstalledArgs {
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    refresh: Option<Value>,
    #[serde(default)]
    fromrepo: Option<Value>,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    pkgs: Option<Vec<Value>>,
    #[serde(default)]
    sources: Option<Vec<Value>>,
    #[serde(default)]
    pkg_verify: Option<Value>,
    #[serde(default)]
    ignore_epoch: Option<bool>,
    #[serde(default)]
    reinstall: bool,
    /// Accepted for Salt's states; brine does not hold packages.
    #[serde(default)]
    #[allow(dead_code)]
    hold: Option<Value>,
    /// Accepted for Salt's states; names are used as given.
    #[serde(default = "yes")]
    #[allow(dead_code)]
    normalize: bool,
    /// Salt takes other keywords and passes those its `pkg.install` knows.
    #[serde(flatten)]
    other: Map,
}

/// `refresh` as Salt reads it.
fn refresh_of(v: &Option<Value>) -> bool {
    v.as_ref().is_some_and(super::calls::flag)
}

/// The keywords `pkg.install` gets from a state.
fn install_kwargs(refresh: bool, fromrepo: &Option<Value>, skip_verify: bool, other: &Map) -> Map {
    let mut kw = Map::new();
    kw.insert("refresh".into(), json!(refresh));
    if let Some(r) = fromrepo.as_ref().filter(|r| !r.is_null()) {
        kw.insert("fromrepo".into(), r.clone());
    }
    if skip_verify {
        kw.insert("skip_verify".into(), json!(true));
    }
    for key in INSTALL_PASSTHROUGH {
        if let Some(v) = other.get(key).filter(|v| !v.is_null()) {
            kw.insert(key.into(), v.clone());
        }
    }
    kw
}

/// What `installed` must do.
struct Plan {
    desired: Desired,
    targets: Desired,
    reinstall: Desired,
    /// Every target had a version to check.
    version_spec: bool,
}

fn plan(c: &dyn Calls, name: &str, a: &InstalledArgs, cur: &Versions) -> Result<Plan, Ret> {
    let sources = a.sources.as_ref().filter(|s| !s.is_empty());
    let mut desired: Desired = if let Some(src) = sources {
        let mut d = Vec::new();
        for item in src {
            match item.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) {
                Some((n, path)) => d.push((n.clone(), Some(py_str(path)))),
                None => return Err(Ret::failed("Invalidly formatted 'sources' parameter. See minion log.")),
            }
        }
        d
    } else if let Some(pkgs) = a.pkgs.as_ref().filter(|p| !p.is_empty()) {
        repack(pkgs).ok_or_else(|| Ret::failed("Invalidly formatted 'pkgs' parameter. See minion log."))?
    } else {
        let version = a.version.as_ref().filter(|v| !v.is_null()).map(py_str).filter(|v| !v.is_empty());
        vec![(name.to_string(), version)]
    };
    if sources.is_none() {
        for (_, v) in desired.iter_mut() {
            if let Some(ver) = v.as_mut().filter(|v| v.as_str() != "latest") {
                *ver = exact(ver).map_err(Ret::failed)?;
            }
        }
        let latest: Vec<String> =
            desired.iter().filter(|(_, v)| v.as_deref() == Some("latest")).map(|(n, _)| n.clone()).collect();
        if !latest.is_empty() {
            let found = latest_versions(c, &latest, refresh_of(&a.refresh), &a.fromrepo)
                .map_err(|e| Ret::failed(e.to_string()))?;
            for (n, v) in desired.iter_mut() {
                if let Some(avail) = found.get(n) {
                    *v = if avail.is_empty() {
                        cur.get(n).and_then(|vs| vs.last().cloned())
                    } else {
                        Some(avail.clone())
                    };
                }
            }
        }
    }
    let mut targets = Vec::new();
    let mut reinstall = Vec::new();
    let mut version_spec = false;
    for (n, v) in &desired {
        let Some(installed) = cur.get(n).filter(|vs| !vs.is_empty()) else {
            targets.push((n.clone(), v.clone()));
            continue;
        };
        if a.reinstall {
            reinstall.push((n.clone(), v.clone()));
            continue;
        }
        let Some(wanted) = v.as_deref().filter(|_| sources.is_none()) else { continue };
        version_spec = true;
        if !fulfills(installed, wanted, a.ignore_epoch) {
            targets.push((n.clone(), v.clone()));
        }
    }
    Ok(Plan { desired, targets, reinstall, version_spec })
}

/// `pkg.latest_version` for several names, always as a map.
fn latest_versions(
    c: &dyn Calls,
    names: &[String],
    refresh: bool,
    fromrepo: &Option<Value>,
) -> Result<BTreeMap<String, String>, CallError> {
    let mut kw = Map::new();
    kw.insert("refresh".into(), json!(refresh));
    if let Some(r) = fromrepo.as_ref().filter(|r| !r.is_null()) {
        kw.insert("fromrepo".into(), r.clone());
    }
    let ret = c.call("pkg.latest_version", names.iter().map(|n| json!(n)).collect(), kw)?;
    Ok(match ret {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), py_str(v))).collect(),
        Value::String(s) if names.len() == 1 => BTreeMap::from([(names[0].clone(), s)]),
        _ => BTreeMap::new(),
    })
}

fn installed(c: &dyn Calls, name: &str, a: &InstalledArgs, apply: bool) -> Ret {
    if a.pkgs.as_ref().is_some_and(|p| p.is_empty()) {
        return Ret::ok("No packages to install provided");
    }
    if a.pkgs.as_ref().is_some_and(|p| !p.is_empty()) && a.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        return Ret::failed("Only one of \"pkgs\" and \"sources\" is permitted.");
    }
    if a.pkg_verify.as_ref().is_some_and(truthy) {
        return Ret::failed("pkg.verify not implemented");
    }
    let cur = match list_pkgs(c, false) {
        Ok(v) => v,
        Err(e) => return Ret::failed(e.to_string()),
    };
    let p = match plan(c, name, a, &cur) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let sources = a.sources.as_ref().is_some_and(|s| !s.is_empty());
    if p.targets.is_empty() && p.reinstall.is_empty() {
        let tail = if p.version_spec && !sources { " and are at the desired version" } else { "" };
        return Ret::ok(format!("All specified packages are already installed{tail}"));
    }
    let refresh = refresh_of(&a.refresh);
    if !apply {
        return would_install(c, &p, sources, a.reinstall, refresh, &a.fromrepo);
    }
    let mut kw = install_kwargs(refresh, &a.fromrepo, a.skip_verify, &a.other);
    let chosen: Vec<&(String, Option<String>)> = p.targets.iter().chain(&p.reinstall).collect();
    if sources {
        kw.insert("sources".into(), Value::Array(chosen.iter().map(|(n, path)| json!({n.clone(): path})).collect()));
    } else {
        kw.insert("pkgs".into(), Value::Array(chosen.iter().map(|(n, v)| json!({n.clone(): v})).collect()));
    }
    if !p.reinstall.is_empty() {
        kw.insert("reinstall".into(), json!(true));
    }
    let changes = match c.call("pkg.install", vec![], kw) {
        Ok(Value::Object(m)) => m,
        Ok(_) => Map::new(),
        Err(e) => {
            let mut ret = Ret::failed(without_changes(&e));
            if let Ok(after) = list_pkgs(c, false) {
                ret.changes = diff(&cur, &after);
            }
            return ret;
        }
    };
    let new = match list_pkgs(c, false) {
        Ok(v) => v,
        Err(e) => return Ret { result: Some(false), changes, comment: e.to_string() },
    };
    let is_target = |n: &str| p.targets.iter().any(|(t, _)| t == n);
    let is_reinstall = |n: &str| p.reinstall.iter().any(|(t, _)| t == n);
    let (mut modified, mut not_modified, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (n, v) in &p.desired {
        let ok = if sources {
            changes.contains_key(n) || !is_target(n)
        } else {
            verify(&new, n, v.as_deref(), a.ignore_epoch)
        };
        match (ok, is_target(n)) {
            (true, true) => modified.push(desired_pkg(n, v.as_deref().filter(|_| !sources))),
            (true, false) if !is_reinstall(n) => not_modified.push(desired_pkg(n, v.as_deref().filter(|_| !sources))),
            (false, true) => failed.push(desired_pkg(n, v.as_deref().filter(|_| !sources))),
            _ => {}
        }
    }
    let mut comment = Vec::new();
    if !modified.is_empty() {
        let summary = modified.join(", ");
        if summary.chars().count() < 20 {
            comment.push(format!("The following packages were installed/updated: {summary}"));
        } else {
            let n = modified.len();
            comment.push(format!(
                "{n} targeted package{} {} installed/updated.",
                if n > 1 { "s" } else { "" },
                if n > 1 { "were" } else { "was" }
            ));
        }
    }
    if !not_modified.is_empty() {
        let n = not_modified.len();
        if n <= 20 {
            comment.push(format!("The following packages were already installed: {}", not_modified.join(", ")));
        } else {
            comment.push(format!("{n} targeted packages were already installed"));
        }
    }
    let mut result = true;
    if !failed.is_empty() {
        comment.insert(0, format!("The following packages failed to install/update: {}", failed.join(", ")));
        result = false;
    }
    for (n, v) in &p.reinstall {
        let shown = desired_pkg(n, v.as_deref().filter(|_| !sources));
        if changes.contains_key(n) {
            comment.push(format!("Package {shown} was reinstalled."));
        } else {
            comment.push(format!("Reinstall was not successful for package {shown}."));
            result = false;
        }
    }
    Ret { result: Some(result), changes, comment: comment.join("\n") }
}

/// Salt's `_verify_install` for one package.
fn verify(new: &Versions, name: &str, wanted: Option<&str>, ignore_epoch: Option<bool>) -> bool {
    let Some(cver) = new.get(name.split('=').next().unwrap_or(name)).filter(|v| !v.is_empty()) else { return false };
    match wanted {
        None | Some("") | Some("latest") => true,
        Some(w) if w.ends_with('*') && cver[0].starts_with(&w[..w.len() - 1]) => true,
        Some(w) => fulfills(cver, w, ignore_epoch),
    }
}

/// Test mode of `installed`: what would be installed, at which candidate versions.
fn would_install(
    c: &dyn Calls,
    p: &Plan,
    sources: bool,
    reinstall: bool,
    refresh: bool,
    fromrepo: &Option<Value>,
) -> Ret {
    let mut ret = Ret::would("");
    let mut comment = Vec::new();
    if !p.targets.is_empty() {
        let bare: Vec<String> = p.targets.iter().filter(|(_, v)| v.is_none()).map(|(n, _)| n.clone()).collect();
        let candidates = if sources || bare.is_empty() {
            BTreeMap::new()
        } else {
            latest_versions(c, &bare, refresh, fromrepo).unwrap_or_default()
        };
        for (n, v) in &p.targets {
            let new = match (sources, v) {
                (false, Some(v)) => v.clone(),
                (false, None) => {
                    candidates.get(n).cloned().filter(|c| !c.is_empty()).unwrap_or_else(|| "installed".into())
                }
                (true, _) => "installed".into(),
            };
            ret.changes.insert(n.clone(), json!({"new": new, "old": ""}));
        }
        let names: Vec<&str> = p.targets.iter().map(|(n, _)| n.as_str()).collect();
        comment.push(format!("The following packages would be installed/updated: {}", names.join(", ")));
    }
    if !p.reinstall.is_empty() && reinstall {
        let shown: Vec<String> =
            p.reinstall.iter().map(|(n, v)| if sources { n.clone() } else { desired_pkg(n, v.as_deref()) }).collect();
        for s in &shown {
            ret.changes.insert(s.clone(), json!({"new": "installed", "old": ""}));
        }
        comment.push(format!("The following packages would be reinstalled: {}", shown.join(", ")));
    }
    ret.comment = comment.join("\n");
    ret
}

#[derive(Debug, Deserialize, Default)]
pub struct LatestArgs {
    #[serde(default)]
    refresh: Option<Value>,
    #[serde(default)]
    fromrepo: Option<Value>,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    pkgs: Option<Vec<Value>>,
    /// Gentoo only; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    watch_flags: Option<Value>,
    #[serde(flatten)]
    other: Map,
}

/// `pkg.version` for several names, always as a map.
fn current_versions(c: &dyn Calls, names: &[String]) -> Result<BTreeMap<String, String>, CallError> {
    let ret = c.call("pkg.version", names.iter().map(|n| json!(n)).collect(), Map::new())?;
    Ok(match ret {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), py_str(v))).collect(),
        Value::String(s) if names.len() == 1 => BTreeMap::from([(names[0].clone(), s)]),
        _ => BTreeMap::new(),
    })
}

fn latest(c: &dyn Calls, name: &str, a: &LatestArgs, apply: bool) -> Ret {
    if a.other.get("sources").is_some_and(truthy) {
        return Ret::failed("The \"sources\" parameter is not supported.");
    }
    let desired: Vec<String> = match &a.pkgs {
        Some(p) if !p.is_empty() => match repack(p) {
            Some(d) => d.into_iter().map(|(n, _)| n).collect(),
            None => return Ret::failed("Invalidly formatted \"pkgs\" parameter. See minion log."),
        },
        Some(_) => return Ret::ok("No packages to install provided"),
        None => vec![name.to_string()],
    };
    let refresh = refresh_of(&a.refresh);
    let avail = match latest_versions(c, &desired, refresh, &a.fromrepo) {
        Ok(v) => v,
        Err(e) => {
            return Ret::failed(format!(
                "An error was encountered while checking the newest available version of package(s): {e}"
            ))
        }
    };
    let cur = match current_versions(c, &desired) {
        Ok(v) => v,
        Err(e) => return Ret::failed(e.to_string()),
    };
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for p in &desired {
        match avail.get(p).filter(|v| !v.is_empty()) {
            Some(v) => {
                targets.insert(p.clone(), v.clone());
            }
            None if cur.get(p).is_none_or(|v| v.is_empty()) => {
                problems.push(format!("No information found for '{p}'."))
            }
            None => {}
        }
    }
    if !problems.is_empty() {
        return Ret::failed(problems.join(" "));
    }
    if targets.is_empty() {
        let comment = match desired.len() {
            n if n > 10 => format!("All {n} packages are up-to-date."),
            n if n > 1 => {
                let mut sorted = desired.clone();
                sorted.sort();
                format!("All packages are up-to-date ({}).", sorted.join(", "))
            }
            _ => format!("Package {} is already up-to-date", desired[0]),
        };
        return Ret::ok(comment);
    }
    let mut up_to_date: Vec<String> = if a.pkgs.is_some() {
        desired.iter().filter(|d| !targets.contains_key(*d)).cloned().collect()
    } else {
        Vec::new()
    };
    up_to_date.sort();
    let names: Vec<&str> = targets.keys().map(String::as_str).collect();
    if !apply {
        let mut comment = vec![format!("The following packages would be installed/upgraded: {}", names.join(", "))];
        if !up_to_date.is_empty() {
            if up_to_date.len() <= 10 {
                let shown: Vec<String> =
                    up_to_date.iter().map(|x| format!("{x} ({})", cur.get(x).cloned().unwrap_or_default())).collect();
                comment.push(format!("The following packages are already up-to-date: {}", shown.join(", ")));
            } else {
                comment.push(format!("{} packages are already up-to-date", up_to_date.len()));
            }
        }
        let mut ret = Ret::would(comment.join("\n"));
        for (n, v) in &targets {
            ret.changes.insert(n.clone(), json!({"new": v, "old": cur.get(n).cloned().unwrap_or_default()}));
        }
        return ret;
    }
    let mut kw = install_kwargs(false, &a.fromrepo, a.skip_verify, &a.other);
    kw.insert("pkgs".into(), json!(names));
    let changes = match c.call("pkg.install", vec![], kw) {
        Ok(Value::Object(m)) => m,
        Ok(_) => Map::new(),
        Err(e) => return Ret::failed(format!("An error was encountered while installing package(s): {e}")),
    };
    if changes.is_empty() {
        let mut comment = match targets.len() {
            n if n > 10 => format!("{n} targeted packages failed to update. See debug log for details."),
            n if n > 1 => format!(
                "The following targeted packages failed to update. See debug log for details: ({}).",
                names.join(", ")
            ),
            _ => format!("Package {} failed to update.", names[0]),
        };
        if !up_to_date.is_empty() {
            if up_to_date.len() <= 10 {
                comment
                    .push_str(&format!(" The following packages were already up-to-date: {}", up_to_date.join(", ")));
            } else {
                comment.push_str(&format!("{} packages were already up-to-date", up_to_date.len()));
            }
        }
        return Ret::failed(comment);
    }
    let failed: Vec<&str> = targets
        .iter()
        .filter(|(n, v)| match changes.get(*n).and_then(|c| c.get("new")) {
            None => true,
            Some(Value::Null) => false,
            Some(new) => !py_str(new).split(',').any(|x| x == v.as_str()) && v.as_str() != "latest",
        })
        .map(|(n, _)| n.as_str())
        .collect();
    let successful: Vec<&str> = names.iter().copied().filter(|n| !failed.contains(n)).collect();
    let mut comments = Vec::new();
    if !failed.is_empty() {
        comments.push(format!("The following packages failed to update: {}", failed.join(", ")));
    }
    if !successful.is_empty() {
        comments
            .push(format!("The following packages were successfully installed/upgraded: {}", successful.join(", ")));
    }
    if !up_to_date.is_empty() {
        if up_to_date.len() <= 10 {
            comments.push(format!("The following packages were already up-to-date: {}", up_to_date.join(", ")));
        } else {
            comments.push(format!("{} packages were already up-to-date ", up_to_date.len()));
        }
    }
    Ret { result: Some(failed.is_empty()), changes, comment: comments.join(" ") }
}

#[derive(Debug, Deserialize, Default)]
pub struct RemovedArgs {
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    pkgs: Option<Vec<Value>>,
    /// Accepted for Salt's states; names are used as given.
    #[serde(default = "yes")]
    #[allow(dead_code)]
    normalize: bool,
    #[serde(default)]
    ignore_epoch: Option<bool>,
    /// Salt takes other keywords and ignores them here.
    #[serde(flatten)]
    #[allow(dead_code)]
    other: Map,
}

/// `removed` and `purged` (Salt's `_uninstall`).
fn uninstall(c: &dyn Calls, name: &str, a: &RemovedArgs, purge: bool, apply: bool) -> Ret {
    let (action, done) = if purge { ("purge", "purged") } else { ("remove", "removed") };
    let wanted: Desired = match &a.pkgs {
        Some(p) if !p.is_empty() => match repack(p) {
            Some(d) => d,
            None => return Ret::failed("Invalidly formatted pkgs parameter. See minion log."),
        },
        _ => {
            vec![(name.to_string(), a.version.as_ref().filter(|v| !v.is_null()).map(py_str).filter(|v| !v.is_empty()))]
        }
    };
    let cur = match list_pkgs(c, false) {
        Ok(v) => v,
        Err(e) => return Ret::failed(e.to_string()),
    };
    let mut targets: Vec<String> = Vec::new();
    let mut version_spec = false;
    for (n, v) in &wanted {
        let Some(installed) = cur.get(n).filter(|vs| !vs.is_empty()) else { continue };
        match v {
            None => targets.push(n.clone()),
            Some(v) => {
                version_spec = true;
                match exact(v) {
                    Ok(w) if fulfills(installed, &w, a.ignore_epoch) => targets.push(n.clone()),
                    Ok(_) => {}
                    Err(e) => return Ret::failed(e),
                }
            }
        }
    }
    if targets.is_empty() && !purge {
        let which = if version_spec { " (matching specified versions)" } else { "" };
        return Ret::ok(format!("All specified packages{which} are already absent"));
    }
    let old_removed = if purge {
        match list_pkgs(c, true) {
            Ok(v) => v,
            Err(e) => return Ret::failed(e.to_string()),
        }
    } else {
        Versions::new()
    };
    for (n, _) in &wanted {
        if old_removed.contains_key(n) && !targets.contains(n) {
            targets.push(n.clone());
        }
    }
    targets.sort();
    if targets.is_empty() {
        let or = if purge { " or partially installed" } else { "" };
        return Ret::ok(format!("None of the targeted packages are installed{or}"));
    }
    if !apply {
        let mut ret = Ret::would(format!("The following packages will be {done}: {}.", targets.join(", ")));
        for t in &targets {
            ret.changes.insert(t.clone(), json!({"new": done, "old": ""}));
        }
        return ret;
    }
    let mut kw = Map::new();
    kw.insert("pkgs".into(), json!(targets));
    let changes = match c.call(&format!("pkg.{action}"), vec![], kw) {
        Ok(Value::Object(m)) => m,
        Ok(_) => Map::new(),
        Err(e) => {
            let mut ret = Ret::failed(without_changes(&e));
            if let Ok(after) = list_pkgs(c, false) {
                ret.changes = diff(&cur, &after);
            }
            return ret;
        }
    };
    let new = match list_pkgs(c, false) {
        Ok(v) => v,
        Err(e) => return Ret { result: Some(false), changes, comment: e.to_string() },
    };
    let mut failed: Vec<String> = wanted.iter().map(|(n, _)| n).filter(|n| new.contains_key(*n)).cloned().collect();
    if purge {
        match list_pkgs(c, true) {
            Ok(removed) => failed.extend(wanted.iter().map(|(n, _)| n).filter(|n| removed.contains_key(*n)).cloned()),
            Err(e) => return Ret { result: Some(false), changes, comment: e.to_string() },
        }
    }
    failed.sort();
    failed.dedup();
    if !failed.is_empty() {
        return Ret {
            result: Some(false),
            changes,
            comment: format!("The following packages failed to {action}: {}.", failed.join(", ")),
        };
    }
    let mut not_installed: Vec<&str> =
        wanted.iter().map(|(n, _)| n.as_str()).filter(|n| !targets.iter().any(|t| t == n)).collect();
    not_installed.sort();
    let comment = if not_installed.is_empty() {
        format!("All targeted packages were {done}.")
    } else {
        format!(
            "The following packages were not installed: {} The following packages were {done}: {}.",
            not_installed.join(", "),
            targets.join(", ")
        )
    };
    Ret { result: Some(true), changes, comment }
}

/// Reads a chunk's raw arguments for a watch action.
fn watch_args<T: serde::de::DeserializeOwned>(args: &Map) -> Result<T, Ret> {
    serde_json::from_value(Value::Object(args.clone())).map_err(|e| Ret::failed(format!("Invalid arguments: {e}")))
}

pub struct Installed;
impl StateFunction for Installed {
    const NAME: &'static str = "pkg.installed";
    const DOC: &'static str = "Ensures packages are installed. name: a package; version: an exact \
        version (or a glob like 1.2*, or latest); pkgs: a list of names or {name: version} maps instead; \
        sources: a list of {name: /local/file.deb} maps. refresh: refresh the package database first. \
        fromrepo, skip_verify, reinstall; apt: install_recommends, only_upgrade, force_yes, \
        force_conf_new, debconf. hold is accepted and ignored. A watch runs the state again.\n\nExample:\n  web-packages:\n    pkg.installed:\n      - pkgs:\n        - nginx\n        - curl: 7.88.1-10+deb12u5";
    type Args = InstalledArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: InstalledArgs, apply: bool) -> Outcome {
        installed(&Live(ctx.exec), name, &a, apply).outcome()
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        let ret = watch_args(args).map(|a| installed(&Live(ctx.exec), name, &a, apply)).unwrap_or_else(|r| r);
        Some(ret.outcome())
    }
}

pub struct Latest;
impl StateFunction for Latest {
    const NAME: &'static str = "pkg.latest";
    const DOC: &'static str = "Ensures packages are installed at the newest version the repositories \
        offer. name: a package; pkgs: several. refresh: refresh the package database first (do, or \
        the newest version is only as new as the last refresh). fromrepo, skip_verify. A watch runs \
        the state again.\n\nExample:\n  openssl:\n    pkg.latest:\n      - refresh: True";
    type Args = LatestArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: LatestArgs, apply: bool) -> Outcome {
        latest(&Live(ctx.exec), name, &a, apply).outcome()
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        let ret = watch_args(args).map(|a| latest(&Live(ctx.exec), name, &a, apply)).unwrap_or_else(|r| r);
        Some(ret.outcome())
    }
}

pub struct Removed;
impl StateFunction for Removed {
    const NAME: &'static str = "pkg.removed";
    const DOC: &'static str = "Ensures packages are not installed (configuration files stay; see \
        pkg.purged). name: a package, with version: only if that version is installed; pkgs: several. A \
        watch runs the state again.\n\nExample:\n  telnet:\n    pkg.removed";
    type Args = RemovedArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: RemovedArgs, apply: bool) -> Outcome {
        uninstall(&Live(ctx.exec), name, &a, false, apply).outcome()
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        let ret = watch_args(args).map(|a| uninstall(&Live(ctx.exec), name, &a, false, apply)).unwrap_or_else(|r| r);
        Some(ret.outcome())
    }
}

pub struct Purged;
impl StateFunction for Purged {
    const NAME: &'static str = "pkg.purged";
    const DOC: &'static str = "Ensures packages are not installed and leave no configuration files \
        behind (apt purges packages already removed too). name, version, pkgs as for pkg.removed. A \
        watch runs the state again.\n\nExample:\n  old-mta:\n    pkg.purged:\n      - pkgs:\n        - exim4\n        - exim4-config";
    type Args = RemovedArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: RemovedArgs, apply: bool) -> Outcome {
        uninstall(&Live(ctx.exec), name, &a, true, apply).outcome()
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        let ret = watch_args(args).map(|a| uninstall(&Live(ctx.exec), name, &a, true, apply)).unwrap_or_else(|r| r);
        Some(ret.outcome())
    }
}

/// The `pkg` state module.
pub static MODULE: StateModule = StateModule {
    name: "pkg",
    doc: "Packages installed, up to date, removed or purged (apt, dnf, apk).",
    functions: &[&Installed, &Latest, &Purged, &Removed],
};

#[cfg(test)]
mod tests {
    use super::super::calls::script::Script;
    use super::*;

    const LIST: &str = "pkg.list_pkgs versions_as_list=true";

    fn pkgs() -> Value {
        json!({"bash": ["5.2.15-2+b8"], "coreutils": ["9.1-1"], "openssl": ["3.0.16-1~deb12u1"], "libfoo": ["1:2.0-1"]})
    }

    fn iargs(v: Value) -> InstalledArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn installed_packages_need_nothing() {
        let s = Script::new().call(LIST, pkgs());
        assert_eq!(
            installed(&s, "bash", &iargs(json!({})), true),
            Ret::ok("All specified packages are already installed")
        );
        let s = Script::new().call(LIST, pkgs());
        assert_eq!(
            installed(
                &s,
                "x",
                &iargs(json!({"pkgs": [{"bash": "5.2.15-2+b8"}, "coreutils", {"libfoo": "2.0-1"}]})),
                false
            ),
            Ret::ok("All specified packages are already installed and are at the desired version")
        );
        let s = Script::new().call(LIST, pkgs());
        assert_eq!(
            installed(&s, "bash", &iargs(json!({"version": "5.2*"})), true).comment,
            "All specified packages are already installed and are at the desired version"
        );
        assert_eq!(
            installed(&Script::new(), "x", &iargs(json!({"pkgs": []})), true),
            Ret::ok("No packages to install provided")
        );
    }

    #[test]
    fn test_mode_predicts_like_salt() {
        let s = Script::new().call(LIST, pkgs()).call("pkg.latest_version cowsay refresh=false", json!("3.03+dfsg2-8"));
        let ret = installed(&s, "x", &iargs(json!({"pkgs": ["bash", "cowsay", {"coreutils": "9.2-1"}]})), false);
        s.done();
        assert_eq!(ret.result, None);
        assert_eq!(ret.comment, "The following packages would be installed/updated: cowsay, coreutils");
        assert_eq!(
            Value::Object(ret.changes),
            json!({"cowsay": {"new": "3.03+dfsg2-8", "old": ""}, "coreutils": {"new": "9.2-1", "old": ""}})
        );
        let s = Script::new().call(LIST, pkgs()).call("pkg.latest_version nosuch refresh=false", json!(""));
        let ret = installed(&s, "nosuch", &iargs(json!({})), false);
        assert_eq!(Value::Object(ret.changes), json!({"nosuch": {"new": "installed", "old": ""}}));
        let s = Script::new().call(LIST, pkgs());
        let ret = installed(&s, "bash", &iargs(json!({"reinstall": true})), false);
        assert_eq!(ret.comment, "The following packages would be reinstalled: bash");
    }

    #[test]
    fn installing_reports_what_pkg_install_changed() {
        let mut after = pkgs();
        after["vim"] = json!(["2:9.0.1378-2"]);
        let s = Script::new()
            .call(LIST, pkgs())
            .call(
                "pkg.install refresh=true install_recommends=false pkgs=[{\"vim\":null}]",
                json!({"vim": {"old": "", "new": "2:9.0.1378-2"}}),
            )
            .call(LIST, after);
        let ret = installed(&s, "vim", &iargs(json!({"refresh": true, "install_recommends": false, "junk": 1})), true);
        s.done();
        assert_eq!(ret.comment, "The following packages were installed/updated: vim");
        assert_eq!(Value::Object(ret.changes), json!({"vim": {"old": "", "new": "2:9.0.1378-2"}}));

        // Long summaries are counted; packages already there are named.
        let mut after = pkgs();
        after["nginx-full"] = json!(["1.22"]);
        after["postgresql-15"] = json!(["15.8"]);
        let s = Script::new()
            .call(LIST, pkgs())
            .call(
                "pkg.install refresh=false pkgs=[{\"nginx-full\":null},{\"postgresql-15\":null}]",
                json!({"nginx-full": {}, "postgresql-15": {}}),
            )
            .call(LIST, after);
        let ret = installed(&s, "x", &iargs(json!({"pkgs": ["bash", "nginx-full", "postgresql-15"]})), true);
        assert_eq!(
            ret.comment,
            "2 targeted packages were installed/updated.\nThe following packages were already installed: bash"
        );
    }

    #[test]
    fn a_failed_install_says_why_and_what_changed_anyway() {
        let s = Script::new()
            .call(LIST, pkgs())
            .fails(
                "pkg.install refresh=false pkgs=[{\"nosuch\":null}]",
                "Problem encountered installing package(s). Additional info follows:\n\nerrors:\n    - E: Unable to locate package nosuch\nchanges:\n    ----------",
            )
            .call(LIST, pkgs());
        let ret = installed(&s, "nosuch", &iargs(json!({})), true);
        s.done();
        assert_eq!(
            ret,
            Ret::failed(
                "Problem encountered installing package(s). Additional info follows:\n\nerrors:\n    - E: Unable to locate package nosuch"
            )
        );
        let s = Script::new()
            .call(LIST, pkgs())
            .call("pkg.install refresh=false pkgs=[{\"bash\":\"9.9\"}]", json!({}))
            .call(LIST, pkgs());
        let ret = installed(&s, "bash", &iargs(json!({"version": "9.9"})), true);
        assert_eq!(ret, Ret::failed("The following packages failed to install/update: bash=9.9"));
        let s = Script::new().call(LIST, pkgs());
        assert_eq!(installed(&s, "bash", &iargs(json!({"version": ">=5"})), true).result, Some(false));
    }

    #[test]
    fn latest_upgrades_what_has_a_candidate() {
        let s = Script::new()
            .call(
                "pkg.latest_version bash cowsay coreutils refresh=false",
                json!({"bash": "5.2.15-2+b13", "cowsay": "3.03", "coreutils": ""}),
            )
            .call(
                "pkg.version bash cowsay coreutils",
                json!({"bash": "5.2.15-2+b8", "cowsay": "", "coreutils": "9.1-1"}),
            );
        let a: LatestArgs = serde_json::from_value(json!({"pkgs": ["bash", "cowsay", "coreutils"]})).unwrap();
        let ret = latest(&s, "x", &a, false);
        s.done();
        assert_eq!(
            ret.comment,
            "The following packages would be installed/upgraded: bash, cowsay\nThe following packages are already \
             up-to-date: coreutils (9.1-1)"
        );
        assert_eq!(
            Value::Object(ret.changes),
            json!({"bash": {"new": "5.2.15-2+b13", "old": "5.2.15-2+b8"}, "cowsay": {"new": "3.03", "old": ""}})
        );
        let s = Script::new()
            .call("pkg.latest_version bash refresh=true", json!("5.2.15-2+b13"))
            .call("pkg.version bash", json!("5.2.15-2+b8"))
            .call(
                "pkg.install refresh=false pkgs=[\"bash\"]",
                json!({"bash": {"old": "5.2.15-2+b8", "new": "5.2.15-2+b13"}}),
            );
        let a: LatestArgs = serde_json::from_value(json!({"refresh": true})).unwrap();
        let ret = latest(&s, "bash", &a, true);
        s.done();
        assert_eq!(ret.comment, "The following packages were successfully installed/upgraded: bash");
        let s = Script::new()
            .call("pkg.latest_version coreutils refresh=false", json!(""))
            .call("pkg.version coreutils", json!("9.1-1"));
        assert_eq!(
            latest(&s, "coreutils", &LatestArgs::default(), true),
            Ret::ok("Package coreutils is already up-to-date")
        );
        let s = Script::new()
            .call("pkg.latest_version nosuch refresh=false", json!(""))
            .call("pkg.version nosuch", json!(""));
        assert_eq!(
            latest(&s, "nosuch", &LatestArgs::default(), true),
            Ret::failed("No information found for 'nosuch'.")
        );
    }

    #[test]
    fn removed_and_purged() {
        let rargs = |v: Value| -> RemovedArgs { serde_json::from_value(v).unwrap() };
        let s = Script::new().call(LIST, pkgs());
        assert_eq!(
            uninstall(&s, "vim", &rargs(json!({})), false, true),
            Ret::ok("All specified packages are already absent")
        );
        let s = Script::new().call(LIST, pkgs());
        assert_eq!(
            uninstall(&s, "bash", &rargs(json!({"version": "1.0"})), false, true),
            Ret::ok("All specified packages (matching specified versions) are already absent")
        );
        let s = Script::new().call(LIST, pkgs());
        let ret = uninstall(&s, "x", &rargs(json!({"pkgs": ["openssl", "bash", "vim"]})), false, false);
        assert_eq!(ret.comment, "The following packages will be removed: bash, openssl.");
        assert_eq!(
            Value::Object(ret.changes),
            json!({"bash": {"new": "removed", "old": ""}, "openssl": {"new": "removed", "old": ""}})
        );

        let mut after = pkgs();
        after.as_object_mut().unwrap().remove("openssl");
        let s = Script::new()
            .call(LIST, pkgs())
            .call("pkg.remove pkgs=[\"openssl\"]", json!({"openssl": {"old": "3.0.16-1~deb12u1", "new": ""}}))
            .call(LIST, after);
        let ret = uninstall(&s, "x", &rargs(json!({"pkgs": ["openssl", "vim"]})), false, true);
        s.done();
        assert_eq!(
            ret.comment,
            "The following packages were not installed: vim The following packages were removed: openssl."
        );

        // Purging finds packages only their configuration files are left of.
        let s = Script::new()
            .call(LIST, pkgs())
            .call("pkg.list_pkgs versions_as_list=true removed=true", json!({"nginx-common": ["1.22.1-9"]}))
            .call(
                "pkg.purge pkgs=[\"nginx-common\"]",
                json!({"removed": {"nginx-common": {"old": "1.22.1-9", "new": ""}}, "installed": {}}),
            )
            .call(LIST, pkgs())
            .call("pkg.list_pkgs versions_as_list=true removed=true", json!({}));
        let ret = uninstall(&s, "nginx-common", &rargs(json!({})), true, true);
        s.done();
        assert_eq!(ret.comment, "All targeted packages were purged.");
        let s = Script::new().call(LIST, pkgs()).call("pkg.list_pkgs versions_as_list=true removed=true", json!({}));
        assert_eq!(
            uninstall(&s, "vim", &rargs(json!({})), true, true),
            Ret::ok("None of the targeted packages are installed or partially installed")
        );
    }

    #[test]
    fn versions_match_exactly_by_glob_or_without_the_epoch() {
        assert!(fulfills(&["1:2.0-1".into()], "2.0-1", None));
        assert!(!fulfills(&["1:2.0-1".into()], "2.0-1", Some(false)));
        assert!(fulfills(&["1:2.0-1".into()], "1:2.0-1", None));
        assert!(fulfills(&["5.2.15-2+b8".into()], "5.2.15*", None));
        assert!(!fulfills(&["5.2.15-2+b8".into()], "5.2.16*", None));
        assert_eq!(exact("=1.2").unwrap(), "1.2");
        assert!(exact(">=1.2").is_err() && exact("1.2, <2").is_err());
        assert_eq!(desired_pkg("bash", Some("5.2")), "bash=5.2");
        assert!(repack(&[json!(["x"])]).is_none());
    }
}
