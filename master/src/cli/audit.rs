//! `brine audit`: read the master's audit log: every operator request and every
//! command typed in a shell on a minion with the audit beacon.

use super::client::Operator;
use super::{columns, exit, fail, Io};
use brine_proto::msg::{AuditFilter, CtlOp, CtlResult};
use brine_proto::Value;

/// Show the audit trail: operator requests and shell commands typed on minions,
/// oldest first. Needs the `jobs` right (or the admin).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  brine audit --since 1h\n  brine audit --minion 'web*' --grep 'rm -rf'\n  \
                        brine audit --user alice --out json")]
pub struct AuditArgs {
    /// Only this operator's requests or this user's shell commands (a glob).
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: Option<String>,
    /// Only shell commands typed on, and jobs that targeted, these minions (a glob).
    #[arg(long, short = 'm', value_name = "MINION")]
    pub minion: Option<String>,
    /// Only what happened within this long (`30m`, `2h`, `1d`).
    #[arg(long, value_name = "D", value_parser = brine_proto::config::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Only lines containing this text, in any case (commands, functions, arguments, results).
    #[arg(long, short = 'g', value_name = "WORD")]
    pub grep: Option<String>,
    /// At most this many lines (the newest).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Output format: text (aligned columns) or json (the log's documents as a list).
    #[arg(long = "out", default_value = "text", value_parser = ["text", "json"])]
    pub out: String,
}

/// A word of a command line: as it is, or JSON-quoted when it has blanks or is not
/// a string.
fn word(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.clone(),
        other => other.to_string(),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// One row: time, who, where, what, result.
fn row(v: &Value) -> Vec<String> {
    // Seconds are enough on screen; --out json has the microseconds.
    let time: String = text(v, "time").chars().take(19).collect::<String>().replace('T', " ");
    if v.get("op").and_then(Value::as_str) == Some("shell") {
        let tty = text(v, "tty");
        let place = if tty.is_empty() { text(v, "minion") } else { format!("{} {tty}", text(v, "minion")) };
        return vec![
            time,
            text(v, "user"),
            format!("{place}:{}", text(v, "cwd")),
            format!("$ {}", text(v, "command").replace('\n', "\\n")),
            "shell".into(),
        ];
    }
    let mut what = match v.get("fun").and_then(Value::as_str) {
        Some(fun) if text(v, "op") == "run" => fun.to_string(),
        Some(fun) => format!("{} {fun}", text(v, "op")),
        None => text(v, "op"),
    };
    for a in v.get("arg").and_then(Value::as_array).into_iter().flatten() {
        what.push(' ');
        what.push_str(&word(a));
    }
    for (k, a) in v.get("kwarg").and_then(Value::as_object).into_iter().flatten() {
        what.push_str(&format!(" {k}={}", word(a)));
    }
    let mut result = text(v, "result");
    if let Some(jid) = v.get("jid").and_then(Value::as_str) {
        result.push_str(&format!(" (jid {jid})"));
    }
    vec![time, text(v, "operator"), text(v, "target"), what, result]
}

pub async fn run(op: &Operator, args: AuditArgs, io: &mut Io<'_>) -> u8 {
    let since_ms = args.since.map(|d| brine_proto::time::now_ms().saturating_sub(d.as_millis() as u64));
    let filter = AuditFilter { limit: args.limit, user: args.user, minion: args.minion, since_ms, grep: args.grep };
    let lines = match op.request(CtlOp::AuditQuery(filter)).await {
        Ok(CtlResult::Audit(lines)) => lines,
        Ok(CtlResult::Error(e)) => return fail(io, e.message),
        Ok(other) => return fail(io, format!("unexpected answer {other:?}")),
        Err(e) => return fail(io, e),
    };
    let out = if args.out == "json" {
        brine_proto::output::json(&Value::Array(lines))
    } else if lines.is_empty() {
        String::new()
    } else {
        columns(&["TIME", "WHO", "WHERE", "WHAT", "RESULT"], lines.iter().map(row).collect())
    };
    let _ = io.out.write_all(out.as_bytes());
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_show_who_where_and_what() {
        let run = json!({"time": "2026-01-02T03:04:05.000006Z", "operator": "alice", "op": "run", "target": "web*",
                         "fun": "cmd.run", "arg": ["rm -rf /tmp/x"], "kwarg": {"cwd": "/"}, "jid": "20260102030405000006",
                         "result": "accepted"});
        assert_eq!(
            row(&run),
            [
                "2026-01-02 03:04:05",
                "alice",
                "web*",
                "cmd.run \"rm -rf /tmp/x\" cwd=/",
                "accepted (jid 20260102030405000006)"
            ]
        );
        let shell = json!({"time": "2026-01-02T03:04:05.000006Z", "op": "shell", "minion": "m1", "user": "root",
                           "tty": "/dev/pts/0", "cwd": "/root", "command": "ls -l"});
        assert_eq!(row(&shell), ["2026-01-02 03:04:05", "root", "m1 /dev/pts/0:/root", "$ ls -l", "shell"]);
        let keys = json!({"time": "2026-01-02T03:04:05Z", "operator": "admin", "op": "key.accept", "target": "m1",
                          "result": "accepted"});
        assert_eq!(row(&keys)[3], "key.accept");
    }
}
