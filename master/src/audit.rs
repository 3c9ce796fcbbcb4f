//! The audit log: one JSON document a line in `<data_dir>/audit.log` for every
//! operator request the master receives, carried out or refused.
//!
//! Lines are appended with one `write` on a file opened in append mode, so they never
//! interleave. A failing write is logged and otherwise ignored: the audit log never
//! blocks or fails a request. Secret-looking keyword arguments are masked before a
//! line is written, so `password=…` never reaches the disk. The format is documented in
//! `docs/security.md`; `jq` reads it directly.

use brine_proto::keys::Fingerprint;
use brine_proto::msg::{CtlError, CtlErrorKind, CtlOp, KeySelection};
use brine_proto::{Jid, Map, Value};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// The appending writer.
pub struct AuditLog {
    path: PathBuf,
    /// `None` until the file could be opened; opening is retried on the next line.
    file: Mutex<Option<File>>,
}

impl AuditLog {
    /// Opens (or creates, mode 0640) the log at `path`. A file that cannot be opened
    /// is reported and tried again at each request.
    pub fn open(path: PathBuf) -> AuditLog {
        let file = match open(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open the audit log");
                None
            }
        };
        AuditLog { path, file: Mutex::new(file) }
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line.
    pub fn record(&self, entry: &Entry) {
        let mut line = match serde_json::to_vec(entry) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit log line");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if file.is_none() {
            *file = open(&self.path).ok();
        }
        let written = match file.as_mut() {
            Some(f) => f.write_all(&line).and_then(|()| f.flush()),
            None => Err(std::io::Error::other("the file could not be opened")),
        };
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, op = entry.op, "cannot write the audit log");
            // Reopen next time: the file may have been removed or its disk replaced.
            *file = None;
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

/// One line of the audit log. Fields that do not apply to a request are `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// When the master received the request: RFC 3339, UTC, microseconds.
    pub time: String,
    /// The operator's name; `unknown` when the signing key is not an operator's, or the
    /// request could not be read.
    pub operator: String,
    /// The fingerprint of the key that signed the request.
    pub fingerprint: Option<String>,
    /// The request: `run`, `key.accept`, `job.list`, … (the `P.ctl.<op>` subject).
    pub op: String,
    /// The target as written (`run`, `resolve`, `inventory`), or the key ids and globs
    /// of a key operation (`*` for `--all`).
    pub target: Option<String>,
    /// The function of a `run`.
    pub fun: Option<String>,
    /// Positional arguments of a `run`; secret-looking keys of maps in them masked.
    pub arg: Option<Vec<Value>>,
    /// Keyword arguments of a `run`, secret-looking ones masked.
    pub kwarg: Option<Map>,
    /// The job published (`run`) or asked about (`job.show`).
    pub jid: Option<Jid>,
    /// How many minions the request reached: targeted by a job, matched by a
    /// `resolve` or `inventory`, whose keys a key operation changed.
    pub minions: Option<usize>,
    /// `accepted`, or `refused: <reason>`.
    pub result: String,
}

impl Entry {
    /// A line for `op`, signed by `signer`, from `operator` (a name, or `unknown`);
    /// the result is filled in by [`Entry::accepted`] or [`Entry::refused`].
    pub fn new(operator: &str, signer: Option<Fingerprint>, op: &CtlOp) -> Entry {
        let mut entry = Entry::unreadable(op.name(), "");
        entry.operator = operator.to_string();
        entry.fingerprint = signer.map(|f| f.to_string());
        match op {
            CtlOp::Run(run) => {
                entry.target = Some(run.target.to_string());
                entry.fun = Some(run.fun.clone());
                entry.arg = Some(run.arg.iter().map(mask_in_maps).collect());
                entry.kwarg = Some(mask_map(&run.kwarg));
            }
            CtlOp::KeyAccept(sel) | CtlOp::KeyReject(sel) | CtlOp::KeyDelete(sel) | CtlOp::KeyFinger(sel) => {
                entry.target = Some(key_target(sel));
            }
            CtlOp::Resolve { target } | CtlOp::Inventory { target, .. } => entry.target = Some(target.to_string()),
            CtlOp::JobShow { jid } => entry.jid = Some(*jid),
            CtlOp::EventSend { tag, .. } => entry.target = Some(tag.clone()),
            CtlOp::Orchestrate(o) => {
                entry.target = Some(o.sls.join(","));
                entry.fun = Some(crate::orchestrate::FUN.into());
            }
            CtlOp::JobControl { jid, action } => {
                entry.jid = Some(*jid);
                entry.fun = Some(format!("{action:?}").to_lowercase());
            }
            CtlOp::KeyList
            | CtlOp::JobList(_)
            | CtlOp::JobActive
            | CtlOp::MinionList
            | CtlOp::ReactorHistory { .. } => {}
        }
        entry
    }

    /// A line for a request that could not be opened (not a signed operator request):
    /// `op` is taken from its subject.
    pub fn unreadable(op: &str, reason: &str) -> Entry {
        Entry {
            time: brine_proto::time::Civil::from_unix_micros(brine_proto::time::now_micros()).to_string(),
            operator: "unknown".into(),
            fingerprint: None,
            // The subject is the sender's choice: keep it short.
            op: op.chars().take(64).collect(),
            target: None,
            fun: None,
            arg: None,
            kwarg: None,
            jid: None,
            minions: None,
            result: format!("refused: {reason}"),
        }
    }

    /// The request was carried out.
    pub fn accepted(mut self, jid: Option<Jid>, minions: Option<usize>) -> Entry {
        self.result = "accepted".into();
        self.jid = jid.or(self.jid);
        self.minions = minions;
        self
    }

    /// The request was refused or failed.
    pub fn refused(mut self, reason: &str) -> Entry {
        self.result = format!("refused: {reason}");
        self
    }

    /// The request was refused or failed with this error: `refused: <kind>: <message>`,
    /// the kind as the CLI gets it (`denied`, `bad_request`, `no_match`, …).
    pub fn failed(self, e: &CtlError) -> Entry {
        let kind = match e.kind {
            CtlErrorKind::Denied => "denied",
            CtlErrorKind::BadRequest => "bad_request",
            CtlErrorKind::NoMatch => "no_match",
            CtlErrorKind::UnknownFunction => "unknown_function",
            CtlErrorKind::NotFound => "not_found",
            CtlErrorKind::Internal => "internal",
        };
        self.refused(&format!("{kind}: {}", e.message))
    }
}

fn key_target(sel: &KeySelection) -> String {
    if sel.all {
        "*".into()
    } else {
        sel.ids.join(",")
    }
}

/// Whether a keyword looks like it names a secret: it contains `pass`, `secret`,
/// `token`, `key` or `credential`, in any case.
pub fn is_secret_keyword(name: &str) -> bool {
    let name = name.to_lowercase();
    ["pass", "secret", "token", "key", "credential"].iter().any(|w| name.contains(w))
}

/// A copy of keyword arguments with secret-looking values (at any depth) masked.
pub fn mask_map(map: &Map) -> Map {
    map.iter()
        .map(|(k, v)| {
            let v = if is_secret_keyword(k) { Value::String(MASK.into()) } else { mask_in_maps(v) };
            (k.clone(), v)
        })
        .collect()
}

/// A value with the secret-looking keys of the maps inside it masked; anything else,
/// like a positional string, is kept as it is.
pub fn mask_in_maps(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(mask_map(m)),
        Value::Array(items) => Value::Array(items.iter().map(mask_in_maps).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::msg::RunRequest;
    use brine_proto::Target;
    use serde_json::json;

    fn run(arg: Vec<Value>, kwarg: Value) -> CtlOp {
        CtlOp::Run(RunRequest {
            target: Target::Glob("web*".into()),
            fun: "test.arg".into(),
            arg,
            kwarg: kwarg.as_object().cloned().unwrap_or_default(),
            stream_to: None,
            queue_ttl_ms: None,
        })
    }

    #[test]
    fn secret_keywords_are_masked_at_any_depth_and_positionals_kept() {
        let op = run(
            vec![json!("hunter1"), json!({"db": {"Password": "x", "host": "h"}})],
            json!({"password": "hunter2", "API_TOKEN": 5, "ssh_key": ["a"], "Credentials": {"u": "p"},
                   "opts": {"client_secret": "s", "name": "n"}, "name": "web"}),
        );
        let e = Entry::new("alice", None, &op);
        assert_eq!(e.arg, Some(vec![json!("hunter1"), json!({"db": {"Password": "***", "host": "h"}})]));
        assert_eq!(
            Value::Object(e.kwarg.unwrap()),
            json!({"password": "***", "API_TOKEN": "***", "ssh_key": "***", "Credentials": "***",
                   "opts": {"client_secret": "***", "name": "n"}, "name": "web"})
        );
        for word in ["passwd", "PASS", "secret", "token", "pubkey", "credential"] {
            assert!(is_secret_keyword(word), "{word}");
        }
        for word in ["name", "user", "cmd", "cwd"] {
            assert!(!is_secret_keyword(word), "{word}");
        }
    }

    #[test]
    fn a_line_is_one_json_document_with_every_field() {
        let fp = Fingerprint::of_bytes(&[1; 32]);
        let jid: Jid = "20240102030405060708".parse().unwrap();
        let e = Entry::new("alice", Some(fp), &run(vec![], json!({}))).accepted(Some(jid), Some(3));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["operator"], "alice");
        assert_eq!(v["fingerprint"], fp.to_string());
        assert_eq!(
            (v["op"].as_str(), v["target"].as_str(), v["fun"].as_str()),
            (Some("run"), Some("web*"), Some("test.arg"))
        );
        assert_eq!(
            (v["jid"].as_str(), v["minions"].as_u64(), v["result"].as_str()),
            (Some("20240102030405060708"), Some(3), Some("accepted"))
        );
        let time = v["time"].as_str().unwrap();
        assert!(time.len() == 27 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 11);

        let refused =
            Entry::new("alice", Some(fp), &CtlOp::KeyDelete(KeySelection { all: true, ..Default::default() }))
                .failed(&CtlError { kind: CtlErrorKind::Denied, message: "no".into() });
        assert_eq!((refused.target.as_deref(), refused.result.as_str()), (Some("*"), "refused: denied: no"));
    }

    #[test]
    fn lines_are_appended_to_a_0640_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path().join("audit.log"));
        log.record(&Entry::unreadable("run", "bad signature"));
        log.record(&Entry::new("admin", None, &CtlOp::KeyList).accepted(None, None));
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["result"], "refused: bad signature");
        assert_eq!((lines[1]["op"].as_str(), lines[1]["result"].as_str()), (Some("key.list"), Some("accepted")));
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "{mode:o}");

        // A log that cannot be written does not stop anything.
        let gone = AuditLog::open(dir.path().join("no/such/dir/audit.log"));
        gone.record(&Entry::unreadable("run", "x"));
    }
}
