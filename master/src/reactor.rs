//! The reactor: events in, jobs and events out.
//!
//! The master's `[reactor]` config maps tag globs to reaction files, like Salt's
//! `reactor:` list. For each verified event on the bus whose tag matches a glob, each
//! of its files is read (at that moment, so edits need no restart), rendered with
//! Jinja (`tag`, `data`, and the event's `source`), and read as YAML: every top-level
//! entry is one reaction, Salt style:
//!
//! ```yaml
//! restart_web:
//!   local.service.restart:        # local.<fun>: a job on targets, user `reactor`
//!     - tgt: {{ data['id'] }}
//!     - tgt_type: glob            # glob (default), list, pcre, grain, compound, …
//!     - arg: [nginx]
//!     - kwarg: {}
//! tell_everyone:
//!   event.send:                   # or runner.event.send: an event from the master
//!     - tag: myapp/restarted
//!     - data: {id: {{ data['id'] }}}
//! ```
//!
//! Jobs go through the same path as `brine run` ([`crate::ctl::start_job`]): job cache,
//! audit log, `brine/job/…` events. `runner.state.orchestrate` (`- args: - mods:
//! orch.deploy`) starts an orchestration ([`crate::orchestrate::start`]) as user
//! `reactor`. Loops are broken by depth: what a reaction causes
//! (its events, its jobs' events, events minions fire inside its jobs) is one deeper
//! than the event it reacted to, and events at `max_depth` or deeper are not reacted
//! to (logged and counted). At most `max_concurrent` reactions run at once. Every
//! reaction is recorded in the store (`brine reactor history`).

use crate::events::{target_from_salt, BusEvent};
use crate::master::Shared;
use crate::stats::Stats;
use brine_proto::msg::{ReactionRecord, RunRequest};
use brine_proto::{Map, Value};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How many reaction records the store keeps (the oldest go first).
const KEEP_RECORDS: usize = 10_000;

/// The `[reactor]` table as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawReactor {
    /// Events this many reactions deep are not reacted to. Default `5`.
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// Reactions running at once, at most. Default `4`.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// `[[reactor.rules]]`: a tag glob and its reaction files, in order.
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

impl Default for RawReactor {
    fn default() -> Self {
        RawReactor { max_depth: default_max_depth(), max_concurrent: default_max_concurrent(), rules: Vec::new() }
    }
}

/// A `[[reactor.rules]]` entry.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// A glob on event tags (`*` crosses `/`, as Salt's fnmatch does).
    pub tag: String,
    /// Reaction files (Jinja + YAML), relative to the config file's directory.
    pub files: Vec<PathBuf>,
}

fn default_max_depth() -> u32 {
    5
}
fn default_max_concurrent() -> usize {
    4
}

/// The validated reactor config.
#[derive(Debug, Clone)]
pub struct ReactorConfig {
    pub max_depth: u32,
    pub max_concurrent: usize,
    pub rules: Vec<Rule>,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig { max_depth: default_max_depth(), max_concurrent: default_max_concurrent(), rules: Vec::new() }
    }
}

/// A tag glob and its files.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The glob as written.
    pub tag: String,
    matcher: globset::GlobMatcher,
    pub files: Vec<PathBuf>,
}

impl Rule {
    /// Whether the rule applies to `tag`.
    pub fn matches(&self, tag: &str) -> bool {
        self.matcher.is_match(tag)
    }
}

impl ReactorConfig {
    /// Validates the raw table; an error names the key (`reactor.rules[0].tag`) and
    /// what is wrong. Relative file paths are relative to `base`.
    pub fn from_raw(raw: RawReactor, base: &Path) -> Result<ReactorConfig, (String, String)> {
        if raw.max_depth == 0 || raw.max_depth > 100 {
            return Err(("reactor.max_depth".into(), "must be between 1 and 100".into()));
        }
        if raw.max_concurrent == 0 || raw.max_concurrent > 1024 {
            return Err(("reactor.max_concurrent".into(), "must be between 1 and 1024".into()));
        }
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.into_iter().enumerate() {
            let matcher = globset::GlobBuilder::new(&r.tag)
                .literal_separator(false)
                .build()
                .map_err(|e| (format!("reactor.rules[{i}].tag"), format!("{:?} is not a glob: {e}", r.tag)))?
                .compile_matcher();
            if r.files.is_empty() {
                return Err((format!("reactor.rules[{i}].files"), "give at least one reaction file".into()));
            }
            let files = r.files.into_iter().map(|f| if f.is_relative() { base.join(f) } else { f }).collect();
            rules.push(Rule { tag: r.tag, matcher, files });
        }
        Ok(ReactorConfig { max_depth: raw.max_depth, max_concurrent: raw.max_concurrent, rules })
    }

    /// The files of every rule matching `tag`, in config order, with the glob.
    pub fn files_for<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = (&'a str, &'a Path)> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.matches(tag))
            .flat_map(|r| r.files.iter().map(move |f| (r.tag.as_str(), f.as_path())))
    }
}

/// What one entry of a rendered reaction file does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `local.<fun>`: a job on targets.
    Job(RunRequest),
    /// `runner.state.orchestrate`: an orchestration on the master, from these SLS
    /// names of `file_roots`.
    Orchestrate { mods: Vec<String>, saltenv: String, pillar: Map, test: bool },
    /// `event.send` / `runner.event.send`: an event from the master.
    Event { tag: String, data: Value },
}

/// One entry of a rendered reaction file: what it would do, or why it cannot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    pub file: String,
    /// The entry's id.
    pub name: String,
    /// The entry's function as written (`local.cmd.run`).
    pub function: String,
    /// What it does; an error for an entry that cannot run.
    #[serde(flatten)]
    pub action: PlannedAction,
}

/// A planned entry's action or error (flattened into [`Planned`] for printing).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedAction {
    Run(Action),
    Error(String),
}

/// Renders the reaction file `file` for an event and reads its entries. A file that
/// cannot be read or rendered gives one planned error.
pub fn plan_file(file: &Path, tag: &str, data: &Value, source: &str) -> Vec<Planned> {
    let shown = file.display().to_string();
    let fail = |message: String| {
        vec![Planned {
            file: shown.clone(),
            name: String::new(),
            function: String::new(),
            action: PlannedAction::Error(message),
        }]
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read reaction file {shown}: {e}")),
    };
    let mut extra = Map::new();
    extra.insert("tag".into(), tag.into());
    extra.insert("data".into(), data.clone());
    extra.insert("source".into(), source.into());
    let ctx = brine_states::sls::render::RenderContext {
        grains: Arc::default(),
        pillar: Arc::default(),
        opts: Map::new(),
        saltenv: "base".into(),
        sls: String::new(),
        slspath: String::new(),
        extra,
        exec: brine_states::Context::default(),
    };
    let rendered = match brine_states::sls::render::render_jinja(&shown, &text, &ctx, None) {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot render reaction file: {e}")),
    };
    let node = match brine_states::sls::yaml::parse(&rendered) {
        Ok(Some(n)) => n,
        Ok(None) => return Vec::new(),
        Err(e) => return fail(format!("reaction file {shown}, rendered: YAML error at {e}")),
    };
    let Some(entries) = node.as_map() else {
        return fail(format!(
            "reaction file {shown} must be a mapping of ids to reactions, not a {}",
            node.type_name()
        ));
    };
    let mut out = Vec::new();
    for (id, body) in entries {
        let name = id.key_string();
        let planned = |function: String, action: PlannedAction| Planned {
            file: shown.clone(),
            name: name.clone(),
            function,
            action,
        };
        let Some(funcs) = body.as_map().filter(|m| m.len() == 1) else {
            out.push(planned(
                String::new(),
                PlannedAction::Error(format!(
                    "{name}: give exactly one function, e.g. local.cmd.run, with its arguments"
                )),
            ));
            continue;
        };
        let function = funcs[0].0.key_string();
        let args = match merged_args(&funcs[0].1.to_value()) {
            Ok(a) => a,
            Err(e) => {
                out.push(planned(function.clone(), PlannedAction::Error(format!("{name}: {function}: {e}"))));
                continue;
            }
        };
        let action = match action_of(&function, args) {
            Ok(a) => PlannedAction::Run(a),
            Err(e) => PlannedAction::Error(format!("{name}: {function}: {e}")),
        };
        out.push(planned(function, action));
    }
    out
}

/// Salt writes a reaction's arguments as a list of one-key maps (`- tgt: web1`), or as
/// a map; both become one map.
fn merged_args(v: &Value) -> Result<Map, String> {
    match v {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m.clone()),
        Value::Array(items) => {
            let mut out = Map::new();
            for item in items {
                match item {
                    Value::Object(m) => out.extend(m.clone()),
                    other => return Err(format!("arguments are `- name: value` items, not {other}")),
                }
            }
            Ok(out)
        }
        other => Err(format!("arguments are `- name: value` items, not {other}")),
    }
}

/// Salt's new-style `args` (a list of one-key maps, or a map) as keyword arguments.
fn kwargs_of(v: &Value) -> Result<Map, String> {
    merged_args(v).map_err(|_| "args must be a list of `- name: value` items".to_string())
}

fn action_of(function: &str, mut args: Map) -> Result<Action, String> {
    if let Some(fun) = function.strip_prefix("local.") {
        let tgt = args.remove("tgt").ok_or("needs tgt (the target)")?;
        let tgt_type = match args.remove("tgt_type").or_else(|| args.remove("expr_form")) {
            Some(Value::String(s)) => s,
            Some(other) => return Err(format!("tgt_type must be a word, not {other}")),
            None => "glob".into(),
        };
        let target = target_from_salt(&tgt, &tgt_type)?;
        let arg = match args.remove("arg") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a,
            Some(one) => vec![one],
        };
        let mut kwarg = match args.remove("kwarg") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(other) => return Err(format!("kwarg must be a mapping, not {other}")),
        };
        if let Some(a) = args.remove("args") {
            kwarg.extend(kwargs_of(&a)?);
        }
        if let Some(k) = args.keys().next() {
            return Err(format!("unknown argument {k:?} (use tgt, tgt_type, arg, kwarg, args)"));
        }
        return Ok(Action::Job(RunRequest {
            target,
            fun: fun.to_string(),
            arg,
            kwarg,
            stream_to: None,
            queue_ttl_ms: None,
        }));
    }
    // Runners take their arguments new style (`args:`) or directly.
    let mut args = match args.remove("args") {
        Some(a) => {
            let mut k = kwargs_of(&a)?;
            k.extend(args);
            k
        }
        None => args,
    };
    match function {
        "runner.state.orchestrate" | "runner.state.orch" | "runner.state.orchestrate_single" => {
            let mods = match args.remove("mods").or_else(|| args.remove("arg")) {
                Some(Value::String(s)) => {
                    s.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect()
                }
                Some(Value::Array(items)) => {
                    items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), String::from)).collect()
                }
                Some(other) => return Err(format!("mods must be an SLS name or a list of them, not {other}")),
                None => Vec::new(),
            };
            if mods.is_empty() {
                return Err("needs mods (the orchestration SLS, e.g. orch.deploy)".into());
            }
            let saltenv = match args.remove("saltenv") {
                Some(Value::String(s)) => s,
                None | Some(Value::Null) => "base".into(),
                Some(other) => return Err(format!("saltenv must be a name, not {other}")),
            };
            let pillar = match args.remove("pillar") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                Some(other) => return Err(format!("pillar must be a mapping, not {other}")),
            };
            let test = matches!(args.remove("test"), Some(Value::Bool(true)));
            Ok(Action::Orchestrate { mods, saltenv, pillar, test })
        }
        "event.send" | "runner.event.send" => {
            let tag = match args.remove("tag").or_else(|| args.remove("name")) {
                Some(Value::String(t)) => t,
                Some(other) => return Err(format!("tag must be text, not {other}")),
                None => return Err("needs tag".into()),
            };
            crate::events::valid_tag(&tag)?;
            let data = args.remove("data").unwrap_or_else(|| Value::Object(Map::new()));
            Ok(Action::Event { tag, data })
        }
        f if f.starts_with("wheel.") || f.starts_with("caller.") || f.starts_with("runner.") => Err(format!(
            "{f} is not supported by brine's reactor (use local.<fun>, local.state.apply, runner.state.orchestrate, \
             event.send)"
        )),
        f => Err(format!("unknown reaction {f:?} (use local.<fun>, runner.state.orchestrate or event.send)")),
    }
}

/// What `brine reactor test` prints and the reactor would run for one event. Text in
/// the event's data has its control characters escaped (a newline becomes `\n`)
/// before rendering: a value dropped into a reaction file stays on its line and
/// cannot add YAML entries (another target, another function) to it. Data is
/// untrusted whatever the source: a minion's own events, the returns in
/// `brine/job/…/ret/…`, an operator's `brine event send`.
pub fn plan(cfg: &ReactorConfig, tag: &str, data: &Value, source: &str) -> Vec<Planned> {
    let data = escape_controls(data);
    cfg.files_for(tag).flat_map(|(_, file)| plan_file(file, tag, &data, source)).collect()
}

/// `data` with control characters in its strings (keys too) written as escapes.
fn escape_controls(data: &Value) -> Value {
    fn text(s: &str) -> String {
        if !s.chars().any(char::is_control) {
            return s.to_string();
        }
        s.chars()
            .map(|c| match c {
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                '\t' => "\\t".to_string(),
                c if c.is_control() => format!("\\u{{{:04x}}}", c as u32),
                c => c.to_string(),
            })
            .collect()
    }
    match data {
        Value::String(s) => Value::String(text(s)),
        Value::Array(a) => Value::Array(a.iter().map(escape_controls).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (text(k), escape_controls(v))).collect()),
        other => other.clone(),
    }
}

/// Runs the reactor until the task is aborted: one task per matching event, at most
/// `max_concurrent` at once.
pub async fn serve(shared: Arc<Shared>) {
    let cfg = shared.cfg.reactor.clone();
    if cfg.rules.is_empty() {
        return;
    }
    let mut events = shared.subscribe();
    let permits = Arc::new(Semaphore::new(cfg.max_concurrent));
    tracing::info!(rules = cfg.rules.len(), max_depth = cfg.max_depth, "reactor is up");
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::error!(missed = n, "the reactor fell behind the bus and missed events");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if cfg.files_for(&event.tag).next().is_none() {
            continue;
        }
        if event.depth >= cfg.max_depth {
            Stats::bump(&shared.stats.reactions_loop_stopped);
            tracing::warn!(
                tag = %event.tag, source = %event.source, depth = event.depth,
                "not reacting: the reaction chain reached reactor.max_depth (a reaction loop?)"
            );
            let result =
                format!("not run: the event is {} reactions deep, reactor.max_depth is {}", event.depth, cfg.max_depth);
            let files: Vec<String> = cfg.files_for(&event.tag).map(|(_, f)| f.display().to_string()).collect();
            record(&shared, stopped(&event, files.join(", "), result));
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let shared = shared.clone();
        tokio::spawn(async move {
            react(&shared, &event).await;
            drop(permit);
        });
    }
}

fn stopped(event: &BusEvent, file: String, result: String) -> ReactionRecord {
    ReactionRecord {
        at_ms: brine_proto::time::now_ms(),
        tag: event.tag.clone(),
        source: event.source.clone(),
        depth: event.depth,
        file,
        name: String::new(),
        function: String::new(),
        jids: Vec::new(),
        ok: false,
        result,
    }
}

/// Renders every matching file for one event and carries out its entries in order.
async fn react(shared: &Arc<Shared>, event: &Arc<BusEvent>) {
    let cfg = &shared.cfg.reactor;
    let (ev, c) = (event.clone(), cfg.clone());
    let planned = match tokio::task::spawn_blocking(move || plan(&c, &ev.tag, &ev.data, &ev.source)).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "rendering reaction files failed");
            return;
        }
    };
    for p in planned {
        let mut rec = ReactionRecord {
            at_ms: brine_proto::time::now_ms(),
            tag: event.tag.clone(),
            source: event.source.clone(),
            depth: event.depth,
            file: p.file.clone(),
            name: p.name.clone(),
            function: p.function.clone(),
            jids: Vec::new(),
            ok: false,
            result: String::new(),
        };
        let depth = event.depth + 1;
        match p.action {
            PlannedAction::Error(e) => rec.result = e,
            PlannedAction::Run(Action::Job(run)) => {
                let fun = run.fun.clone();
                match crate::ctl::start_job(shared, "reactor", run, depth).await {
                    Ok(started) => {
                        rec.ok = true;
                        rec.jids.push(started.jid);
                        rec.result = format!("started {fun} on {} minion(s)", started.minions.len());
                    }
                    Err(e) => rec.result = format!("job refused: {}", e.message),
                }
            }
            PlannedAction::Run(Action::Event { tag, data }) => {
                shared.emit_at_depth(&tag, data, depth).await;
                rec.ok = true;
                rec.result = format!("sent {tag}");
            }
            PlannedAction::Run(Action::Orchestrate { mods, saltenv, pillar, test }) => {
                let o = crate::orchestrate::Orchestration {
                    source: crate::orchestrate::Source::Sls(mods.clone()),
                    saltenv,
                    pillar,
                    test,
                    user: "reactor".into(),
                    depth,
                };
                match crate::orchestrate::start(shared, o).await {
                    Ok(started) => {
                        rec.ok = true;
                        rec.jids.push(started.jid);
                        rec.result = format!("started orchestration {}", mods.join(","));
                    }
                    Err(e) => rec.result = format!("orchestration refused: {e}"),
                }
            }
        }
        Stats::bump(&shared.stats.reactions_run);
        if rec.ok {
            tracing::info!(tag = %rec.tag, file = %rec.file, name = %rec.name, result = %rec.result, "reaction");
        } else {
            Stats::bump(&shared.stats.reactions_failed);
            tracing::error!(tag = %rec.tag, file = %rec.file, name = %rec.name, error = %rec.result, "reaction failed");
        }
        record(shared, rec);
    }
}

fn tree(shared: &Shared) -> Result<sled::Tree, crate::store::StoreError> {
    shared.store.tree("reactions")
}

/// Stores one reaction record (keyed by time, then a unique counter), keeping the
/// newest [`KEEP_RECORDS`].
fn record(shared: &Shared, rec: ReactionRecord) {
    let result = (|| -> Result<(), String> {
        let tree = tree(shared).map_err(|e| e.to_string())?;
        // Records of the same millisecond keep their order through a counter.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut key = Vec::with_capacity(16);
        key.extend_from_slice(&rec.at_ms.to_be_bytes());
        key.extend_from_slice(&seq.to_be_bytes());
        let value = rmp_serde::to_vec_named(&rec).map_err(|e| e.to_string())?;
        tree.insert(key, value).map_err(|e| e.to_string())?;
        // Counting a sled tree walks it: trim now and then, not on every record.
        if seq % 256 == 0 {
            let extra = tree.len().saturating_sub(KEEP_RECORDS);
            for _ in 0..extra {
                if tree.pop_min().map_err(|e| e.to_string())?.is_none() {
                    break;
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record a reaction");
    }
}

/// The newest `limit` reaction records, newest first; the result of a reaction that
/// started jobs says how they are doing now (from the job cache's totals).
pub fn history(shared: &Shared, limit: usize) -> Result<Vec<ReactionRecord>, crate::store::StoreError> {
    use crate::store::JobCache;
    let tree = tree(shared)?;
    let mut out = Vec::new();
    for item in tree.iter().rev().take(limit) {
        let Ok((_, v)) = item else { continue };
        match rmp_serde::from_slice::<ReactionRecord>(&v) {
            Ok(mut r) => {
                for jid in &r.jids {
                    if let Ok(Some(c)) = shared.store.counts(*jid) {
                        r.result
                            .push_str(&format!("; {jid}: {}/{} returned, {} failed", c.returned, c.targeted, c.failed));
                    }
                }
                out.push(r)
            }
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable reaction record"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(dir: &Path, text: &str) -> ReactorConfig {
        std::fs::write(dir.join("r.sls"), text).unwrap();
        let raw = RawReactor {
            rules: vec![RawRule { tag: "myapp/*".into(), files: vec!["r.sls".into()] }],
            ..Default::default()
        };
        ReactorConfig::from_raw(raw, dir).unwrap()
    }

    #[test]
    fn reaction_files_render_with_tag_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(
            dir.path(),
            "run_it:\n  local.cmd.run:\n    - tgt: {{ data['id'] }}\n    - arg:\n      - echo {{ tag }}\n\
             tell:\n  runner.event.send:\n    - args:\n      - tag: done/{{ data['id'] }}\n      - data: {x: 1}\n",
        );
        let p = plan(&c, "myapp/go", &json!({"id": "web1"}), "web1");
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0].action,
            PlannedAction::Run(Action::Job(RunRequest {
                target: brine_proto::Target::Glob("web1".into()),
                fun: "cmd.run".into(),
                arg: vec![json!("echo myapp/go")],
                kwarg: Map::new(),
                stream_to: None,
                queue_ttl_ms: None,
            }))
        );
        assert_eq!(p[1].action, PlannedAction::Run(Action::Event { tag: "done/web1".into(), data: json!({"x": 1}) }));
        assert!(plan(&c, "other/tag", &json!({}), "web1").is_empty());
    }

    #[test]
    fn orchestrations_take_mods_new_and_old_style() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(
            dir.path(),
            "a:\n  runner.state.orchestrate:\n    - args:\n      - mods: orch.deploy\n      - pillar: {v: 1}\n\
             b:\n  runner.state.orchestrate:\n    - mods: [orch.a, orch.b]\n\
             c:\n  runner.state.orchestrate: []\n",
        );
        let p = plan(&c, "myapp/x", &json!({}), "m");
        let mut pillar = Map::new();
        pillar.insert("v".into(), json!(1));
        assert_eq!(
            p[0].action,
            PlannedAction::Run(Action::Orchestrate {
                mods: vec!["orch.deploy".into()],
                saltenv: "base".into(),
                pillar,
                test: false
            })
        );
        assert!(matches!(&p[1].action, PlannedAction::Run(Action::Orchestrate { mods, .. }) if mods.len() == 2));
        assert!(matches!(&p[2].action, PlannedAction::Error(e) if e.contains("needs mods")), "{:?}", p[2]);
    }

    #[test]
    fn a_minion_cannot_add_entries_through_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let c =
            cfg(dir.path(), "note:\n  local.cmd.run:\n    - tgt: web1\n    - arg:\n      - echo {{ data['msg'] }}\n");
        let jobs = |p: &[Planned]| -> Vec<RunRequest> {
            p.iter()
                .filter_map(|p| match &p.action {
                    PlannedAction::Run(Action::Job(run)) => Some(run.clone()),
                    _ => None,
                })
                .collect()
        };
        // A newline stays inside the value.
        let p = plan(&c, "myapp/x", &json!({"msg": "hi\nthere"}), "web1");
        assert_eq!(jobs(&p)[0].arg, vec![json!("echo hi\\nthere")]);
        // An attempt to add an entry targeting everyone runs nothing but web1's note.
        let evil = json!({"msg": "hi\nevil:\n  local.cmd.run:\n    - tgt: '*'\n    - arg: [id]"});
        let p = plan(&c, "myapp/x", &evil, "web1");
        let planned = jobs(&p);
        assert!(planned.len() <= 1, "{p:?}");
        assert!(planned.iter().all(|r| r.target == brine_proto::Target::Glob("web1".into())), "{p:?}");
        // The same for the master's events (a return in brine/job/…/ret/… is a minion's).
        let p = plan(&c, "myapp/x", &evil, crate::events::MASTER);
        assert!(jobs(&p).iter().all(|r| r.target == brine_proto::Target::Glob("web1".into())), "{p:?}");
    }

    #[test]
    fn bad_reactions_are_reported_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), "a:\n  local.test.ping: []\nb:\n  wheel.key.accept: []\nc: 3\n");
        let p = plan(&c, "myapp/x", &json!({}), "m");
        let errors: Vec<String> = p
            .iter()
            .map(|p| match &p.action {
                PlannedAction::Error(e) => e.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(errors[0].contains("needs tgt"), "{errors:?}");
        assert!(errors[1].contains("not supported"), "{errors:?}");
        assert!(errors[2].contains("exactly one function"), "{errors:?}");
        let c = cfg(dir.path(), "a: {{ data['missing'] }}\n");
        let p = plan(&c, "myapp/x", &json!({}), "m");
        assert!(matches!(&p[0].action, PlannedAction::Error(e) if e.contains("cannot render")), "{p:?}");
    }

    #[test]
    fn config_is_checked() {
        let base = Path::new("/etc/brine");
        let bad = |raw: RawReactor| ReactorConfig::from_raw(raw, base).unwrap_err().0;
        assert_eq!(bad(RawReactor { max_depth: 0, ..Default::default() }), "reactor.max_depth");
        assert_eq!(
            bad(RawReactor {
                rules: vec![RawRule { tag: "a/[".into(), files: vec!["x".into()] }],
                ..Default::default()
            }),
            "reactor.rules[0].tag"
        );
        let ok = ReactorConfig::from_raw(
            RawReactor {
                rules: vec![RawRule { tag: "brine/minion/*/start".into(), files: vec!["r.sls".into()] }],
                ..Default::default()
            },
            base,
        )
        .unwrap();
        assert!(ok.rules[0].matches("brine/minion/web1.example.com/start"));
        assert_eq!(ok.rules[0].files[0], Path::new("/etc/brine/r.sls"));
    }
}
