//! The audit log: one JSON document a line in `<data_dir>/audit.log` for every
//! operator request the master receives, carried out or refused, and for every
//! command typed in an interactive shell on a minion that its audit beacon ships
//! (`op: "shell"`, see [`ShellEntry`]). Keyword rules (`[audit] alert`) raise a
//! `brine/audit/alert` event for either; [`query`] reads the log for `brine audit`.
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
        self.append(entry, &entry.op);
    }

    /// Appends the line of a command typed in a shell on a minion.
    pub fn record_shell(&self, entry: &ShellEntry) {
        self.append(entry, "shell");
    }

    fn append(&self, entry: &impl Serialize, op: &str) {
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
            tracing::error!(path = %self.path.display(), error = %e, op, "cannot write the audit log");
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
            | CtlOp::ReactorHistory { .. }
            | CtlOp::AuditQuery(_) => {}
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

/// The line of a command typed in an interactive shell on a minion, shipped by its
/// audit beacon (an event signed by the minion and verified by the master's bus).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShellEntry {
    /// When the master recorded it (RFC 3339, UTC).
    pub time: String,
    /// Always `shell`.
    pub op: &'static str,
    /// The minion that shipped it (whose key signed the event).
    pub minion: String,
    /// The user who typed it: the owner of the spool file the minion read.
    pub user: String,
    pub uid: Option<u64>,
    pub tty: String,
    /// The shell's working directory when the command ended.
    pub cwd: String,
    pub pid: Option<u64>,
    /// When it was typed, by the minion's clock (RFC 3339), if the hook said.
    pub typed_at: Option<String>,
    pub command: String,
}

impl ShellEntry {
    /// The entry for a verified bus event, if it is an audit beacon's command:
    /// tag `brine/beacon/<source>/<beacon>/command` with a `command` in its data.
    pub fn from_event(source: &str, tag: &str, data: &Value) -> Option<ShellEntry> {
        let parts: Vec<&str> = tag.split('/').collect();
        if parts.len() != 5
            || parts[0] != "brine"
            || parts[1] != "beacon"
            || parts[2] != source
            || parts[4] != "command"
        {
            return None;
        }
        let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
        let command = text("command")?;
        let user = text("user")?;
        let typed_at = data
            .get("time")
            .and_then(Value::as_u64)
            .filter(|s| *s < 1 << 40)
            .map(|s| brine_proto::time::Civil::from_unix_micros(s * 1_000_000).to_string());
        Some(ShellEntry {
            time: brine_proto::time::Civil::from_unix_micros(brine_proto::time::now_micros()).to_string(),
            op: "shell",
            minion: source.to_string(),
            user,
            uid: data.get("uid").and_then(Value::as_u64),
            tty: text("tty").unwrap_or_default(),
            cwd: text("cwd").unwrap_or_default(),
            pid: data.get("pid").and_then(Value::as_u64),
            typed_at,
            command,
        })
    }
}

/// Keyword rules used when the master's config has no `[audit] alert`.
pub const DEFAULT_ALERTS: &[&str] =
    &["rm -rf /", "rm -fr /", "rm -rf /*", "mkfs", "iptables -F", "iptables --flush", "chmod -R 777 /"];

/// The `[audit]` table of the master's config.
#[derive(Debug, Default, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Keywords that raise `brine/audit/alert` when an operator request or a shell
    /// command contains them (as whole words). Default: [`DEFAULT_ALERTS`]; `[]`
    /// turns alerts off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Vec<String>>,
}

/// The audit settings the master uses.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// The alert keywords.
    pub alert: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { alert: DEFAULT_ALERTS.iter().map(|s| s.to_string()).collect() }
    }
}

impl AuditConfig {
    /// Checks the `[audit]` table; an error names the key.
    pub fn from_raw(raw: RawAudit) -> Result<AuditConfig, (String, String)> {
        let Some(alert) = raw.alert else { return Ok(AuditConfig::default()) };
        if let Some(bad) = alert.iter().find(|k| k.trim().is_empty()) {
            return Err((
                "audit.alert".into(),
                format!("{bad:?} is not a keyword (an empty rule would match everything)"),
            ));
        }
        Ok(AuditConfig { alert })
    }
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `text` contains `keyword` as whole words: not glued to a word before it,
/// nor to a word (or, after a trailing `/`, to a path) after it. So `rm -rf /` is
/// found in `sudo rm -rf / ` and `rm -rf /*` but not in `rm -rf /tmp/x`, and `mkfs`
/// in `/sbin/mkfs.ext4 /dev/sdb` but not in `mkfsx`.
pub fn contains_keyword(text: &str, keyword: &str) -> bool {
    let (Some(first), Some(last)) = (keyword.chars().next(), keyword.chars().next_back()) else { return false };
    text.match_indices(keyword).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + keyword.len()..].chars().next();
        let ok_before = !(word_char(first) && before.is_some_and(word_char));
        let ok_after = if word_char(last) {
            !after.is_some_and(word_char)
        } else if last == '/' {
            !after.is_some_and(|c| word_char(c) || c == '.' || c == '-')
        } else {
            true
        };
        ok_before && ok_after
    })
}

/// The first rule `text` sets off.
pub fn matching_rule<'a>(rules: &'a [String], text: &str) -> Option<&'a str> {
    rules.iter().map(String::as_str).find(|r| contains_keyword(text, r))
}

/// What an operator request says, as the alert rules see it: the function, then
/// each argument (strings as they are, the rest as JSON), then `key=value`s.
fn request_text(entry: &Entry) -> Option<String> {
    let fun = entry.fun.as_ref()?;
    let word = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut parts = vec![fun.clone()];
    parts.extend(entry.arg.iter().flatten().map(word));
    parts.extend(entry.kwarg.iter().flatten().map(|(k, v)| format!("{k}={}", word(v))));
    Some(parts.join(" "))
}

/// Raises `brine/audit/alert` if an operator's job request sets off a keyword rule
/// (carried out or refused: an attempt is worth knowing about too).
pub async fn alert_on_request(shared: &crate::master::Shared, entry: &Entry) {
    let Some(text) = request_text(entry) else { return };
    let Some(rule) = matching_rule(&shared.cfg.audit.alert, &text) else { return };
    tracing::warn!(operator = %entry.operator, rule, "audit alert: an operator request matches a keyword rule");
    let data = serde_json::json!({
        "source": "operator",
        "rule": rule,
        "operator": entry.operator,
        "target": entry.target,
        "fun": entry.fun,
        "arg": entry.arg,
        "kwarg": entry.kwarg,
        "jid": entry.jid,
        "result": entry.result,
        "time": entry.time,
    });
    shared.emit(ALERT_TAG, data).await;
}

/// The tag of audit alerts.
pub const ALERT_TAG: &str = "brine/audit/alert";

/// Records the commands that minions' audit beacons ship, from the verified event
/// bus, in the audit log, and raises `brine/audit/alert` for those that set off a
/// keyword rule. Subscribes before returning, so no event after it is missed.
pub fn serve_shell(shared: std::sync::Arc<crate::master::Shared>) -> impl std::future::Future<Output = ()> {
    let mut rx = shared.subscribe();
    async move {
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(
                        missed = n,
                        "the audit trail fell behind the event bus; shell commands were not recorded"
                    );
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Some(entry) = ShellEntry::from_event(&ev.source, &ev.tag, &ev.data) else { continue };
            shared.audit.record_shell(&entry);
            if let Some(rule) = matching_rule(&shared.cfg.audit.alert, &entry.command) {
                tracing::warn!(minion = %entry.minion, user = %entry.user, rule, "audit alert: a shell command matches a keyword rule");
                let mut data = serde_json::to_value(&entry).unwrap_or_default();
                data["source"] = Value::String("shell".into());
                data["rule"] = Value::String(rule.to_string());
                shared.emit(ALERT_TAG, data).await;
            }
        }
    }
}

/// Every string and number inside a value, one per line, for `--grep`.
fn flat_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|v| flat_text(v, out)),
        Value::Object(m) => m.values().for_each(|v| flat_text(v, out)),
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push('\n');
        }
        _ => {}
    }
}

fn glob(pattern: &str) -> Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{pattern:?} is not a glob: {e}"))
}

/// The lines of the audit log at `path` that `filter` selects, oldest first (the
/// newest `limit`). `job_minions` tells which minions a job targeted, for
/// `--minion` on operator lines. Lines that are not JSON are skipped.
pub fn query(
    path: &Path,
    filter: &brine_proto::msg::AuditFilter,
    job_minions: impl Fn(Jid) -> Option<Vec<String>>,
) -> Result<Vec<Value>, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the audit log {}: {e}", path.display())),
    };
    let user = filter.user.as_deref().map(glob).transpose()?;
    let minion = filter.minion.as_deref().map(glob).transpose()?;
    let since =
        filter.since_ms.map(|ms| brine_proto::time::Civil::from_unix_micros(ms.saturating_mul(1000)).to_string());
    let grep = filter.grep.as_ref().map(|g| g.to_lowercase());
    let limit = filter.limit.clamp(1, 100_000);
    let mut out = std::collections::VecDeque::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else { continue };
        let field = |k: &str| v.get(k).and_then(Value::as_str);
        // Times are fixed-width RFC 3339: text order is time order.
        if let (Some(since), Some(time)) = (&since, field("time")) {
            if time < since.as_str() {
                continue;
            }
        }
        if let Some(user) = &user {
            let who = if field("op") == Some("shell") { field("user") } else { field("operator") };
            if !who.is_some_and(|w| user.is_match(w)) {
                continue;
            }
        }
        if let Some(minion) = &minion {
            let hit = if field("op") == Some("shell") {
                field("minion").is_some_and(|m| minion.is_match(m))
            } else {
                field("jid")
                    .and_then(|j| j.parse::<Jid>().ok())
                    .and_then(&job_minions)
                    .is_some_and(|ms| ms.iter().any(|m| minion.is_match(m)))
            };
            if !hit {
                continue;
            }
        }
        if let Some(grep) = &grep {
            let mut all = String::new();
            flat_text(&v, &mut all);
            if !all.to_lowercase().contains(grep.as_str()) {
                continue;
            }
        }
        out.push_back(v);
        if out.len() > limit {
            out.pop_front();
        }
    }
    Ok(out.into())
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

    #[test]
    fn keyword_rules_match_whole_words() {
        for (text, kw, hit) in [
            ("cmd.run rm -rf /", "rm -rf /", true),
            ("sudo rm -rf / --no-preserve-root", "rm -rf /", true),
            ("rm -rf /tmp/x", "rm -rf /", false),
            ("rm -rf /*", "rm -rf /*", true),
            ("/sbin/mkfs.ext4 /dev/sdb", "mkfs", true),
            ("echo mkfsx", "mkfs", false),
            ("iptables -F", "iptables -F", true),
            ("iptables -FORWARD", "iptables -F", false),
        ] {
            assert_eq!(contains_keyword(text, kw), hit, "{text:?} / {kw:?}");
        }
        let rules = AuditConfig::default().alert;
        assert_eq!(matching_rule(&rules, "cmd.run mkfs.xfs /dev/vdb"), Some("mkfs"));
        assert_eq!(matching_rule(&rules, "cmd.run ls"), None);
        assert!(AuditConfig::from_raw(RawAudit { alert: Some(vec![" ".into()]) }).is_err());
        assert_eq!(AuditConfig::from_raw(RawAudit { alert: Some(vec![]) }).unwrap().alert, Vec::<String>::new());
    }

    #[test]
    fn shell_commands_come_only_from_the_minions_own_audit_tags() {
        let data = json!({"user": "bob", "uid": 1000, "tty": "/dev/pts/1", "cwd": "/home/bob", "time": 1700000000,
                          "pid": 42, "command": "ls", "id": "m1"});
        let e = ShellEntry::from_event("m1", "brine/beacon/m1/audit/command", &data).unwrap();
        assert_eq!((e.minion.as_str(), e.user.as_str(), e.command.as_str()), ("m1", "bob", "ls"));
        assert_eq!(e.typed_at.as_deref(), Some("2023-11-14T22:13:20.000000Z"));
        assert!(ShellEntry::from_event("m2", "brine/beacon/m1/audit/command", &data).is_none());
        assert!(ShellEntry::from_event("m1", "brine/beacon/m1/log/other", &data).is_none());
        assert!(ShellEntry::from_event("m1", "brine/beacon/m1/log/command", &json!({"raw": "x"})).is_none());
    }

    #[test]
    fn query_filters_by_user_minion_time_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path().join("audit.log"));
        let jid: Jid = "20240102030405060708".parse().unwrap();
        let mut old =
            Entry::new("alice", None, &run(vec![json!("rm -rf /tmp/x")], json!({}))).accepted(Some(jid), Some(1));
        old.time = "2020-01-01T00:00:00.000000Z".into();
        log.record(&old);
        log.record(&Entry::new("bob", None, &CtlOp::KeyList).accepted(None, None));
        let shell = ShellEntry::from_event(
            "web1",
            "brine/beacon/web1/audit/command",
            &json!({"user": "carol", "command": "echo \"Quoted\"", "cwd": "/"}),
        )
        .unwrap();
        log.record_shell(&shell);
        std::fs::OpenOptions::new().append(true).open(log.path()).unwrap().write_all(b"garbage\n").unwrap();
        let q = |f: brine_proto::msg::AuditFilter| {
            query(
                log.path(),
                &brine_proto::msg::AuditFilter { limit: if f.limit == 0 { 100 } else { f.limit }, ..f },
                |j| (j == jid).then(|| vec!["web1".to_string()]),
            )
            .unwrap()
        };
        let ops = |lines: Vec<Value>| -> Vec<String> {
            lines.iter().map(|l| l["operator"].as_str().or(l["user"].as_str()).unwrap().to_string()).collect()
        };
        assert_eq!(ops(q(Default::default())), ["alice", "bob", "carol"]);
        assert_eq!(ops(q(brine_proto::msg::AuditFilter { user: Some("?ob".into()), ..Default::default() })), ["bob"]);
        assert_eq!(
            ops(q(brine_proto::msg::AuditFilter { minion: Some("web*".into()), ..Default::default() })),
            ["alice", "carol"]
        );
        assert_eq!(
            ops(q(brine_proto::msg::AuditFilter { grep: Some("\"quoted\"".into()), ..Default::default() })),
            ["carol"]
        );
        let since = brine_proto::time::now_ms() - 60_000;
        assert_eq!(
            ops(q(brine_proto::msg::AuditFilter { since_ms: Some(since), ..Default::default() })),
            ["bob", "carol"]
        );
        assert_eq!(ops(q(brine_proto::msg::AuditFilter { limit: 1, ..Default::default() })), ["carol"]);
        let bad =
            query(log.path(), &brine_proto::msg::AuditFilter { user: Some("[".into()), ..Default::default() }, |_| {
                None
            });
        assert!(bad.unwrap_err().contains("glob"));
    }
}
