//! `file.*` states: files, directories, links and lines, with Salt 3007.8's names,
//! arguments, comments and changes.
//!
//! Every function inspects the host first and changes it only when applying, so test
//! mode reports what an apply would change (`newfile`, a unified `diff`, `mode`, `user`,
//! `group`) and touches nothing. After changing something a function reads the result
//! back from disk: it never reports success for a file that is not what was declared.
//!
//! Contents come from `contents`, pillar, or a source: `salt://` / `brine://` paths in
//! the state trees (read through [`FileSource`], which refuses paths leaving the roots)
//! or absolute local paths, optionally checked against a `source_hash` and rendered
//! with Jinja (grains, pillar, `defaults` and `context`). Diffs are the same
//! `difflib`-exact unified diffs `file.replace` returns.
//!
//! Where Salt's output is an accident of how it works rather than a decision, brine
//! does the plain thing and says so in the function's doc: touch and copy converge
//! (nothing is reported when nothing changed), `file.line` inserts only once, file.copy
//! predicts its change in test mode, and `source_hash` is checked for every source.

use crate::exec::file::diff::unified;
use crate::files::{clean_path, is_server_url, split_url, FileError, FileSource};
use crate::sls::render::{render_jinja, RenderContext, TemplateSource};
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::{Map, Value};
use nix::unistd::{Gid, Group, Uid, User};
use regex::Regex;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

// ---------------------------------------------------------------------------------
// Words, paths and errors.

/// What Salt adds when a file would change in test mode.
const TEST_NOTE: &str = "Note: No changes made, actual changes may\nbe different due to other states.";

fn set_to_change(path: &Path) -> String {
    format!("The file {} is set to be changed\n{TEST_NOTE}", path.display())
}

fn yes() -> bool {
    true
}

/// A map with one entry.
fn one(key: &str, value: impl Into<Value>) -> Map {
    let mut m = Map::new();
    m.insert(key.into(), value.into());
    m
}

/// A scalar as Python's `str()` prints it (`True`, `5`); lists and maps as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `~` and `~user` expanded.
fn expand_user(raw: &str) -> PathBuf {
    let Some(rest) = raw.strip_prefix('~') else {
        return PathBuf::from(raw);
    };
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let home = if name.is_empty() {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .or_else(|| User::from_uid(Uid::effective()).ok().flatten().map(|u| u.dir))
    } else {
        User::from_name(name).ok().flatten().map(|u| u.dir)
    };
    match home {
        Some(home) if tail.is_empty() => home,
        Some(home) => home.join(tail),
        None => PathBuf::from(raw),
    }
}

/// The state's `name` as an absolute path, or Salt's complaint.
fn abs_path(name: &str) -> Result<PathBuf, Outcome> {
    let path = expand_user(name);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(Outcome::failed(format!("Specified file {name} is not an absolute path")))
    }
}

/// The OS's reason without Rust's ` (os error N)`.
fn reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `Cannot <action> <path>: <reason>`.
fn io_err(action: &str, path: &Path, e: &io::Error) -> String {
    format!("Cannot {action} {}: {}", path.display(), reason(e))
}

/// Whether `backup` asks for a copy (`minion`, `True`, a suffix); `False` or empty: no.
fn wants_backup(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty() && !s.eq_ignore_ascii_case("false"),
        Some(_) => true,
    }
}

/// Copies `path` to `path.bak` before it is changed.
fn back_up(path: &Path) -> Result<(), String> {
    let mut backup = path.as_os_str().to_owned();
    backup.push(".bak");
    fs::copy(path, &backup).map(|_| ()).map_err(|e| io_err("back up", path, &e))
}

// ---------------------------------------------------------------------------------
// Modes and owners.

/// A file mode as SLS files write it: its octal digits (`644`, `"0644"`, `"0o755"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        let text = match Value::deserialize(d)? {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            other => return Err(D::Error::custom(format!("invalid mode {other}: expected octal digits such as 0644"))),
        };
        parse_mode(&text)
            .map(Mode)
            .ok_or_else(|| D::Error::custom(format!("invalid mode {text:?}: expected octal digits such as 0644")))
    }
}

fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

/// Salt's mode text: four octal digits.
fn mode_text(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// The process umask (read, not changed: changing it would race other threads).
fn umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Umask:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// A user or group, by name or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Owner, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Owner(s)),
            Value::Number(n) => Ok(Owner(n.to_string())),
            other => Err(D::Error::custom(format!("expected a user or group name, got {other}"))),
        }
    }
}

fn find_uid(user: &str) -> Option<u32> {
    match User::from_name(user) {
        Ok(Some(u)) => Some(u.uid.as_raw()),
        _ => user.parse().ok(),
    }
}

fn find_gid(group: &str) -> Option<u32> {
    match Group::from_name(group) {
        Ok(Some(g)) => Some(g.gid.as_raw()),
        _ => group.parse().ok(),
    }
}

fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// The name of a user's primary group.
fn primary_group(user: &str) -> Option<String> {
    let uid = find_uid(user)?;
    let u = User::from_uid(Uid::from_raw(uid)).ok().flatten()?;
    Some(group_name(u.gid.as_raw()))
}

/// A directory mode for a file mode: search (x) bits where there are read bits, as Salt
/// gives directories it creates for a file.
fn with_search_bits(mode: u32) -> u32 {
    mode | ((mode & 0o444) >> 2)
}

/// The owner, group and mode a state declares for a path (each optional).
#[derive(Debug, Clone, Default)]
struct Perms {
    user: Option<String>,
    group: Option<String>,
    mode: Option<u32>,
}

impl Perms {
    fn new(user: &Option<Owner>, group: &Option<Owner>, mode: Option<Mode>) -> Perms {
        Perms {
            user: user.as_ref().map(|o| o.0.clone()),
            group: group.as_ref().map(|o| o.0.clone()),
            mode: mode.map(|m| m.0),
        }
    }

    /// The uid and gid to set, or Salt's comment naming what does not exist.
    fn ids(&self) -> Result<(Option<u32>, Option<u32>), String> {
        let mut missing = Vec::new();
        let uid = self.user.as_ref().and_then(|u| {
            let id = find_uid(u);
            if id.is_none() {
                missing.push(format!("User {u} is not available"));
            }
            id
        });
        let gid = self.group.as_ref().and_then(|g| {
            let id = find_gid(g);
            if id.is_none() {
                missing.push(format!("Group {g} is not available"));
            }
            id
        });
        if missing.is_empty() {
            Ok((uid, gid))
        } else {
            Err(missing.join(" "))
        }
    }

    /// What differs on a path with `meta`, as Salt reports it (`user`, `group`,
    /// `mode`). An owner that does not exist (yet) differs.
    fn diff(&self, meta: &fs::Metadata) -> Map {
        let mut m = Map::new();
        if let Some(u) = self.user.as_ref().filter(|u| find_uid(u) != Some(meta.uid())) {
            m.insert("user".into(), u.clone().into());
        }
        if let Some(g) = self.group.as_ref().filter(|g| find_gid(g) != Some(meta.gid())) {
            m.insert("group".into(), g.clone().into());
        }
        let is_link = meta.file_type().is_symlink();
        if let Some(mode) = self.mode.filter(|m| !is_link && meta.mode() & 0o7777 != *m) {
            m.insert("mode".into(), mode_text(mode).into());
        }
        m
    }

    /// Sets what differs on `path` (the symlink itself when `link`), then checks it.
    fn apply(&self, path: &Path, link: bool) -> Result<(), String> {
        let stat = |p: &Path| if link { fs::symlink_metadata(p) } else { fs::metadata(p) };
        let meta = stat(path).map_err(|e| io_err("stat", path, &e))?;
        let wrong = self.diff(&meta);
        if wrong.is_empty() {
            return Ok(());
        }
        let (uid, gid) = self.ids()?;
        // chown only when needed: it clears setuid bits even when nothing changes.
        if wrong.contains_key("user") || wrong.contains_key("group") {
            let done =
                if link { std::os::unix::fs::lchown(path, uid, gid) } else { std::os::unix::fs::chown(path, uid, gid) };
            done.map_err(|e| io_err("change the owner of", path, &e))?;
        }
        if let Some(mode) = self.mode.filter(|_| !link) {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("change the mode of", path, &e))?;
        }
        let meta = stat(path).map_err(|e| io_err("stat", path, &e))?;
        let left = self.diff(&meta);
        if left.is_empty() {
            Ok(())
        } else {
            let what: Vec<String> = left.iter().map(|(k, v)| format!("{k} {}", text_of(v))).collect();
            Err(format!("Failed to set {} on {}", what.join(", "), path.display()))
        }
    }
}

// ---------------------------------------------------------------------------------
// Writing and removing.

/// A free name beside `path` for a file then renamed over it.
fn sibling_tmp(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.brine-{}-{n}", std::process::id()))
}

/// Replaces `path` with `bytes` through a temporary file renamed over it, so a reader
/// sees the old file or the new one, never half of one. Unlike
/// [`crate::files::write_atomic`] it sets the mode it is given and keeps `owner` when
/// allowed (as root), and where a rename cannot replace the file (a file bind-mounted
/// into a container, as /etc/hosts often is) it rewrites the file in place.
fn write_file(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<(), String> {
    let tmp = sibling_tmp(path);
    let renamed = (|| -> io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if let Some((uid, gid)) = owner {
            let _ = std::os::unix::fs::chown(&tmp, Some(uid), Some(gid));
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, path)
    })();
    match renamed {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            let busy = [nix::errno::Errno::EBUSY as i32, nix::errno::Errno::EXDEV as i32];
            if e.raw_os_error().is_some_and(|code| busy.contains(&code)) {
                write_in_place(path, bytes)
            } else {
                Err(io_err("write", path, &e))
            }
        }
    }
}

/// Rewrites `path` in place (same inode: hard links and bind mounts see the change);
/// a new file gets the default mode.
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |e: io::Error| io_err("write", path, &e);
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// Reads `path` back and checks it holds `bytes`.
fn check_contents(path: &Path, bytes: &[u8]) -> Result<(), String> {
    match fs::read(path) {
        Ok(found) if found == bytes => Ok(()),
        Ok(_) => Err(format!("{} was written but does not hold the new contents", path.display())),
        Err(e) => Err(io_err("read back", path, &e)),
    }
}

/// Creates `dir` and its missing parents, each with `perms` (Salt's makedirs gives the
/// directories it creates the state's user, group and directory mode).
fn make_dirs(dir: &Path, perms: &Perms) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at.filter(|p| fs::symlink_metadata(p).is_err()) {
        missing.push(p.to_path_buf());
        at = p.parent();
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(io_err("create directory", d, &e)),
        }
        perms.apply(d, false)?;
    }
    Ok(())
}

/// Removes a file, link or directory tree; a missing path is fine.
fn remove_path(path: &Path) -> Result<(), String> {
    let gone = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("remove", path, &e)),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    match gone {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path, &e)),
        _ => Ok(()),
    }
}

/// Everything under `root` in Python's `os.walk` order: each directory's files, then
/// its directories, then the inside of those. Symlinks are listed, not followed.
fn walk(root: &Path) -> Result<Vec<(PathBuf, fs::Metadata)>, String> {
    fn into(dir: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) -> Result<(), String> {
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for entry in fs::read_dir(dir).map_err(|e| io_err("read directory", dir, &e))? {
            let p = entry.map_err(|e| io_err("read directory", dir, &e))?.path();
            let meta = fs::symlink_metadata(&p).map_err(|e| io_err("stat", &p, &e))?;
            if meta.is_dir() {
                dirs.push((p, meta));
            } else {
                files.push((p, meta));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(files);
        out.extend(dirs.iter().cloned());
        for (d, _) in dirs {
            into(&d, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    into(root, &mut out)?;
    Ok(out)
}

/// What `clean` keeps of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Nothing: remove it.
    No,
    /// The entry (a directory), but look inside.
    Node,
    /// The entry and everything in it.
    Tree,
}

/// What `clean` removes under `root`: every entry not kept, in walk order, and the
/// top-most of those (what is deleted; a directory goes with everything inside it,
/// unless something inside is kept).
fn clean_plan(root: &Path, keep: &dyn Fn(&Path) -> Keep) -> Result<(Vec<PathBuf>, Vec<PathBuf>), String> {
    let entries = walk(root)?;
    let mut kept_trees: HashSet<PathBuf> = HashSet::new();
    let verdicts: Vec<Keep> = entries
        .iter()
        .map(|(p, _)| {
            let k = if p.parent().is_some_and(|d| kept_trees.contains(d)) { Keep::Tree } else { keep(p) };
            if k == Keep::Tree {
                kept_trees.insert(p.clone());
            }
            k
        })
        .collect();
    // Children come after their directory in walk order: decide from the bottom up.
    let mut holds_kept: HashSet<PathBuf> = HashSet::new();
    let mut removable: HashSet<PathBuf> = HashSet::new();
    for ((p, meta), k) in entries.iter().zip(&verdicts).rev() {
        let gone = *k == Keep::No && !(meta.is_dir() && holds_kept.contains(p));
        if gone {
            removable.insert(p.clone());
        } else if let Some(parent) = p.parent() {
            holds_kept.insert(parent.to_path_buf());
        }
    }
    let all: Vec<PathBuf> = entries.iter().map(|(p, _)| p.clone()).filter(|p| removable.contains(p)).collect();
    let top = all.iter().filter(|p| !p.parent().is_some_and(|d| removable.contains(d))).cloned().collect();
    Ok((all, top))
}

/// A pattern of paths to leave alone (`exclude_pat`): a glob, or a regex after `E@`,
/// matched against the path relative to the managed directory.
enum Pattern {
    Glob(globset::GlobMatcher),
    Regex(Regex),
}

impl Pattern {
    fn parse(text: &Option<String>) -> Result<Option<Pattern>, String> {
        let Some(text) = text else { return Ok(None) };
        let bad = |e: String| format!("Invalid exclude_pat '{text}': {e}");
        Ok(Some(match text.strip_prefix("E@") {
            Some(re) => Pattern::Regex(Regex::new(re).map_err(|e| bad(e.to_string()))?),
            None => Pattern::Glob(globset::Glob::new(text).map_err(|e| bad(e.to_string()))?.compile_matcher()),
        }))
    }

    fn matches(&self, rel: &str) -> bool {
        match self {
            Pattern::Glob(g) => g.is_match(rel),
            Pattern::Regex(r) => r.is_match(rel),
        }
    }
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// Sources, hashes and templates.

/// Where a file's contents come from.
#[derive(Debug, Clone)]
enum Source {
    /// A file of the state trees: `salt://path` or `brine://path` (`?saltenv=env`).
    Tree { url: String, env: String, path: String },
    /// An absolute path on this host (`/path` or `file:///path`).
    Local(PathBuf),
}

impl Source {
    fn parse(url: &str, saltenv: &str) -> Result<Source, String> {
        if is_server_url(url) {
            let (env, path) = split_url(url, saltenv);
            let path = clean_path(&path).map_err(|e| format!("Source file {url} is refused: {e}"))?;
            return Ok(Source::Tree { url: url.to_string(), env, path });
        }
        let local = url.strip_prefix("file://").unwrap_or(url);
        if local.starts_with('/') {
            Ok(Source::Local(PathBuf::from(local)))
        } else {
            Err(format!("Unsupported source {url}: brine reads salt://, brine:// and absolute local paths"))
        }
    }

    /// The bytes, or `None` when there is no such file.
    fn fetch(&self, files: &dyn FileSource) -> Result<Option<Vec<u8>>, String> {
        match self {
            Source::Tree { url, env, path } => match files.read(env, path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(FileError::NotFound { .. }) => Ok(None),
                Err(e) => Err(format!("Source file {url} could not be read: {e}")),
            },
            Source::Local(path) => match fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("read source", path, &e)),
            },
        }
    }

    /// Salt's comment when this, the only source, is missing.
    fn missing(&self) -> String {
        match self {
            Source::Tree { url, env, .. } => format!("Source file {url} not found in saltenv '{env}'"),
            Source::Local(path) => format!("Local file source {} does not exist", path.display()),
        }
    }

    /// The directory of a tree file relative to the roots (a template's `tpldir`).
    fn tpldir(&self) -> String {
        match self {
            Source::Tree { path, .. } => path.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_string()),
            Source::Local(_) => String::new(),
        }
    }
}

/// Every hash a `source_hash` may use, with its hex length.
const HASH_TYPES: [(&str, usize); 6] =
    [("md5", 32), ("sha1", 40), ("sha224", 56), ("sha256", 64), ("sha384", 96), ("sha512", 128)];

fn hex_digest(kind: &str, bytes: &[u8]) -> Option<String> {
    fn hex<D: sha2::Digest>(bytes: &[u8]) -> String {
        D::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }
    Some(match kind {
        "md5" => hex::<md5::Md5>(bytes),
        "sha1" => hex::<sha1::Sha1>(bytes),
        "sha224" => hex::<sha2::Sha224>(bytes),
        "sha256" => hex::<sha2::Sha256>(bytes),
        "sha384" => hex::<sha2::Sha384>(bytes),
        "sha512" => hex::<sha2::Sha512>(bytes),
        _ => return None,
    })
}

/// Checks `bytes` against a `source_hash`: a hex digest (its length names the hash) or
/// `type=digest`.
fn verify_hash(spec: &str, bytes: &[u8], name: &Path) -> Result<(), String> {
    let spec = spec.trim();
    let invalid = || {
        let types: Vec<String> = HASH_TYPES.iter().map(|(t, n)| format!("{t} ({n})")).collect();
        format!(
            "Source hash {spec} format is invalid. The supported formats are: a hash, or an expression \
             <hash_type>=<hash>; the supported hash types and lengths are: {}.",
            types.join(", ")
        )
    };
    let (kind, want) = match spec.split_once('=') {
        Some((k, h)) => (k.trim().to_lowercase(), h.trim().to_lowercase()),
        None => {
            let kind = HASH_TYPES.iter().find(|(_, n)| *n == spec.len()).map(|(t, _)| t.to_string());
            (kind.ok_or_else(invalid)?, spec.to_lowercase())
        }
    };
    let len_ok = HASH_TYPES.iter().any(|(t, n)| *t == kind && *n == want.len());
    if !len_ok || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let got = hex_digest(&kind, bytes).ok_or_else(invalid)?;
    if got == want {
        Ok(())
    } else {
        Err(format!("Specified {kind} checksum for {} ({want}) does not match actual checksum ({got})", name.display()))
    }
}

/// `source` as a list of (url, hash): a word, a list of words, or a list of
/// `{url: hash}` maps (first that exists wins).
fn source_list(v: &Value) -> Result<Vec<(String, Option<String>)>, String> {
    let item = |v: &Value| match v {
        Value::String(s) => Ok((s.clone(), None)),
        Value::Object(m) if m.len() == 1 => {
            let (url, hash) = m.iter().next().map(|(k, v)| (k.clone(), text_of(v))).unwrap_or_default();
            Ok((url, Some(hash)))
        }
        other => Err(format!("Invalid source {other}: expected a salt:// URL or a local path")),
    };
    match v {
        Value::Array(items) if items.is_empty() => Err("No source given".into()),
        Value::Array(items) => items.iter().map(item).collect(),
        other => Ok(vec![item(other)?]),
    }
}

/// Imports of a template (`{% from "x/map.jinja" import y %}`) come from the trees.
struct Templates {
    files: Arc<dyn FileSource>,
    env: String,
}

impl TemplateSource for Templates {
    fn template(&self, path: &str) -> Option<String> {
        String::from_utf8(self.files.read(&self.env, path).ok()?).ok()
    }
}

/// A `template: jinja` with its variables (`defaults`, overridden by `context`).
struct Template {
    vars: Map,
}

impl Template {
    fn new(kind: &Option<String>, defaults: &Option<Map>, context: &Option<Map>) -> Result<Option<Template>, String> {
        let Some(kind) = kind.as_deref().filter(|k| !k.is_empty()) else { return Ok(None) };
        if !kind.eq_ignore_ascii_case("jinja") {
            return Err(format!("Specified template format {kind} is not supported"));
        }
        let mut vars = defaults.clone().unwrap_or_default();
        vars.extend(context.clone().unwrap_or_default());
        Ok(Some(Template { vars }))
    }

    /// Renders `text` (named `label` in errors) with the host's grains and pillar.
    fn render(&self, ctx: &StateContext, env: &str, label: &str, tpldir: &str, text: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(text)
            .map_err(|_| format!("Unable to manage file: template {label} is not UTF-8 text"))?;
        let render = RenderContext {
            grains: ctx.exec.grains.clone(),
            pillar: ctx.pillar.clone(),
            opts: Map::new(),
            saltenv: env.to_string(),
            sls: String::new(),
            slspath: tpldir.to_string(),
            extra: self.vars.clone(),
            exec: ctx.exec.clone(),
        };
        let imports = ctx.exec.files.clone().map(|files| {
            let source: Arc<dyn TemplateSource> = Arc::new(Templates { files, env: env.to_string() });
            source
        });
        render_jinja(label, text, &render, imports).map(String::into_bytes).map_err(|e| {
            let line = e.line.map(|l| format!("; line {l}")).unwrap_or_default();
            format!("Unable to manage file: {}{line} of {}", e.message, e.file)
        })
    }
}

/// The diff Salt shows for changed contents.
fn diff_text(old: &[u8], new: &[u8], show_changes: bool) -> String {
    fn text(b: &[u8]) -> Option<&str> {
        if b.contains(&0) {
            None
        } else {
            std::str::from_utf8(b).ok()
        }
    }
    match (show_changes, text(old), text(new)) {
        (false, _, _) => "<show_changes=False>".into(),
        (true, Some(a), Some(b)) => unified(a, b),
        _ => "Replace binary file".into(),
    }
}

// ---------------------------------------------------------------------------------
// One managed file (file.managed, and each file of file.recurse).

/// What file.managed declares for one file.
struct Managed {
    /// The contents; `None`: whatever is there (an empty file when creating).
    contents: Option<Vec<u8>>,
    /// The contents came from a source file (Salt then reports the mode of a new file
    /// even when none was asked for).
    from_source: bool,
    perms: Perms,
    /// What directories created for the file get.
    dir_perms: Perms,
    makedirs: bool,
    replace: bool,
    create: bool,
    show_changes: bool,
    backup: bool,
}

impl Managed {
    fn check_apply(&self, path: &Path, apply: bool) -> Outcome {
        // A symlink is followed: the file it leads to is managed.
        let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        match fs::metadata(&real) {
            Ok(m) if m.is_dir() => Outcome::failed(format!("Specified target {} is a directory", path.display())),
            Ok(m) => self.update(path, &real, &m, apply),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.create_new(path, apply),
            Err(e) => Outcome::failed(io_err("stat", path, &e)),
        }
    }

    fn create_new(&self, path: &Path, apply: bool) -> Outcome {
        let shown = path.display();
        if !self.create {
            return Outcome::ok(format!("File {shown} is not present and is not set for creation"));
        }
        if !apply {
            return Outcome::changed(set_to_change(path), one("newfile", shown.to_string()));
        }
        let (uid, gid) = match self.perms.ids() {
            Ok(ids) => ids,
            Err(e) => return Outcome::failed(e),
        };
        if let Some(parent) = path.parent().filter(|p| !p.is_dir()) {
            if !self.makedirs {
                return Outcome::failed("Parent directory not present");
            }
            if let Err(e) = make_dirs(parent, &self.dir_perms) {
                return Outcome::failed(e);
            }
        }
        let bytes = self.contents.as_deref().unwrap_or_default();
        let mode = self.perms.mode.unwrap_or(0o666 & !umask());
        let written = write_file(path, bytes, mode, None)
            .and_then(|()| self.perms.apply(path, false))
            .and_then(|()| check_contents(path, bytes));
        if let Err(e) = written {
            return Outcome::failed(e);
        }
        if self.contents.is_none() {
            return Outcome::changed("Empty file", one("new", format!("file {shown} created")));
        }
        // Like Salt, report what differs from a file the state would create bare
        // (mode 0600, owned by the running user).
        let mut changes = one("diff", "New file");
        if let (Some(u), Some(id)) = (&self.perms.user, uid) {
            if id != Uid::effective().as_raw() {
                changes.insert("user".into(), u.clone().into());
            }
        }
        if let (Some(g), Some(id)) = (&self.perms.group, gid) {
            if id != Gid::effective().as_raw() {
                changes.insert("group".into(), g.clone().into());
            }
        }
        match self.perms.mode {
            Some(m) if m != 0o600 => {
                changes.insert("mode".into(), mode_text(m).into());
            }
            None if self.from_source => {
                changes.insert("mode".into(), mode_text(mode).into());
            }
            _ => {}
        }
        Outcome::changed(format!("File {shown} updated"), changes)
    }

    fn update(&self, path: &Path, real: &Path, meta: &fs::Metadata, apply: bool) -> Outcome {
        let shown = path.display();
        let wanted = self.contents.as_deref().filter(|_| self.replace);
        let old = match wanted.map(|_| fs::read(real)).transpose() {
            Ok(old) => old,
            Err(e) => return Outcome::failed(io_err("read", path, &e)),
        };
        let new_contents = match (wanted, &old) {
            (Some(w), Some(o)) if w != o.as_slice() => Some((w, o)),
            _ => None,
        };
        let perm_changes = self.perms.diff(meta);
        if new_contents.is_none() && perm_changes.is_empty() {
            // Salt words this differently in test mode.
            return Outcome::ok(match (wanted, apply) {
                (Some(_), true) => format!("File {shown} is in the correct state"),
                (Some(_), false) => format!("The file {shown} is in the correct state"),
                (None, true) => format!("File {shown} exists with proper permissions. No changes made."),
                (None, false) => format!("File {shown} not updated"),
            });
        }
        let mut changes = Map::new();
        if let Some((new, old)) = new_contents {
            changes.insert("diff".into(), diff_text(old, new, self.show_changes).into());
        }
        changes.extend(perm_changes.clone());
        if !apply {
            let comment = match (wanted, perm_changes.get("mode")) {
                (None, Some(mode)) => format!(
                    "File {shown} will be updated with permissions {} from its current state of {}",
                    text_of(mode),
                    mode_text(meta.mode())
                ),
                (None, None) => format!("File {shown} not updated"),
                _ => set_to_change(path),
            };
            return Outcome::changed(comment, changes);
        }
        if let Err(e) = self.perms.ids() {
            return Outcome::failed(e);
        }
        if let Some((new, _)) = new_contents {
            let written = (if self.backup { back_up(real) } else { Ok(()) })
                .and_then(|()| write_file(real, new, meta.mode() & 0o7777, Some((meta.uid(), meta.gid()))))
                .and_then(|()| check_contents(real, new));
            if let Err(e) = written {
                return Outcome::failed(e);
            }
        }
        if let Err(e) = self.perms.apply(real, false) {
            return Outcome::failed(e);
        }
        Outcome::changed(format!("File {shown} updated"), changes)
    }
}

// ---------------------------------------------------------------------------------
// file.managed

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedArgs {
    source: Option<Value>,
    source_hash: Option<Value>,
    #[serde(default)]
    skip_verify: bool,
    contents: Option<Value>,
    contents_pillar: Option<String>,
    #[serde(default = "yes")]
    contents_newline: bool,
    template: Option<String>,
    context: Option<Map>,
    defaults: Option<Map>,
    user: Option<Owner>,
    group: Option<Owner>,
    mode: Option<Mode>,
    #[serde(default)]
    makedirs: bool,
    dir_mode: Option<Mode>,
    #[serde(default = "yes")]
    replace: bool,
    backup: Option<Value>,
    #[serde(default = "yes")]
    create: bool,
    #[serde(default = "yes")]
    show_changes: bool,
    saltenv: Option<String>,
}

/// A pillar value by `a:b:c` path.
fn pillar_value<'a>(pillar: &'a Map, key: &str) -> Option<&'a Value> {
    let mut parts = key.split(':');
    let mut at = pillar.get(parts.next()?)?;
    for part in parts {
        at = match at {
            Value::Object(m) => m.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Lines given as a list become one text.
fn contents_text(v: &Value) -> Result<String, String> {
    match v {
        Value::Array(items) => Ok(items.iter().map(text_of).collect::<Vec<_>>().join("\n")),
        Value::Object(_) => Err("contents must be text or a list of lines, not a map".into()),
        other => Ok(text_of(other)),
    }
}

impl ManagedArgs {
    /// The contents the file should have (`None`: leave them), and whether they came
    /// from a source file.
    fn contents(&self, ctx: &StateContext, path: &Path, env: &str) -> Result<(Option<Vec<u8>>, bool), String> {
        let template = Template::new(&self.template, &self.defaults, &self.context)?;
        let inline = match (&self.contents, &self.contents_pillar) {
            (Some(Value::Null), None) | (None, None) => None,
            (Some(v), None) => Some(contents_text(v)?),
            (None, Some(key)) => match pillar_value(ctx.pillar, key) {
                None => return Err(format!("Pillar {key} does not exist")),
                Some(v) => Some(contents_text(v).map_err(|e| format!("Pillar {key}: {e}"))?),
            },
            (Some(_), Some(_)) => {
                return Err("Only one of 'contents', 'contents_pillar', and 'contents_grains' is permitted".into())
            }
        };
        if let Some(mut text) = inline {
            if self.contents_newline && !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            return match template {
                Some(t) => t.render(ctx, env, &path.display().to_string(), "", text.as_bytes()).map(Some),
                None => Ok(Some(text.into_bytes())),
            }
            .map(|c| (c, false));
        }
        let Some(source) = &self.source else { return Ok((None, false)) };
        let sources = source_list(source)?;
        let mut found = None;
        for (url, hash) in &sources {
            let src = Source::parse(url, env)?;
            if let Some(bytes) = src.fetch(ctx.files)? {
                found = Some((src, url, hash.clone().or_else(|| self.source_hash.as_ref().map(text_of)), bytes));
                break;
            }
        }
        let Some((src, url, hash, bytes)) = found else {
            return Err(match sources.as_slice() {
                [(url, _)] => Source::parse(url, env)?.missing(),
                _ => "Unable to manage file: none of the specified sources were found".into(),
            });
        };
        if let Some(hash) = hash.filter(|h| !self.skip_verify && !h.is_empty()) {
            verify_hash(&hash, &bytes, path)?;
        }
        let bytes = match template {
            Some(t) => t.render(ctx, env, url, &src.tpldir(), &bytes)?,
            None => bytes,
        };
        Ok((Some(bytes), true))
    }
}

pub struct FileManaged;
impl StateFunction for FileManaged {
    const NAME: &'static str = "file.managed";
    const DOC: &'static str = "Manages a file's contents, owner and mode.\n\n\
        Contents come from one of: contents (text, or a list of lines; a newline is added unless \
        contents_newline: False), contents_pillar (a pillar key, `a:b` for nested keys), or source \
        (salt://path or brine://path from the state trees, or an absolute local path; a list means the \
        first that exists). source_hash (a hex digest or `sha256=<digest>`) is checked for every source \
        unless skip_verify: True. template: jinja renders the contents with grains, pillar, salt and the \
        defaults/context maps. Without contents or source an empty file is created and existing contents \
        are left alone.\n\n\
        user, group, mode set the owner and mode; makedirs creates missing parent directories (dir_mode, \
        else the file mode with search bits); replace: False leaves existing contents alone; create: False \
        does nothing when the file is missing; backup: minion keeps the old file as <name>.bak; \
        show_changes: False hides the diff. Symlinks are followed. Changes: `diff` (\"New file\" or a \
        unified diff), `mode`, `user`, `group`; in test mode `newfile` for a file to create.\n\n\
        Example:\n  /etc/app/app.conf:\n    file.managed:\n      - source: salt://app/app.conf.j2\n      - template: jinja\n      - user: root\n      - mode: 644\n      - makedirs: True";
    type Args = ManagedArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: ManagedArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        if a.source.is_some() && (a.contents.is_some() || a.contents_pillar.is_some()) {
            return Outcome::failed(
                "'source' cannot be used in combination with 'contents', 'contents_pillar', or 'contents_grains'",
            );
        }
        let env = a.saltenv.clone().unwrap_or_else(|| ctx.saltenv.to_string());
        let (contents, from_source) = match a.contents(ctx, &path, &env) {
            Ok(c) => c,
            Err(e) => return Outcome::failed(e),
        };
        let perms = Perms::new(&a.user, &a.group, a.mode);
        // Salt: created directories get dir_mode, else the file's mode with search bits.
        let dir_mode = a.dir_mode.map(|m| m.0).or_else(|| a.mode.map(|m| with_search_bits(m.0)));
        let dir_perms = Perms { mode: dir_mode, ..perms.clone() };
        let managed = Managed {
            contents,
            from_source,
            perms,
            dir_perms,
            makedirs: a.makedirs,
            replace: a.replace,
            create: a.create,
            show_changes: a.show_changes,
            backup: wants_backup(&a.backup),
        };
        managed.check_apply(&path, apply)
    }
}

// ---------------------------------------------------------------------------------
// One managed directory (file.directory, and each directory of file.recurse).

/// Which of a directory's contents `recurse` manages.
#[derive(Debug, Clone, Copy, Default)]
struct Recurse {
    user: bool,
    group: bool,
    mode: bool,
    ignore_files: bool,
    ignore_dirs: bool,
    silent: bool,
}

impl Recurse {
    fn parse(v: &Option<Value>) -> Result<Recurse, String> {
        let words: Vec<String> = match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(text_of).collect(),
            Some(other) => text_of(other).split(',').map(|w| w.trim().to_string()).collect(),
        };
        let mut r = Recurse::default();
        for w in words {
            match w.as_str() {
                "user" => r.user = true,
                "group" => r.group = true,
                "mode" => r.mode = true,
                "ignore_files" => r.ignore_files = true,
                "ignore_dirs" => r.ignore_dirs = true,
                "silent" => r.silent = true,
                _ => {
                    return Err("Types for \"recurse\" limited to \"user\", \"group\", \"mode\", \"ignore_files\", \
                                \"ignore_dirs\", \"silent\"."
                        .into())
                }
            }
        }
        Ok(r)
    }

    fn any(&self) -> bool {
        self.user || self.group || self.mode
    }
}

/// What file.directory declares.
struct Directory {
    perms: Perms,
    /// The mode of files under `recurse: [mode]` (else the directory mode).
    file_mode: Option<u32>,
    makedirs: bool,
    recurse: Recurse,
    clean: bool,
    exclude: Option<Pattern>,
    allow_symlink: bool,
}

/// What a directory needs.
#[derive(Default)]
struct DirPlan {
    exists: bool,
    /// The directory's own owner and mode changes.
    own: Map,
    /// Per path, what changes there, in Salt's listing order: what `recurse` fixes
    /// inside, the directory itself, what `clean` removes.
    entries: Vec<(PathBuf, Map)>,
    /// How many of `entries` (the first ones) come from `recurse`.
    recursed: usize,
    /// Contents whose owner or mode `recurse` sets.
    fixes: Vec<(PathBuf, Perms)>,
    /// What `clean` deletes.
    removed_top: Vec<PathBuf>,
}

/// Lists per-path changes the way Salt's file.directory comment does.
fn changes_comment(entries: &[(PathBuf, Map)]) -> String {
    let mut s = String::from("The following files will be changed:\n");
    for (p, m) in entries {
        for key in ["directory", "user", "group", "mode", "removed"] {
            if let Some(v) = m.get(key) {
                s.push_str(&format!("{}: {key} - {}\n", p.display(), text_of(v)));
            }
        }
    }
    s
}

impl Directory {
    fn plan(&self, path: &Path) -> Result<DirPlan, String> {
        let mut plan = DirPlan::default();
        let meta = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                plan.entries.push((path.to_path_buf(), one("directory", "new")));
                return Ok(plan);
            }
            Err(e) => return Err(io_err("stat", path, &e)),
            Ok(m) if m.is_dir() => m,
            Ok(m) if m.file_type().is_symlink() => match fs::metadata(path) {
                Ok(t) if t.is_dir() && self.allow_symlink => t,
                _ => return Err(format!("Specified location {} exists and is a symlink", path.display())),
            },
            Ok(_) => return Err(format!("Specified location {} exists and is a file", path.display())),
        };
        plan.exists = true;
        plan.own = self.perms.diff(&meta);
        if self.recurse.any() {
            let r = self.recurse;
            for (p, meta) in walk(path)? {
                let is_dir = meta.is_dir();
                if meta.file_type().is_symlink() || (is_dir && r.ignore_dirs) || (!is_dir && r.ignore_files) {
                    continue;
                }
                let perms = Perms {
                    user: self.perms.user.clone().filter(|_| r.user),
                    group: self.perms.group.clone().filter(|_| r.group),
                    mode: if !r.mode {
                        None
                    } else if is_dir {
                        self.perms.mode
                    } else {
                        self.file_mode.or(self.perms.mode)
                    },
                };
                let d = perms.diff(&meta);
                if !d.is_empty() {
                    plan.entries.push((p.clone(), d));
                    plan.fixes.push((p, perms));
                    plan.recursed += 1;
                }
            }
        }
        // Salt lists the directory itself after what is inside it.
        if !plan.own.is_empty() {
            plan.entries.push((path.to_path_buf(), plan.own.clone()));
        }
        if self.clean {
            let keep = |p: &Path| match &self.exclude {
                Some(pat) if pat.matches(&relative(p, path)) => Keep::Tree,
                _ => Keep::No,
            };
            let (all, top) = clean_plan(path, &keep)?;
            plan.entries.extend(all.into_iter().map(|p| (p, one("removed", "Removed due to clean"))));
            plan.removed_top = top;
        }
        Ok(plan)
    }

    fn check_apply(&self, path: &Path, apply: bool) -> Outcome {
        let shown = path.display();
        let plan = match self.plan(path) {
            Ok(p) => p,
            Err(e) => return Outcome::failed(e),
        };
        if plan.entries.is_empty() {
            return Outcome::ok(format!("The directory {shown} is in the correct state"));
        }
        let mut changes = Map::new();
        for (i, (p, m)) in plan.entries.iter().enumerate() {
            if self.recurse.silent && i < plan.recursed {
                changes.insert("recursion".into(), "Changes silenced".into());
            } else {
                changes.insert(p.display().to_string(), Value::Object(m.clone()));
            }
        }
        if !apply {
            return Outcome::changed(changes_comment(&plan.entries), changes);
        }
        if let Err(e) = self.perms.ids() {
            return Outcome::failed(e);
        }
        let applied = (|| -> Result<(), String> {
            if !plan.exists {
                if path.parent().is_some_and(|p| !p.is_dir()) && !self.makedirs {
                    return Err(format!("No directory to create {shown} in"));
                }
                make_dirs(path, &self.perms)?;
            } else if !plan.own.is_empty() {
                self.perms.apply(path, false)?;
            }
            for (p, perms) in &plan.fixes {
                perms.apply(p, false)?;
            }
            for p in &plan.removed_top {
                remove_path(p)?;
            }
            // Verify: nothing is left to do.
            let again = self.plan(path)?;
            if again.entries.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "Directory {shown} is still not in the declared state. {}",
                    changes_comment(&again.entries)
                ))
            }
        })();
        if let Err(e) = applied {
            return Outcome::failed(e);
        }
        // Like Salt, the directory's own changes are also reported at the top level.
        changes.extend(plan.own.clone());
        if !plan.removed_top.is_empty() {
            let removed = plan.removed_top.iter().map(|p| Value::String(p.display().to_string())).collect();
            changes.insert("removed".into(), Value::Array(removed));
        }
        let comment = if !plan.exists {
            String::new()
        } else if !plan.own.is_empty() || !plan.fixes.is_empty() {
            format!("Directory {shown} updated")
        } else {
            format!("Files cleaned from directory {shown}")
        };
        Outcome::changed(comment, changes)
    }
}

// ---------------------------------------------------------------------------------
// file.directory

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryArgs {
    user: Option<Owner>,
    group: Option<Owner>,
    mode: Option<Mode>,
    dir_mode: Option<Mode>,
    file_mode: Option<Mode>,
    #[serde(default)]
    makedirs: bool,
    #[serde(default)]
    clean: bool,
    recurse: Option<Value>,
    exclude_pat: Option<String>,
    #[serde(default = "yes")]
    allow_symlink: bool,
}

pub struct FileDirectory;
impl StateFunction for FileDirectory {
    const NAME: &'static str = "file.directory";
    const DOC: &'static str = "Ensures a directory exists, with an owner and mode.\n\n\
        user, group, mode (or dir_mode) for the directory; makedirs creates missing parents with the \
        same owner and mode. recurse: a list of user, group, mode applies them to everything inside \
        (files get file_mode, else the directory mode; ignore_files / ignore_dirs skip one kind; silent \
        reports the recursion as one change). clean: True removes everything inside the directory except \
        what exclude_pat matches (a glob, or a regex after E@, on the path relative to the directory). A \
        symlink to a directory counts as the directory (allow_symlink: False refuses it).\n\n\
        Example:\n  /srv/app:\n    file.directory:\n      - user: app\n      - group: app\n      - mode: 750\n      - makedirs: True\n      - recurse:\n        - user\n        - group";
    type Args = DirectoryArgs;
    fn check_apply(&self, _ctx: &StateContext, name: &str, a: DirectoryArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let parsed = Recurse::parse(&a.recurse).and_then(|r| Ok((r, Pattern::parse(&a.exclude_pat)?)));
        let (recurse, exclude) = match parsed {
            Ok(p) => p,
            Err(e) => return Outcome::failed(e),
        };
        let dir = Directory {
            perms: Perms::new(&a.user, &a.group, a.dir_mode.or(a.mode)),
            file_mode: a.file_mode.map(|m| m.0),
            makedirs: a.makedirs,
            recurse,
            clean: a.clean,
            exclude,
            allow_symlink: a.allow_symlink,
        };
        dir.check_apply(&path, apply)
    }
}

// ---------------------------------------------------------------------------------
// file.recurse

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurseArgs {
    source: Value,
    #[serde(default)]
    clean: bool,
    #[serde(default)]
    include_empty: bool,
    user: Option<Owner>,
    group: Option<Owner>,
    file_mode: Option<Mode>,
    dir_mode: Option<Mode>,
    #[serde(default)]
    makedirs: bool,
    template: Option<String>,
    context: Option<Map>,
    defaults: Option<Map>,
    exclude_pat: Option<String>,
    #[serde(default = "yes")]
    replace: bool,
    #[serde(default = "yes")]
    show_changes: bool,
    saltenv: Option<String>,
}

/// A tree directory's environment and files: (path in the tree, path relative to the
/// directory).
type TreeListing = (String, Vec<(String, String)>);

/// The files of a tree directory, `None` when it has none.
fn tree_files(ctx: &StateContext, url: &str, env: &str) -> Result<Option<TreeListing>, String> {
    let Source::Tree { env, path: dir, .. } = Source::parse(url, env)? else {
        return Err(format!("Invalid source '{url}' (must be a salt:// URI)"));
    };
    let listed = ctx.files.list(&env, &dir).map_err(|e| format!("Source {url} could not be listed: {e}"))?;
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let files: Vec<(String, String)> = listed
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&prefix)?.to_string();
            // Entries leaving the directory would be refused by the file server anyway.
            (!rel.is_empty() && clean_path(&rel).is_ok_and(|c| c == rel)).then_some((f, rel))
        })
        .collect();
    if files.is_empty() {
        if ctx.files.read(&env, &dir).is_ok() {
            return Err(format!("The directory '{dir}' does not exist on the salt fileserver in saltenv '{env}'"));
        }
        return Ok(None);
    }
    Ok(Some((env, files)))
}

pub struct FileRecurse;
impl StateFunction for FileRecurse {
    const NAME: &'static str = "file.recurse";
    const DOC: &'static str = "Copies a directory of the state trees (source: salt://dir) to name, file by \
        file as file.managed would: only what differs is written.\n\n\
        user, group, dir_mode, file_mode set owners and modes (files keep 0644 from the umask \
        otherwise); template: jinja (with defaults/context) renders every file; exclude_pat (a glob, or \
        a regex after E@, on the relative path) skips files; clean: True removes what the source does \
        not have (except what exclude_pat matches); replace: False leaves existing files' contents \
        alone; makedirs creates name's parents. include_empty is accepted, but the file server lists \
        files only, so empty source directories are not created. Changes are listed per path, with \
        `removed` for what clean deleted.\n\n\
        Example:\n  /etc/nginx/conf.d:\n    file.recurse:\n      - source: salt://nginx/conf.d\n      - user: root\n      - file_mode: 644\n      - clean: True";
    type Args = RecurseArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: RecurseArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        // Accepted for Salt's SLS files; FileSource lists files only (see the doc).
        let _ = a.include_empty;
        let env = a.saltenv.clone().unwrap_or_else(|| ctx.saltenv.to_string());
        let prepared = (|| -> Result<_, String> {
            let urls: Vec<String> = match &a.source {
                Value::Array(items) => items.iter().map(text_of).collect(),
                other => vec![text_of(other)],
            };
            for url in &urls {
                if !is_server_url(url) {
                    return Err(format!("Invalid source '{url}' (must be a salt:// URI)"));
                }
            }
            let mut found = None;
            for url in &urls {
                if let Some(listing) = tree_files(ctx, url, &env)? {
                    found = Some(listing);
                    break;
                }
            }
            let (env, files) =
                found.ok_or_else(|| "Recurse failed: none of the specified sources were found".to_string())?;
            let template = Template::new(&a.template, &a.defaults, &a.context)?;
            let exclude = Pattern::parse(&a.exclude_pat)?;
            Ok((env, files, template, exclude))
        })();
        let (env, files, template, exclude) = match prepared {
            Ok(p) => p,
            Err(e) => return Outcome::failed(e),
        };
        let files: Vec<(String, String)> =
            files.into_iter().filter(|(_, rel)| !exclude.as_ref().is_some_and(|p| p.matches(rel))).collect();
        let dir_perms = Perms::new(&a.user, &a.group, a.dir_mode);
        let file_perms = Perms::new(&a.user, &a.group, a.file_mode);
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::from([path.clone()]);
        for (_, rel) in &files {
            let mut at = path.join(rel);
            while let Some(parent) = at.parent().filter(|p| p.starts_with(&path)).map(Path::to_path_buf) {
                dirs.insert(parent.clone());
                at = parent;
            }
        }
        // Each directory, then each file, as its own little state.
        let mut parts: Vec<(PathBuf, Outcome)> = Vec::new();
        for d in &dirs {
            let dir = Directory {
                perms: dir_perms.clone(),
                file_mode: None,
                makedirs: a.makedirs || d != &path,
                recurse: Recurse::default(),
                clean: false,
                exclude: None,
                allow_symlink: true,
            };
            parts.push((d.clone(), dir.check_apply(d, apply)));
        }
        for (tree_path, rel) in &files {
            let dest = path.join(rel);
            let contents = ctx
                .files
                .read(&env, tree_path)
                .map_err(|e| format!("Source file salt://{tree_path} could not be read: {e}"))
                .and_then(|bytes| match &template {
                    Some(t) => {
                        let tpldir = tree_path.rsplit_once('/').map_or("", |(d, _)| d);
                        t.render(ctx, &env, &format!("salt://{tree_path}"), tpldir, &bytes)
                    }
                    None => Ok(bytes),
                });
            let outcome = match contents {
                Ok(bytes) => Managed {
                    contents: Some(bytes),
                    from_source: true,
                    perms: file_perms.clone(),
                    dir_perms: dir_perms.clone(),
                    makedirs: true,
                    replace: a.replace,
                    create: true,
                    show_changes: a.show_changes,
                    backup: false,
                }
                .check_apply(&dest, apply),
                Err(e) => Outcome::failed(e),
            };
            parts.push((dest, outcome));
        }
        let desired: HashSet<PathBuf> = files.iter().map(|(_, rel)| path.join(rel)).collect();
        let (removed_all, removed_top) = if a.clean && path.is_dir() {
            let keep = |p: &Path| {
                if desired.contains(p) || exclude.as_ref().is_some_and(|pat| pat.matches(&relative(p, &path))) {
                    Keep::Tree
                } else if dirs.contains(p) {
                    Keep::Node
                } else {
                    Keep::No
                }
            };
            match clean_plan(&path, &keep) {
                Ok(plan) => plan,
                Err(e) => return Outcome::failed(e),
            }
        } else {
            (Vec::new(), Vec::new())
        };
        let mut changes = Map::new();
        let mut blocks = Vec::new();
        let mut failed = Vec::new();
        for (p, o) in &parts {
            if !o.changes.is_empty() {
                changes.insert(p.display().to_string(), Value::Object(o.changes.clone()));
                blocks.push(format!("#### {} ####\n{}", p.display(), o.comment));
            }
            if !o.ok {
                failed.push(format!("#### {} ####\n{}", p.display(), o.comment));
            }
        }
        if apply && failed.is_empty() {
            for p in &removed_top {
                if let Err(e) = remove_path(p) {
                    failed.push(format!("#### {} ####\n{e}", p.display()));
                }
            }
            if let Some(left) = removed_top.iter().find(|p| fs::symlink_metadata(p).is_ok()) {
                failed.push(format!("#### {} ####\nCould not be removed", left.display()));
            }
        }
        if !removed_top.is_empty() {
            let removed = removed_top.iter().map(|p| Value::String(p.display().to_string())).collect();
            changes.insert("removed".into(), Value::Array(removed));
            let listed: Vec<String> = removed_all.iter().map(|p| p.display().to_string()).collect();
            blocks.push(format!("#### removed ####\n{}", listed.join("\n")));
        }
        if !failed.is_empty() {
            return Outcome { ok: false, changes, comment: failed.join("\n\n"), predicted: false };
        }
        if changes.is_empty() {
            return Outcome::ok(format!("The directory {} is in the correct state", path.display()));
        }
        if !apply {
            return Outcome::changed(blocks.join("\n\n"), changes);
        }
        Outcome::changed(format!("Recursively updated {}", path.display()), changes)
    }
}

// ---------------------------------------------------------------------------------
// file.absent, file.exists, file.missing

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

pub struct FileAbsent;
impl StateFunction for FileAbsent {
    const NAME: &'static str = "file.absent";
    const DOC: &'static str = "Ensures a file, symlink or directory (with everything in it) is not there. \
        `/` is refused.\n\n\
        Example:\n  /etc/cron.d/old-job:\n    file.absent";
    type Args = NoArgs;
    fn check_apply(&self, _ctx: &StateContext, name: &str, _a: NoArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let shown = path.display();
        if path.parent().is_none() {
            return Outcome::failed(format!("Refusing to make \"{shown}\" absent"));
        }
        let is_dir = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Outcome::ok(format!("File {shown} is not present"));
            }
            Err(e) => return Outcome::failed(io_err("stat", &path, &e)),
            Ok(m) => m.is_dir(),
        };
        let kind = if is_dir { "Directory" } else { "File" };
        let changes = one("removed", shown.to_string());
        if !apply {
            return Outcome::changed(format!("{kind} {shown} is set for removal"), changes);
        }
        if let Err(e) = remove_path(&path) {
            return Outcome::failed(e);
        }
        if fs::symlink_metadata(&path).is_ok() {
            return Outcome::failed(format!("{kind} {shown} is still there after removing it"));
        }
        Outcome::changed(format!("Removed {} {shown}", kind.to_lowercase()), changes)
    }
}

pub struct FileExists;
impl StateFunction for FileExists {
    const NAME: &'static str = "file.exists";
    const DOC: &'static str = "Checks that a path exists (following symlinks); changes nothing. Useful as \
        a requisite.\n\n\
        Example:\n  /etc/ssl/certs/site.pem:\n    file.exists";
    type Args = NoArgs;
    fn check_apply(&self, _ctx: &StateContext, name: &str, _a: NoArgs, _apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        if path.exists() {
            Outcome::ok(format!("Path {} exists", path.display()))
        } else {
            Outcome::failed(format!("Specified path {} does not exist", path.display()))
        }
    }
}

pub struct FileMissing;
impl StateFunction for FileMissing {
    const NAME: &'static str = "file.missing";
    const DOC: &'static str = "Checks that a path does not exist; changes nothing (file.absent removes).\n\n\
        Example:\n  /etc/nologin:\n    file.missing";
    type Args = NoArgs;
    fn check_apply(&self, _ctx: &StateContext, name: &str, _a: NoArgs, _apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        if path.exists() {
            Outcome::failed(format!("Specified path {} exists", path.display()))
        } else {
            Outcome::ok(format!("Path {} is missing", path.display()))
        }
    }
}

// ---------------------------------------------------------------------------------
// file.symlink

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkArgs {
    target: String,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    makedirs: bool,
    user: Option<Owner>,
    group: Option<Owner>,
}

/// Points `path` at `target`: a new link is made beside it and renamed over it, so the
/// path is never missing.
fn make_link(path: &Path, target: &str) -> Result<(), String> {
    let tmp = sibling_tmp(path);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| io_err("create symlink", path, &e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("create symlink", path, &e)
    })
}

pub struct FileSymlink;
impl StateFunction for FileSymlink {
    const NAME: &'static str = "file.symlink";
    const DOC: &'static str = "Ensures name is a symlink to target, owned by user:group (default: the \
        running user and that user's group).\n\n\
        A link to somewhere else is re-pointed; a file or directory in the way is replaced only with \
        force: True; makedirs creates missing parents. Changes: `new` (created or re-pointed), \
        `ownership`; in test mode `change` for a link to re-point.\n\n\
        Example:\n  /etc/nginx/sites-enabled/site:\n    file.symlink:\n      - target: /etc/nginx/sites-available/site";
    type Args = SymlinkArgs;
    fn check_apply(&self, _ctx: &StateContext, name: &str, a: SymlinkArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let shown = path.display().to_string();
        let target = a.target.as_str();
        let user = a.user.map(|o| o.0).unwrap_or_else(|| user_name(Uid::effective().as_raw()));
        let group = a
            .group
            .map(|o| o.0)
            .or_else(|| primary_group(&user))
            .unwrap_or_else(|| group_name(Gid::effective().as_raw()));
        let owner = format!("{user}:{group}");
        let perms = Perms { user: Some(user), group: Some(group), mode: None };
        let created = one("new", shown.clone());
        let existing = match fs::symlink_metadata(&path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Outcome::failed(io_err("stat", &path, &e)),
        };
        let create = |replace: bool| -> Outcome {
            let made = (|| -> Result<(), String> {
                perms.ids()?;
                if let Some(parent) = path.parent().filter(|p| !p.is_dir()) {
                    if !a.makedirs {
                        return Err(format!("Directory {} for symlink is not present", parent.display()));
                    }
                    make_dirs(parent, &Perms { mode: None, ..perms.clone() })?;
                }
                if replace {
                    remove_path(&path)?;
                }
                make_link(&path, target)?;
                perms.apply(&path, true)?;
                match fs::read_link(&path) {
                    Ok(t) if t == Path::new(target) => Ok(()),
                    _ => Err(format!("Symlink {shown} does not point to {target} after creating it")),
                }
            })();
            match made {
                Ok(()) => Outcome::changed(format!("Created new symlink {shown} -> {target}"), created.clone()),
                Err(e) => Outcome::failed(e),
            }
        };
        match existing {
            Some(m) if m.file_type().is_symlink() => {
                if fs::read_link(&path).is_ok_and(|t| t == Path::new(target)) {
                    if perms.diff(&m).is_empty() {
                        return Outcome::ok(format!("Symlink {shown} is present and owned by {owner}"));
                    }
                    let changes = one("ownership", owner.clone());
                    if !apply {
                        let now = format!("{}:{}", user_name(m.uid()), group_name(m.gid()));
                        return Outcome::changed(
                            format!(
                                "The symlink {shown} is present, but the ownership of the symlink would be \
                                 changed from {now} to {owner}"
                            ),
                            changes,
                        );
                    }
                    return match perms.apply(&path, true) {
                        Ok(()) => Outcome::changed(format!("Set ownership of symlink {shown} to {owner}"), changes),
                        Err(e) => Outcome::failed(e),
                    };
                }
                if !apply {
                    return Outcome::changed(
                        format!("Link {shown} target is set to be changed to {target}"),
                        one("change", shown.clone()),
                    );
                }
                create(false)
            }
            Some(m) => {
                if !a.force {
                    return Outcome::failed(if !apply {
                        format!(
                            "File or directory exists where the symlink {shown} should be. Did you mean to use force?"
                        )
                    } else if m.is_dir() {
                        format!("Directory exists where the symlink {shown} should be")
                    } else {
                        format!("File exists where the symlink {shown} should be")
                    });
                }
                if !apply {
                    return Outcome::changed(
                        format!(
                            "The file or directory {shown} is set for removal to make way for a new symlink \
                             targeting {target}"
                        ),
                        created.clone(),
                    );
                }
                create(true)
            }
            None if !apply => {
                let mut comment = format!("Symlink {shown} to {target} is set for creation");
                if let Some(parent) = path.parent().filter(|p| !p.is_dir() && !a.makedirs) {
                    comment.push_str(&format!("\nDirectory {} for symlink is not present", parent.display()));
                }
                Outcome::changed(comment, created.clone())
            }
            None => create(false),
        }
    }
}

// ---------------------------------------------------------------------------------
// file.append

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendArgs {
    text: Option<Value>,
    #[serde(default)]
    makedirs: bool,
    #[serde(default = "yes")]
    ignore_whitespace: bool,
}

/// Salt's file.append diff: difflib over lines without their endings, joined with
/// newlines (so each header line is followed by an empty one, and no final newline).
fn append_diff(old: &[String], new: &[String]) -> String {
    let joined = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    unified(&joined(old), &joined(new))
        .lines()
        .enumerate()
        .map(|(i, l)| if i < 2 || l.starts_with("@@") { format!("{l}\n") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

pub struct FileAppend;
impl StateFunction for FileAppend {
    const NAME: &'static str = "file.append";
    const DOC: &'static str = "Appends lines (text: a line, several lines, or a list) to a file unless \
        they are already in it, so running it again adds nothing. The file is created if missing \
        (makedirs creates its parents). Lines are compared without surrounding whitespace unless \
        ignore_whitespace: False.\n\n\
        Example:\n  /etc/hosts.allow:\n    file.append:\n      - text:\n        - 'sshd: 10.0.0.0/8'\n        - 'sshd: 192.168.0.0/16'";
    type Args = AppendArgs;
    fn check_apply(&self, _ctx: &StateContext, name: &str, a: AppendArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let shown = path.display();
        let wanted: Vec<String> = match &a.text {
            None | Some(Value::Null) => return Outcome::failed("No text to append: give text"),
            Some(Value::Array(items)) => {
                items.iter().flat_map(|v| text_of(v).lines().map(String::from).collect::<Vec<_>>()).collect()
            }
            Some(v) => text_of(v).lines().map(String::from).collect(),
        };
        let old = match fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Outcome::failed(io_err("read", &path, &e)),
        };
        let old_lines: Vec<String> = old.as_deref().unwrap_or_default().lines().map(String::from).collect();
        let same = |x: &str, y: &str| if a.ignore_whitespace { x.trim() == y.trim() } else { x == y };
        let mut add: Vec<String> = Vec::new();
        for line in wanted {
            if !old_lines.iter().chain(&add).any(|o| same(o, &line)) {
                add.push(line);
            }
        }
        if add.is_empty() && old.is_some() {
            return Outcome::ok(format!("File {shown} is in correct state"));
        }
        if !apply {
            return match old {
                None => Outcome::changed(format!("File {shown} is set to be created"), one("new", shown.to_string())),
                Some(_) => {
                    let new_lines: Vec<String> = old_lines.iter().chain(&add).cloned().collect();
                    Outcome::changed(
                        format!("File {shown} is set to be updated"),
                        one("diff", append_diff(&old_lines, &new_lines)),
                    )
                }
            };
        }
        if old.is_none() {
            if let Some(parent) = path.parent().filter(|p| !p.is_dir()) {
                if !a.makedirs {
                    return Outcome::failed(format!("{shown}: file not found"));
                }
                if let Err(e) = make_dirs(parent, &Perms::default()) {
                    return Outcome::failed(e);
                }
            }
        }
        let mut text = old.clone().unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for line in &add {
            text.push_str(line);
            text.push('\n');
        }
        if let Err(e) = write_in_place(&path, text.as_bytes()).and_then(|()| check_contents(&path, text.as_bytes())) {
            return Outcome::failed(e);
        }
        let new_lines: Vec<String> = old_lines.iter().chain(&add).cloned().collect();
        Outcome::changed(format!("Appended {} lines", add.len()), one("diff", append_diff(&old_lines, &new_lines)))
    }
}

// ---------------------------------------------------------------------------------
// file.replace

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceArgs {
    pattern: Value,
    repl: Value,
    count: Option<Value>,
    flags: Option<Value>,
    bufsize: Option<Value>,
    append_if_not_found: Option<Value>,
    prepend_if_not_found: Option<Value>,
    not_found_content: Option<Value>,
    backup: Option<Value>,
    #[serde(default = "yes")]
    show_changes: bool,
    #[serde(default)]
    ignore_if_missing: bool,
    backslash_literal: Option<Value>,
}

impl ReplaceArgs {
    /// The keywords of the `file.replace` execution function.
    fn kwargs(&self, dry_run: bool) -> Map {
        let mut kw = Map::new();
        kw.insert("pattern".into(), self.pattern.clone());
        kw.insert("repl".into(), self.repl.clone());
        let optional = [
            ("count", &self.count),
            ("flags", &self.flags),
            ("bufsize", &self.bufsize),
            ("append_if_not_found", &self.append_if_not_found),
            ("prepend_if_not_found", &self.prepend_if_not_found),
            ("not_found_content", &self.not_found_content),
            ("backup", &self.backup),
            ("backslash_literal", &self.backslash_literal),
        ];
        for (k, v) in optional {
            if let Some(v) = v.as_ref().filter(|v| !v.is_null()) {
                kw.insert(k.into(), v.clone());
            }
        }
        kw.insert("dry_run".into(), dry_run.into());
        kw.insert("show_changes".into(), true.into());
        kw
    }
}

pub struct FileReplace;
impl StateFunction for FileReplace {
    const NAME: &'static str = "file.replace";
    const DOC: &'static str = "Replaces what a regular expression matches in a file (the file.replace \
        function: pattern, repl, count, flags, append_if_not_found, prepend_if_not_found, \
        not_found_content, backup (default .bak; False for none), backslash_literal). show_changes: \
        False reports `diff: True` instead of the diff; ignore_if_missing: True succeeds on a missing \
        file.\n\n\
        Example:\n  /etc/ssh/sshd_config:\n    file.replace:\n      - pattern: '^#?PermitRootLogin .*'\n      - repl: 'PermitRootLogin no'\n      - append_if_not_found: True";
    type Args = ReplaceArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: ReplaceArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        if !path.exists() {
            return if a.ignore_if_missing {
                Outcome::ok("No changes needed to be made")
            } else {
                Outcome::failed(format!("{}: file not found", path.display()))
            };
        }
        let run = |dry_run: bool| -> Result<String, String> {
            let args = vec![Value::String(path.display().to_string())];
            let out =
                crate::exec::call("file.replace", ctx.exec, args, a.kwargs(dry_run)).map_err(|e| e.to_string())?;
            Ok(out.ret.as_str().unwrap_or_default().to_string())
        };
        let diff = match run(true) {
            Ok(d) => d,
            Err(e) => return Outcome::failed(e),
        };
        if diff.is_empty() {
            return Outcome::ok("No changes needed to be made");
        }
        let changes = one("diff", if a.show_changes { Value::String(diff.clone()) } else { Value::Bool(true) });
        if !apply {
            return Outcome::changed("Changes would have been made", changes);
        }
        // Verify: the file now differs from before by exactly the predicted diff.
        let before = fs::read_to_string(&path).map_err(|e| io_err("read", &path, &e));
        let applied = before.and_then(|before| {
            run(false)?;
            let after = fs::read_to_string(&path).map_err(|e| io_err("read back", &path, &e))?;
            if unified(&before, &after) == diff {
                Ok(())
            } else {
                Err(format!("{} does not hold the replacement after writing it", path.display()))
            }
        });
        match applied {
            Ok(()) => Outcome::changed("Changes were made", changes),
            Err(e) => Outcome::failed(e),
        }
    }
}

// ---------------------------------------------------------------------------------
// file.line

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineArgs {
    content: Option<Value>,
    #[serde(rename = "match")]
    pattern: Option<String>,
    mode: Option<String>,
    location: Option<String>,
    before: Option<String>,
    after: Option<String>,
    #[serde(default = "yes")]
    show_changes: bool,
    backup: Option<Value>,
    #[serde(default = "yes")]
    indent: bool,
    #[serde(default)]
    create: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineMode {
    Ensure,
    Replace,
    Delete,
    Insert,
}

/// One file.line edit.
struct LineEdit {
    mode: LineMode,
    content: String,
    matcher: Regex,
    before: Option<Regex>,
    after: Option<Regex>,
    /// `Some(true)`: the start, `Some(false)`: the end.
    at_start: Option<bool>,
    indent: bool,
}

fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("Invalid regular expression '{pattern}': {e}"))
}

impl LineEdit {
    fn new(a: &LineArgs) -> Result<LineEdit, String> {
        let mode = match a.mode.as_deref().map(str::to_lowercase).as_deref() {
            None | Some("") => return Err("Mode was not defined. How to process the file?".into()),
            Some("ensure") => LineMode::Ensure,
            Some("replace") => LineMode::Replace,
            Some("delete") => LineMode::Delete,
            Some("insert") => LineMode::Insert,
            Some(other) => {
                return Err(format!("Unknown mode '{other}': use ensure, replace, delete or insert"));
            }
        };
        let content = a.content.as_ref().map(text_of).unwrap_or_default();
        if content.is_empty() && mode != LineMode::Delete {
            return Err("Content can only be empty if mode is ['delete']".into());
        }
        let matcher = match &a.pattern {
            Some(p) => regex(p)?,
            None if !content.is_empty() => regex(&format!("^\\s*{}\\s*$", regex::escape(content.trim())))?,
            None => return Err("Mode delete needs match or content to know which lines to delete".into()),
        };
        let at_start = match a.location.as_deref().map(str::to_lowercase).as_deref() {
            None | Some("") => None,
            Some("start") => Some(true),
            Some("end") => Some(false),
            Some(other) => return Err(format!("Unknown location '{other}': use start or end")),
        };
        Ok(LineEdit {
            mode,
            content,
            matcher,
            before: a.before.as_deref().map(regex).transpose()?,
            after: a.after.as_deref().map(regex).transpose()?,
            at_start,
            indent: a.indent,
        })
    }

    /// The line to write next to (or instead of) `anchor`, with its indentation.
    fn line_like(&self, anchor: &str) -> String {
        if self.indent && !self.content.starts_with(char::is_whitespace) {
            let ws: String = anchor.chars().take_while(|c| c.is_whitespace()).collect();
            format!("{ws}{}", self.content)
        } else {
            self.content.clone()
        }
    }

    fn is_content(&self, line: &str) -> bool {
        line.trim() == self.content.trim()
    }

    /// The single line `re` matches, if any.
    fn find(lines: &[String], re: &Option<Regex>, which: &str) -> Result<Option<usize>, String> {
        let Some(re) = re else { return Ok(None) };
        let hits: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| re.is_match(l)).map(|(i, _)| i).collect();
        match hits.as_slice() {
            [] => Ok(None),
            [i] => Ok(Some(*i)),
            _ => Err(format!("Found more than expected occurrences in \"{which}\" expression")),
        }
    }

    /// `text` after the edit (the same text when nothing needs to change).
    fn apply_to(&self, text: &str) -> Result<String, String> {
        let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let before = lines.clone();
        let after_i = Self::find(&lines, &self.after, "after")?;
        let before_i = Self::find(&lines, &self.before, "before")?;
        match self.mode {
            LineMode::Replace => {
                for l in lines.iter_mut() {
                    if self.matcher.is_match(l) && !self.is_content(l) {
                        *l = self.line_like(l);
                    }
                }
            }
            LineMode::Delete => lines.retain(|l| !self.matcher.is_match(l)),
            LineMode::Insert if self.after.is_none() && self.before.is_none() => match self.at_start {
                None => return Err("On insert either \"location\" or \"before/after\" conditions are required.".into()),
                Some(true) => {
                    if !lines.first().is_some_and(|l| self.is_content(l)) {
                        let line = self.line_like(lines.first().map_or("", String::as_str));
                        lines.insert(0, line);
                    }
                }
                Some(false) => {
                    if !lines.last().is_some_and(|l| self.is_content(l)) {
                        let line = self.line_like(lines.last().map_or("", String::as_str));
                        lines.push(line);
                    }
                }
            },
            LineMode::Insert | LineMode::Ensure => {
                let lost = || -> String {
                    if self.mode == LineMode::Insert {
                        "Neither before or after was found in file".into()
                    } else {
                        "Wrong conditions? Unable to ensure line without knowing where to put it before and/or after."
                            .into()
                    }
                };
                match (after_i, before_i) {
                    (Some(a), Some(b)) if a < b => {
                        let between = &lines[a + 1..b];
                        if between.iter().any(|l| self.is_content(l)) {
                            if self.mode == LineMode::Ensure && between.len() > 1 {
                                return Err(
                                    "Found more than one line between boundaries \"before\" and \"after\".".into()
                                );
                            }
                        } else if self.mode == LineMode::Ensure && between.iter().all(|l| l.trim().is_empty()) {
                            let line = self.line_like(&lines[a]);
                            lines.splice(a + 1..b, [line]);
                        } else if self.mode == LineMode::Ensure {
                            return Err("Found more than one line between boundaries \"before\" and \"after\".".into());
                        } else {
                            let line = self.line_like(&lines[a]);
                            lines.insert(a + 1, line);
                        }
                    }
                    (Some(_), Some(_)) => return Err("\"after\" must come before \"before\" in the file".into()),
                    (Some(a), None) if self.before.is_none() || self.mode == LineMode::Insert => {
                        if !lines.get(a + 1).is_some_and(|l| self.is_content(l)) {
                            let line = self.line_like(&lines[a]);
                            lines.insert(a + 1, line);
                        }
                    }
                    (None, Some(b)) if self.after.is_none() || self.mode == LineMode::Insert => {
                        if !(b > 0 && self.is_content(&lines[b - 1])) {
                            let line = self.line_like(&lines[b]);
                            lines.insert(b, line);
                        }
                    }
                    _ => return Err(lost()),
                }
            }
        }
        if lines == before {
            return Ok(text.to_string());
        }
        let mut out = lines.join(nl);
        if !lines.is_empty() && (text.is_empty() || text.ends_with('\n')) {
            out.push_str(nl);
        }
        Ok(out)
    }
}

pub struct FileLine;
impl StateFunction for FileLine {
    const NAME: &'static str = "file.line";
    const DOC: &'static str = "Edits one line of a file.\n\n\
        mode: replace (lines matching `match` become content), delete (lines matching `match`, else \
        content, are removed), insert (content goes at location: start or end, or before/after the one \
        line matching a regex; not again when it is already there), ensure (content is right after \
        `after` / before `before`, or replaces blank lines between both). match, before and after are \
        regular expressions searched in each line; indent (default True) gives the new line the \
        indentation of the line it goes next to. create: True edits a missing file as empty; backup: \
        True keeps the old file as <name>.bak; show_changes: False reports `diff: True`.\n\n\
        Example:\n  /etc/default/grub:\n    file.line:\n      - mode: replace\n      - match: '^GRUB_TIMEOUT='\n      - content: GRUB_TIMEOUT=2";
    type Args = LineArgs;
    fn check_apply(&self, _ctx: &StateContext, name: &str, a: LineArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let edit = match LineEdit::new(&a) {
            Ok(e) => e,
            Err(e) => return Outcome::failed(e),
        };
        let old = match fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound && a.create => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Outcome::failed(format!("{}: file not found", path.display()))
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Outcome::failed(format!("Cannot edit {}: not a text file", path.display()))
            }
            Err(e) => return Outcome::failed(io_err("read", &path, &e)),
        };
        let text = old.as_deref().unwrap_or_default();
        let new = match edit.apply_to(text) {
            Ok(n) => n,
            Err(e) => return Outcome::failed(e),
        };
        if new == text && old.is_some() {
            return Outcome::ok("No changes needed to be made");
        }
        let changes = one("diff", if a.show_changes { Value::String(unified(text, &new)) } else { Value::Bool(true) });
        if !apply {
            return Outcome::changed("Changes would be made", changes);
        }
        let written = (if old.is_some() && wants_backup(&a.backup) { back_up(&path) } else { Ok(()) })
            .and_then(|()| write_in_place(&path, new.as_bytes()))
            .and_then(|()| check_contents(&path, new.as_bytes()));
        match written {
            Ok(()) => Outcome::changed("Changes were made", changes),
            Err(e) => Outcome::failed(e),
        }
    }
}

// ---------------------------------------------------------------------------------
// file.touch

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TouchArgs {
    atime: Option<i64>,
    mtime: Option<i64>,
    #[serde(default)]
    makedirs: bool,
}

pub struct FileTouch;
impl StateFunction for FileTouch {
    const NAME: &'static str = "file.touch";
    const DOC: &'static str = "Creates an empty file if it is missing and sets its access and modification \
        times (atime, mtime: seconds since the epoch; each defaults to now). Without times an existing \
        file is touched on every run, as touch(1) would; with them it is left alone once they are right. \
        makedirs creates missing parents.\n\n\
        Example:\n  /var/lib/app/.initialised:\n    file.touch";
    type Args = TouchArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: TouchArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let shown = path.display().to_string();
        let times_right =
            |m: &fs::Metadata| a.atime.is_none_or(|t| m.atime() == t) && a.mtime.is_none_or(|t| m.mtime() == t);
        let meta = fs::metadata(&path).ok();
        let kind = if meta.as_ref().is_some_and(|m| m.is_dir()) { "directory" } else { "file" };
        match &meta {
            Some(m) if (a.atime.is_some() || a.mtime.is_some()) && times_right(m) => {
                return Outcome::ok(format!("File {shown} exists and has the correct times"));
            }
            Some(_) if !apply && a.atime.is_none() && a.mtime.is_none() => {
                return Outcome::ok(format!("File {shown} exists and has the correct times"));
            }
            Some(_) if !apply => {
                return Outcome::changed(
                    format!("Times set to be updated on {kind} {shown}"),
                    one("touched", shown.clone()),
                );
            }
            None if !apply => {
                return Outcome::changed(format!("File {shown} is set to be created"), one("new", shown.clone()));
            }
            _ => {}
        }
        if meta.is_none() {
            if let Some(parent) = path.parent().filter(|p| !p.is_dir()) {
                if !a.makedirs {
                    return Outcome::failed(format!("Directory not present to touch file {shown}"));
                }
                if let Err(e) = make_dirs(parent, &Perms::default()) {
                    return Outcome::failed(e);
                }
            }
        }
        let mut kw = Map::new();
        if let Some(t) = a.atime {
            kw.insert("atime".into(), t.into());
        }
        if let Some(t) = a.mtime {
            kw.insert("mtime".into(), t.into());
        }
        if let Err(e) = crate::exec::call("file.touch", ctx.exec, vec![Value::String(shown.clone())], kw) {
            return Outcome::failed(e.to_string());
        }
        match fs::metadata(&path) {
            Ok(m) if times_right(&m) => {}
            Ok(_) => return Outcome::failed(format!("The times of {shown} did not change")),
            Err(e) => return Outcome::failed(io_err("stat", &path, &e)),
        }
        match meta {
            None => Outcome::changed(format!("Created empty file {shown}"), one("new", shown.clone())),
            Some(_) => Outcome::changed(format!("Updated times on {kind} {shown}"), one("touched", shown.clone())),
        }
    }
}

// ---------------------------------------------------------------------------------
// file.copy

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyArgs {
    source: String,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    makedirs: bool,
    #[serde(default)]
    preserve: bool,
    user: Option<Owner>,
    group: Option<Owner>,
    mode: Option<Mode>,
    #[serde(default)]
    subdir: bool,
}

/// Whether `a` and `b` hold the same thing: equal files, equal link targets, or
/// directories with the same entries, recursively.
fn same_tree(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::symlink_metadata(a), fs::symlink_metadata(b)) else { return false };
    if ma.file_type().is_symlink() || mb.file_type().is_symlink() {
        return ma.file_type().is_symlink()
            && mb.file_type().is_symlink()
            && fs::read_link(a).ok().is_some_and(|t| fs::read_link(b).ok() == Some(t));
    }
    if ma.is_dir() && mb.is_dir() {
        let names = |d: &Path| -> Option<BTreeSet<std::ffi::OsString>> {
            fs::read_dir(d).ok()?.map(|e| e.ok().map(|e| e.file_name())).collect()
        };
        return match (names(a), names(b)) {
            (Some(x), Some(y)) if x == y => x.iter().all(|n| same_tree(&a.join(n), &b.join(n))),
            _ => false,
        };
    }
    ma.is_file()
        && mb.is_file()
        && ma.len() == mb.len()
        && matches!((fs::read(a), fs::read(b)), (Ok(x), Ok(y)) if x == y)
}

pub struct FileCopy;
impl StateFunction for FileCopy {
    const NAME: &'static str = "file.copy";
    const DOC: &'static str = "Copies a local file or directory (source) to name, if name is missing; with \
        force: True also when name differs from the source (an identical copy is left alone). \
        makedirs creates missing parents; preserve keeps the source's owner (the mode is always kept); \
        user, group, mode are then set, on an existing copy too; subdir: True copies into name when it \
        is a directory. Changes: `<name>: <source>` for a copy, and `user`, `group`, `mode`.\n\n\
        Example:\n  /etc/app/app.conf.orig:\n    file.copy:\n      - source: /etc/app/app.conf";
    type Args = CopyArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: CopyArgs, apply: bool) -> Outcome {
        let path = match abs_path(name) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let source = expand_user(&a.source);
        let src_meta = match fs::metadata(&source) {
            Ok(m) if source.is_absolute() => m,
            _ => return Outcome::failed(format!("Source file \"{}\" is not present", a.source)),
        };
        let dest = match source.file_name() {
            Some(base) if a.subdir && path.is_dir() => path.join(base),
            _ => path,
        };
        let (src_shown, shown) = (source.display().to_string(), dest.display().to_string());
        let mut perms = Perms::new(&a.user, &a.group, a.mode);
        // As in Salt, a user without a group means the user's own group.
        if perms.group.is_none() {
            perms.group = perms.user.as_deref().and_then(primary_group);
        }
        let exists = fs::symlink_metadata(&dest).is_ok();
        if exists && (!a.force || same_tree(&source, &dest)) {
            let wrong = fs::metadata(&dest).map(|m| perms.diff(&m)).unwrap_or_default();
            if wrong.is_empty() {
                return Outcome::ok(if a.force {
                    format!("The target file \"{shown}\" is already a copy of \"{src_shown}\"")
                } else {
                    format!("The target file \"{shown}\" exists and will not be overwritten")
                });
            }
            if !apply {
                return Outcome::changed(format!("The owner or mode of \"{shown}\" is set to be changed"), wrong);
            }
            return match perms.apply(&dest, false) {
                Ok(()) => Outcome::changed(format!("Updated the owner or mode of \"{shown}\""), wrong),
                Err(e) => Outcome::failed(e),
            };
        }
        let mut changes = one(&shown, src_shown.clone());
        if !apply {
            return Outcome::changed(format!("File \"{src_shown}\" is set to be copied to \"{shown}\""), changes);
        }
        let copied = (|| -> Result<Map, String> {
            perms.ids()?;
            if let Some(parent) = dest.parent().filter(|p| !p.is_dir()) {
                if !a.makedirs {
                    return Err(format!("The target directory {} is not present", parent.display()));
                }
                make_dirs(parent, &Perms { mode: perms.mode.map(with_search_bits), ..perms.clone() })?;
            }
            let args = vec![Value::String(src_shown.clone()), Value::String(shown.clone())];
            let mut kw = Map::new();
            kw.insert("recurse".into(), true.into());
            kw.insert("remove_existing".into(), true.into());
            crate::exec::call("file.copy", ctx.exec, args, kw).map_err(|e| e.to_string())?;
            if a.preserve {
                let _ = std::os::unix::fs::chown(&dest, Some(src_meta.uid()), Some(src_meta.gid()));
            }
            let meta = fs::metadata(&dest).map_err(|e| io_err("stat", &dest, &e))?;
            let wrong = perms.diff(&meta);
            perms.apply(&dest, false)?;
            if !same_tree(&source, &dest) {
                return Err(format!("\"{shown}\" does not hold a copy of \"{src_shown}\" after copying"));
            }
            Ok(wrong)
        })();
        match copied {
            Ok(wrong) => {
                changes.extend(wrong);
                Outcome::changed(format!("Copied \"{src_shown}\" to \"{shown}\""), changes)
            }
            Err(e) => Outcome::failed(e),
        }
    }
}

/// The `file` state module.
pub static MODULE: StateModule = StateModule {
    name: "file",
    doc: "Files, directories, symlinks and lines: contents from the state trees, owners, modes.",
    functions: &[
        &FileAbsent,
        &FileAppend,
        &FileCopy,
        &FileDirectory,
        &FileExists,
        &FileLine,
        &FileManaged,
        &FileMissing,
        &FileRecurse,
        &FileReplace,
        &FileSymlink,
        &FileTouch,
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_read_as_octal_digits() {
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("0o4755"), Some(0o4755));
        assert_eq!(parse_mode("00"), Some(0));
        for bad in ["", "999", "0o", "rw-r--r--", "77777", "-1"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
        let m: Mode = serde_json::from_value(serde_json::json!(750)).unwrap();
        assert_eq!(m, Mode(0o750));
        let err = serde_json::from_value::<Mode>(serde_json::json!("u+x")).unwrap_err();
        assert!(err.to_string().contains("expected octal digits"), "{err}");
        assert_eq!(with_search_bits(0o640), 0o750);
        assert_eq!(mode_text(0o100644), "0644");
    }

    #[test]
    fn source_hashes_are_checked_by_type_and_length() {
        let name = Path::new("/x");
        let sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(verify_hash(sha256, b"hello", name), Ok(()));
        assert_eq!(verify_hash(&format!("sha256={sha256}"), b"hello", name), Ok(()));
        assert_eq!(verify_hash(&format!("SHA256={}", sha256.to_uppercase()), b"hello", name), Ok(()));
        assert_eq!(verify_hash("md5=5d41402abc4b2a76b9719d911017c592", b"hello", name), Ok(()));
        let err = verify_hash("5d41402abc4b2a76b9719d911017c592", b"bye", name).unwrap_err();
        assert_eq!(
            err,
            "Specified md5 checksum for /x (5d41402abc4b2a76b9719d911017c592) does not match actual checksum \
             (bfa99df33b137bc8fb5f5407d7e58da8)"
        );
        for bad in ["zzz", "sha256=abc", "md5=zz41402abc4b2a76b9719d911017c592", "crc32=1234"] {
            assert!(verify_hash(bad, b"hello", name).unwrap_err().contains("format is invalid"), "{bad}");
        }
    }

    #[test]
    fn sources_are_tree_paths_or_absolute_local_paths() {
        match Source::parse("salt://web/a.conf?saltenv=dev", "base") {
            Ok(Source::Tree { env, path, .. }) => assert_eq!((env.as_str(), path.as_str()), ("dev", "web/a.conf")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Source::parse("brine://a//b", "base"), Ok(Source::Tree { path, .. }) if path == "a/b"));
        assert!(matches!(Source::parse("/etc/hosts", "base"), Ok(Source::Local(p)) if p == Path::new("/etc/hosts")));
        assert!(matches!(Source::parse("file:///etc/hosts", "base"), Ok(Source::Local(_))));
        let err = Source::parse("salt://web/../../etc/shadow", "base").unwrap_err();
        assert!(err.contains("may not contain '..'"), "{err}");
        assert!(Source::parse("https://example.com/x", "base").unwrap_err().contains("Unsupported source"));
        assert!(Source::parse("relative/x", "base").is_err());
        let list = source_list(&serde_json::json!(["salt://a", {"salt://b": "md5=x"}])).unwrap();
        assert_eq!(list, vec![("salt://a".into(), None), ("salt://b".into(), Some("md5=x".into()))]);
    }

    #[test]
    fn append_diffs_look_like_salts() {
        let old = vec!["one".to_string(), "two".to_string()];
        let new = vec!["one".into(), "two".into(), "three".into(), "four".into()];
        assert_eq!(append_diff(&old, &new), "--- \n\n+++ \n\n@@ -1,2 +1,4 @@\n\n one\n two\n+three\n+four");
        assert_eq!(append_diff(&[], &["hello".into()]), "--- \n\n+++ \n\n@@ -0,0 +1 @@\n\n+hello");
    }

    fn edit(mode: &str, extra: serde_json::Value) -> LineEdit {
        let mut args = serde_json::json!({"mode": mode});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        LineEdit::new(&serde_json::from_value(args).unwrap()).unwrap()
    }

    #[test]
    fn line_edits_are_idempotent() {
        let text = "a=1\n  b=2\nc=3\n";
        let cases = [
            (edit("insert", serde_json::json!({"content": "x", "after": "^a="})), "a=1\nx\n  b=2\nc=3\n"),
            (edit("insert", serde_json::json!({"content": "x", "before": "b="})), "a=1\n  x\n  b=2\nc=3\n"),
            (edit("insert", serde_json::json!({"content": "x", "location": "start"})), "x\na=1\n  b=2\nc=3\n"),
            (edit("insert", serde_json::json!({"content": "x", "location": "end"})), "a=1\n  b=2\nc=3\nx\n"),
            (edit("replace", serde_json::json!({"content": "b=5", "match": "b="})), "a=1\n  b=5\nc=3\n"),
            (edit("delete", serde_json::json!({"match": "^c"})), "a=1\n  b=2\n"),
            (edit("delete", serde_json::json!({"content": "b=2"})), "a=1\nc=3\n"),
            (edit("ensure", serde_json::json!({"content": "x", "after": "^a="})), "a=1\nx\n  b=2\nc=3\n"),
            (edit("ensure", serde_json::json!({"content": "b=2", "after": "^a=", "before": "^c"})), text),
        ];
        for (i, (e, want)) in cases.iter().enumerate() {
            let once = e.apply_to(text).unwrap();
            assert_eq!(once, *want, "case {i}");
            assert_eq!(e.apply_to(&once).unwrap(), once, "case {i} is not idempotent");
        }
        let between = edit("ensure", serde_json::json!({"content": "x", "after": "^a=", "before": "^c"}));
        assert!(between.apply_to(text).unwrap_err().contains("more than one line between"));
        let e = edit("ensure", serde_json::json!({"content": "x", "after": "^a=", "before": "^b"}));
        assert_eq!(e.apply_to("a=1\n\nb=2").unwrap(), "a=1\nx\nb=2");
        let twice = edit("insert", serde_json::json!({"content": "x", "after": "="}));
        assert_eq!(twice.apply_to(text).unwrap_err(), "Found more than expected occurrences in \"after\" expression");
        let lost = edit("insert", serde_json::json!({"content": "x", "after": "nope"}));
        assert_eq!(lost.apply_to(text).unwrap_err(), "Neither before or after was found in file");
        assert_eq!(edit("insert", serde_json::json!({"content": "x", "location": "end"})).apply_to("").unwrap(), "x\n");
        assert_eq!(
            edit("insert", serde_json::json!({"content": "x", "location": "end"})).apply_to("a\r\nb\r\n").unwrap(),
            "a\r\nb\r\nx\r\n"
        );
        let no_mode = serde_json::from_value::<LineArgs>(serde_json::json!({"content": "x"})).unwrap();
        assert_eq!(LineEdit::new(&no_mode).err().unwrap(), "Mode was not defined. How to process the file?");
        let empty = serde_json::from_value::<LineArgs>(serde_json::json!({"mode": "insert"})).unwrap();
        assert_eq!(LineEdit::new(&empty).err().unwrap(), "Content can only be empty if mode is ['delete']");
    }

    #[test]
    fn clean_keeps_what_is_kept_and_removes_the_top_of_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["gone/deep", "kept", "mixed"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["a", "gone/deep/x", "kept/y", "mixed/keep.me", "mixed/drop"] {
            fs::write(root.join(f), "").unwrap();
        }
        let keep = |p: &Path| match relative(p, root).as_str() {
            "kept" => Keep::Tree,
            "mixed/keep.me" => Keep::Tree,
            _ => Keep::No,
        };
        let (all, top) = clean_plan(root, &keep).unwrap();
        let rel = |v: &[PathBuf]| v.iter().map(|p| relative(p, root)).collect::<Vec<_>>();
        assert_eq!(rel(&all), ["a", "gone", "gone/deep", "gone/deep/x", "mixed/drop"]);
        assert_eq!(rel(&top), ["a", "gone", "mixed/drop"]);
    }

    #[test]
    fn recurse_types_are_checked() {
        let r = Recurse::parse(&Some(serde_json::json!(["user", "mode", "ignore_files"]))).unwrap();
        assert!(r.user && r.mode && r.ignore_files && !r.group);
        assert!(Recurse::parse(&Some(serde_json::json!("user,group"))).unwrap().group);
        let err = Recurse::parse(&Some(serde_json::json!(["owner"]))).unwrap_err();
        assert!(err.starts_with("Types for \"recurse\" limited to"), "{err}");
    }
}
