//! `brine events`, `brine event send` and `brine reactor`: follow the bus, put an
//! event on it, and look at the reactor.

use super::client::Operator;
use super::{columns, exit, fail, Io};
use crate::config::MasterConfig;
use crate::reactor::{Action, Planned, PlannedAction};
use brine_proto::envelope::{Envelope, TreeRoots};
use brine_proto::msg::{CtlOp, CtlResult, Event, KeyStatus};
use brine_proto::{Map, Value};
use ed25519_dalek::VerifyingKey;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// How `brine events` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventsOut {
    /// `TAG<TAB>{json data}` per event, like Salt's state.event.
    Text,
    /// One JSON object per line: tag, source, data (and depth, jid when set).
    Json,
}

/// `brine events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only events whose tag matches this glob (`*` crosses `/`), e.g. 'brine/job/*/ret/*'.
    #[arg(value_name = "TAG_GLOB")]
    pub tag: Option<String>,
    /// Output format.
    #[arg(long = "out", value_enum, default_value_t = EventsOut::Text)]
    pub out: EventsOut,
    /// Stop after this many matching events (exit 1 if the timeout comes first).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Stop after this long (`30s`, `5m`); default: follow until interrupted.
    #[arg(long, short = 't', value_parser = brine_proto::config::parse_duration)]
    pub timeout: Option<Duration>,
}

/// `brine event …`.
#[derive(Debug, clap::Subcommand)]
pub enum EventCommand {
    /// Put an event on the bus, signed by the master (like salt-run event.send). Tags
    /// under brine/ are reserved to the admin; other operators need an ACL entry
    /// allowing event.send.
    Send {
        /// The tag: slash-separated words, e.g. myapp/deploy/done.
        tag: String,
        /// The data, as YAML or JSON (a mapping; anything else is sent as {data: …}).
        data: Option<String>,
    },
}

/// `brine reactor …`.
#[derive(Debug, clap::Subcommand)]
pub enum ReactorCommand {
    /// The configured reactor: tag globs and their reaction files, and the limits.
    List,
    /// Renders the reaction files an event would trigger and prints what would run,
    /// without running anything (no master needed).
    Test {
        /// The event's tag.
        tag: String,
        /// The event's data, as YAML or JSON.
        data: Option<String>,
        /// The event's source (`master` or a minion id), as reaction files see it.
        #[arg(long, default_value = "master")]
        source: String,
        /// Print JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// The reactions the reactor ran, newest first: event, file, what it started.
    History {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Reads event data given on the command line: YAML or JSON; a non-mapping is wrapped
/// as `{data: …}` (Salt's event data is a dict).
pub fn parse_data(text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text else { return Ok(Value::Object(Map::new())) };
    let value = match brine_states::sls::yaml::parse(text) {
        Ok(Some(node)) => node.to_value(),
        Ok(None) => Value::Null,
        Err(e) => return Err(format!("the event data is not YAML or JSON: {e}")),
    };
    Ok(match value {
        Value::Object(m) => Value::Object(m),
        Value::Null => Value::Object(Map::new()),
        other => {
            let mut m = Map::new();
            m.insert("data".into(), other);
            Value::Object(m)
        }
    })
}

fn tag_glob(pattern: &str) -> Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{pattern:?} is not a tag glob: {e}"))
}

/// The accepted minions' keys, if this operator may list them.
async fn minion_keys(op: &Operator) -> Option<HashMap<String, VerifyingKey>> {
    match op.request(CtlOp::KeyList).await {
        Ok(CtlResult::Keys(listing)) => Some(
            listing
                .accepted
                .into_iter()
                .filter(|e| e.status == KeyStatus::Accepted)
                .filter_map(|e| VerifyingKey::from_bytes(&e.key).ok().map(|k| (e.id.as_str().to_string(), k)))
                .collect(),
        ),
        _ => None,
    }
}

/// Follows the bus: every event is checked against its source's key (the master's,
/// or the minion's accepted key when this operator may list keys) before it is shown.
pub async fn follow(op: &Operator, args: EventsArgs, io: &mut Io<'_>) -> u8 {
    let glob = match args.tag.as_deref().map(tag_glob).transpose() {
        Ok(g) => g,
        Err(e) => {
            let _ = writeln!(io.err, "ERROR: {e}");
            return exit::USAGE;
        }
    };
    let mut sub = match op.client.subscribe(op.subjects.all_events()).await {
        Ok(s) => s,
        Err(e) => return fail(io, format!("cannot follow the event bus: {e}")),
    };
    let _ = op.client.flush().await;
    let mut keys = minion_keys(op).await;
    if keys.is_none() {
        let _ = writeln!(
            io.err,
            "WARNING: operator {} may not list minion keys: minion events are shown as signed by the key they name, \
             without checking it is the minion's",
            op.name()
        );
    }
    let prefix = format!("{}.event.", op.subjects.prefix());
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut seen = 0u64;
    // The master signs the events of a batch of returns together: one check a batch.
    let mut roots = TreeRoots::default();
    loop {
        if args.count.is_some_and(|n| seen >= n) {
            return exit::OK;
        }
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let next = tokio::select! {
            m = tokio::time::timeout_at(deadline.unwrap_or(far), sub.next()) => match m {
                Ok(m) => m,
                Err(_) => return if args.count.is_some() { exit::FAILED } else { exit::OK },
            },
            reason = op.refused() => {
                return fail(io, format!(
                    "operator {name} may not follow the event bus ({reason}); it carries every job's returns, so it \
                     needs operators.{name}.jobs in the master's config",
                    name = op.name()
                ))
            }
        };
        let Some(msg) = next else { return fail(io, "the event subscription ended") };
        let Some(source) = msg
            .subject
            .strip_prefix(prefix.as_str())
            .and_then(|r| r.split('.').next())
            .and_then(brine_proto::id::decode_token)
        else {
            continue;
        };
        let Ok(env) = Envelope::decode(&msg.payload) else { continue };
        let key = if source == crate::events::MASTER {
            Some(*op.master_key())
        } else if let Some(keys) = &mut keys {
            if !keys.contains_key(&source) {
                // A minion accepted since we started: ask again.
                if let Some(fresh) = minion_keys(op).await {
                    *keys = fresh;
                }
            }
            keys.get(&source).copied()
        } else {
            env.verify_self().ok()
        };
        let Some(key) = key else { continue };
        if env.verify_cached(&key, &mut roots).is_err() {
            continue;
        }
        let Ok(event) = env.body::<Event>(brine_proto::time::now_ms()) else { continue };
        if op.subjects.event(&source, &event.tag) != msg.subject.as_str()
            || !crate::events::tag_allowed(&source, &event.tag)
        {
            continue;
        }
        if glob.as_ref().is_some_and(|g| !g.is_match(&event.tag)) {
            continue;
        }
        seen += 1;
        let line = match args.out {
            EventsOut::Text => format!("{}\t{}", event.tag, event.data),
            EventsOut::Json => {
                let mut doc = serde_json::json!({"tag": event.tag, "source": source, "data": event.data});
                if event.depth > 0 {
                    doc["depth"] = event.depth.into();
                }
                if let Some(jid) = event.jid {
                    doc["jid"] = jid.to_string().into();
                }
                doc.to_string()
            }
        };
        if writeln!(io.out, "{line}").and_then(|()| io.out.flush()).is_err() {
            return exit::OK;
        }
    }
}

/// `brine event send`.
pub async fn send(op: &Operator, cmd: EventCommand, io: &mut Io<'_>) -> u8 {
    let EventCommand::Send { tag, data } = cmd;
    if let Err(e) = crate::events::valid_tag(&tag) {
        let _ = writeln!(io.err, "ERROR: {e}");
        return exit::USAGE;
    }
    let data = match parse_data(data.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(io.err, "ERROR: {e}");
            return exit::USAGE;
        }
    };
    match op.request(CtlOp::EventSend { tag, data }).await {
        Ok(CtlResult::EventSent { tag }) => {
            let _ = writeln!(io.out, "Sent {tag}");
            exit::OK
        }
        Ok(CtlResult::Error(e)) => fail(io, e.message),
        Ok(other) => fail(io, format!("unexpected answer: {other:?}")),
        Err(e) => fail(io, e),
    }
}

/// `brine reactor list` and `brine reactor test`: read the config on this host.
pub fn reactor_local(cfg: &MasterConfig, cmd: &ReactorCommand, io: &mut Io<'_>) -> u8 {
    match cmd {
        ReactorCommand::List => {
            let r = &cfg.reactor;
            let _ = writeln!(io.out, "max_depth: {}  max_concurrent: {}", r.max_depth, r.max_concurrent);
            if r.rules.is_empty() {
                let _ = writeln!(io.out, "No reactions are configured ([[reactor.rules]] in the master's config).");
                return exit::OK;
            }
            let rows = r
                .rules
                .iter()
                .flat_map(|rule| rule.files.iter().map(|f| vec![rule.tag.clone(), f.display().to_string()]))
                .collect();
            let _ = write!(io.out, "{}", columns(&["TAG", "REACTION FILE"], rows));
            exit::OK
        }
        ReactorCommand::Test { tag, data, source, json } => {
            let data = match parse_data(data.as_deref()) {
                Ok(d) => d,
                Err(e) => {
                    let _ = writeln!(io.err, "ERROR: {e}");
                    return exit::USAGE;
                }
            };
            let planned = crate::reactor::plan(&cfg.reactor, tag, &data, source);
            if planned.is_empty() {
                let _ = writeln!(io.out, "No reaction matches {tag}.");
                return exit::OK;
            }
            let failed = planned.iter().any(|p| matches!(p.action, PlannedAction::Error(_)));
            let text = if *json {
                brine_proto::output::json(&Value::Array(planned.iter().map(planned_doc).collect()))
            } else {
                describe(&planned)
            };
            let _ = write!(io.out, "{text}");
            if failed {
                exit::FAILED
            } else {
                exit::OK
            }
        }
        ReactorCommand::History { .. } => exit::USAGE,
    }
}

/// One planned entry as printed: its id, file and function, then what it would do
/// (Salt's argument names) or the error.
fn planned_doc(p: &Planned) -> Value {
    let mut doc = serde_json::json!({"name": p.name, "file": p.file, "function": p.function});
    let more = match &p.action {
        PlannedAction::Error(e) => serde_json::json!({"error": e}),
        PlannedAction::Run(Action::Job(run)) => {
            let (tgt, tgt_type) = crate::events::salt_target(&run.target);
            serde_json::json!({"tgt": tgt, "tgt_type": tgt_type, "arg": run.arg, "kwarg": run.kwarg})
        }
        PlannedAction::Run(Action::Event { tag, data }) => serde_json::json!({"tag": tag, "data": data}),
        PlannedAction::Run(Action::Orchestrate { mods, saltenv, pillar, test }) => {
            serde_json::json!({"mods": mods, "saltenv": saltenv, "pillar": pillar, "test": test})
        }
    };
    if let (Value::Object(d), Value::Object(m)) = (&mut doc, more) {
        d.extend(m);
    }
    doc
}

/// What would run, one block per entry.
fn describe(planned: &[Planned]) -> String {
    let mut out = String::new();
    for p in planned {
        out.push_str(&format!("{} ({}):\n", if p.name.is_empty() { "-" } else { &p.name }, p.file));
        let mut doc = planned_doc(p);
        if let Value::Object(m) = &mut doc {
            m.remove("name");
            m.remove("file");
            if p.function.is_empty() {
                m.remove("function");
            }
        }
        for line in brine_proto::output::yaml(&doc).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// `brine reactor history`.
pub async fn history(op: &Operator, limit: usize, json: bool, io: &mut Io<'_>) -> u8 {
    match op.request(CtlOp::ReactorHistory { limit }).await {
        Ok(CtlResult::Reactions(records)) => {
            if json {
                let doc = serde_json::to_value(&records).unwrap_or_default();
                let _ = write!(io.out, "{}", brine_proto::output::json(&doc));
                return exit::OK;
            }
            if records.is_empty() {
                let _ = writeln!(io.out, "No reactions yet.");
                return exit::OK;
            }
            let rows = records
                .into_iter()
                .map(|r| {
                    let jids: Vec<String> = r.jids.iter().map(|j| j.to_string()).collect();
                    vec![
                        brine_proto::time::format_ms(r.at_ms),
                        r.tag,
                        format!("{} {}", r.name, r.function).trim().to_string(),
                        if jids.is_empty() { "-".into() } else { jids.join(",") },
                        format!("{}: {}", if r.ok { "ok" } else { "FAILED" }, r.result),
                    ]
                })
                .collect();
            let _ = write!(io.out, "{}", columns(&["TIME", "EVENT", "REACTION", "JIDS", "RESULT"], rows));
            exit::OK
        }
        Ok(CtlResult::Error(e)) => fail(io, e.message),
        Ok(other) => fail(io, format!("unexpected answer: {other:?}")),
        Err(e) => fail(io, e),
    }
}
