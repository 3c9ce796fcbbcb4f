//! `file.*`: inspect and change files on the host.
//!
//! Names, positional order, keywords and return shapes follow Salt's `file` module:
//! `file.stats` returns the same keys in the same order, modes are four octal digits
//! (`"0644"`), `file.write`/`file.append` answer `Wrote N lines to "path"`, and
//! `file.replace` returns a `difflib`-style unified diff (or a bool with
//! `show_changes=False`). Two brine-only aliases exist because operators reach for
//! them: `file.stat` (Salt: `file.stats`) and `file.chmod` (Salt: `file.set_mode`).
//!
//! Where Salt returns an error as a successful string (`"Invalid Mode 999"`, `"User
//! does not exist"`) or crashes with a Python exception, these functions fail the call
//! with a message naming the path instead, so a job never reports success for a change
//! it did not make. Paths must be absolute after `~` expansion: a minion's working
//! directory means nothing to the operator who typed the path.

use super::host::{fnmatch, word_text, Word};
use super::{opt, req, CallError, Context, Function, Output, Param};
use brine_proto::Value;
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Group, Uid, User};
use regex::{Captures, Regex, RegexBuilder};
use serde::Deserialize;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------------------------
// Paths, owners, modes and errors shared by the functions.

/// A path argument with `~` / `~user` expanded; relative paths are refused.
fn abs_path(raw: &str) -> Result<PathBuf, CallError> {
    abs_path_or(raw, "File path must be absolute")
}

fn abs_path_or(raw: &str, complaint: &str) -> Result<PathBuf, CallError> {
    let path = expand_user(raw);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(CallError::failed(format!("{complaint}: {raw}")))
    }
}

fn expand_user(raw: &str) -> PathBuf {
    let Some(rest) = raw.strip_prefix('~') else {
        return PathBuf::from(raw);
    };
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let home = if name.is_empty() {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .or_else(|| User::from_uid(Uid::current()).ok().flatten().map(|u| u.dir))
    } else {
        User::from_name(name).ok().flatten().map(|u| u.dir)
    };
    match home {
        Some(home) if tail.is_empty() => home,
        Some(home) => home.join(tail),
        None => PathBuf::from(raw),
    }
}

/// The OS's reason without Rust's ` (os error N)` suffix.
fn os_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `Cannot <action> <path>: <reason>`.
fn io_failed(action: &str, path: &Path, e: &io::Error) -> CallError {
    CallError::failed(format!("Cannot {action} {}: {}", path.display(), os_reason(e)))
}

/// The path's metadata, failing with Salt's `Path not found: …` when it is missing.
fn metadata(path: &Path, follow_symlinks: bool) -> Result<fs::Metadata, CallError> {
    let meta = if follow_symlinks { fs::metadata(path) } else { fs::symlink_metadata(path) };
    meta.map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CallError::failed(format!("Path not found: {}", path.display())),
        _ => io_failed("stat", path, &e),
    })
}

/// The user name owning `uid`, or the number when no user has it (as Salt does).
fn user_name(uid: u32) -> Value {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => Value::String(user.name),
        _ => Value::from(uid),
    }
}

/// The group name of `gid`, or the number when no group has it.
fn group_name(gid: u32) -> Value {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(group)) => Value::String(group.name),
        _ => Value::from(gid),
    }
}

/// A user given by name or uid; an empty word means "leave it as it is".
fn resolve_user(user: &Word) -> Result<Option<u32>, CallError> {
    let name = user.as_str();
    if name.is_empty() {
        return Ok(None);
    }
    if let Ok(Some(u)) = User::from_name(name) {
        return Ok(Some(u.uid.as_raw()));
    }
    name.parse().map(Some).map_err(|_| CallError::failed(format!("User {name} does not exist")))
}

/// A group given by name or gid; an empty word means "leave it as it is".
fn resolve_group(group: &Word) -> Result<Option<u32>, CallError> {
    let name = group.as_str();
    if name.is_empty() {
        return Ok(None);
    }
    if let Ok(Some(g)) = Group::from_name(name) {
        return Ok(Some(g.gid.as_raw()));
    }
    name.parse().map(Some).map_err(|_| CallError::failed(format!("Group {name} does not exist")))
}

/// A mode as Salt reads it: the octal digits as written (`644`, `"0644"`, `4755`),
/// so the number 644 means `0o644`.
fn parse_mode(mode: &Word) -> Result<u32, CallError> {
    let text = mode.as_str().trim();
    let digits = text.strip_prefix("0o").unwrap_or(text).trim_start_matches('0');
    if digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(CallError::failed(format!("Invalid Mode {text}")));
    }
    Ok(if digits.is_empty() { 0 } else { u32::from_str_radix(digits, 8).unwrap_or(0) })
}

/// Salt's mode text: four octal digits, special bits included.
fn format_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// What `file.stats` calls the kind of file.
fn type_name(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "link"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "pipe"
    } else if ft.is_socket() {
        "socket"
    } else {
        "file"
    }
}

/// A line for `file.write`/`file.append`: text as given, other words as Python's
/// `str()` prints them (`True`, `None`), lists and maps as JSON.
fn line_text(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => v.to_string(),
        other => word_text(other),
    }
}

// ---------------------------------------------------------------------------------
// Hashes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashType {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// Every supported hash with its name and hex digest length, in Salt's order.
const HASH_TYPES: [(&str, HashType, usize); 6] = [
    ("md5", HashType::Md5, 32),
    ("sha1", HashType::Sha1, 40),
    ("sha224", HashType::Sha224, 56),
    ("sha256", HashType::Sha256, 64),
    ("sha384", HashType::Sha384, 96),
    ("sha512", HashType::Sha512, 128),
];

fn hash_type(name: &str) -> Result<HashType, CallError> {
    HASH_TYPES
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, t, _)| *t)
        .ok_or_else(|| CallError::failed(format!("Invalid hash type: {name}")))
}

/// The hex digest of a file's contents, read in `chunk`-byte pieces.
fn file_hash(path: &Path, ty: HashType, chunk: usize) -> Result<String, CallError> {
    let mut file = fs::File::open(path).map_err(|e| io_failed("read", path, &e))?;
    let chunk = chunk.clamp(1, 1 << 24);
    match ty {
        HashType::Md5 => digest::<md5::Md5>(&mut file, path, chunk),
        HashType::Sha1 => digest::<sha1::Sha1>(&mut file, path, chunk),
        HashType::Sha224 => digest::<sha2::Sha224>(&mut file, path, chunk),
        HashType::Sha256 => digest::<sha2::Sha256>(&mut file, path, chunk),
        HashType::Sha384 => digest::<sha2::Sha384>(&mut file, path, chunk),
        HashType::Sha512 => digest::<sha2::Sha512>(&mut file, path, chunk),
    }
}

fn digest<D: sha2::Digest>(file: &mut fs::File, path: &Path, chunk: usize) -> Result<String, CallError> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = file.read(&mut buf).map_err(|e| io_failed("read", path, &e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

// ---------------------------------------------------------------------------------
// Functions, alphabetical.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinesArgs {
    path: String,
    args: Vec<Value>,
}

pub struct Append;
impl Function for Append {
    const NAME: &'static str = "file.append";
    const DOC: &'static str = "Appends lines to the end of an existing file, each followed by a newline; a \
        newline is added first if the file does not end with one. Returns `Wrote N lines to \"path\"`.\n\n\
        Takes no keywords: every argument after the path is one line.\n\n\
        CLI example: brine run '*' file.append /etc/motd 'Welcome' 'Managed by brine'";
    const PARAMS: &'static [Param] = &[req("path")];
    const VARARGS: bool = true;
    type Args = LinesArgs;
    fn call(&self, _: &Context, a: LinesArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        let mut file = fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_failed("append to", &path, &e))?;
        let len = file.metadata().map_err(|e| io_failed("append to", &path, &e))?.len();
        let mut text = String::new();
        if len > 0 {
            let mut last = [0u8; 1];
            std::os::unix::fs::FileExt::read_at(&file, &mut last, len - 1)
                .map_err(|e| io_failed("append to", &path, &e))?;
            if last[0] != b'\n' {
                text.push('\n');
            }
        }
        for line in &a.args {
            text.push_str(&line_text(line));
            text.push('\n');
        }
        file.write_all(text.as_bytes()).map_err(|e| io_failed("append to", &path, &e))?;
        Ok(Output::ok(format!("Wrote {} lines to \"{}\"", a.args.len(), path.display())))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckHashArgs {
    path: String,
    file_hash: Word,
}

pub struct CheckHash;
impl Function for CheckHash {
    const NAME: &'static str = "file.check_hash";
    const DOC: &'static str = "Returns True if the file's contents have the given hash, else False.\n\n\
        file_hash is a hex digest, optionally prefixed with its type (`md5:…` or `sha256=…`); without \
        one the type is chosen by length: md5 (32), sha1 (40), sha224 (56), sha256 (64), sha384 (96), \
        sha512 (128). Hex digits compare case-insensitively.\n\n\
        CLI example: brine run '*' file.check_hash /etc/fstab sha256:4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92";
    const PARAMS: &'static [Param] = &[req("path"), req("file_hash")];
    type Args = CheckHashArgs;
    fn call(&self, _: &Context, a: CheckHashArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        let given = a.file_hash.as_str().trim();
        let (ty, digest) = match given.split_once([':', '=']) {
            Some((ty, digest)) => (hash_type(ty)?, digest),
            None => {
                let ty = HASH_TYPES.iter().find(|(_, _, len)| *len == given.len()).map(|(_, t, _)| *t);
                let ty = ty.ok_or_else(|| {
                    let known: Vec<String> = HASH_TYPES.iter().map(|(n, _, len)| format!("{n} ({len})")).collect();
                    CallError::failed(format!(
                        "Hash {given} (length: {}) could not be matched to a supported hash type. \
                         The supported hash types and lengths are: {}.",
                        given.len(),
                        known.join(", ")
                    ))
                })?;
                (ty, given)
            }
        };
        let actual = file_hash(&path, ty, 64 * 1024)?;
        Ok(Output::ok(actual.eq_ignore_ascii_case(digest)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeArgs {
    path: String,
    mode: Word,
}

fn set_mode(a: ModeArgs) -> Result<Output, CallError> {
    let path = abs_path(&a.path)?;
    let mode = parse_mode(&a.mode)?;
    if fs::symlink_metadata(&path).is_err() {
        return Err(CallError::failed(format!("{}: File not found", path.display())));
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| io_failed("change mode of", &path, &e))?;
    let now = metadata(&path, true)?;
    Ok(Output::ok(format_mode(now.mode())))
}

pub struct Chmod;
impl Function for Chmod {
    const NAME: &'static str = "file.chmod";
    const DOC: &'static str = "Sets the mode of a file or directory: brine's alias of file.set_mode (Salt \
        has only file.set_mode). Returns the new mode as four octal digits (`\"0644\"`).\n\n\
        mode is the octal digits as written: 644, 0755, 4755.\n\n\
        CLI example: brine run '*' file.chmod /etc/app.conf 640";
    const PARAMS: &'static [Param] = &[req("path"), req("mode")];
    type Args = ModeArgs;
    fn call(&self, _: &Context, a: ModeArgs) -> Result<Output, CallError> {
        set_mode(a)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChownArgs {
    path: String,
    user: Option<Word>,
    group: Option<Word>,
}

pub struct Chown;
impl Function for Chown {
    const NAME: &'static str = "file.chown";
    const DOC: &'static str = "Changes the owner and group of a file (following symlinks). Returns None.\n\n\
        user and group are names or numeric ids; an empty string or None leaves that one unchanged. An \
        unknown name fails the call.\n\n\
        CLI example: brine run '*' file.chown /etc/app.conf root adm";
    const PARAMS: &'static [Param] = &[req("path"), req("user"), req("group")];
    type Args = ChownArgs;
    fn call(&self, _: &Context, a: ChownArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        if fs::metadata(&path).is_err() {
            return Err(CallError::failed(format!("File {} does not exist", path.display())));
        }
        let uid = a.user.as_ref().map(resolve_user).transpose()?.flatten();
        let gid = a.group.as_ref().map(resolve_group).transpose()?.flatten();
        std::os::unix::fs::chown(&path, uid, gid).map_err(|e| io_failed("change owner of", &path, &e))?;
        Ok(Output::ok(Value::Null))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyArgs {
    src: String,
    dst: String,
    #[serde(default)]
    recurse: bool,
    #[serde(default)]
    remove_existing: bool,
}

/// Copies `src` onto `dst`: files with their permission bits, directories merged
/// into an existing `dst`, symlinks as symlinks (so a link loop cannot recurse).
fn copy_tree(ctx: &Context, src: &Path, dst: &Path) -> Result<(), CallError> {
    if ctx.cancel.is_cancelled() {
        return Err(CallError::failed("killed"));
    }
    let meta = fs::symlink_metadata(src).map_err(|e| io_failed("copy", src, &e))?;
    let existing = fs::symlink_metadata(dst).ok();
    if meta.file_type().is_symlink() {
        let target = fs::read_link(src).map_err(|e| io_failed("copy", src, &e))?;
        if let Some(old) = existing {
            if old.is_dir() {
                fs::remove_dir_all(dst).map_err(|e| io_failed("replace", dst, &e))?;
            } else {
                fs::remove_file(dst).map_err(|e| io_failed("replace", dst, &e))?;
            }
        }
        std::os::unix::fs::symlink(target, dst).map_err(|e| io_failed("create", dst, &e))?;
    } else if meta.is_dir() {
        match existing {
            Some(old) if old.is_dir() => {}
            Some(_) => {
                fs::remove_file(dst).map_err(|e| io_failed("replace", dst, &e))?;
                fs::create_dir(dst).map_err(|e| io_failed("create directory", dst, &e))?;
            }
            None => fs::create_dir(dst).map_err(|e| io_failed("create directory", dst, &e))?,
        }
        fs::set_permissions(dst, meta.permissions()).map_err(|e| io_failed("change mode of", dst, &e))?;
        let entries = fs::read_dir(src).map_err(|e| io_failed("read directory", src, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_failed("read directory", src, &e))?;
            copy_tree(ctx, &entry.path(), &dst.join(entry.file_name()))?;
        }
    } else {
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            fs::remove_dir_all(dst).map_err(|e| io_failed("replace", dst, &e))?;
        }
        fs::copy(src, dst).map_err(|e| io_failed(&format!("copy {} to", src.display()), dst, &e))?;
    }
    Ok(())
}

pub struct CopyFile;
impl Function for CopyFile {
    const NAME: &'static str = "file.copy";
    const DOC: &'static str = "Copies a file or directory to a new path, keeping permission bits. Returns \
        True.\n\n\
        recurse (default False) must be True to copy a directory or to copy over one; the copy is merged \
        into an existing directory. remove_existing (default False) deletes dst first so the result is \
        exactly src. Symlinks inside a copied directory stay symlinks.\n\n\
        CLI example: brine run '*' file.copy /etc/hosts /etc/hosts.orig";
    const PARAMS: &'static [Param] = &[req("src"), req("dst"), opt("recurse"), opt("remove_existing")];
    type Args = CopyArgs;
    fn call(&self, ctx: &Context, a: CopyArgs) -> Result<Output, CallError> {
        let src = abs_path(&a.src)?;
        let dst = abs_path(&a.dst)?;
        let src_meta = match fs::metadata(&src) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CallError::failed(format!("No such file or directory '{}'", src.display())))
            }
            Err(e) => return Err(io_failed("copy", &src, &e)),
        };
        let dst_is_dir = fs::metadata(&dst).is_ok_and(|m| m.is_dir());
        if !a.recurse && (src_meta.is_dir() || dst_is_dir) {
            let which = if src_meta.is_dir() { &src } else { &dst };
            return Err(CallError::failed(format!(
                "Cannot copy overwriting a directory without recurse flag set to true: {}",
                which.display()
            )));
        }
        // A directory given through a symlink is copied as the directory it leads to.
        let src =
            if src_meta.is_dir() { fs::canonicalize(&src).map_err(|e| io_failed("copy", &src, &e))? } else { src };
        if src_meta.is_dir() {
            // Copying a tree into itself would never end.
            let inside = dst
                .parent()
                .and_then(|p| fs::canonicalize(p).ok())
                .is_some_and(|parent| parent.join(dst.file_name().unwrap_or_default()).starts_with(&src));
            if inside {
                return Err(CallError::failed(format!(
                    "Cannot copy {} into itself ({})",
                    src.display(),
                    dst.display()
                )));
            }
        }
        if a.remove_existing {
            match fs::symlink_metadata(&dst) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&dst).map_err(|e| io_failed("remove", &dst, &e))?,
                Ok(_) => fs::remove_file(&dst).map_err(|e| io_failed("remove", &dst, &e))?,
                Err(_) => {}
            }
        }
        if src_meta.is_dir() {
            copy_tree(ctx, &src, &dst)?;
        } else {
            // A regular file (or what a symlink points at) becomes a regular file.
            fs::copy(&src, &dst).map_err(|e| {
                CallError::failed(format!(
                    "Could not copy '{}' to '{}': {}",
                    src.display(),
                    dst.display(),
                    os_reason(&e)
                ))
            })?;
        }
        Ok(Output::ok(true))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    path: String,
}

pub struct DirectoryExists;
impl Function for DirectoryExists {
    const NAME: &'static str = "file.directory_exists";
    const DOC: &'static str = "Returns True if the path is a directory (or a symlink to one), else False.\n\n\
        Takes no keywords.\n\n\
        CLI example: brine run '*' file.directory_exists /etc/ssh";
    const PARAMS: &'static [Param] = &[req("path")];
    type Args = PathArgs;
    fn call(&self, _: &Context, a: PathArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        Ok(Output::ok(path.is_dir()))
    }
}

pub struct FileExists;
impl Function for FileExists {
    const NAME: &'static str = "file.file_exists";
    const DOC: &'static str = "Returns True if the path is a regular file (or a symlink to one), else False.\n\n\
        Takes no keywords.\n\n\
        CLI example: brine run '*' file.file_exists /etc/passwd";
    const PARAMS: &'static [Param] = &[req("path")];
    type Args = PathArgs;
    fn call(&self, _: &Context, a: PathArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        Ok(Output::ok(path.is_file()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindArgs {
    path: String,
    #[serde(default)]
    name: Option<Word>,
    #[serde(default)]
    iname: Option<Word>,
    #[serde(default)]
    regex: Option<Word>,
    #[serde(default)]
    iregex: Option<Word>,
    #[serde(default, rename = "type")]
    kind: Option<Word>,
    #[serde(default)]
    maxdepth: Option<i64>,
    #[serde(default)]
    mindepth: Option<i64>,
}

/// What `file.find` matches each path against.
struct FindFilter {
    name: Option<String>,
    iname: Option<String>,
    regex: Option<Regex>,
    /// Type letters (`f`, `d`, `l`, …); `None` matches every type.
    types: Option<Vec<char>>,
    mindepth: usize,
    maxdepth: Option<usize>,
}

impl FindFilter {
    fn from_args(a: &FindArgs) -> Result<FindFilter, CallError> {
        let anchored = |w: &Word, insensitive: bool| {
            RegexBuilder::new(&format!("^(?:{})", w.as_str()))
                .case_insensitive(insensitive)
                .build()
                .map_err(|e| CallError::failed(format!("Invalid regular expression '{}': {e}", w.as_str())))
        };
        let regex = match (&a.regex, &a.iregex) {
            (Some(r), _) => Some(anchored(r, false)?),
            (None, Some(r)) => Some(anchored(r, true)?),
            (None, None) => None,
        };
        let mut types = None;
        if let Some(w) = &a.kind {
            let mut letters = Vec::new();
            for c in w.as_str().chars().filter(|c| !matches!(c, ',' | ' ')) {
                match c {
                    'a' | 'b' | 'c' | 'd' | 'f' | 'l' | 'p' | 's' => letters.push(c),
                    other => {
                        return Err(CallError::failed(format!(
                            "Invalid file type \"{other}\": use a combination of a, b, c, d, f, l, p and s"
                        )))
                    }
                }
            }
            // `a` is every type: no filter at all.
            if !letters.contains(&'a') {
                types = Some(letters);
            }
        }
        Ok(FindFilter {
            name: a.name.as_ref().map(|w| w.as_str().to_string()),
            iname: a.iname.as_ref().map(|w| w.as_str().to_lowercase()),
            regex,
            types,
            mindepth: a.mindepth.unwrap_or(0).max(0) as usize,
            maxdepth: a.maxdepth.map(|d| d.max(0) as usize),
        })
    }

    fn matches(&self, path: &Path, meta: &fs::Metadata) -> bool {
        let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if self.name.as_ref().is_some_and(|p| !fnmatch(p, &base)) {
            return false;
        }
        if self.iname.as_ref().is_some_and(|p| !fnmatch(p, &base.to_lowercase())) {
            return false;
        }
        if self.regex.as_ref().is_some_and(|r| !r.is_match(&base)) {
            return false;
        }
        let Some(types) = &self.types else {
            return true;
        };
        let ft = meta.file_type();
        let letter = if ft.is_symlink() {
            'l'
        } else if ft.is_dir() {
            'd'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_fifo() {
            'p'
        } else if ft.is_socket() {
            's'
        } else {
            'f'
        };
        types.contains(&letter)
    }
}

fn walk(
    ctx: &Context,
    filter: &FindFilter,
    path: &Path,
    depth: usize,
    found: &mut Vec<String>,
) -> Result<(), CallError> {
    // Unreadable or vanished entries are skipped, as find(1) carries on past them.
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if depth >= filter.mindepth && filter.matches(path, &meta) {
        found.push(path.to_string_lossy().into_owned());
    }
    if meta.is_dir() && filter.maxdepth.is_none_or(|max| depth < max) {
        if ctx.cancel.is_cancelled() {
            return Err(CallError::failed("killed"));
        }
        let Ok(entries) = fs::read_dir(path) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            walk(ctx, filter, &entry.path(), depth + 1, found)?;
        }
    }
    Ok(())
}

pub struct Find;
impl Function for Find {
    const NAME: &'static str = "file.find";
    const DOC: &'static str = "Lists the paths under a directory (the directory itself included) that match \
        every given criterion, sorted; like find(1), symlinks are not followed. A missing path gives an \
        empty list.\n\n\
        Keywords: name (shell glob on the base name), iname (the same, case-insensitive), regex / iregex \
        (a regular expression matched from the start of the base name), type (letters: f file, d \
        directory, l symlink, b block device, c character device, p pipe, s socket, a any), maxdepth \
        (0 is the path itself), mindepth.\n\n\
        CLI example: brine run '*' file.find /var/log name='*.log' type=f maxdepth=2";
    const PARAMS: &'static [Param] = &[req("path")];
    type Args = FindArgs;
    fn call(&self, ctx: &Context, a: FindArgs) -> Result<Output, CallError> {
        let filter = FindFilter::from_args(&a)?;
        if a.maxdepth.is_some_and(|d| d < 0) {
            return Ok(Output::ok(Value::Array(Vec::new())));
        }
        // `/var/log/` and `/var//log` list as `/var/log/...`.
        let root: PathBuf = abs_path(&a.path)?.components().collect();
        let mut found = Vec::new();
        walk(ctx, &filter, &root, 0, &mut found)?;
        found.sort();
        Ok(Output::ok(Value::Array(found.into_iter().map(Value::String).collect())))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerArgs {
    path: String,
    #[serde(default = "yes")]
    follow_symlinks: bool,
}

fn yes() -> bool {
    true
}

const OWNER_PARAMS: &[Param] = &[req("path"), opt("follow_symlinks")];

pub struct GetGid;
impl Function for GetGid {
    const NAME: &'static str = "file.get_gid";
    const DOC: &'static str = "Returns the numeric group id of a file.\n\n\
        follow_symlinks (default True): with False, a symlink's own group.\n\n\
        CLI example: brine run '*' file.get_gid /etc/passwd";
    const PARAMS: &'static [Param] = OWNER_PARAMS;
    type Args = OwnerArgs;
    fn call(&self, _: &Context, a: OwnerArgs) -> Result<Output, CallError> {
        Ok(Output::ok(metadata(&abs_path(&a.path)?, a.follow_symlinks)?.gid()))
    }
}

pub struct GetGroup;
impl Function for GetGroup {
    const NAME: &'static str = "file.get_group";
    const DOC: &'static str = "Returns the group name of a file (the gid when no group has it).\n\n\
        follow_symlinks (default True): with False, a symlink's own group.\n\n\
        CLI example: brine run '*' file.get_group /etc/passwd";
    const PARAMS: &'static [Param] = OWNER_PARAMS;
    type Args = OwnerArgs;
    fn call(&self, _: &Context, a: OwnerArgs) -> Result<Output, CallError> {
        Ok(Output::ok(group_name(metadata(&abs_path(&a.path)?, a.follow_symlinks)?.gid())))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetHashArgs {
    path: String,
    #[serde(default = "default_form")]
    form: String,
    #[serde(default = "default_chunk")]
    chunk_size: usize,
}

fn default_form() -> String {
    "sha256".into()
}

fn default_chunk() -> usize {
    64 * 1024
}

pub struct GetHash;
impl Function for GetHash {
    const NAME: &'static str = "file.get_hash";
    const DOC: &'static str = "Returns the hex digest of a file's contents.\n\n\
        form (default sha256): md5, sha1, sha224, sha256, sha384 or sha512. chunk_size (default 65536): \
        how many bytes to read at a time.\n\n\
        CLI example: brine run '*' file.get_hash /etc/passwd md5";
    const PARAMS: &'static [Param] = &[req("path"), opt("form"), opt("chunk_size")];
    type Args = GetHashArgs;
    fn call(&self, _: &Context, a: GetHashArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        Ok(Output::ok(file_hash(&path, hash_type(&a.form)?, a.chunk_size)?))
    }
}

pub struct GetMode;
impl Function for GetMode {
    const NAME: &'static str = "file.get_mode";
    const DOC: &'static str = "Returns the mode of a file as four octal digits (`\"0644\"`, `\"4755\"`).\n\n\
        follow_symlinks (default True): with False, a symlink's own mode (`\"0777\"`).\n\n\
        CLI example: brine run '*' file.get_mode /etc/passwd";
    const PARAMS: &'static [Param] = OWNER_PARAMS;
    type Args = OwnerArgs;
    fn call(&self, _: &Context, a: OwnerArgs) -> Result<Output, CallError> {
        Ok(Output::ok(format_mode(metadata(&abs_path(&a.path)?, a.follow_symlinks)?.mode())))
    }
}

pub struct GetUid;
impl Function for GetUid {
    const NAME: &'static str = "file.get_uid";
    const DOC: &'static str = "Returns the numeric user id owning a file.\n\n\
        follow_symlinks (default True): with False, a symlink's own owner.\n\n\
        CLI example: brine run '*' file.get_uid /etc/passwd";
    const PARAMS: &'static [Param] = OWNER_PARAMS;
    type Args = OwnerArgs;
    fn call(&self, _: &Context, a: OwnerArgs) -> Result<Output, CallError> {
        Ok(Output::ok(metadata(&abs_path(&a.path)?, a.follow_symlinks)?.uid()))
    }
}

pub struct GetUser;
impl Function for GetUser {
    const NAME: &'static str = "file.get_user";
    const DOC: &'static str = "Returns the user name owning a file (the uid when no user has it).\n\n\
        follow_symlinks (default True): with False, a symlink's own owner.\n\n\
        CLI example: brine run '*' file.get_user /etc/passwd";
    const PARAMS: &'static [Param] = OWNER_PARAMS;
    type Args = OwnerArgs;
    fn call(&self, _: &Context, a: OwnerArgs) -> Result<Output, CallError> {
        Ok(Output::ok(user_name(metadata(&abs_path(&a.path)?, a.follow_symlinks)?.uid())))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MkdirArgs {
    dir_path: String,
    #[serde(default)]
    user: Option<Word>,
    #[serde(default)]
    group: Option<Word>,
    #[serde(default)]
    mode: Option<Word>,
}

pub struct Mkdir;
impl Function for Mkdir {
    const NAME: &'static str = "file.mkdir";
    const DOC: &'static str = "Creates a directory and any missing parents. Returns True, also when it \
        already exists (an existing directory is left as it is).\n\n\
        user, group and mode (octal digits such as 750) apply to every directory the call creates.\n\n\
        CLI example: brine run '*' file.mkdir /srv/app/data root root 750";
    const PARAMS: &'static [Param] = &[req("dir_path"), opt("user"), opt("group"), opt("mode")];
    type Args = MkdirArgs;
    fn call(&self, _: &Context, a: MkdirArgs) -> Result<Output, CallError> {
        let dir = abs_path(&a.dir_path)?;
        // Resolve everything first, so a typo in a name creates nothing.
        let uid = a.user.as_ref().map(resolve_user).transpose()?.flatten();
        let gid = a.group.as_ref().map(resolve_group).transpose()?.flatten();
        let mode = a.mode.as_ref().map(parse_mode).transpose()?;
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => return Ok(Output::ok(true)),
            Ok(_) => return Err(CallError::failed(format!("Cannot create directory {}: File exists", dir.display()))),
            Err(_) => {}
        }
        let missing: Vec<&Path> = dir.ancestors().take_while(|p| fs::symlink_metadata(p).is_err()).collect();
        for d in missing.into_iter().rev() {
            match fs::create_dir(d) {
                Ok(()) => {}
                // Someone else made it meanwhile: fine, as long as it is a directory.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
                Err(e) => return Err(io_failed("create directory", d, &e)),
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::chown(d, uid, gid).map_err(|e| io_failed("change owner of", d, &e))?;
            }
            if let Some(mode) = mode {
                fs::set_permissions(d, fs::Permissions::from_mode(mode))
                    .map_err(|e| io_failed("change mode of", d, &e))?;
            }
        }
        Ok(Output::ok(true))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    path: String,
    #[serde(default)]
    binary: bool,
}

/// Python's `repr()` of a bytes value (`b'a\nb'`), which is what Salt returns for
/// `file.read binary=True`.
fn python_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { '"' } else { '\'' };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\'' if quote == '\'' => out.push_str("\\'"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

pub struct ReadFile;
impl Function for ReadFile {
    const NAME: &'static str = "file.read";
    const DOC: &'static str = "Returns the contents of a file as text.\n\n\
        binary (default False): return the bytes in Python's `b'…'` notation, as Salt does; use it for \
        files that are not UTF-8 text.\n\n\
        CLI example: brine run '*' file.read /etc/hostname";
    const PARAMS: &'static [Param] = &[req("path"), opt("binary")];
    type Args = ReadArgs;
    fn call(&self, _: &Context, a: ReadArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        let bytes = fs::read(&path).map_err(|e| io_failed("read", &path, &e))?;
        if a.binary {
            return Ok(Output::ok(python_bytes_repr(&bytes)));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            CallError::failed(format!("Cannot read {}: not UTF-8 text (read it with binary=True)", path.display()))
        })?;
        Ok(Output::ok(text))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadlinkArgs {
    path: String,
    #[serde(default)]
    canonicalize: bool,
}

/// Where a path really leads, like Python's `os.path.realpath`: resolved when it can
/// be, else the link target taken lexically relative to the link's directory.
fn realpath(link: &Path, target: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(link) {
        return p;
    }
    let joined = link.parent().unwrap_or(Path::new("/")).join(target);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub struct Readlink;
impl Function for Readlink {
    const NAME: &'static str = "file.readlink";
    const DOC: &'static str = "Returns the target a symlink points to, as stored in the link.\n\n\
        canonicalize (default False): return the fully resolved absolute path instead.\n\n\
        CLI example: brine run '*' file.readlink /etc/localtime";
    const PARAMS: &'static [Param] = &[req("path"), opt("canonicalize")];
    type Args = ReadlinkArgs;
    fn call(&self, _: &Context, a: ReadlinkArgs) -> Result<Output, CallError> {
        let path = abs_path_or(&a.path, "Path to link must be absolute")?;
        let target = fs::read_link(&path)
            .map_err(|_| CallError::failed(format!("A valid link was not specified: {}", path.display())))?;
        let shown = if a.canonicalize { realpath(&path, &target) } else { target };
        Ok(Output::ok(shown.to_string_lossy().into_owned()))
    }
}

pub struct Remove;
impl Function for Remove {
    const NAME: &'static str = "file.remove";
    const DOC: &'static str = "Removes a file, a symlink (not what it points to) or a whole directory tree. \
        Returns True if something was removed, False if the path did not exist.\n\n\
        Takes no keywords.\n\n\
        CLI example: brine run '*' file.remove /tmp/scratch";
    const PARAMS: &'static [Param] = &[req("path")];
    type Args = PathArgs;
    fn call(&self, _: &Context, a: PathArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Output::ok(false)),
            Err(e) => return Err(io_failed("remove", &path, &e)),
        };
        let removed = if meta.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        removed.map_err(|e| io_failed("remove", &path, &e))?;
        Ok(Output::ok(true))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameArgs {
    src: String,
    dst: String,
}

pub struct Rename;
impl Function for Rename {
    const NAME: &'static str = "file.rename";
    const DOC: &'static str = "Renames (moves) a file or directory within one filesystem, replacing a file \
        at dst. Returns True.\n\n\
        Takes no keywords.\n\n\
        CLI example: brine run '*' file.rename /etc/app.conf /etc/app.conf.old";
    const PARAMS: &'static [Param] = &[req("src"), req("dst")];
    type Args = RenameArgs;
    fn call(&self, _: &Context, a: RenameArgs) -> Result<Output, CallError> {
        let src = abs_path(&a.src)?;
        let dst = abs_path(&a.dst)?;
        fs::rename(&src, &dst).map_err(|e| {
            CallError::failed(format!("Could not rename '{}' to '{}': {}", src.display(), dst.display(), os_reason(&e)))
        })?;
        Ok(Output::ok(true))
    }
}

// --- file.replace and file.search ---------------------------------------------------

/// Python `re` flag bits, as Salt takes them (an int, or a list of names).
const RE_IGNORECASE: u64 = 2;
const RE_MULTILINE: u64 = 8;
const RE_DOTALL: u64 = 16;
const RE_VERBOSE: u64 = 64;

fn parse_flags(flags: Option<&Value>) -> Result<u64, CallError> {
    let names: Vec<String> = match flags {
        None | Some(Value::Null) => return Ok(RE_MULTILINE),
        Some(Value::Number(n)) => {
            return n.as_u64().ok_or_else(|| CallError::failed(format!("Invalid re flags: {n}")));
        }
        Some(Value::String(s)) => {
            s.split([',', '|', ' ', '[', ']']).filter(|w| !w.is_empty()).map(str::to_string).collect()
        }
        Some(Value::Array(items)) => items.iter().map(word_text).collect(),
        Some(other) => return Err(CallError::failed(format!("Invalid re flags: {other}"))),
    };
    let mut bits = 0;
    for name in names {
        let upper = name.trim().to_uppercase();
        bits |= match upper.strip_prefix("RE.").unwrap_or(&upper) {
            "I" | "IGNORECASE" => RE_IGNORECASE,
            "L" | "LOCALE" => 4,
            "M" | "MULTILINE" => RE_MULTILINE,
            "S" | "DOTALL" => RE_DOTALL,
            "U" | "UNICODE" => 32,
            "X" | "VERBOSE" => RE_VERBOSE,
            "A" | "ASCII" => 256,
            _ => return Err(CallError::failed(format!("Invalid re flag: {name}"))),
        };
    }
    Ok(bits)
}

/// Compiles a pattern with Python flag bits. LOCALE, UNICODE and ASCII have no
/// equivalent and are ignored: brine's regexes always match Unicode text.
fn build_regex(pattern: &str, flags: u64) -> Result<Regex, CallError> {
    RegexBuilder::new(pattern)
        .case_insensitive(flags & RE_IGNORECASE != 0)
        .multi_line(flags & RE_MULTILINE != 0)
        .dot_matches_new_line(flags & RE_DOTALL != 0)
        .ignore_whitespace(flags & RE_VERBOSE != 0)
        .build()
        .map_err(|e| CallError::failed(format!("Invalid regular expression '{pattern}': {e}")))
}

/// One part of a Python `re.sub` replacement template.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

/// Parses a replacement the way Python's `re.sub` reads it: `\1`, `\g<1>`,
/// `\g<name>`, `\n`-style escapes, `\\`; other non-letter escapes stay as written.
fn parse_template(repl: &str, re: &Regex) -> Result<Vec<Piece>, CallError> {
    let bad = |what: String| CallError::failed(format!("Invalid replacement '{repl}': {what}"));
    let group = |n: usize| {
        if n < re.captures_len() {
            Ok(Piece::Group(n))
        } else {
            Err(bad(format!("invalid group reference {n}")))
        }
    };
    let mut pieces = Vec::new();
    let mut text = String::new();
    let chars: Vec<char> = repl.chars().collect();
    let octal = |c: Option<&char>| c.is_some_and(|c| ('0'..='7').contains(c));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            text.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            return Err(bad("bad escape (end of pattern)".into()));
        };
        i += 1;
        let piece = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(ch) = piece {
            text.push(ch);
            continue;
        }
        let mut push_piece = |p: Piece, text: &mut String| {
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(text)));
            }
            pieces.push(p);
        };
        match e {
            'g' => {
                let rest: String = chars[i..].iter().collect();
                let Some(name) = rest.strip_prefix('<').and_then(|r| r.split_once('>')).map(|(n, _)| n.to_string())
                else {
                    return Err(bad("missing group name after \\g".into()));
                };
                i += name.chars().count() + 2;
                let p = match name.parse::<usize>() {
                    Ok(n) => group(n)?,
                    Err(_) if re.capture_names().flatten().any(|n| n == name) => Piece::Named(name),
                    Err(_) => return Err(bad(format!("unknown group name '{name}'"))),
                };
                push_piece(p, &mut text);
            }
            '0' => {
                // Octal escape: up to two more octal digits.
                let mut value = 0u32;
                let mut taken = 0;
                while taken < 2 && octal(chars.get(i)) {
                    value = value * 8 + chars[i].to_digit(8).unwrap_or(0);
                    i += 1;
                    taken += 1;
                }
                text.push(char::from_u32(value).unwrap_or('\0'));
            }
            '1'..='9' => {
                if octal(Some(&e)) && octal(chars.get(i)) && octal(chars.get(i + 1)) {
                    // Three octal digits are a character, not a group.
                    let digits: String = [e, chars[i], chars[i + 1]].iter().collect();
                    let value = u32::from_str_radix(&digits, 8).unwrap_or(0);
                    if value > 0o377 {
                        return Err(bad(format!("octal escape value \\{digits} outside of range 0-0o377")));
                    }
                    text.push(char::from_u32(value).unwrap_or('\0'));
                    i += 2;
                } else {
                    let mut n = e.to_digit(10).unwrap_or(0) as usize;
                    if let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                        n = n * 10 + d as usize;
                        i += 1;
                    }
                    push_piece(group(n)?, &mut text);
                }
            }
            c if c.is_ascii_alphabetic() => return Err(bad(format!("bad escape \\{c}"))),
            c => {
                text.push('\\');
                text.push(c);
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn expand(pieces: &[Piece], caps: &Captures<'_>, out: &mut String) {
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            // A group that did not take part in the match stands for nothing.
            Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
            Piece::Named(n) => out.push_str(caps.name(n).map_or("", |m| m.as_str())),
        }
    }
}

/// `re.sub(pattern, repl, text, count)`: `count` 0 replaces every match.
fn substitute(re: &Regex, pieces: &[Piece], text: &str, count: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (n, caps) in re.captures_iter(text).enumerate() {
        if count > 0 && n >= count {
            break;
        }
        let Some(whole) = caps.get(0) else {
            continue;
        };
        out.push_str(&text[last..whole.start()]);
        expand(pieces, &caps, &mut out);
        last = whole.end();
    }
    out.push_str(&text[last..]);
    out
}

/// Whether `content` is already in `text` as whole lines (so appending it again would
/// only duplicate it).
fn has_lines(text: &str, content: &str) -> bool {
    let needle = content.strip_suffix('\n').unwrap_or(content);
    text.match_indices(needle).any(|(at, _)| {
        let end = at + needle.len();
        (at == 0 || text.as_bytes()[at - 1] == b'\n') && (end == text.len() || text.as_bytes()[end] == b'\n')
    })
}

/// A text file to edit: where it really is (symlinks resolved) and its contents.
/// `None` when it is missing and that is allowed.
fn read_for_edit(path: &Path, ignore_if_missing: bool) -> Result<Option<(PathBuf, String)>, CallError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound && ignore_if_missing => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CallError::failed(format!("File not found: {}", path.display())))
        }
        Err(e) => return Err(io_failed("read", path, &e)),
    };
    if !meta.is_file() {
        return Err(CallError::failed(format!(
            "Cannot perform string replacements on {}: not a regular file",
            path.display()
        )));
    }
    let real = fs::canonicalize(path).map_err(|e| io_failed("read", path, &e))?;
    let bytes = fs::read(&real).map_err(|e| io_failed("read", path, &e))?;
    let binary =
        || CallError::failed(format!("Cannot perform string replacements on a binary file: {}", path.display()));
    if bytes.contains(&0) {
        return Err(binary());
    }
    let text = String::from_utf8(bytes).map_err(|_| binary())?;
    Ok(Some((real, text)))
}

/// A free name beside `path` for a file that is then renamed over it.
fn sibling_tmp(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.brine-{}-{n}", std::process::id()))
}

/// Writes new contents over `path`: in place (same inode, so hard links see the
/// change), or through a new file renamed over it.
fn write_back(path: &Path, contents: &str, preserve_inode: bool) -> Result<(), CallError> {
    let fail = |e: io::Error| io_failed("write", path, &e);
    if preserve_inode {
        let mut f = fs::OpenOptions::new().write(true).truncate(true).open(path).map_err(fail)?;
        return f.write_all(contents.as_bytes()).map_err(fail);
    }
    let meta = fs::metadata(path).map_err(fail)?;
    let tmp = sibling_tmp(path);
    let written = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        fs::set_permissions(&tmp, meta.permissions())?;
        // Keep the owner when we may (as root); otherwise the file becomes ours.
        let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(fail)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceArgs {
    path: String,
    pattern: Word,
    repl: Word,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    flags: Option<Value>,
    /// Accepted for compatibility: the whole file is always edited at once.
    #[serde(default)]
    #[allow(dead_code)]
    bufsize: Option<Value>,
    #[serde(default)]
    append_if_not_found: bool,
    #[serde(default)]
    prepend_if_not_found: bool,
    #[serde(default)]
    not_found_content: Option<Word>,
    #[serde(default = "default_backup")]
    backup: Value,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    search_only: bool,
    #[serde(default = "yes")]
    show_changes: bool,
    #[serde(default)]
    ignore_if_missing: bool,
    #[serde(default = "yes")]
    preserve_inode: bool,
    #[serde(default)]
    backslash_literal: bool,
}

fn default_backup() -> Value {
    Value::String(".bak".into())
}

/// The backup suffix, or `None` for no backup (`backup=False`).
fn backup_suffix(v: &Value) -> Option<String> {
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::Bool(true) => Some(".bak".into()),
        Value::String(s) if s.is_empty() => None,
        other => Some(word_text(other)),
    }
}

pub struct Replace;
impl Function for Replace {
    const NAME: &'static str = "file.replace";
    const DOC: &'static str = "Replaces matches of a regular expression in a text file. Returns a unified \
        diff of the change (an empty string when nothing changed), or with show_changes=False True/False \
        for changed or not.\n\n\
        pattern is a regular expression (Python syntax; no look-around or back-references) applied to the \
        whole file; repl is a Python replacement template (`\\1`, `\\g<name>`, `\\n`). Keywords: count \
        (default 0: all), flags (Python `re` flags as an int or a list such as `[IGNORECASE, DOTALL]`; \
        default 8, MULTILINE), append_if_not_found / prepend_if_not_found (add not_found_content, else \
        repl, as a line when the pattern does not match and that line is not there yet), backup (suffix \
        of a copy of the original, default `.bak`; False for none), dry_run, search_only (only return \
        whether the pattern matches), show_changes (default True), ignore_if_missing (return False for \
        a missing file), preserve_inode (default True: edit in place), backslash_literal (backslashes \
        in repl are literal), bufsize (accepted, ignored). Symlinks are followed.\n\n\
        CLI example: brine run '*' file.replace /etc/ssh/sshd_config pattern='^#?PermitRootLogin .*' repl='PermitRootLogin no'";
    const PARAMS: &'static [Param] = &[
        req("path"),
        req("pattern"),
        req("repl"),
        opt("count"),
        opt("flags"),
        opt("bufsize"),
        opt("append_if_not_found"),
        opt("prepend_if_not_found"),
        opt("not_found_content"),
        opt("backup"),
        opt("dry_run"),
        opt("search_only"),
        opt("show_changes"),
        opt("ignore_if_missing"),
        opt("preserve_inode"),
        opt("backslash_literal"),
    ];
    type Args = ReplaceArgs;
    fn call(&self, _: &Context, a: ReplaceArgs) -> Result<Output, CallError> {
        if a.append_if_not_found && a.prepend_if_not_found {
            return Err(CallError::failed("Only one of append_if_not_found and prepend_if_not_found is permitted"));
        }
        let path = abs_path(&a.path)?;
        let re = build_regex(a.pattern.as_str(), parse_flags(a.flags.as_ref())?)?;
        let Some((real, original)) = read_for_edit(&path, a.ignore_if_missing)? else {
            return Ok(Output::ok(false));
        };
        let found = re.is_match(&original);
        if a.search_only {
            return Ok(Output::ok(found));
        }
        let repl = if a.backslash_literal { a.repl.as_str().replace('\\', "\\\\") } else { a.repl.to_string() };
        let pieces = parse_template(&repl, &re)?;
        let mut edited = substitute(&re, &pieces, &original, a.count);
        if !found && (a.append_if_not_found || a.prepend_if_not_found) {
            // The added line is taken literally: it is content, not a template.
            let content = a.not_found_content.as_ref().unwrap_or(&a.repl).as_str();
            if !has_lines(&original, content) {
                let line = if content.ends_with('\n') { content.to_string() } else { format!("{content}\n") };
                if a.prepend_if_not_found {
                    edited = format!("{line}{original}");
                } else {
                    edited = original.clone();
                    if !edited.is_empty() && !edited.ends_with('\n') {
                        edited.push('\n');
                    }
                    edited.push_str(&line);
                }
            }
        }
        let changed = edited != original;
        if changed && !a.dry_run {
            if let Some(suffix) = backup_suffix(&a.backup) {
                let mut backup = real.clone().into_os_string();
                backup.push(&suffix);
                fs::copy(&real, &backup).map_err(|e| io_failed("back up", &real, &e))?;
            }
            write_back(&real, &edited, a.preserve_inode)?;
        }
        if !a.show_changes {
            return Ok(Output::ok(changed));
        }
        Ok(Output::ok(if changed { diff::unified(&original, &edited) } else { String::new() }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    path: String,
    pattern: Word,
    #[serde(default)]
    flags: Option<Value>,
    /// Accepted for compatibility: the whole file is always searched at once.
    #[serde(default)]
    #[allow(dead_code)]
    bufsize: Option<Value>,
    #[serde(default)]
    ignore_if_missing: bool,
    #[serde(default)]
    multiline: bool,
}

pub struct Search;
impl Function for Search {
    const NAME: &'static str = "file.search";
    const DOC: &'static str = "Returns True if a regular expression matches anywhere in a text file, else \
        False.\n\n\
        Keywords: flags (as for file.replace; default 8, MULTILINE), multiline (add MULTILINE to flags), \
        ignore_if_missing (return False for a missing file instead of failing), bufsize (accepted, \
        ignored).\n\n\
        CLI example: brine run '*' file.search /etc/crontab 'backup.sh'";
    const PARAMS: &'static [Param] =
        &[req("path"), req("pattern"), opt("flags"), opt("bufsize"), opt("ignore_if_missing"), opt("multiline")];
    type Args = SearchArgs;
    fn call(&self, _: &Context, a: SearchArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        let mut flags = parse_flags(a.flags.as_ref())?;
        if a.multiline {
            flags |= RE_MULTILINE;
        }
        let re = build_regex(a.pattern.as_str(), flags)?;
        let Some((_, text)) = read_for_edit(&path, a.ignore_if_missing)? else {
            return Ok(Output::ok(false));
        };
        Ok(Output::ok(re.is_match(&text)))
    }
}

pub struct SetMode;
impl Function for SetMode {
    const NAME: &'static str = "file.set_mode";
    const DOC: &'static str = "Sets the mode of a file or directory (following symlinks). Returns the new \
        mode as four octal digits (`\"0644\"`).\n\n\
        mode is the octal digits as written: 644, 0755, 4755 (give `\"0644\"` quoted or 644 so the \
        leading zero is not read as YAML octal).\n\n\
        CLI example: brine run '*' file.set_mode /etc/app.conf 640";
    const PARAMS: &'static [Param] = &[req("path"), req("mode")];
    type Args = ModeArgs;
    fn call(&self, _: &Context, a: ModeArgs) -> Result<Output, CallError> {
        set_mode(a)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsArgs {
    path: String,
    #[serde(default)]
    hash_type: Option<String>,
    #[serde(default = "yes")]
    follow_symlinks: bool,
}

fn stats(a: StatsArgs) -> Result<Output, CallError> {
    let path = abs_path(&a.path)?;
    let meta = metadata(&path, a.follow_symlinks)?;
    let time = |sec: i64, nsec: i64| Value::from(sec as f64 + nsec as f64 * 1e-9);
    let mut out = brine_proto::Map::new();
    out.insert("inode".into(), meta.ino().into());
    out.insert("uid".into(), meta.uid().into());
    out.insert("gid".into(), meta.gid().into());
    out.insert("group".into(), group_name(meta.gid()));
    out.insert("user".into(), user_name(meta.uid()));
    out.insert("atime".into(), time(meta.atime(), meta.atime_nsec()));
    out.insert("mtime".into(), time(meta.mtime(), meta.mtime_nsec()));
    out.insert("ctime".into(), time(meta.ctime(), meta.ctime_nsec()));
    out.insert("size".into(), meta.size().into());
    out.insert("mode".into(), format_mode(meta.mode()).into());
    if let Some(name) = &a.hash_type {
        let ty = hash_type(name)?;
        if meta.is_file() {
            out.insert("sum".into(), file_hash(&path, ty, 64 * 1024)?.into());
        }
    }
    out.insert("type".into(), type_name(meta.file_type()).into());
    let target = if a.follow_symlinks { fs::canonicalize(&path).unwrap_or_else(|_| path.clone()) } else { path };
    out.insert("target".into(), target.to_string_lossy().into_owned().into());
    Ok(Output::ok(Value::Object(out)))
}

const STATS_PARAMS: &[Param] = &[req("path"), opt("hash_type"), opt("follow_symlinks")];

pub struct Stat;
impl Function for Stat {
    const NAME: &'static str = "file.stat";
    const DOC: &'static str = "Returns a file's metadata: brine's alias of file.stats (Salt has only \
        file.stats), with the same keys and keywords.\n\n\
        Keywords: hash_type (add a `sum` of the contents: md5, sha1, sha224, sha256, sha384, sha512), \
        follow_symlinks (default True).\n\n\
        CLI example: brine run '*' file.stat /etc/passwd";
    const PARAMS: &'static [Param] = STATS_PARAMS;
    type Args = StatsArgs;
    fn call(&self, _: &Context, a: StatsArgs) -> Result<Output, CallError> {
        stats(a)
    }
}

pub struct Stats;
impl Function for Stats {
    const NAME: &'static str = "file.stats";
    const DOC: &'static str = "Returns a file's metadata: inode, uid, gid, group, user, atime, mtime, ctime \
        (seconds as floats), size, mode (`\"0644\"`), type (file, dir, link, char, block, pipe, socket) and \
        target (the resolved path).\n\n\
        Keywords: hash_type (add a `sum` of the contents: md5, sha1, sha224, sha256, sha384, sha512), \
        follow_symlinks (default True; with False, describe the link itself).\n\n\
        CLI example: brine run '*' file.stats /etc/passwd hash_type=sha256";
    const PARAMS: &'static [Param] = STATS_PARAMS;
    type Args = StatsArgs;
    fn call(&self, _: &Context, a: StatsArgs) -> Result<Output, CallError> {
        stats(a)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkArgs {
    src: String,
    path: String,
    #[serde(default)]
    force: bool,
    /// Accepted for compatibility: a replaced link is always swapped in atomically.
    #[serde(default)]
    #[allow(dead_code)]
    atomic: bool,
    /// Accepted for compatibility: the existing path is always examined without
    /// following it, so a dangling link counts as existing.
    #[serde(default = "yes")]
    #[allow(dead_code)]
    follow_symlinks: bool,
}

pub struct Symlink;
impl Function for Symlink {
    const NAME: &'static str = "file.symlink";
    const DOC: &'static str = "Creates a symbolic link at path pointing to src. Returns True, also when \
        the link already points there.\n\n\
        force (default False): replace an existing symlink or file at path (never a directory); the \
        new link is swapped in atomically. atomic and follow_symlinks are accepted for compatibility.\n\n\
        CLI example: brine run '*' file.symlink /etc/nginx/sites-available/app /etc/nginx/sites-enabled/app";
    const PARAMS: &'static [Param] = &[req("src"), req("path"), opt("force"), opt("atomic"), opt("follow_symlinks")];
    type Args = SymlinkArgs;
    fn call(&self, _: &Context, a: SymlinkArgs) -> Result<Output, CallError> {
        let link = abs_path_or(&a.path, "Link path must be absolute")?;
        let target = expand_user(&a.src);
        let create = |at: &Path| {
            std::os::unix::fs::symlink(&target, at)
                .map_err(|e| CallError::failed(format!("Could not create '{}': {}", link.display(), os_reason(&e))))
        };
        match fs::symlink_metadata(&link) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create(&link)?;
                return Ok(Output::ok(true));
            }
            Err(e) => return Err(io_failed("create", &link, &e)),
            Ok(m) if m.file_type().is_symlink() => {
                if fs::read_link(&link).is_ok_and(|t| t == target) {
                    return Ok(Output::ok(true));
                }
                if !a.force {
                    return Err(CallError::failed(format!("Found existing symlink: {}", link.display())));
                }
            }
            Ok(m) if m.is_dir() => {
                return Err(CallError::failed(format!(
                    "Existing path is a directory, not a symlink: {}",
                    link.display()
                )));
            }
            Ok(_) if !a.force => {
                return Err(CallError::failed(format!("Existing path is not a symlink: {}", link.display())));
            }
            Ok(_) => {}
        }
        // Replace: make the new link beside the old path, then rename it over.
        let tmp = sibling_tmp(&link);
        create(&tmp)?;
        if let Err(e) = fs::rename(&tmp, &link) {
            let _ = fs::remove_file(&tmp);
            return Err(io_failed("replace", &link, &e));
        }
        Ok(Output::ok(true))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TouchArgs {
    name: String,
    #[serde(default)]
    atime: Option<Value>,
    #[serde(default)]
    mtime: Option<Value>,
}

pub struct Touch;
impl Function for Touch {
    const NAME: &'static str = "file.touch";
    const DOC: &'static str = "Creates an empty file if it does not exist, and sets its access and \
        modification times (like touch(1)). Returns True.\n\n\
        Keywords: atime, mtime (seconds since the epoch, integers; each defaults to now).\n\n\
        CLI example: brine run '*' file.touch /var/log/app.log mtime=1700000000";
    const PARAMS: &'static [Param] = &[req("name"), opt("atime"), opt("mtime")];
    type Args = TouchArgs;
    fn call(&self, _: &Context, a: TouchArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.name)?;
        let when = |v: &Option<Value>| match v {
            None | Some(Value::Null) => Ok(TimeSpec::UTIME_NOW),
            Some(Value::Number(n)) if n.is_i64() => Ok(TimeSpec::new(n.as_i64().unwrap_or(0), 0)),
            Some(_) => Err(CallError::failed("atime and mtime must be integers")),
        };
        let (atime, mtime) = (when(&a.atime)?, when(&a.mtime)?);
        if fs::symlink_metadata(&path).is_err() {
            fs::OpenOptions::new().append(true).create(true).open(&path).map_err(|e| io_failed("create", &path, &e))?;
        }
        utimensat(None, &path, &atime, &mtime, UtimensatFlags::FollowSymlink)
            .map_err(|e| CallError::failed(format!("Cannot set the times of {}: {}", path.display(), e.desc())))?;
        Ok(Output::ok(true))
    }
}

pub struct WriteFile;
impl Function for WriteFile {
    const NAME: &'static str = "file.write";
    const DOC: &'static str = "Writes lines to a file, replacing what was there (the file is created if \
        missing; its directory must exist). Each line is followed by a newline. Returns `Wrote N lines to \
        \"path\"`.\n\n\
        Takes no keywords: every argument after the path is one line.\n\n\
        CLI example: brine run '*' file.write /etc/motd 'Welcome' 'Managed by brine'";
    const PARAMS: &'static [Param] = &[req("path")];
    const VARARGS: bool = true;
    type Args = LinesArgs;
    fn call(&self, _: &Context, a: LinesArgs) -> Result<Output, CallError> {
        let path = abs_path(&a.path)?;
        let text: String = a.args.iter().map(|l| line_text(l) + "\n").collect();
        fs::write(&path, text).map_err(|e| io_failed("write", &path, &e))?;
        Ok(Output::ok(format!("Wrote {} lines to \"{}\"", a.args.len(), path.display())))
    }
}

/// The `file` execution module.
pub static MODULE: super::Module = super::Module {
    name: "file",
    doc: "Inspect and change files: contents, hashes, owners, modes, links and searches.",
    functions: &[
        &Append,
        &CheckHash,
        &Chmod,
        &Chown,
        &CopyFile,
        &DirectoryExists,
        &FileExists,
        &Find,
        &GetGid,
        &GetGroup,
        &GetHash,
        &GetMode,
        &GetUid,
        &GetUser,
        &Mkdir,
        &ReadFile,
        &Readlink,
        &Remove,
        &Rename,
        &Replace,
        &Search,
        &SetMode,
        &Stat,
        &Stats,
        &Symlink,
        &Touch,
        &WriteFile,
    ],
};

/// Unified diffs laid out exactly like Python's `difflib.unified_diff` with empty
/// file names (which is what Salt's `file.replace` returns): the same matching
/// algorithm (longest matching block first, popular lines ignored in long files), the
/// same hunks with three lines of context, the same `@@` ranges.
pub(crate) mod diff {
    use std::collections::HashMap;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Tag {
        Equal,
        Replace,
        Delete,
        Insert,
    }

    #[derive(Debug, Clone, Copy)]
    struct Op {
        tag: Tag,
        a1: usize,
        a2: usize,
        b1: usize,
        b2: usize,
    }

    struct Matcher<'a> {
        a: &'a [&'a str],
        b: &'a [&'a str],
        /// Where each line of `b` occurs, without the very common ones.
        b2j: HashMap<&'a str, Vec<usize>>,
    }

    impl<'a> Matcher<'a> {
        fn new(a: &'a [&'a str], b: &'a [&'a str]) -> Matcher<'a> {
            let mut b2j: HashMap<&str, Vec<usize>> = HashMap::new();
            for (j, line) in b.iter().enumerate() {
                b2j.entry(line).or_default().push(j);
            }
            if b.len() >= 200 {
                let most = b.len() / 100 + 1;
                b2j.retain(|_, js| js.len() <= most);
            }
            Matcher { a, b, b2j }
        }

        /// The longest run of equal lines in `a[alo..ahi]` and `b[blo..bhi]`, earliest first.
        fn longest_match(&self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> (usize, usize, usize) {
            let (mut besti, mut bestj, mut size) = (alo, blo, 0);
            let mut run: HashMap<usize, usize> = HashMap::new();
            for i in alo..ahi {
                let mut next = HashMap::new();
                for &j in self.b2j.get(self.a[i]).map(Vec::as_slice).unwrap_or(&[]) {
                    if j < blo {
                        continue;
                    }
                    if j >= bhi {
                        break;
                    }
                    let k = j.checked_sub(1).and_then(|p| run.get(&p)).copied().unwrap_or(0) + 1;
                    next.insert(j, k);
                    if k > size {
                        (besti, bestj, size) = (i + 1 - k, j + 1 - k, k);
                    }
                }
                run = next;
            }
            // Grow the match over equal popular lines that were left out of b2j.
            while besti > alo && bestj > blo && self.a[besti - 1] == self.b[bestj - 1] {
                (besti, bestj, size) = (besti - 1, bestj - 1, size + 1);
            }
            while besti + size < ahi && bestj + size < bhi && self.a[besti + size] == self.b[bestj + size] {
                size += 1;
            }
            (besti, bestj, size)
        }

        fn matching_blocks(&self) -> Vec<(usize, usize, usize)> {
            let (la, lb) = (self.a.len(), self.b.len());
            let mut queue = vec![(0, la, 0, lb)];
            let mut blocks = Vec::new();
            while let Some((alo, ahi, blo, bhi)) = queue.pop() {
                let (i, j, k) = self.longest_match(alo, ahi, blo, bhi);
                if k > 0 {
                    blocks.push((i, j, k));
                    if alo < i && blo < j {
                        queue.push((alo, i, blo, j));
                    }
                    if i + k < ahi && j + k < bhi {
                        queue.push((i + k, ahi, j + k, bhi));
                    }
                }
            }
            blocks.sort_unstable();
            let mut merged: Vec<(usize, usize, usize)> = Vec::new();
            for (i, j, k) in blocks {
                match merged.last_mut() {
                    Some(last) if last.0 + last.2 == i && last.1 + last.2 == j => last.2 += k,
                    _ => merged.push((i, j, k)),
                }
            }
            merged.push((la, lb, 0));
            merged
        }

        fn opcodes(&self) -> Vec<Op> {
            let (mut i, mut j) = (0, 0);
            let mut ops = Vec::new();
            for (ai, bj, size) in self.matching_blocks() {
                let tag = match (i < ai, j < bj) {
                    (true, true) => Some(Tag::Replace),
                    (true, false) => Some(Tag::Delete),
                    (false, true) => Some(Tag::Insert),
                    (false, false) => None,
                };
                if let Some(tag) = tag {
                    ops.push(Op { tag, a1: i, a2: ai, b1: j, b2: bj });
                }
                (i, j) = (ai + size, bj + size);
                if size > 0 {
                    ops.push(Op { tag: Tag::Equal, a1: ai, a2: i, b1: bj, b2: j });
                }
            }
            ops
        }
    }

    /// Splits the changes into hunks with `n` lines of context around each.
    fn grouped(mut ops: Vec<Op>, n: usize) -> Vec<Vec<Op>> {
        if ops.is_empty() {
            ops.push(Op { tag: Tag::Equal, a1: 0, a2: 1, b1: 0, b2: 1 });
        }
        if let Some(first) = ops.first_mut().filter(|o| o.tag == Tag::Equal) {
            first.a1 = first.a1.max(first.a2.saturating_sub(n));
            first.b1 = first.b1.max(first.b2.saturating_sub(n));
        }
        if let Some(last) = ops.last_mut().filter(|o| o.tag == Tag::Equal) {
            last.a2 = last.a2.min(last.a1 + n);
            last.b2 = last.b2.min(last.b1 + n);
        }
        let mut groups = Vec::new();
        let mut group = Vec::new();
        for op in ops {
            if op.tag == Tag::Equal && op.a2 - op.a1 > 2 * n {
                group.push(Op { a2: op.a2.min(op.a1 + n), b2: op.b2.min(op.b1 + n), ..op });
                groups.push(std::mem::take(&mut group));
                group.push(Op { a1: op.a1.max(op.a2.saturating_sub(n)), b1: op.b1.max(op.b2.saturating_sub(n)), ..op });
            } else {
                group.push(op);
            }
        }
        if !(group.is_empty() || group.len() == 1 && group[0].tag == Tag::Equal) {
            groups.push(group);
        }
        groups
    }

    /// `start,length` of a hunk side, as difflib writes it.
    fn range(start: usize, stop: usize) -> String {
        match stop - start {
            1 => format!("{}", start + 1),
            0 => format!("{start},0"),
            len => format!("{},{len}", start + 1),
        }
    }

    /// The diff from `old` to `new`, empty when they are equal. Lines keep their
    /// endings; a last line without one runs into the next diff line, as in difflib.
    pub fn unified(old: &str, new: &str) -> String {
        let a: Vec<&str> = old.split_inclusive('\n').collect();
        let b: Vec<&str> = new.split_inclusive('\n').collect();
        let groups = grouped(Matcher::new(&a, &b).opcodes(), 3);
        let mut out = String::new();
        for group in groups {
            if out.is_empty() {
                out.push_str("--- \n+++ \n");
            }
            let (first, last) = (group[0], group[group.len() - 1]);
            out.push_str(&format!("@@ -{} +{} @@\n", range(first.a1, last.a2), range(first.b1, last.b2)));
            for op in group {
                let mut emit = |mark: char, lines: &[&str]| {
                    for line in lines {
                        out.push(mark);
                        out.push_str(line);
                    }
                };
                match op.tag {
                    Tag::Equal => emit(' ', &a[op.a1..op.a2]),
                    Tag::Delete => emit('-', &a[op.a1..op.a2]),
                    Tag::Insert => emit('+', &b[op.b1..op.b2]),
                    Tag::Replace => {
                        emit('-', &a[op.a1..op.a2]);
                        emit('+', &b[op.b1..op.b2]);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::exec::{call, Context};
    use brine_proto::args::parse_cli_args;
    use brine_proto::Value;
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    /// Calls `fun` with command-line words, typed and bound as `brine run` does.
    fn run(fun: &str, words: &[&str]) -> Result<Value, String> {
        let (args, kwargs) = parse_cli_args(words);
        call(fun, &Context::default(), args, kwargs).map(|out| out.ret).map_err(|e| e.to_string())
    }

    fn ok(fun: &str, words: &[&str]) -> Value {
        run(fun, words).unwrap_or_else(|e| panic!("{fun} {words:?} failed: {e}"))
    }

    fn err(fun: &str, words: &[&str]) -> String {
        match run(fun, words) {
            Ok(v) => panic!("{fun} {words:?} should fail, returned {v}"),
            Err(e) => e,
        }
    }

    fn s(p: &Path) -> String {
        p.to_str().expect("temp paths are UTF-8").to_string()
    }

    fn is_root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    #[test]
    fn exists_functions_follow_symlinks_and_do_not_fail() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("link")).unwrap();
        let (d, f, l, nope) = (s(dir.path()), s(&file), s(&dir.path().join("link")), s(&dir.path().join("nope")));
        assert_eq!(ok("file.file_exists", &[&f]), json!(true));
        assert_eq!(ok("file.file_exists", &[&l]), json!(true));
        assert_eq!(ok("file.file_exists", &[&d]), json!(false));
        assert_eq!(ok("file.file_exists", &[&nope]), json!(false));
        assert_eq!(ok("file.directory_exists", &[&d]), json!(true));
        assert_eq!(ok("file.directory_exists", &[&f]), json!(false));
        assert_eq!(err("file.file_exists", &["relative/path"]), "File path must be absolute: relative/path");
    }

    #[test]
    fn write_replaces_and_append_adds_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = s(&dir.path().join("motd"));
        assert_eq!(ok("file.write", &[&p, "line1", "line2"]), json!(format!("Wrote 2 lines to \"{p}\"")));
        assert_eq!(fs::read_to_string(&p).unwrap(), "line1\nline2\n");
        // Typed words are written as Salt's str() prints them.
        ok("file.write", &[&p, "5", "true", "hello world"]);
        assert_eq!(fs::read_to_string(&p).unwrap(), "5\nTrue\nhello world\n");
        ok("file.write", &[&p]);
        assert_eq!(fs::read_to_string(&p).unwrap(), "");

        fs::write(&p, "no newline").unwrap();
        assert_eq!(ok("file.append", &[&p, "a", "b"]), json!(format!("Wrote 2 lines to \"{p}\"")));
        assert_eq!(fs::read_to_string(&p).unwrap(), "no newline\na\nb\n");
        ok("file.append", &[&p, "c"]);
        assert_eq!(fs::read_to_string(&p).unwrap(), "no newline\na\nb\nc\n");

        let missing = s(&dir.path().join("missing"));
        assert_eq!(
            err("file.append", &[&missing, "x"]),
            format!("Cannot append to {missing}: No such file or directory")
        );
        assert!(!Path::new(&missing).exists(), "append must not create the file");
        let nodir = s(&dir.path().join("nodir/file"));
        assert_eq!(err("file.write", &[&nodir, "x"]), format!("Cannot write {nodir}: No such file or directory"));
    }

    #[test]
    fn read_returns_text_or_python_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, "hello\nworld\n").unwrap();
        assert_eq!(ok("file.read", &[&s(&p)]), json!("hello\nworld\n"));
        assert_eq!(ok("file.read", &[&s(&p), "binary=True"]), json!("b'hello\\nworld\\n'"));
        fs::write(&p, b"it's\xff\0").unwrap();
        assert_eq!(ok("file.read", &[&s(&p), "binary=True"]), json!("b\"it's\\xff\\x00\""));
        assert!(err("file.read", &[&s(&p)]).contains("not UTF-8 text"));
        let d = s(dir.path());
        assert_eq!(err("file.read", &[&d]), format!("Cannot read {d}: Is a directory"));
        let nope = s(&dir.path().join("nope"));
        assert_eq!(err("file.read", &[&nope]), format!("Cannot read {nope}: No such file or directory"));
    }

    #[test]
    fn touch_creates_and_sets_times() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        assert_eq!(ok("file.touch", &[&s(&p)]), json!(true));
        assert_eq!(fs::read(&p).unwrap(), b"");
        ok("file.touch", &[&s(&p), "atime=1000", "mtime=2000"]);
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.atime(), m.mtime()), (1000, 2000));
        // The time not given becomes now.
        ok("file.touch", &[&s(&p), "mtime=3000"]);
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.mtime(), 3000);
        assert!(m.atime() > 1_600_000_000);
        fs::write(&p, "kept").unwrap();
        ok("file.touch", &[&s(&p)]);
        assert_eq!(fs::read_to_string(&p).unwrap(), "kept", "touch must not truncate");
        assert_eq!(err("file.touch", &[&s(&p), "atime=soon"]), "atime and mtime must be integers");
        let nodir = s(&dir.path().join("nodir/t"));
        assert_eq!(err("file.touch", &[&nodir]), format!("Cannot create {nodir}: No such file or directory"));
    }

    #[test]
    fn remove_deletes_files_trees_and_links_but_not_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/f"), "x").unwrap();
        let target = dir.path().join("target");
        fs::create_dir(&target).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(ok("file.remove", &[&s(&tree)]), json!(true));
        assert!(!tree.exists());
        assert_eq!(ok("file.remove", &[&s(&link)]), json!(true));
        assert!(fs::symlink_metadata(&link).is_err() && target.is_dir());
        assert_eq!(ok("file.remove", &[&s(&tree)]), json!(false));
        assert_eq!(err("file.remove", &["tmp/x"]), "File path must be absolute: tmp/x");
    }

    #[test]
    fn mkdir_creates_parents_with_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        assert_eq!(ok("file.mkdir", &[&s(&deep), "mode=750"]), json!(true));
        for d in [dir.path().join("a"), dir.path().join("a/b"), deep.clone()] {
            assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o750, "{}", d.display());
        }
        // An existing directory is fine and left alone.
        assert_eq!(ok("file.mkdir", &[&s(&deep), "mode=700"]), json!(true));
        assert_eq!(fs::metadata(&deep).unwrap().mode() & 0o7777, 0o750);

        let bad = dir.path().join("bad");
        assert_eq!(err("file.mkdir", &[&s(&bad), "no-such-user-here"]), "User no-such-user-here does not exist");
        assert!(!bad.exists(), "nothing is created when an argument is wrong");
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert_eq!(err("file.mkdir", &[&s(&file)]), format!("Cannot create directory {}: File exists", s(&file)));

        if is_root() {
            let owned = dir.path().join("owned/sub");
            ok("file.mkdir", &[&s(&owned), "4242", "4343", "700"]);
            for d in [dir.path().join("owned"), owned] {
                let m = fs::metadata(&d).unwrap();
                assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (4242, 4343, 0o700));
            }
        }
    }

    #[test]
    fn copy_files_and_trees() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("f1"), "1").unwrap();
        fs::set_permissions(src.join("f1"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(src.join("sub/f2"), "2").unwrap();
        std::os::unix::fs::symlink("f1", src.join("link")).unwrap();

        let c = dir.path().join("c");
        assert_eq!(ok("file.copy", &[&s(&src.join("f1")), &s(&c)]), json!(true));
        assert_eq!(fs::read_to_string(&c).unwrap(), "1");
        assert_eq!(fs::metadata(&c).unwrap().mode() & 0o777, 0o600);

        let dst = dir.path().join("dst");
        let e = err("file.copy", &[&s(&src), &s(&dst)]);
        assert!(e.contains("without recurse flag set to true") && e.contains(&s(&src)), "{e}");
        assert_eq!(ok("file.copy", &[&s(&src), &s(&dst), "recurse=True"]), json!(true));
        assert_eq!(fs::read_to_string(dst.join("sub/f2")).unwrap(), "2");
        assert_eq!(fs::read_link(dst.join("link")).unwrap(), Path::new("f1"));
        // Copying again merges; remove_existing makes dst exactly src.
        fs::write(dst.join("extra"), "x").unwrap();
        ok("file.copy", &[&s(&src), &s(&dst), "recurse=True"]);
        assert!(dst.join("extra").exists());
        ok("file.copy", &[&s(&src), &s(&dst), "recurse=True", "remove_existing=True"]);
        assert!(!dst.join("extra").exists() && dst.join("f1").exists());

        // A directory reached through a symlink is copied as a directory.
        let via = dir.path().join("via");
        std::os::unix::fs::symlink(&src, &via).unwrap();
        let dst2 = dir.path().join("dst2");
        ok("file.copy", &[&s(&via), &s(&dst2), "recurse=True"]);
        assert!(fs::symlink_metadata(&dst2).unwrap().is_dir());
        assert_eq!(fs::read_to_string(dst2.join("f1")).unwrap(), "1");

        let e = err("file.copy", &[&s(&src.join("f1")), &s(&dst)]);
        assert!(e.contains("without recurse flag") && e.contains(&s(&dst)), "{e}");
        let e = err("file.copy", &[&s(&src), &s(&src.join("sub/inner")), "recurse=True"]);
        assert!(e.contains("into itself"), "{e}");
        let nope = s(&dir.path().join("nope"));
        assert_eq!(err("file.copy", &[&nope, &s(&c)]), format!("No such file or directory '{nope}'"));
    }

    #[test]
    fn rename_moves_and_names_both_paths_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "x").unwrap();
        assert_eq!(ok("file.rename", &[&s(&a), &s(&b)]), json!(true));
        assert_eq!(fs::read_to_string(&b).unwrap(), "x");
        assert!(!a.exists());
        assert_eq!(
            err("file.rename", &[&s(&a), &s(&b)]),
            format!("Could not rename '{}' to '{}': No such file or directory", s(&a), s(&b))
        );
    }

    #[test]
    fn stats_has_salts_keys_in_salts_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        fs::write(&p, "hello\nworld\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("a.txt", &link).unwrap();
        let meta = fs::metadata(&p).unwrap();

        let st = ok("file.stats", &[&s(&link), "hash_type=md5"]);
        let keys: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "inode", "uid", "gid", "group", "user", "atime", "mtime", "ctime", "size", "mode", "sum", "type",
                "target"
            ]
        );
        assert_eq!(st["inode"], json!(meta.ino()));
        assert_eq!(st["size"], json!(12));
        assert_eq!(st["mode"], json!("0640"));
        assert_eq!(st["sum"], json!("0f723ae7f9bf07744445e93ac5595156"));
        assert_eq!(st["type"], json!("file"));
        assert_eq!(st["target"], json!(s(&fs::canonicalize(&p).unwrap())));
        assert_eq!(st["mtime"].as_f64().unwrap().floor() as i64, meta.mtime());
        assert_eq!(st["uid"], json!(meta.uid()));

        let own = ok("file.stats", &[&s(&link), "follow_symlinks=False"]);
        assert_eq!((own["type"].clone(), own["mode"].clone()), (json!("link"), json!("0777")));
        assert_eq!(own["target"], json!(s(&link)));
        assert!(own.get("sum").is_none());
        assert_eq!(ok("file.stat", &[&s(dir.path())])["type"], json!("dir"));
        let nope = s(&dir.path().join("nope"));
        assert_eq!(err("file.stats", &[&nope]), format!("Path not found: {nope}"));
    }

    #[test]
    fn mode_and_owner_getters() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, "").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(ok("file.get_mode", &[&s(&link)]), json!("4755"));
        assert_eq!(ok("file.get_mode", &[&s(&link), "follow_symlinks=False"]), json!("0777"));
        let m = fs::metadata(&p).unwrap();
        assert_eq!(ok("file.get_uid", &[&s(&p)]), json!(m.uid()));
        assert_eq!(ok("file.get_gid", &[&s(&p)]), json!(m.gid()));
        let nope = s(&dir.path().join("nope"));
        for fun in ["file.get_mode", "file.get_user", "file.get_group", "file.get_uid", "file.get_gid"] {
            assert_eq!(err(fun, &[&nope]), format!("Path not found: {nope}"), "{fun}");
        }
        if is_root() {
            std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
            assert_eq!(ok("file.get_user", &[&s(&p)]), json!("root"));
            assert_eq!(ok("file.get_group", &[&s(&p)]), json!("root"));
            // An id nobody has comes back as the number.
            std::os::unix::fs::chown(&p, Some(54321), Some(54322)).unwrap();
            assert_eq!(ok("file.get_user", &[&s(&p)]), json!(54321));
            assert_eq!(ok("file.get_group", &[&s(&p)]), json!(54322));
        }
    }

    #[test]
    fn hashes_match_salts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        fs::write(&p, "hello\nworld\n").unwrap();
        let p = s(&p);
        let expected = [
            ("md5", "0f723ae7f9bf07744445e93ac5595156"),
            ("sha1", "58853e8a5e8272b1012f9a52a80758b27bd0d3cb"),
            ("sha224", "7822a099e18232ae3ad0a76a5ef5c5810f8e0a392fd8272e664380e4"),
            ("sha256", "4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92"),
            (
                "sha384",
                "96ac6e7831767ba8072ce8e0da5301b725e4660926dd127b454d33524cf6818d164ada5a10d4a9bb3b83c6ec56f5460e",
            ),
            (
                "sha512",
                "595beeb13e543b7107c182bb23ac7766bd62ab3122e250e90573eb540f89520122150e5f69bb99140bc47ab526c9b7b2a3b2402b09b44b7391501a149876765c",
            ),
        ];
        for (form, digest) in expected {
            assert_eq!(ok("file.get_hash", &[&p, form]), json!(digest), "{form}");
            assert_eq!(ok("file.get_hash", &[&p, &format!("form={form}"), "chunk_size=3"]), json!(digest), "{form}");
            assert_eq!(ok("file.check_hash", &[&p, digest]), json!(true), "{form}");
            assert_eq!(ok("file.check_hash", &[&p, &format!("{form}:{digest}")]), json!(true), "{form}");
        }
        assert_eq!(ok("file.get_hash", &[&p]), json!(expected[3].1), "sha256 by default");
        assert_eq!(ok("file.check_hash", &[&p, "0f723ae7f9bf07744445e93ac5595157"]), json!(false));
        assert_eq!(ok("file.check_hash", &[&p, "md5:0F723AE7F9BF07744445E93AC5595156"]), json!(true));
        assert_eq!(ok("file.check_hash", &[&p, "file_hash=md5=0f723ae7f9bf07744445e93ac5595156"]), json!(true));
        assert_eq!(err("file.get_hash", &[&p, "bogus"]), "Invalid hash type: bogus");
        assert_eq!(
            err("file.check_hash", &[&p, "abc"]),
            "Hash abc (length: 3) could not be matched to a supported hash type. The supported hash types and \
             lengths are: md5 (32), sha1 (40), sha224 (56), sha256 (64), sha384 (96), sha512 (128)."
        );
        let d = s(dir.path());
        assert_eq!(err("file.get_hash", &[&d]), format!("Cannot read {d}: Is a directory"));
    }

    #[test]
    fn set_mode_reads_octal_digits_and_returns_the_new_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, "").unwrap();
        let mode = || fs::metadata(&p).unwrap().mode() & 0o7777;
        assert_eq!(ok("file.set_mode", &[&s(&p), "640"]), json!("0640"));
        assert_eq!(mode(), 0o640);
        assert_eq!(ok("file.set_mode", &[&s(&p), "\"0750\""]), json!("0750"));
        assert_eq!(mode(), 0o750);
        assert_eq!(ok("file.chmod", &[&s(&p), "4755"]), json!("4755"));
        assert_eq!(mode(), 0o4755);
        assert_eq!(ok("file.chmod", &[&s(&p), "mode=0"]), json!("0000"));
        assert_eq!(err("file.set_mode", &[&s(&p), "999"]), "Invalid Mode 999");
        assert_eq!(err("file.set_mode", &[&s(&p), "rwx"]), "Invalid Mode rwx");
        assert_eq!(mode(), 0, "a bad mode changes nothing");
        let nope = s(&dir.path().join("nope"));
        assert_eq!(err("file.set_mode", &[&nope, "644"]), format!("{nope}: File not found"));
    }

    #[test]
    fn chown_changes_owner_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, "").unwrap();
        let nope = s(&dir.path().join("nope"));
        assert_eq!(err("file.chown", &[&nope, "root", "root"]), format!("File {nope} does not exist"));
        assert_eq!(err("file.chown", &[&s(&p), "no-such-user-here", "root"]), "User no-such-user-here does not exist");
        assert_eq!(
            err("file.chown", &[&s(&p), "root", "no-such-group-here"]),
            "Group no-such-group-here does not exist"
        );
        if !is_root() {
            return;
        }
        let owner = || {
            let m = fs::metadata(&p).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(ok("file.chown", &[&s(&p), "4242", "4343"]), Value::Null);
        assert_eq!(owner(), (4242, 4343));
        ok("file.chown", &[&s(&p), "root", "''"]);
        assert_eq!(owner(), (0, 4343), "an empty group leaves it");
        ok("file.chown", &[&s(&p), "''", "root"]);
        assert_eq!(owner(), (0, 0));
    }

    const CONF: &str = "foo=1\nbar=2\nfoo=3\n";

    #[test]
    fn replace_returns_salts_diff_and_keeps_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conf");
        fs::write(&p, CONF).unwrap();
        let p = s(&p);
        let diff = ok("file.replace", &[&p, "^foo=.*$", "repl=foo=9"]);
        assert_eq!(diff, json!("--- \n+++ \n@@ -1,3 +1,3 @@\n-foo=1\n+foo=9\n bar=2\n-foo=3\n+foo=9\n"));
        assert_eq!(fs::read_to_string(&p).unwrap(), "foo=9\nbar=2\nfoo=9\n");
        assert_eq!(fs::read_to_string(format!("{p}.bak")).unwrap(), CONF);
        // Nothing left to change: an empty diff, and the backup is not overwritten.
        assert_eq!(ok("file.replace", &[&p, "^foo=.*$", "repl=foo=9"]), json!(""));
        assert_eq!(fs::read_to_string(format!("{p}.bak")).unwrap(), CONF);
        assert_eq!(ok("file.replace", &[&p, "bar", "baz", "show_changes=False"]), json!(true));
        assert_eq!(ok("file.replace", &[&p, "nomatch", "x", "show_changes=False"]), json!(false));
        assert_eq!(fs::read_to_string(&p).unwrap(), "foo=9\nbaz=2\nfoo=9\n");
    }

    #[test]
    fn replace_count_dry_run_groups_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf");
        fs::write(&path, CONF).unwrap();
        let p = s(&path);
        let diff = ok("file.replace", &[&p, "foo", "FOO", "count=1", "dry_run=True"]);
        assert_eq!(diff, json!("--- \n+++ \n@@ -1,3 +1,3 @@\n-foo=1\n+FOO=1\n bar=2\n foo=3\n"));
        assert_eq!(fs::read_to_string(&path).unwrap(), CONF, "dry_run changes nothing");
        assert!(!Path::new(&format!("{p}.bak")).exists());

        ok("file.replace", &[&p, "^foo=(?P<v>.*)$", r"repl=\g<v> is \1\\", "backup=False"]);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1 is 1\\\nbar=2\n3 is 3\\\n");
        assert!(!Path::new(&format!("{p}.bak")).exists(), "backup=False");
        ok("file.replace", &[&p, "pattern=BAR=(.)", r"repl=\1\n", "flags=[IGNORECASE]", "backup=False"]);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1 is 1\\\n2\n\n3 is 3\\\n");
        // A pattern may span lines: the whole file is one text.
        ok("file.replace", &[&p, r"2\n\n3", "repl=X", "backup=False"]);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1 is 1\\\nX is 3\\\n");
        ok("file.replace", &[&p, "^X", r"repl=\1", "backslash_literal=True", "backup=False"]);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1 is 1\\\n\\1 is 3\\\n");

        assert!(err("file.replace", &[&p, "(", "repl=x"]).starts_with("Invalid regular expression '('"));
        assert!(err("file.replace", &[&p, "x", r"repl=\q"]).contains(r"bad escape \q"));
        assert!(err("file.replace", &[&p, "x", r"repl=\2"]).contains("invalid group reference 2"));
        assert_eq!(err("file.replace", &[&p, "x", "y", "flags=[NOSUCH]"]), "Invalid re flag: NOSUCH");
    }

    #[test]
    fn replace_appends_or_prepends_once_when_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf");
        fs::write(&path, CONF).unwrap();
        let p = s(&path);
        let diff = ok("file.replace", &[&p, "^baz=.*", "repl=baz=5", "append_if_not_found=True"]);
        assert_eq!(diff, json!("--- \n+++ \n@@ -1,3 +1,4 @@\n foo=1\n bar=2\n foo=3\n+baz=5\n"));
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{CONF}baz=5\n"));
        // Converged: the line matches the pattern now.
        assert_eq!(ok("file.replace", &[&p, "^baz=.*", "repl=baz=5", "append_if_not_found=True"]), json!(""));
        // A pattern that never matches the added line still adds it only once.
        assert_eq!(ok("file.replace", &[&p, "^qux", "repl=baz=5", "append_if_not_found=True"]), json!(""));

        fs::write(&path, CONF).unwrap();
        let diff = ok("file.replace", &[&p, "^baz=.*", "repl=baz=5", "prepend_if_not_found=True", "backup=False"]);
        assert_eq!(diff, json!("--- \n+++ \n@@ -1,3 +1,4 @@\n+baz=5\n foo=1\n bar=2\n foo=3\n"));
        fs::write(&path, CONF).unwrap();
        ok(
            "file.replace",
            &[&p, "^baz=(.*)", r"repl=baz=\1", "append_if_not_found=True", "not_found_content=baz=7", "backup=False"],
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{CONF}baz=7\n"));

        // A last line without a newline runs into the next diff line, as in Salt.
        fs::write(&path, "a=1").unwrap();
        let diff = ok("file.replace", &[&p, "^b=.*", "repl=b=5", "append_if_not_found=True", "backup=False"]);
        assert_eq!(diff, json!("--- \n+++ \n@@ -1 +1,2 @@\n-a=1+a=1\n+b=5\n"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "a=1\nb=5\n");
        let e = err("file.replace", &[&p, "x", "y", "append_if_not_found=True", "prepend_if_not_found=True"]);
        assert!(e.starts_with("Only one of"), "{e}");
    }

    #[test]
    fn replace_edits_in_place_or_through_a_new_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf");
        let hard = dir.path().join("hardlink");
        fs::write(&path, CONF).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::hard_link(&path, &hard).unwrap();
        let p = s(&path);
        let inode = fs::metadata(&path).unwrap().ino();
        ok("file.replace", &[&p, "bar", "BAR", "backup=False"]);
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
        assert_eq!(fs::read_to_string(&hard).unwrap(), "foo=1\nBAR=2\nfoo=3\n", "hard links see the edit");
        ok("file.replace", &[&p, "BAR", "bar", "backup=False", "preserve_inode=False"]);
        let meta = fs::metadata(&path).unwrap();
        assert_ne!(meta.ino(), inode);
        assert_eq!(meta.mode() & 0o777, 0o600, "the new file keeps the mode");
        assert_eq!(fs::read_to_string(&path).unwrap(), CONF);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file is left behind");

        // A symlink is followed: the target is edited and backed up beside it.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        ok("file.replace", &[&s(&link), "bar", "BAR"]);
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&path).unwrap(), "foo=1\nBAR=2\nfoo=3\n");
        assert_eq!(fs::read_to_string(format!("{p}.bak")).unwrap(), CONF);
    }

    #[test]
    fn replace_and_search_refuse_missing_and_binary_files() {
        let dir = tempfile::tempdir().unwrap();
        let nope = s(&dir.path().join("nope"));
        assert_eq!(err("file.replace", &[&nope, "a", "b"]), format!("File not found: {nope}"));
        assert_eq!(ok("file.replace", &[&nope, "a", "b", "ignore_if_missing=True"]), json!(false));
        assert_eq!(err("file.search", &[&nope, "a"]), format!("File not found: {nope}"));
        assert_eq!(ok("file.search", &[&nope, "a", "ignore_if_missing=True"]), json!(false));
        let bin = dir.path().join("bin");
        fs::write(&bin, b"a\0b").unwrap();
        assert_eq!(
            err("file.replace", &[&s(&bin), "a", "b"]),
            format!("Cannot perform string replacements on a binary file: {}", s(&bin))
        );
        assert!(err("file.search", &[&s(dir.path()), "a"]).contains("not a regular file"));
    }

    #[test]
    fn search_matches_like_salt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        fs::write(&path, "hello world\nfoo\n").unwrap();
        let p = s(&path);
        assert_eq!(ok("file.search", &[&p, "world"]), json!(true));
        assert_eq!(ok("file.search", &[&p, "^world"]), json!(false));
        assert_eq!(ok("file.search", &[&p, "world$"]), json!(true), "MULTILINE by default");
        assert_eq!(ok("file.search", &[&p, "HELLO"]), json!(false));
        assert_eq!(ok("file.search", &[&p, "HELLO", "flags=2"]), json!(true));
        assert_eq!(ok("file.search", &[&p, r"world\nfoo"]), json!(true));
        assert_eq!(ok("file.search", &[&p, "world.foo"]), json!(false));
        assert_eq!(ok("file.search", &[&p, "world.foo", "flags=[DOTALL]"]), json!(true));
        assert_eq!(ok("file.replace", &[&p, "foo", "x", "search_only=True"]), json!(true));
        assert_eq!(fs::read_to_string(&path).unwrap(), "hello world\nfoo\n");
    }

    /// The tree Salt's `file.find` outputs were captured on.
    fn find_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let ft = dir.path();
        fs::create_dir_all(ft.join("a/b/c")).unwrap();
        for f in ["x.txt", "a/y.txt", "a/b/z.log", "a/b/c/w.txt"] {
            fs::write(ft.join(f), "").unwrap();
        }
        std::os::unix::fs::symlink("x.txt", ft.join("l.txt")).unwrap();
        std::os::unix::fs::symlink("a", ft.join("adir")).unwrap();
        dir
    }

    fn found(root: &Path, words: &[&str]) -> Vec<String> {
        let r = s(root);
        let mut all = vec![r.as_str()];
        all.extend_from_slice(words);
        let v = ok("file.find", &all);
        v.as_array().unwrap().iter().map(|p| p.as_str().unwrap().strip_prefix(&r).unwrap().to_string()).collect()
    }

    #[test]
    fn find_filters_by_name_depth_and_type() {
        let dir = find_tree();
        let root = dir.path();
        assert_eq!(
            found(root, &[]),
            ["", "/a", "/a/b", "/a/b/c", "/a/b/c/w.txt", "/a/b/z.log", "/a/y.txt", "/adir", "/l.txt", "/x.txt"]
        );
        assert_eq!(found(root, &["name=*.txt"]), ["/a/b/c/w.txt", "/a/y.txt", "/l.txt", "/x.txt"]);
        assert_eq!(found(root, &["name=[xy].txt"]), ["/a/y.txt", "/x.txt"]);
        assert_eq!(found(root, &["iname=*.TXT", "maxdepth=1"]), ["/l.txt", "/x.txt"]);
        assert_eq!(found(root, &["regex=y"]), ["/a/y.txt"]);
        assert_eq!(found(root, &["regex=txt"]), Vec::<String>::new(), "a regex matches from the start");
        assert_eq!(found(root, &["maxdepth=1"]), ["", "/a", "/adir", "/l.txt", "/x.txt"]);
        assert_eq!(found(root, &["mindepth=2", "maxdepth=2"]), ["/a/b", "/a/y.txt"]);
        assert_eq!(found(root, &["maxdepth=0"]), [""]);
        // Like find(1): symlinks are their own type and are not followed.
        assert_eq!(found(root, &["type=f"]), ["/a/b/c/w.txt", "/a/b/z.log", "/a/y.txt", "/x.txt"]);
        assert_eq!(found(root, &["type=d"]), ["", "/a", "/a/b", "/a/b/c"]);
        assert_eq!(found(root, &["type=l"]), ["/adir", "/l.txt"]);
        assert_eq!(found(root, &["type=f,l", "name=x*"]), ["/x.txt"]);
        assert_eq!(found(root, &["type=a"]).len(), 10);

        let r = format!("{}/", s(root));
        assert_eq!(ok("file.find", &[&r, "name=*.log"]), json!([format!("{}/a/b/z.log", s(root))]));
        assert_eq!(ok("file.find", &[&s(&root.join("nope"))]), json!([]));
        assert!(err("file.find", &[&s(root), "type=q"]).starts_with("Invalid file type \"q\""));
        assert!(err("file.find", &[&s(root), "size=+10m"]).contains("unknown field `size`"));
    }

    #[test]
    fn symlink_creates_replaces_only_with_force_and_readlink_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (target, other, link) = (dir.path().join("target"), dir.path().join("other"), dir.path().join("link"));
        fs::write(&target, "t").unwrap();
        fs::write(&other, "o").unwrap();
        let (t, o, l) = (s(&target), s(&other), s(&link));
        assert_eq!(ok("file.symlink", &[&t, &l]), json!(true));
        assert_eq!(fs::read_link(&link).unwrap(), target);
        assert_eq!(ok("file.symlink", &[&t, &l]), json!(true), "already right");
        assert_eq!(err("file.symlink", &[&o, &l]), format!("Found existing symlink: {l}"));
        assert_eq!(ok("file.symlink", &[&o, &l, "force=True"]), json!(true));
        assert_eq!(fs::read_link(&link).unwrap(), other);
        assert_eq!(err("file.symlink", &[&t, &o]), format!("Existing path is not a symlink: {o}"));
        assert_eq!(ok("file.symlink", &[&t, &o, "force=True"]), json!(true));
        assert_eq!(fs::read_link(&other).unwrap(), target);
        let d = s(dir.path());
        assert!(err("file.symlink", &[&t, &d, "force=True"]).contains("is a directory"));
        assert_eq!(err("file.symlink", &[&t, "rel"]), "Link path must be absolute: rel");
        let nodir = s(&dir.path().join("nodir/link"));
        assert_eq!(
            err("file.symlink", &[&t, &nodir]),
            format!("Could not create '{nodir}': No such file or directory")
        );

        let rel = dir.path().join("rel");
        ok("file.symlink", &["target", &s(&rel)]);
        assert_eq!(ok("file.readlink", &[&s(&rel)]), json!("target"));
        assert_eq!(
            ok("file.readlink", &[&s(&rel), "canonicalize=True"]),
            json!(s(&fs::canonicalize(&target).unwrap()))
        );
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("../gone/x", &dangling).unwrap();
        let parent = fs::canonicalize(dir.path()).unwrap();
        let expected = s(&parent.parent().unwrap().join("gone/x"));
        assert_eq!(ok("file.readlink", &[&s(&dangling), "canonicalize=True"]), json!(expected));
        assert_eq!(err("file.readlink", &[&t]), format!("A valid link was not specified: {t}"));
        assert_eq!(err("file.readlink", &["rel"]), "Path to link must be absolute: rel");
    }

    #[test]
    fn arguments_bind_by_salts_names_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = s(&dir.path().join("f"));
        fs::write(&p, "x").unwrap();
        // Positional order (path, form) and the same by keyword.
        assert_eq!(ok("file.get_hash", &[&p, "md5"]), ok("file.get_hash", &[&format!("path={p}"), "form=md5"]));
        let e = err("file.get_mode", &[&p, "follow=yes"]);
        assert!(e.contains("unknown field `follow`"), "{e}");
        let e = err("file.touch", &[]);
        assert!(e.contains("missing required argument 'name'"), "{e}");
    }

    mod diff {
        use super::super::diff::unified;

        #[test]
        fn hunks_and_ranges_are_difflibs() {
            // Expected texts from Python's difflib.unified_diff(..., '', '').
            let old: String = (1..=20).map(|i| format!("l{i}\n")).collect();
            let new = old.replace("l2\n", "L2\n").replace("l15\n", "").replace("l20\n", "l20\nl21\n");
            assert_eq!(
                unified(&old, &new),
                "--- \n+++ \n@@ -1,5 +1,5 @@\n l1\n-l2\n+L2\n l3\n l4\n l5\n@@ -12,9 +12,9 @@\n l12\n l13\n l14\n-l15\n \
                 l16\n l17\n l18\n l19\n l20\n+l21\n"
            );
            assert_eq!(unified("", "a\nb\n"), "--- \n+++ \n@@ -0,0 +1,2 @@\n+a\n+b\n");
            assert_eq!(unified("a\nb\n", ""), "--- \n+++ \n@@ -1,2 +0,0 @@\n-a\n-b\n");
            assert_eq!(unified("x\na\nb\n", "a\nb\ny\n"), "--- \n+++ \n@@ -1,3 +1,3 @@\n-x\n a\n b\n+y\n");
            assert_eq!(unified("a\nb\nc\nd\n", "a\nc\nb\nd\n"), "--- \n+++ \n@@ -1,4 +1,4 @@\n a\n+c\n b\n-c\n d\n");
            assert_eq!(unified("same\n", "same\n"), "");
        }
    }
}
