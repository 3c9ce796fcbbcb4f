//! `host.*` states: name-to-address entries in the hosts file.
//!
//! Follows Salt's `host` states: `present` adds the name to each wanted address
//! (changes `{"added": {ip: [name]}}`, plus `comment_added` and, with `clean`,
//! `removed`), `absent` takes it off (changes `{"host": name}`); comments are Salt's
//! ("Host web (10.0.0.5) already present", "Added host web (10.0.0.5)").
//!
//! The file is `/etc/hosts`, or `hosts_file` (a brine argument, so tests and images use
//! another file), or the `hosts.file` pillar key as Salt's `hosts.file` option.
//! Unlike Salt, which rewrites the whole file (merging lines, dropping blank lines), an
//! edit touches only the lines of the addresses it changes: a new address is a new
//! line `ip<TAB><TAB>name`, a new name joins the address's first line. The file is
//! rewritten in place (not renamed over), since `/etc/hosts` is often a bind mount in
//! containers. Salt's warning about the name on other addresses (without `clean`) is
//! not reported, as brine's results carry no warnings.

use super::calls::{py_str, Ret};
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const DEFAULT_FILE: &str = "/etc/hosts";

/// One line of a hosts file.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    /// Blank lines and comments, kept as they are.
    Other(String),
    Entry {
        ip: String,
        names: Vec<String>,
        comment: Option<String>,
        raw: Option<String>,
    },
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Other(s) => s.clone(),
            Line::Entry { raw: Some(raw), .. } => raw.clone(),
            Line::Entry { ip, names, comment, raw: None } => match comment {
                Some(c) => format!("{ip}\t\t{}\t\t# {c}", names.join(" ")),
                None => format!("{ip}\t\t{}", names.join(" ")),
            },
        }
    }
}

/// A hosts file, line by line, so an edit leaves the other lines alone.
#[derive(Debug, Clone, PartialEq, Default)]
struct Hosts {
    lines: Vec<Line>,
}

impl Hosts {
    fn parse(text: &str) -> Hosts {
        let lines = text
            .lines()
            .map(|raw| {
                let line = raw.trim();
                if line.is_empty() || line.starts_with('#') {
                    return Line::Other(raw.to_string());
                }
                let (body, comment) = match line.split_once('#') {
                    Some((b, c)) => (b.trim(), Some(c.trim_start().to_string())),
                    None => (line, None),
                };
                let mut words = body.split_whitespace().map(String::from);
                let ip = words.next().unwrap_or_default();
                Line::Entry { ip, names: words.collect(), comment, raw: Some(raw.to_string()) }
            })
            .collect();
        Hosts { lines }
    }

    fn render(&self) -> String {
        let mut out: String = self.lines.iter().map(|l| l.render() + "\n").collect();
        if out.trim().is_empty() {
            out.clear();
        }
        out
    }

    /// Addresses in file order, each with all its names and its last comment (Salt's
    /// `hosts.list_hosts`).
    fn addresses(&self) -> Vec<(String, Vec<String>, Option<String>)> {
        let mut out: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
        for l in &self.lines {
            if let Line::Entry { ip, names, comment, .. } = l {
                match out.iter_mut().find(|(i, _, _)| i == ip) {
                    Some(entry) => {
                        entry.1.extend(names.iter().cloned());
                        if comment.is_some() {
                            entry.2 = comment.clone();
                        }
                    }
                    None => out.push((ip.clone(), names.clone(), comment.clone())),
                }
            }
        }
        out
    }

    fn has_pair(&self, ip: &str, name: &str) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l, Line::Entry { ip: i, names, .. } if i == ip && names.iter().any(|n| n == name)))
    }

    fn add(&mut self, ip: &str, name: &str) {
        if self.has_pair(ip, name) {
            return;
        }
        for l in &mut self.lines {
            if let Line::Entry { ip: i, names, raw, .. } = l {
                if i == ip {
                    names.push(name.to_string());
                    *raw = None;
                    return;
                }
            }
        }
        self.lines.push(Line::Entry { ip: ip.into(), names: vec![name.into()], comment: None, raw: None });
    }

    /// Sets the comment of an address's first line (and drops it from its others);
    /// false when the address is not in the file.
    fn set_comment(&mut self, ip: &str, text: &str) -> bool {
        let mut first = true;
        for l in &mut self.lines {
            if let Line::Entry { ip: i, comment, raw, .. } = l {
                if i != ip {
                    continue;
                }
                let want = if first { Some(text.to_string()) } else { None };
                if *comment != want {
                    *comment = want;
                    *raw = None;
                }
                first = false;
            }
        }
        !first
    }

    fn remove(&mut self, ip: &str, name: &str) {
        for l in &mut self.lines {
            if let Line::Entry { ip: i, names, raw, .. } = l {
                if i == ip && names.iter().any(|n| n == name) {
                    names.retain(|n| n != name);
                    *raw = None;
                }
            }
        }
        self.lines.retain(|l| !matches!(l, Line::Entry { names, .. } if names.is_empty()));
    }
}

fn read(path: &Path) -> Result<Hosts, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Hosts::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Hosts::default()),
        Err(e) => Err(format!("Unable to read {}: {e}", path.display())),
    }
}

fn write(path: &Path, hosts: &Hosts) -> Result<(), String> {
    std::fs::write(path, hosts.render()).map_err(|e| format!("Unable to write {}: {e}", path.display()))
}

/// The hosts file a state edits: its argument, the `hosts.file` pillar key, or
/// `/etc/hosts`.
fn hosts_path(arg: &Option<String>, pillar: &Map) -> PathBuf {
    arg.clone()
        .or_else(|| pillar.get("hosts.file").and_then(Value::as_str).map(String::from))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE))
}

/// One address or a list of them.
fn ips(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(py_str).collect(),
        Value::Null => Vec::new(),
        other => vec![py_str(other)],
    }
}

/// Appends a value to a list under two keys of the changes.
fn record(changes: &mut Map, kind: &str, addr: &str, value: &str) {
    let entry = changes.entry(kind.to_string()).or_insert_with(|| json!({}));
    if let Some(m) = entry.as_object_mut() {
        let list = m.entry(addr.to_string()).or_insert_with(|| json!([]));
        if let Some(l) = list.as_array_mut() {
            l.push(json!(value));
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresentArgs {
    ip: Value,
    #[serde(default)]
    comment: Option<Value>,
    #[serde(default)]
    clean: bool,
    #[serde(default)]
    hosts_file: Option<String>,
}

/// Salt's `host.present` on a parsed file; edits `hosts` when applying.
fn present(hosts: &mut Hosts, name: &str, a: &PresentArgs, apply: bool) -> Ret {
    let wanted = ips(&a.ip);
    let comment = a.comment.as_ref().map(py_str).filter(|c| !c.is_empty());
    let all = hosts.addresses();
    let mut comments = Vec::new();
    let mut result = Some(true);
    let mut to_add: Vec<String> = Vec::new();
    let mut to_comment: Vec<String> = Vec::new();
    let mut to_remove: Vec<String> = Vec::new();
    let push = |list: &mut Vec<String>, addr: &str| {
        if !list.iter().any(|a| a == addr) {
            list.push(addr.to_string());
        }
    };
    for addr in wanted.iter().filter(|w| !all.iter().any(|(ip, _, _)| ip == *w)) {
        push(&mut to_add, addr);
        if comment.is_some() {
            push(&mut to_comment, addr);
        }
    }
    for (addr, names, current) in &all {
        let named = names.iter().any(|n| n == name);
        if !wanted.contains(addr) {
            if named && a.clean {
                push(&mut to_remove, addr);
            }
            continue;
        }
        if named {
            match (&comment, current) {
                (Some(c), Some(cur)) if c != cur => push(&mut to_comment, addr),
                (Some(_), None) => push(&mut to_comment, addr),
                _ => comments.push(format!("Host {name} ({addr}) already present")),
            }
        } else if addr.parse::<IpAddr>().is_ok() {
            push(&mut to_add, addr);
            if comment.is_some() {
                push(&mut to_comment, addr);
            }
        } else {
            result = Some(false);
            comments.push(format!("Invalid IP Address for {name} ({addr})"));
        }
    }
    let mut changes = Map::new();
    for addr in &to_add {
        if apply {
            hosts.add(addr, name);
            comments.push(format!("Added host {name} ({addr})"));
        } else {
            if result == Some(true) {
                result = None;
            }
            comments.push(format!("Host {name} ({addr}) would be added"));
        }
        record(&mut changes, "added", addr, name);
    }
    if let Some(c) = &comment {
        for addr in &to_comment {
            if apply {
                hosts.set_comment(addr, c);
                comments.push(format!("Set comment for host {addr} ({c})"));
            } else {
                comments.push(format!("Comment for {addr} ({c}) would be added"));
            }
            record(&mut changes, "comment_added", addr, c);
        }
    }
    for addr in &to_remove {
        if apply {
            hosts.remove(addr, name);
            comments.push(format!("Removed host {name} ({addr})"));
        } else {
            if result == Some(true) {
                result = None;
            }
            comments.push(format!("Host {name} ({addr}) would be removed"));
        }
        record(&mut changes, "removed", addr, name);
    }
    Ret { result, changes, comment: comments.join("\n") }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbsentArgs {
    ip: Value,
    #[serde(default)]
    hosts_file: Option<String>,
}

/// Salt's `host.absent` on a parsed file; edits `hosts` when applying.
fn absent(hosts: &mut Hosts, name: &str, a: &AbsentArgs, apply: bool) -> Ret {
    let mut ret = Ret::ok("");
    let mut comments = Vec::new();
    for ip in ips(&a.ip) {
        if !hosts.has_pair(&ip, name) {
            comments.push(format!("Host {name} ({ip}) already absent"));
        } else if !apply {
            ret.result = None;
            comments.push(format!("Host {name} ({ip}) needs to be removed"));
        } else {
            hosts.remove(&ip, name);
            ret.changes = Map::from_iter([("host".to_string(), json!(name))]);
            comments.push(format!("Removed host {name} ({ip})"));
        }
    }
    ret.comment = comments.join("\n");
    ret
}

/// Reads the file, runs `f` on it, and writes it back if applying changed it.
fn edit(path: &Path, apply: bool, f: impl FnOnce(&mut Hosts) -> Ret) -> Ret {
    let mut hosts = match read(path) {
        Ok(h) => h,
        Err(e) => return Ret::failed(e),
    };
    let before = hosts.clone();
    let mut ret = f(&mut hosts);
    if apply && hosts != before {
        if let Err(e) = write(path, &hosts) {
            ret.result = Some(false);
            ret.changes = Map::new();
            ret.comment = format!("{}\n{e}", ret.comment);
        }
    }
    ret
}

pub struct Present;
impl StateFunction for Present {
    const NAME: &'static str = "host.present";
    const DOC: &'static str = "Ensures the hosts file maps the name to each address in ip (one, or a \
        list). comment: a comment for the address's line. clean: also take the name off addresses not \
        listed. hosts_file: the file to edit (default /etc/hosts, or the hosts.file pillar key).\
        \n\nExample:\n  db.internal:\n    host.present:\n      - ip: 10.0.0.5\n      - comment: primary database";
    type Args = PresentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: PresentArgs, apply: bool) -> Outcome {
        let path = hosts_path(&a.hosts_file, ctx.pillar);
        edit(&path, apply, |h| present(h, name, &a, apply)).outcome()
    }
}

pub struct Absent;
impl StateFunction for Absent {
    const NAME: &'static str = "host.absent";
    const DOC: &'static str = "Ensures the hosts file does not map the name to the address(es) in ip; \
        an address left without names loses its line. hosts_file: the file to edit (default \
        /etc/hosts, or the hosts.file pillar key).\n\nExample:\n  old.internal:\n    host.absent:\n      - ip: 10.0.0.9";
    type Args = AbsentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: AbsentArgs, apply: bool) -> Outcome {
        let path = hosts_path(&a.hosts_file, ctx.pillar);
        edit(&path, apply, |h| absent(h, name, &a, apply)).outcome()
    }
}

/// The `host` state module.
pub static MODULE: StateModule =
    StateModule { name: "host", doc: "Name-to-address entries in the hosts file.", functions: &[&Absent, &Present] };

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
127.0.0.1\tlocalhost
# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback

10.0.0.5  db  # primary
10.0.0.5  db-alias
10.0.0.9 old web
";

    fn pargs(v: Value) -> PresentArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn parsing_merges_addresses_like_salt_and_rendering_keeps_untouched_lines() {
        let h = Hosts::parse(FILE);
        assert_eq!(h.render(), FILE);
        let all = h.addresses();
        assert_eq!(
            all[2],
            ("10.0.0.5".to_string(), vec!["db".to_string(), "db-alias".to_string()], Some("primary".into()))
        );
        assert!(h.has_pair("10.0.0.5", "db-alias") && !h.has_pair("10.0.0.5", "web"));
    }

    #[test]
    fn present_adds_to_an_address_or_a_new_line() {
        let mut h = Hosts::parse(FILE);
        let ret = present(&mut h, "web", &pargs(json!({"ip": ["10.0.0.5", "10.0.0.7"]})), true);
        assert_eq!(ret.comment, "Added host web (10.0.0.7)\nAdded host web (10.0.0.5)");
        assert_eq!(Value::Object(ret.changes), json!({"added": {"10.0.0.7": ["web"], "10.0.0.5": ["web"]}}));
        assert_eq!(
            h.render(),
            "127.0.0.1\tlocalhost\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost \
             ip6-localhost ip6-loopback\n\n10.0.0.5\t\tdb web\t\t# primary\n10.0.0.5  db-alias\n10.0.0.9 old web\n\
             10.0.0.7\t\tweb\n"
        );
        // Again: nothing to do.
        let ret = present(&mut h, "web", &pargs(json!({"ip": ["10.0.0.5", "10.0.0.7"]})), true);
        assert_eq!(ret, Ret::ok("Host web (10.0.0.5) already present\nHost web (10.0.0.7) already present"));
    }

    #[test]
    fn test_mode_comments_and_clean() {
        let mut h = Hosts::parse(FILE);
        let ret = present(&mut h, "web", &pargs(json!({"ip": "10.0.0.5", "comment": "app", "clean": true})), false);
        assert_eq!(ret.result, None);
        assert_eq!(
            ret.comment,
            "Host web (10.0.0.5) would be added\nComment for 10.0.0.5 (app) would be added\nHost web (10.0.0.9) would be removed"
        );
        assert_eq!(
            Value::Object(ret.changes),
            json!({"added": {"10.0.0.5": ["web"]}, "comment_added": {"10.0.0.5": ["app"]}, "removed": {"10.0.0.9": ["web"]}})
        );
        assert_eq!(h, Hosts::parse(FILE), "test mode changes nothing");
        let ret = present(&mut h, "db", &pargs(json!({"ip": "10.0.0.5", "comment": "primary"})), false);
        assert_eq!(ret, Ret::ok("Host db (10.0.0.5) already present"));
        let ret = present(&mut h, "db", &pargs(json!({"ip": "10.0.0.5", "comment": "main"})), true);
        assert_eq!(ret.comment, "Set comment for host 10.0.0.5 (main)");
        assert!(h.render().contains("10.0.0.5\t\tdb\t\t# main\n"));
    }

    #[test]
    fn absent_removes_names_and_empty_lines() {
        let mut h = Hosts::parse(FILE);
        let a: AbsentArgs = serde_json::from_value(json!({"ip": ["10.0.0.5", "10.0.0.1"]})).unwrap();
        let ret = absent(&mut h, "db-alias", &a, false);
        assert_eq!(
            ret,
            Ret::would("Host db-alias (10.0.0.5) needs to be removed\nHost db-alias (10.0.0.1) already absent")
        );
        let ret = absent(&mut h, "db-alias", &a, true);
        assert_eq!(Value::Object(ret.changes), json!({"host": "db-alias"}));
        assert_eq!(ret.comment, "Removed host db-alias (10.0.0.5)\nHost db-alias (10.0.0.1) already absent");
        assert!(!h.render().contains("db-alias"));
        assert!(h.render().contains("10.0.0.5  db  # primary\n"));
    }

    #[test]
    fn the_file_is_edited_in_place_and_created_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let a = pargs(json!({"ip": "192.0.2.1"}));
        let ret = edit(&path, true, |h| present(h, "svc", &a, true));
        assert_eq!(ret.comment, "Added host svc (192.0.2.1)");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "192.0.2.1\t\tsvc\n");
        let ret = edit(&path, true, |h| present(h, "svc", &a, true));
        assert!(ret.changes.is_empty());
        assert_eq!(hosts_path(&None, &Map::new()), PathBuf::from("/etc/hosts"));
        let pillar = Map::from_iter([("hosts.file".to_string(), json!("/tmp/h"))]);
        assert_eq!(hosts_path(&None, &pillar), PathBuf::from("/tmp/h"));
    }
}
