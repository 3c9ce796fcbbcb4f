//! The `inotify` beacon, as Salt's: file and directory changes from the kernel.
//!
//! ```toml
//! [beacons.inotify]
//! files = { "/etc/nginx" = { mask = ["modify", "create"], recurse = true, auto_add = true,
//!           exclude = ["/etc/nginx/cache", "*.swp"] } }
//! ```
//!
//! Each change fires `{path: <file changed>, change: "IN_MODIFY"}` (pyinotify's mask
//! names, `IN_CREATE|IN_ISDIR` for a directory) with the watched path as sub tag.
//! The default mask is create, delete and modify. A path that does not exist yet is
//! watched once it appears. Changes wait in the kernel's queue between intervals.

use super::{only_keys, Beacon, Env, Fired};
use brine_proto::{Map, Value};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use regex::Regex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Salt's mask words and their flags; the first eleven are events, the rest options.
const MASKS: &[(&str, AddWatchFlags)] = &[
    ("access", AddWatchFlags::IN_ACCESS),
    ("attrib", AddWatchFlags::IN_ATTRIB),
    ("close_nowrite", AddWatchFlags::IN_CLOSE_NOWRITE),
    ("close_write", AddWatchFlags::IN_CLOSE_WRITE),
    ("create", AddWatchFlags::IN_CREATE),
    ("delete", AddWatchFlags::IN_DELETE),
    ("delete_self", AddWatchFlags::IN_DELETE_SELF),
    ("modify", AddWatchFlags::IN_MODIFY),
    ("moved_from", AddWatchFlags::IN_MOVED_FROM),
    ("moved_to", AddWatchFlags::IN_MOVED_TO),
    ("move_self", AddWatchFlags::IN_MOVE_SELF),
    ("open", AddWatchFlags::IN_OPEN),
    ("dont_follow", AddWatchFlags::IN_DONT_FOLLOW),
    ("excl_unlink", AddWatchFlags::from_bits_retain(0x0400_0000)), // IN_EXCL_UNLINK, not named by nix
    ("oneshot", AddWatchFlags::IN_ONESHOT),
    ("onlydir", AddWatchFlags::IN_ONLYDIR),
];

/// At most this many directories are watched under one recursive path.
const MAX_WATCHES_PER_PATH: usize = 8192;

/// What to leave out under a watched path.
#[derive(Debug)]
enum Exclude {
    Prefix(String),
    Pattern(Regex),
}

impl Exclude {
    fn matches(&self, path: &str) -> bool {
        match self {
            Exclude::Prefix(p) => path.starts_with(p.as_str()),
            Exclude::Pattern(re) => re.is_match(path),
        }
    }
}

#[derive(Debug)]
struct Watched {
    path: String,
    mask: AddWatchFlags,
    recurse: bool,
    auto_add: bool,
    exclude: Vec<Exclude>,
}

struct InotifyBeacon {
    fd: Inotify,
    watched: Vec<Watched>,
    /// Each kernel watch: the path it watches and the configured path it belongs to.
    wds: HashMap<WatchDescriptor, (PathBuf, usize)>,
}

/// A shell glob (`*`, `?`) as a whole-string regular expression.
fn glob_regex(glob: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

fn exclude_of(v: &Value) -> Result<Exclude, String> {
    match v {
        Value::String(s) if s.contains(['*', '?']) => Ok(Exclude::Pattern(glob_regex(s)?)),
        Value::String(s) => Ok(Exclude::Prefix(s.clone())),
        // Salt's `{pattern: {regex: true}}`.
        Value::Object(m) if m.len() == 1 => {
            let (pattern, opts) = m.iter().next().ok_or("empty exclude")?;
            if opts.get("regex").and_then(Value::as_bool) == Some(true) {
                regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map(Exclude::Pattern)
                    .map_err(|e| format!("exclude {pattern:?}: {e}"))
            } else {
                exclude_of(&Value::String(pattern.clone()))
            }
        }
        other => Err(format!("exclude entries are paths, globs or {{pattern: {{regex: true}}}}, not {other}")),
    }
}

pub(crate) fn build(_: &str, options: &Map, _: &Env) -> Result<Box<dyn Beacon>, String> {
    only_keys(options, &["files", "coalesce"])?;
    let Some(Value::Object(files)) = options.get("files") else {
        return Err("inotify requires files, e.g. files = { \"/etc/hosts\" = { mask = [\"modify\"] } }".into());
    };
    if files.is_empty() {
        return Err("files names no path to watch".into());
    }
    let mut watched = Vec::new();
    for (path, opts) in files {
        if !path.starts_with('/') {
            return Err(format!("files: {path:?} is not an absolute path"));
        }
        let empty = Map::new();
        let opts = match opts {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => return Err(format!("files.{path:?} must be a table of options, not {other}")),
        };
        only_keys(opts, &["mask", "recurse", "auto_add", "exclude"]).map_err(|e| format!("files.{path:?}: {e}"))?;
        let mask = match opts.get("mask") {
            None => AddWatchFlags::IN_CREATE | AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MODIFY,
            Some(Value::Array(words)) => {
                let mut mask = AddWatchFlags::empty();
                for w in words {
                    let flag = w.as_str().and_then(|w| MASKS.iter().find(|(n, _)| *n == w)).map(|(_, f)| *f);
                    mask |= flag.ok_or_else(|| {
                        format!(
                            "files.{path:?}: invalid mask option {w} (one of {})",
                            MASKS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        )
                    })?;
                }
                mask
            }
            Some(other) => return Err(format!("files.{path:?}: mask must be a list, not {other}")),
        };
        let flag = |key: &str| match opts.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("files.{path:?}: {key} must be true or false, not {other}")),
        };
        let exclude = match opts.get("exclude") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(exclude_of).collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("files.{path:?}: exclude must be a list, not {other}")),
        };
        watched.push(Watched {
            path: path.clone(),
            mask,
            recurse: flag("recurse")?,
            auto_add: flag("auto_add")?,
            exclude,
        });
    }
    let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| format!("cannot start inotify: {e}"))?;
    let mut beacon = InotifyBeacon { fd, watched, wds: HashMap::new() };
    beacon.add_missing_watches();
    Ok(Box::new(beacon))
}

impl InotifyBeacon {
    /// Watches every configured path that exists and is not watched yet.
    fn add_missing_watches(&mut self) {
        for i in 0..self.watched.len() {
            let root = PathBuf::from(&self.watched[i].path);
            if self.wds.values().any(|(p, idx)| *idx == i && *p == root) || !root.exists() {
                continue;
            }
            self.watch_tree(i, &root);
        }
    }

    /// Watches `path` (and, when its configured path recurses, the directories
    /// under it).
    fn watch_tree(&mut self, idx: usize, path: &Path) {
        let w = &self.watched[idx];
        // auto_add needs to hear about new directories.
        let mut mask = w.mask;
        if w.auto_add {
            mask |= AddWatchFlags::IN_CREATE;
        }
        let recurse = w.recurse;
        let mut todo = vec![path.to_path_buf()];
        let mut added = 0;
        while let Some(p) = todo.pop() {
            if self.excluded(idx, &p) {
                continue;
            }
            match self.fd.add_watch(&p, mask) {
                Ok(wd) => {
                    self.wds.insert(wd, (p.clone(), idx));
                    added += 1;
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "inotify beacon cannot watch a path");
                    continue;
                }
            }
            if recurse && added < MAX_WATCHES_PER_PATH {
                if let Ok(entries) = std::fs::read_dir(&p) {
                    for e in entries.flatten() {
                        // Directories only, never through a symlink.
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            todo.push(e.path());
                        }
                    }
                }
            }
        }
    }

    fn excluded(&self, idx: usize, path: &Path) -> bool {
        let p = path.to_string_lossy();
        self.watched[idx].exclude.iter().any(|e| e.matches(&p))
    }
}

/// pyinotify's name of an event's mask: the event, then `|IN_ISDIR` for a directory.
fn mask_name(mask: AddWatchFlags) -> String {
    const NAMES: &[(AddWatchFlags, &str)] = &[
        (AddWatchFlags::IN_ACCESS, "IN_ACCESS"),
        (AddWatchFlags::IN_MODIFY, "IN_MODIFY"),
        (AddWatchFlags::IN_ATTRIB, "IN_ATTRIB"),
        (AddWatchFlags::IN_CLOSE_WRITE, "IN_CLOSE_WRITE"),
        (AddWatchFlags::IN_CLOSE_NOWRITE, "IN_CLOSE_NOWRITE"),
        (AddWatchFlags::IN_OPEN, "IN_OPEN"),
        (AddWatchFlags::IN_MOVED_FROM, "IN_MOVED_FROM"),
        (AddWatchFlags::IN_MOVED_TO, "IN_MOVED_TO"),
        (AddWatchFlags::IN_CREATE, "IN_CREATE"),
        (AddWatchFlags::IN_DELETE, "IN_DELETE"),
        (AddWatchFlags::IN_DELETE_SELF, "IN_DELETE_SELF"),
        (AddWatchFlags::IN_MOVE_SELF, "IN_MOVE_SELF"),
        (AddWatchFlags::IN_UNMOUNT, "IN_UNMOUNT"),
        (AddWatchFlags::IN_Q_OVERFLOW, "IN_Q_OVERFLOW"),
        (AddWatchFlags::IN_IGNORED, "IN_IGNORED"),
    ];
    let mut parts: Vec<&str> = NAMES.iter().filter(|(f, _)| mask.contains(*f)).map(|(_, n)| *n).take(1).collect();
    if mask.contains(AddWatchFlags::IN_ISDIR) {
        parts.push("IN_ISDIR");
    }
    parts.join("|")
}

impl Beacon for InotifyBeacon {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        self.add_missing_watches();
        let mut out = Vec::new();
        // Bounded: a very busy tree is read again at the next interval.
        for _ in 0..256 {
            let events = match self.fd.read_events() {
                Ok(ev) => ev,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(format!("cannot read inotify events: {e}")),
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    tracing::warn!("inotify beacon: the kernel's queue overflowed; some changes were lost");
                    continue;
                }
                let Some((dir, idx)) = self.wds.get(&ev.wd).cloned() else { continue };
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The watch is gone (its path was deleted); it comes back if the path does.
                    self.wds.remove(&ev.wd);
                    continue;
                }
                let path = match &ev.name {
                    Some(name) => dir.join(name),
                    None => dir.clone(),
                };
                if ev.mask.contains(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_ISDIR) && self.watched[idx].auto_add {
                    self.watch_tree(idx, &path);
                }
                // Only what the configured mask asked for (auto_add may widen the watch).
                let wanted = self.watched[idx].mask;
                if !ev.mask.intersects(wanted) && !ev.mask.contains(AddWatchFlags::IN_UNMOUNT) {
                    continue;
                }
                if self.excluded(idx, &path) {
                    continue;
                }
                let watched_path = dir.to_string_lossy().into_owned();
                let mut data = Map::new();
                data.insert("path".into(), Value::String(path.to_string_lossy().into_owned()));
                data.insert("change".into(), Value::String(mask_name(ev.mask)));
                out.push(Fired::tagged(watched_path, data));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_changes_fire_with_the_path_and_pyinotify_mask_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("watched");
        let env = Env { id: "m".into(), data_dir: dir.path().to_path_buf() };
        let opts = json!({"files": {root.to_str().unwrap(): {"mask": ["create", "modify", "delete"],
                          "recurse": true, "auto_add": true, "exclude": ["*.swp"]}}});
        let mut b = build("inotify", opts.as_object().unwrap(), &env).unwrap();
        assert!(b.poll().unwrap().is_empty(), "nothing to watch yet");
        std::fs::create_dir(&root).unwrap();
        assert!(b.poll().unwrap().is_empty(), "the directory is watched from now on");
        std::fs::write(root.join("a.conf"), "x").unwrap();
        std::fs::write(root.join("a.swp"), "x").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let fired = b.poll().unwrap();
        let changes: Vec<(String, String)> = fired
            .iter()
            .map(|f| (f.data["path"].as_str().unwrap().to_string(), f.data["change"].as_str().unwrap().to_string()))
            .collect();
        let a = root.join("a.conf").to_string_lossy().into_owned();
        let sub = root.join("sub").to_string_lossy().into_owned();
        assert!(changes.contains(&(a.clone(), "IN_CREATE".into())), "{changes:?}");
        assert!(changes.contains(&(a, "IN_MODIFY".into())), "{changes:?}");
        assert!(changes.contains(&(sub.clone(), "IN_CREATE|IN_ISDIR".into())), "{changes:?}");
        assert!(!changes.iter().any(|(p, _)| p.ends_with(".swp")), "{changes:?}");
        assert_eq!(fired[0].tag.as_deref(), Some(root.to_str().unwrap()));
        // auto_add: the new directory is watched too.
        std::fs::write(root.join("sub/b"), "y").unwrap();
        let fired = b.poll().unwrap();
        assert!(fired
            .iter()
            .any(|f| f.data["path"] == json!(format!("{sub}/b")) && f.tag.as_deref() == Some(&sub[..])));
    }

    #[test]
    fn bad_options_are_named() {
        let env = Env { id: "m".into(), data_dir: std::env::temp_dir() };
        for (opts, want) in [
            (json!({"files": {"/tmp": {"mask": ["explode"]}}}), "invalid mask option"),
            (json!({"files": {"tmp": {}}}), "absolute"),
            (json!({"files": {"/tmp": {"recurse": "yes"}}}), "recurse"),
            (json!({}), "requires files"),
        ] {
            let err = build("inotify", opts.as_object().unwrap(), &env).err().unwrap();
            assert!(err.contains(want), "{opts}: {err}");
        }
    }
}
