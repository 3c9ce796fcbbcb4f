//! `brine key`: list, accept, reject, delete and fingerprint minion keys, the way
//! `salt-key` does.

use super::client::Operator;
use super::{exit, fail, Io};
use brine_proto::keys::Fingerprint;
use brine_proto::msg::{CtlOp, CtlResult, KeyEntry, KeyListing, KeySelection};
use brine_proto::{Target, TargetMatcher};
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// List keys by status: accepted, denied, unaccepted (pending), rejected.
    List {
        /// Output format: nested (headings) or json.
        #[arg(long = "out", default_value = "nested", value_parser = ["nested", "json"])]
        out: String,
    },
    /// Accept pending keys matching the ids or globs.
    Accept(ChangeArgs),
    /// Reject pending keys matching the ids or globs.
    Reject(ChangeArgs),
    /// Delete keys of any status; a deleted minion is disconnected and may enroll again.
    Delete(ChangeArgs),
    /// Show key fingerprints: the master's and every minion's, or those matching ID.
    Finger {
        /// An id or glob.
        id: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    /// Minion ids or globs (`web*`).
    #[arg(required_unless_present = "all")]
    pub ids: Vec<String>,
    /// Every key the command applies to.
    #[arg(short = 'A', long)]
    pub all: bool,
    /// Answer yes to the confirmation prompt.
    #[arg(short, long)]
    pub yes: bool,
    /// Accept: also accept rejected keys.
    #[arg(long)]
    pub include_rejected: bool,
    /// Accept: also accept denied keys (replacing the id's current key); delete: also
    /// delete denied keys.
    #[arg(long)]
    pub include_denied: bool,
    /// Reject: also reject accepted keys.
    #[arg(long)]
    pub include_accepted: bool,
}

const ACCEPTED: &str = "\x1b[0;1;32m";
const DENIED: &str = "\x1b[0;1;35m";
const PENDING: &str = "\x1b[0;1;31m";
const REJECTED: &str = "\x1b[0;1;34m";
const ENDC: &str = "\x1b[0;0m";

fn entry_color(heading: &str) -> &'static str {
    match heading {
        ACCEPTED => "\x1b[0;32m",
        DENIED => "\x1b[0;35m",
        PENDING => "\x1b[0;31m",
        _ => "\x1b[0;34m",
    }
}

fn sections(l: &KeyListing) -> [(&'static str, &'static str, &Vec<KeyEntry>); 4] {
    [
        ("Accepted Keys:", ACCEPTED, &l.accepted),
        ("Denied Keys:", DENIED, &l.denied),
        ("Unaccepted Keys:", PENDING, &l.pending),
        ("Rejected Keys:", REJECTED, &l.rejected),
    ]
}

fn paint(io: &Io<'_>, color: &str, text: &str) -> String {
    if io.color {
        format!("{color}{text}{ENDC}")
    } else {
        text.to_string()
    }
}

/// Prints sections; with `always`, empty sections keep their heading (like `salt-key -L`).
fn print_sections(io: &mut Io<'_>, l: &KeyListing, always: bool, finger: bool) {
    for (title, color, entries) in sections(l) {
        if entries.is_empty() && !always {
            continue;
        }
        let line = paint(io, color, title);
        let _ = writeln!(io.out, "{line}");
        let mut entries: Vec<&KeyEntry> = entries.iter().collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        for e in entries {
            let text = if finger { format!("{}:  {}", e.id, Fingerprint::of_bytes(&e.key)) } else { e.id.to_string() };
            let line = paint(io, entry_color(color), &text);
            let _ = writeln!(io.out, "{line}");
        }
    }
}

async fn listing(op: &Operator, io: &mut Io<'_>) -> Result<KeyListing, u8> {
    match op.request(CtlOp::KeyList).await {
        Ok(CtlResult::Keys(l)) => Ok(l),
        Ok(CtlResult::Error(e)) => Err(fail(io, e.message)),
        Ok(other) => Err(fail(io, format!("unexpected answer {other:?}"))),
        Err(e) => Err(fail(io, e)),
    }
}

fn matchers(ids: &[String]) -> Result<Vec<TargetMatcher>, String> {
    ids.iter().map(|p| TargetMatcher::compile(&Target::Glob(p.clone())).map_err(|e| e.to_string())).collect()
}

pub async fn run(op: &Operator, cmd: KeyCommand, io: &mut Io<'_>) -> u8 {
    match cmd {
        KeyCommand::List { out } => {
            let l = match listing(op, io).await {
                Ok(l) => l,
                Err(code) => return code,
            };
            if out == "json" {
                let ids = |v: &Vec<KeyEntry>| {
                    let mut ids: Vec<String> = v.iter().map(|e| e.id.to_string()).collect();
                    ids.sort();
                    ids
                };
                let doc = json!({
                    "minions": ids(&l.accepted),
                    "minions_pre": ids(&l.pending),
                    "minions_rejected": ids(&l.rejected),
                    "minions_denied": ids(&l.denied),
                });
                let _ = io.out.write_all(brine_proto::output::json(&doc).as_bytes());
            } else {
                print_sections(io, &l, true, false);
            }
            exit::OK
        }
        KeyCommand::Finger { id } => {
            let l = match listing(op, io).await {
                Ok(l) => l,
                Err(code) => return code,
            };
            let ms = match matchers(&id.iter().cloned().collect::<Vec<_>>()) {
                Ok(m) => m,
                Err(e) => return fail(io, e),
            };
            let keep = |v: &Vec<KeyEntry>| -> Vec<KeyEntry> {
                v.iter().filter(|e| ms.is_empty() || ms.iter().any(|m| m.matches_id(e.id.as_str()))).cloned().collect()
            };
            let filtered = KeyListing {
                accepted: keep(&l.accepted),
                pending: keep(&l.pending),
                rejected: keep(&l.rejected),
                denied: keep(&l.denied),
                master: l.master,
            };
            if id.is_none() {
                let heading = paint(io, DENIED, "Local Keys:");
                let line = paint(io, "\x1b[0;35m", &format!("master.pub:  {}", Fingerprint::of_bytes(&l.master)));
                let _ = writeln!(io.out, "{heading}\n{line}");
            }
            print_sections(io, &filtered, false, true);
            exit::OK
        }
        KeyCommand::Accept(a) => change(op, io, "accept", a).await,
        KeyCommand::Reject(a) => change(op, io, "reject", a).await,
        KeyCommand::Delete(a) => change(op, io, "delete", a).await,
    }
}

/// Lists what would change, asks, then changes exactly the keys listed.
async fn change(op: &Operator, io: &mut Io<'_>, act: &str, a: ChangeArgs) -> u8 {
    let l = match listing(op, io).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let ms = match matchers(&a.ids) {
        Ok(m) => m,
        Err(e) => return fail(io, e),
    };
    let selected = |entries: &Vec<KeyEntry>| -> Vec<KeyEntry> {
        entries.iter().filter(|e| a.all || ms.iter().any(|m| m.matches_id(e.id.as_str()))).cloned().collect()
    };
    let mut eligible = KeyListing { master: l.master, ..KeyListing::default() };
    let mut kinds = Vec::new();
    match act {
        "accept" => {
            eligible.pending = selected(&l.pending);
            kinds.push("unaccepted");
            if a.include_rejected {
                eligible.rejected = selected(&l.rejected);
                kinds.push("rejected");
            }
            if a.include_denied {
                eligible.denied = selected(&l.denied);
                kinds.push("denied");
            }
        }
        "reject" => {
            eligible.pending = selected(&l.pending);
            kinds.push("unaccepted");
            if a.include_accepted {
                eligible.accepted = selected(&l.accepted);
                kinds.push("accepted");
            }
        }
        _ => {
            eligible.accepted = selected(&l.accepted);
            eligible.pending = selected(&l.pending);
            eligible.rejected = selected(&l.rejected);
            eligible.denied = selected(&l.denied);
            kinds = vec!["accepted", "unaccepted", "rejected", "denied"];
        }
    }
    let count = eligible.accepted.len() + eligible.pending.len() + eligible.rejected.len() + eligible.denied.len();
    if count == 0 {
        let what = match kinds.as_slice() {
            [one] => one.to_string(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
            [] => String::new(),
        };
        if a.all {
            let _ = writeln!(io.out, "There are no {what} keys.");
        } else {
            let _ = writeln!(io.out, "The key glob '{}' does not match any {what} keys.", a.ids.join(","));
        }
        return exit::OK;
    }
    let _ = writeln!(io.out, "The following keys are going to be {}:", past(act));
    print_sections(io, &eligible, false, false);
    if !a.yes {
        let prompt = if act == "delete" { "Proceed? [N/y] " } else { "Proceed? [n/Y] " };
        let _ = write!(io.out, "{prompt}");
        let _ = io.out.flush();
        let mut answer = String::new();
        let _ = io.input.read_line(&mut answer);
        let answer = answer.trim();
        let yes = if answer.is_empty() { act != "delete" } else { answer.starts_with(['y', 'Y']) };
        if !yes {
            return exit::OK;
        }
    }
    // Send exact ids (never the globs), so a key that arrives after the listing is not
    // changed without being shown.
    let mut ids: Vec<String> = Vec::new();
    for e in eligible.accepted.iter().chain(&eligible.pending).chain(&eligible.rejected).chain(&eligible.denied) {
        if !ids.contains(&e.id.to_string()) {
            ids.push(e.id.to_string());
        }
    }
    let sel = KeySelection {
        ids,
        all: false,
        include_rejected: !eligible.rejected.is_empty(),
        include_denied: !eligible.denied.is_empty(),
        include_accepted: act == "reject" && !eligible.accepted.is_empty(),
    };
    let request = match act {
        "accept" => CtlOp::KeyAccept(sel),
        "reject" => CtlOp::KeyReject(sel),
        _ => CtlOp::KeyDelete(sel),
    };
    match op.request(request).await {
        Ok(CtlResult::KeysChanged(changed)) => {
            let mut seen = Vec::new();
            for e in changed {
                if !seen.contains(&e.id) {
                    let _ = writeln!(io.out, "Key for minion {} {}.", e.id, past(act));
                    seen.push(e.id);
                }
            }
            exit::OK
        }
        Ok(CtlResult::Error(e)) => fail(io, e.message),
        Ok(other) => fail(io, format!("unexpected answer {other:?}")),
        Err(e) => fail(io, e),
    }
}

/// The past tense of a key action.
pub(crate) fn past(act: &str) -> &'static str {
    match act {
        "accept" => "accepted",
        "reject" => "rejected",
        _ => "deleted",
    }
}
