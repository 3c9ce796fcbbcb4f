//! The `audit` beacon: ships each command typed in an interactive shell on this host
//! as an event `brine/beacon/<id>/<name>/command` with `{user, uid, tty, cwd, time,
//! pid, command}`, for the master's audit trail.
//!
//! The shell hook (`audit.install_hook`, see `brine_states::exec::audit`) appends a
//! JSON line per command to `<spool_dir>/<uid>`, a file the user owns in a root-owned
//! directory of mode 1733. This beacon reads every regular file there from where it
//! stopped (offsets kept in the data dir, so a restart neither loses nor repeats
//! lines) and names the user by the file's **owner**, never by what a line says: a
//! user can write anything into their own file, but cannot make a line appear as
//! someone else's. Files are opened without following symlinks and hard links are
//! refused, so a user cannot make the minion read a file it should not ship.

use super::{only_keys, Beacon, Env, Fired};
use brine_proto::{Map, Value};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// At most this much is read from one file at one interval.
const MAX_READ: u64 = 1 << 20;
/// Longer lines are skipped (no command is that long; the hook never writes one).
const MAX_LINE: usize = 64 * 1024;

/// Where reading stopped in one spool file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Offset {
    ino: u64,
    pos: u64,
}

struct Audit {
    spool_dir: PathBuf,
    offsets_path: PathBuf,
    offsets: BTreeMap<String, Offset>,
    /// Whether the spool dir's owner and mode were found wanting (said once).
    warned: bool,
}

pub(crate) fn build(name: &str, options: &Map, env: &Env) -> Result<Box<dyn Beacon>, String> {
    only_keys(options, &["spool_dir"])?;
    let spool_dir = match options.get("spool_dir") {
        None => PathBuf::from(brine_states::exec::audit::DEFAULT_SPOOL_DIR),
        Some(Value::String(s)) if s.starts_with('/') => PathBuf::from(s),
        Some(other) => return Err(format!("spool_dir must be an absolute path, not {other}")),
    };
    let offsets_path = env.data_dir.join(format!("beacon-{name}-offsets.json"));
    let offsets = std::fs::read(&offsets_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    Ok(Box::new(Audit { spool_dir, offsets_path, offsets, warned: false }))
}

/// A user's name, or the uid as text when it has none.
fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// The event data of one spool line written by the file's owner `uid`; `None` if
/// it is not a command line.
fn command_of(line: &[u8], uid: u32, user: &str) -> Option<Map> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let command = v.get("command")?.as_str()?.to_string();
    let text = |k: &str| Value::String(v.get(k).and_then(Value::as_str).unwrap_or_default().to_string());
    let mut data = Map::new();
    data.insert("user".into(), Value::String(user.to_string()));
    data.insert("uid".into(), Value::from(uid));
    data.insert("tty".into(), text("tty"));
    data.insert("cwd".into(), text("cwd"));
    data.insert("time".into(), v.get("time").filter(|t| t.is_number()).cloned().unwrap_or(Value::Null));
    data.insert("pid".into(), v.get("pid").filter(|t| t.is_number()).cloned().unwrap_or(Value::Null));
    data.insert("command".into(), Value::String(command));
    Some(data)
}

impl Audit {
    /// New complete lines of one spool file, as events.
    fn read_file(&mut self, path: &std::path::Path, key: &str, out: &mut Vec<Fired>) -> Result<(), String> {
        let err = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
            .open(path)
            .map_err(err)?;
        let meta = f.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file; skipped", path.display()));
        }
        if meta.nlink() != 1 {
            return Err(format!("{}: has other hard links; skipped", path.display()));
        }
        let start = match self.offsets.get(key) {
            Some(o) if o.ino == meta.ino() && o.pos <= meta.len() => o.pos,
            // A new, replaced or truncated file: from its start.
            _ => 0,
        };
        if start == meta.len() {
            self.offsets.insert(key.to_string(), Offset { ino: meta.ino(), pos: start });
            return Ok(());
        }
        f.seek(SeekFrom::Start(start)).map_err(err)?;
        let mut buf = Vec::new();
        f.take(MAX_READ).read_to_end(&mut buf).map_err(err)?;
        // Only complete lines; the rest is read again next time.
        let used = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let user = user_name(meta.uid());
        for line in buf[..used].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if line.len() > MAX_LINE {
                continue;
            }
            match command_of(line, meta.uid(), &user) {
                Some(data) => out.push(Fired::tagged("command", data)),
                None => tracing::debug!(file = %path.display(), "audit beacon: skipped a line that is not a command"),
            }
        }
        self.offsets.insert(key.to_string(), Offset { ino: meta.ino(), pos: start + used as u64 });
        Ok(())
    }

    fn save_offsets(&self) {
        let tmp = self.offsets_path.with_extension("json.tmp");
        let written = serde_json::to_vec(&self.offsets)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.offsets_path));
        if let Err(e) = written {
            tracing::warn!(path = %self.offsets_path.display(), error = %e, "audit beacon cannot save its offsets");
        }
    }
}

impl Beacon for Audit {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        let entries = match std::fs::read_dir(&self.spool_dir) {
            Ok(e) => e,
            // No hook installed (yet): nothing to ship.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", self.spool_dir.display())),
        };
        // Users may not delete or rename each other's files only in a root-owned
        // sticky directory (what audit.install_hook makes).
        if let Ok(meta) = std::fs::metadata(&self.spool_dir) {
            let safe = meta.uid() == 0 && meta.mode() & 0o1000 != 0;
            if !safe && !self.warned {
                tracing::warn!(
                    dir = %self.spool_dir.display(),
                    "the audit spool directory is not root-owned with the sticky bit (mode 1733): users may \
                     remove each other's unshipped commands; run audit.install_hook to fix it"
                );
            }
            self.warned = !safe;
        }
        let before = self.offsets.clone();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // The hook's own temporary names and dot files are not spool files.
            if name.starts_with('.') {
                continue;
            }
            seen.push(name.clone());
            if let Err(e) = self.read_file(&entry.path(), &name, &mut out) {
                tracing::debug!(error = %e, "audit beacon");
            }
        }
        self.offsets.retain(|k, _| seen.contains(k));
        if self.offsets != before {
            self.save_offsets();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    #[test]
    fn spool_lines_ship_once_as_their_owner_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        let env = Env { id: "m".into(), data_dir: dir.path().to_path_buf() };
        let opts = json!({"spool_dir": spool});
        let mut b = build("audit", opts.as_object().unwrap(), &env).unwrap();
        assert!(b.poll().unwrap().is_empty());
        let file = spool.join("1000");
        let mut f = std::fs::File::create(&file).unwrap();
        writeln!(f, r#"{{"time":1700000000,"user":"mallory","uid":1000,"tty":"/dev/pts/1","cwd":"/root","pid":7,"command":"rm -rf /tmp/x"}}"#).unwrap();
        writeln!(f, "not json").unwrap();
        write!(f, r#"{{"command":"half"#).unwrap();
        let fired = b.poll().unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].tag.as_deref(), Some("command"));
        let me = nix::unistd::getuid().as_raw();
        let d = &fired[0].data;
        // The owner of the file, not the "user" the line claims.
        assert_eq!(d["user"], json!(user_name(me)));
        assert_eq!(d["uid"], json!(me));
        assert_eq!(
            (d["command"].as_str(), d["cwd"].as_str(), d["tty"].as_str()),
            (Some("rm -rf /tmp/x"), Some("/root"), Some("/dev/pts/1"))
        );
        assert_eq!(d["time"], json!(1700000000));
        assert!(b.poll().unwrap().is_empty(), "each line once");
        writeln!(f, "\"}}").unwrap();
        // A restart (a new beacon) goes on where the last one stopped.
        let mut again = build("audit", opts.as_object().unwrap(), &env).unwrap();
        let fired = again.poll().unwrap();
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].data["command"], "half");
        // A symlink or a hard link to another file is not read.
        std::os::unix::fs::symlink("/etc/passwd", spool.join("evil")).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "{\"command\":\"secret\"}\n").unwrap();
        std::fs::hard_link(&secret, spool.join("evil2")).unwrap();
        assert!(again.poll().unwrap().is_empty());
        // Truncated (rotated): from the start.
        std::fs::write(&file, "{\"command\":\"after rotation\"}\n").unwrap();
        assert_eq!(again.poll().unwrap()[0].data["command"], "after rotation");
    }
}
