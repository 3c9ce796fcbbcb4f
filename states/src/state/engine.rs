//! Ordering and running low chunks, with Salt's requisite semantics (checked
//! scenario by scenario against Salt 3007.8, see `states/tests/scenarios`).
//!
//! Chunks are sorted by `order` (Salt's automatic numbering in render order, `first`,
//! `last`, explicit numbers; ties by module, name and function), then run one by one.
//! A chunk first runs every state it requires (depth first), then weighs its
//! requisites the way Salt does: a failed target fails it (except for `onfail`, where a
//! failure is what it waits for), `onchanges` and `onfail` decide whether it runs at
//! all, a changed `watch` target adds the module's watch action, and `prereq` runs it
//! only if its target is about to change. `listen` watch actions run at the end.

use super::compile::{Chunk, ReqBase, ReqKind, ReqTarget, Retry};
use super::{lookup, Outcome, StateContext};
use brine_proto::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// One chunk's result, shaped like Salt's.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkResult {
    pub key: String,
    /// Empty for run-level entries (`Listen_Error`).
    pub id: String,
    pub name: String,
    pub sls: String,
    pub function: String,
    /// `None`: would change (test mode).
    pub result: Option<bool>,
    pub changes: Map,
    pub comment: String,
    /// Local wall time the state started, `HH:MM:SS.ffffff`.
    pub start_time: String,
    pub duration_ms: f64,
    pub run_num: usize,
}

impl ChunkResult {
    /// The result as Salt's JSON shows it.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        if !self.id.is_empty() {
            m.insert("__id__".into(), self.id.clone().into());
        }
        m.insert("__run_num__".into(), self.run_num.into());
        if !self.id.is_empty() {
            m.insert("__sls__".into(), self.sls.clone().into());
        }
        m.insert("changes".into(), Value::Object(self.changes.clone()));
        m.insert("comment".into(), self.comment.clone().into());
        m.insert("duration".into(), serde_json::Number::from_f64(self.duration_ms).map_or(Value::Null, Value::Number));
        m.insert("name".into(), self.name.clone().into());
        m.insert("result".into(), self.result.map_or(Value::Null, Value::Bool));
        m.insert("start_time".into(), self.start_time.clone().into());
        Value::Object(m)
    }
}

/// How a state run goes.
pub struct StateRun<'a> {
    pub ctx: StateContext<'a>,
    /// Test mode: predict, change nothing.
    pub test: bool,
}

/// Errors that stop a run before anything executes.
pub type RunErrors = Vec<String>;

fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?', '[']) {
        return pattern == text;
    }
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher().is_match(text))
        .unwrap_or(false)
}

/// The chunks a requisite target names: by id or name (and module), every function of
/// an id (`id:`), or every state of an SLS (`sls:`).
pub fn matching(chunks: &[Chunk], target: &ReqTarget) -> Vec<usize> {
    chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| match target.module.as_str() {
            "sls" => glob_match(&target.pattern, &c.sls),
            "id" => glob_match(&target.pattern, &c.id) || glob_match(&target.pattern, &c.name),
            m => c.module == m && (glob_match(&target.pattern, &c.id) || glob_match(&target.pattern, &c.name)),
        })
        .map(|(i, _)| i)
        .collect()
}

/// Salt's ordering key of every chunk.
fn order_keys(chunks: &[Chunk]) -> Vec<(f64, String)> {
    let explicit = |c: &Chunk| c.order.as_ref().and_then(Value::as_f64);
    let mut cap: f64 = 1.0;
    for c in chunks {
        if let Some(o) = c.order.as_ref().and_then(Value::as_i64).or(c.order.is_none().then_some(c.auto_order as i64)) {
            let o = o as f64;
            if o > cap - 1.0 && o > 0.0 {
                cap = o + 100.0;
            }
        }
    }
    chunks
        .iter()
        .map(|c| {
            let base = match (&c.order, explicit(c)) {
                (None, _) => c.auto_order as f64,
                (_, Some(o)) if o < 0.0 => cap + 1_000_000.0 + o,
                (_, Some(o)) => o,
                (Some(Value::String(s)), _) if s == "first" => 0.0,
                (Some(Value::String(s)), _) if s == "last" => cap + 1_000_000.0,
                (Some(_), _) => cap,
            };
            let order = base + c.name_order.map_or(0.0, |n| n as f64 / 10_000.0);
            (order, format!("{}{}{}", c.module, c.name, c.fun))
        })
        .collect()
}

/// A resolved requisite.
#[derive(Debug, Clone)]
struct Dep {
    kind: ReqKind,
    on: usize,
}

/// Per chunk: resolved requisites, and the requisites that named nothing.
struct Resolved {
    deps: Vec<Vec<Dep>>,
    missing: Vec<Vec<(ReqKind, ReqTarget)>>,
    /// Listen targets that named nothing: (module, pattern).
    listen_missing: Vec<(String, String)>,
}

/// Resolves every requisite (and `_in` inversions, and `use`) to chunk indices.
fn resolve(chunks: &mut [Chunk]) -> Resolved {
    let n = chunks.len();
    let mut r = Resolved { deps: vec![Vec::new(); n], missing: vec![Vec::new(); n], listen_missing: Vec::new() };
    let require = ReqKind { base: ReqBase::Require, any: false, all: false };
    for i in 0..n {
        for (kind, target) in chunks[i].reqs.clone() {
            let found = matching(chunks, &target);
            if found.is_empty() {
                if kind.base == ReqBase::Listen {
                    r.listen_missing.push((target.module.clone(), target.pattern.clone()));
                } else {
                    r.missing[i].push((kind, target));
                }
                continue;
            }
            for j in found {
                if kind.base == ReqBase::Prereq {
                    // The prereq target waits for this chunk; this chunk asks it first.
                    r.deps[j].push(Dep { kind: ReqKind { base: ReqBase::Require, ..require }, on: i });
                }
                r.deps[i].push(Dep { kind, on: j });
            }
        }
        for (kind, target) in chunks[i].reqs_in.clone() {
            for j in matching(chunks, &target) {
                if kind.base == ReqBase::Prereq {
                    r.deps[i].push(Dep { kind: require, on: j });
                }
                r.deps[j].push(Dep { kind, on: i });
            }
        }
    }
    // `use`: take the other state's arguments (and conditions) where this one has none.
    for i in 0..n {
        let used: Vec<usize> = r.deps[i].iter().filter(|d| d.kind.base == ReqBase::Use).map(|d| d.on).collect();
        for j in used {
            let src = chunks[j].clone();
            let c = &mut chunks[i];
            for (k, v) in src.args {
                c.args.entry(k).or_insert(v);
            }
            if c.onlyif.is_empty() {
                c.onlyif = src.onlyif;
            }
            if c.unless.is_empty() {
                c.unless = src.unless;
            }
            if c.creates.is_empty() {
                c.creates = src.creates;
            }
        }
    }
    r
}

/// Runs a shell condition (`onlyif`, `unless`): whether it succeeded.
fn condition(ctx: &StateContext, cmd: &Value) -> bool {
    match cmd {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::String(s) => {
            let mut kw = Map::new();
            kw.insert("ignore_retcode".into(), Value::Bool(true));
            matches!(crate::exec::call("cmd.retcode", ctx.exec, vec![Value::String(s.clone())], kw), Ok(o) if o.ret == 0)
        }
        other => !other.is_null(),
    }
}

fn now_hms() -> String {
    let c = brine_proto::time::Civil::from_unix_micros(brine_proto::time::now_micros());
    format!("{:02}:{:02}:{:02}.{:06}", c.hour, c.minute, c.second, c.micros)
}

/// What a state function call gave: result, changes, comment.
type Called = (Option<bool>, Map, String);

/// A function's outcome as a result: "would change" in test mode is `None`.
fn called(outcome: Outcome, test: bool) -> Called {
    let would_change = !outcome.changes.is_empty() || outcome.predicted;
    let result = match (outcome.ok, test, would_change) {
        (false, _, _) => Some(false),
        (true, true, true) => None,
        (true, _, _) => Some(true),
    };
    (result, outcome.changes, outcome.comment)
}

/// What the requisites say about running a chunk.
enum Status {
    Run { watch: bool },
    Fail(Vec<usize>),
    OnfailNotMet,
    OnchangesNotMet,
}

struct Runner<'a, 'b> {
    run: &'a StateRun<'b>,
    chunks: &'a [Chunk],
    resolved: &'a Resolved,
    results: Vec<Option<ChunkResult>>,
    next_run_num: usize,
    in_progress: HashSet<usize>,
    /// A failhard state failed: nothing more runs.
    stop: bool,
}

impl Runner<'_, '_> {
    fn take_run_num(&mut self) -> usize {
        self.next_run_num += 1;
        self.next_run_num - 1
    }

    fn record(&mut self, i: usize, (result, changes, comment): Called, start: String, t0: Instant, run_num: usize) {
        let c = &self.chunks[i];
        self.results[i] = Some(ChunkResult {
            key: c.key(),
            id: c.id.clone(),
            name: c.name.clone(),
            sls: c.sls.clone(),
            function: c.function(),
            result,
            changes,
            comment,
            start_time: start,
            duration_ms: (t0.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
            run_num,
        });
    }

    /// Records a chunk that did not call its function.
    fn skip(&mut self, i: usize, result: Option<bool>, comment: String) {
        let run_num = self.take_run_num();
        self.record(i, (result, Map::new(), comment), now_hms(), Instant::now(), run_num);
    }

    /// The targets of this chunk's `watch`/`listen` that changed, as `module: id`.
    fn changed_reqs(&self, i: usize, base: ReqBase) -> Vec<Value> {
        self.resolved.deps[i]
            .iter()
            .filter(|d| d.kind.base == base)
            .filter(|d| self.results[d.on].as_ref().is_some_and(|r| !r.changes.is_empty()))
            .map(|d| Value::String(format!("{}: {}", self.chunks[d.on].module, self.chunks[d.on].id)))
            .collect()
    }

    /// Calls the state function (or its watch action), turning its outcome into a result.
    fn call(&self, i: usize, watch: Option<&[Value]>, test: bool) -> Called {
        let c = &self.chunks[i];
        let Some(f) = lookup(&c.function()) else {
            return (Some(false), Map::new(), format!("State '{}' was not found", c.function()));
        };
        let apply = !test;
        let outcome: Outcome = match watch {
            Some(reqs) => match f.watch(&self.run.ctx, &c.name, &c.args, apply, reqs) {
                Some(o) => o,
                None => f.call(&self.run.ctx, &c.name, &c.args, apply),
            },
            None => f.call(&self.run.ctx, &c.name, &c.args, apply),
        };
        called(outcome, test)
    }

    /// Runs the watch action of chunk `i`'s function, if it has one.
    fn call_watch(&self, i: usize, reqs: &[Value], test: bool) -> Option<Called> {
        let c = &self.chunks[i];
        let outcome = lookup(&c.function())?.watch(&self.run.ctx, &c.name, &c.args, !test, reqs)?;
        Some(called(outcome, test))
    }

    /// `onlyif`, `unless`, `creates`: the comment of a skip, if the chunk is skipped.
    fn conditions(&self, i: usize) -> Option<String> {
        let c = &self.chunks[i];
        if !c.onlyif.is_empty() && !c.onlyif.iter().all(|cmd| condition(&self.run.ctx, cmd)) {
            return Some("onlyif condition is false".into());
        }
        if !c.unless.is_empty() && c.unless.iter().all(|cmd| condition(&self.run.ctx, cmd)) {
            return Some("unless condition is true".into());
        }
        if !c.creates.is_empty() {
            if let Some(p) = c.creates.iter().find(|p| std::path::Path::new(p).exists()) {
                if c.creates.iter().all(|p| std::path::Path::new(p).exists()) {
                    return Some(format!("{p} exists"));
                }
            }
        }
        None
    }

    /// Weighs the requisites of chunk `i`, all of whose targets have run.
    fn status(&self, i: usize) -> Status {
        let result = |j: usize| self.results[j].as_ref().and_then(|r| r.result);
        let changed = |j: usize| self.results[j].as_ref().is_some_and(|r| !r.changes.is_empty());
        let deps: Vec<&Dep> = self.resolved.deps[i]
            .iter()
            .filter(|d| !matches!(d.kind.base, ReqBase::Prereq | ReqBase::Listen | ReqBase::Use))
            .collect();
        let mut failed: Vec<usize> = Vec::new();
        // Plain requisites: any failed target fails the chunk.
        for d in deps.iter().filter(|d| !d.kind.any && d.kind.base != ReqBase::Onfail) {
            if result(d.on) == Some(false) {
                failed.push(d.on);
            }
        }
        // `_any` requisites: fail only if every target of that kind failed.
        for base in [ReqBase::Require, ReqBase::Watch, ReqBase::Onchanges] {
            let group: Vec<usize> = deps.iter().filter(|d| d.kind.any && d.kind.base == base).map(|d| d.on).collect();
            if !group.is_empty() && group.iter().all(|j| result(*j) == Some(false)) {
                failed.extend(group);
            }
        }
        if !failed.is_empty() {
            // Failed onfail targets are named too.
            failed.extend(
                deps.iter().filter(|d| d.kind.base == ReqBase::Onfail && result(d.on) == Some(false)).map(|d| d.on),
            );
            return Status::Fail(failed);
        }
        let onfail: Vec<&&Dep> = deps.iter().filter(|d| d.kind.base == ReqBase::Onfail).collect();
        if !onfail.is_empty() {
            let hit = if onfail.iter().any(|d| d.kind.all) {
                onfail.iter().all(|d| result(d.on) == Some(false))
            } else {
                // Only a success is "did not change": a prediction (test mode) may fail.
                onfail.iter().any(|d| result(d.on) != Some(true))
            };
            if !hit {
                return Status::OnfailNotMet;
            }
        }
        let onchanges: Vec<&&Dep> = deps.iter().filter(|d| d.kind.base == ReqBase::Onchanges).collect();
        if !onchanges.is_empty() && !onchanges.iter().any(|d| changed(d.on)) {
            return Status::OnchangesNotMet;
        }
        let watch = deps.iter().any(|d| d.kind.base == ReqBase::Watch && changed(d.on) && result(d.on) != Some(false));
        Status::Run { watch }
    }

    /// What a prereq target would do, without running it: conditions, then the function
    /// in test mode.
    fn predict(&self, j: usize) -> Called {
        if let Some(skip) = self.conditions(j) {
            return (Some(true), Map::new(), skip);
        }
        self.call(j, None, true)
    }

    fn chunk(&mut self, i: usize) {
        if self.results[i].is_some() || self.stop {
            return;
        }
        self.in_progress.insert(i);
        // Everything this chunk depends on runs first (prereq targets run after it).
        let needs: Vec<usize> = self.resolved.deps[i]
            .iter()
            .filter(|d| !matches!(d.kind.base, ReqBase::Prereq | ReqBase::Listen | ReqBase::Use))
            .map(|d| d.on)
            .collect();
        for j in needs {
            if self.results[j].is_some() {
                continue;
            }
            if self.in_progress.contains(&j) {
                self.in_progress.remove(&i);
                return self.skip(i, Some(false), "Recursive requisite found".into());
            }
            self.chunk(j);
            if self.stop {
                return;
            }
        }
        self.in_progress.remove(&i);
        if self.results[i].is_some() {
            return;
        }
        if !self.resolved.missing[i].is_empty() {
            let mut text = String::from("The following requisites were not found:\n");
            // Salt lists the kinds in a fixed order, whatever order they were written in.
            let mut kinds: Vec<ReqKind> = Vec::new();
            for (k, _) in &self.resolved.missing[i] {
                if !kinds.contains(k) {
                    kinds.push(*k);
                }
            }
            kinds.sort_by_key(|k| {
                let base = match k.base {
                    ReqBase::Require => 0,
                    ReqBase::Watch => 1,
                    ReqBase::Prereq => 2,
                    ReqBase::Onfail => 3,
                    ReqBase::Onchanges => 4,
                    ReqBase::Use => 5,
                    ReqBase::Listen => 6,
                };
                (base, k.any, k.all)
            });
            for k in kinds {
                text.push_str(&format!("                   {}:\n", k.word()));
                for (_, t) in self.resolved.missing[i].iter().filter(|(kk, _)| *kk == k) {
                    text.push_str(&format!("                       {}: {}\n", t.module, t.pattern));
                }
            }
            self.skip(i, Some(false), text);
            return self.after(i);
        }
        let watch = match self.status(i) {
            Status::Fail(mut failed) => {
                let mut labels: Vec<String> =
                    failed.drain(..).map(|j| format!("{}.{}", self.chunks[j].sls, self.chunks[j].id)).collect();
                labels.sort();
                labels.dedup();
                self.skip(i, Some(false), format!("One or more requisite failed: {}", labels.join(", ")));
                return self.after(i);
            }
            Status::OnfailNotMet => {
                self.skip(i, Some(true), "State was not run because onfail req did not change".into());
                return self.after(i);
            }
            Status::OnchangesNotMet => {
                self.skip(i, Some(true), "State was not run because none of the onchanges reqs changed".into());
                return self.after(i);
            }
            Status::Run { watch } => watch,
        };
        // prereq: run only if a target is about to change; a target whose prereq holder
        // failed reports its prediction instead of running.
        let prereq: Vec<usize> =
            self.resolved.deps[i].iter().filter(|d| d.kind.base == ReqBase::Prereq).map(|d| d.on).collect();
        if !prereq.is_empty() {
            let predictions: Vec<(usize, Called)> = prereq.iter().map(|j| (*j, self.predict(*j))).collect();
            let would_change =
                predictions.iter().any(|(_, (r, ch, _))| *r != Some(false) && (!ch.is_empty() || r.is_none()));
            if !would_change {
                self.skip(i, Some(true), "No changes detected".into());
                return self.after(i);
            }
            let holder_failed = self.run_now(i, watch);
            if holder_failed && !self.stop {
                for (j, (_, _, comment)) in predictions {
                    if self.results[j].is_none() {
                        self.skip(j, None, comment);
                    }
                }
            }
            return;
        }
        self.run_now(i, watch);
    }

    /// Runs chunk `i` (conditions, function, watch action); whether it failed.
    fn run_now(&mut self, i: usize, watch: bool) -> bool {
        // An orchestration holds here while paused; aborted, nothing more runs.
        if self.run.ctx.orchestrator.is_some_and(|o| !o.proceed()) {
            self.stop = true;
            return false;
        }
        let t0 = Instant::now();
        let start = now_hms();
        if let Some(skip) = self.conditions(i) {
            self.skip(i, Some(true), skip);
            self.after(i);
            return false;
        }
        let test = self.run.test;
        let mut run_num = self.take_run_num();
        let (mut result, mut changes, mut comment) = self.call(i, None, test);
        if watch && changes.is_empty() && result != Some(false) {
            let reqs = self.changed_reqs(i, ReqBase::Watch);
            // A function without a watch action treats `watch` as `require`, as Salt does.
            if let Some(watched) = self.call_watch(i, &reqs, test) {
                run_num = self.take_run_num();
                (result, changes, comment) = watched;
            }
        }
        if let Some(retry) = self.chunks[i].retry.clone() {
            let again;
            ((result, changes, comment), again) = self.retry(i, &retry, (result, changes, comment), test);
            // Like Salt, every attempt takes a run number; the result has the last.
            for _ in 0..again {
                run_num = self.take_run_num();
            }
        }
        self.record(i, (result, changes, comment), start, t0, run_num);
        self.after(i);
        result == Some(false)
    }

    /// Salt's `retry`: runs the function again while its result is not the one wanted,
    /// each attempt's result and comment kept in the final comment; also says how many
    /// more times it ran. In test mode it only says what would happen.
    fn retry(&self, i: usize, retry: &Retry, first: Called, test: bool) -> (Called, usize) {
        let python = |r: Option<bool>| match r {
            Some(true) => "True",
            Some(false) => "False",
            None => "None",
        };
        if test {
            let (result, changes, comment) = first;
            let comment = format!(
                "{comment}  The state would be retried every {} seconds (with a splay of up to {} seconds) a maximum \
                 of {} times or until a result of {} is returned",
                retry.interval,
                retry.splay,
                retry.attempts,
                python(Some(retry.until))
            );
            return ((result, changes, comment), 0);
        }
        let mut current = first;
        let mut lines = Vec::new();
        let mut attempt = 1;
        while attempt < retry.attempts && current.0 != Some(retry.until) {
            if !self.wait(retry.interval + splay(retry.splay)) {
                break;
            }
            lines.push(format!(
                "Attempt {attempt}: Returned a result of \"{}\", with the following comment: \"{}\"",
                python(current.0),
                current.2
            ));
            attempt += 1;
            current = self.call(i, None, false);
        }
        if lines.is_empty() {
            return (current, 0);
        }
        let again = lines.len();
        let (result, changes, last) = current;
        lines.push(last);
        ((result, changes, lines.join("\n")), again)
    }

    /// Sleeps `seconds` between retries; `false` if the run was stopped meanwhile (a
    /// killed job, an aborted orchestration).
    fn wait(&self, seconds: f64) -> bool {
        let until = Instant::now() + std::time::Duration::from_secs_f64(seconds.max(0.0));
        loop {
            let stopped =
                self.run.ctx.exec.cancel.is_cancelled() || self.run.ctx.orchestrator.is_some_and(|o| o.aborted());
            if stopped {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
        }
    }

    fn after(&mut self, i: usize) {
        let failed = self.results[i].as_ref().is_some_and(|r| r.result == Some(false));
        if self.chunks[i].failhard && failed && !self.run.test {
            self.stop = true;
        }
    }
}

/// Up to `max` seconds of splay: whole seconds, as Salt draws them.
fn splay(max: f64) -> f64 {
    if max < 1.0 {
        return 0.0;
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % (max as u32 + 1))
}

/// Orders and runs chunks.
pub fn run_chunks(mut chunks: Vec<Chunk>, run: &StateRun) -> Result<Vec<ChunkResult>, RunErrors> {
    let resolved = resolve(&mut chunks);
    let keys = order_keys(&chunks);
    let mut sequence: Vec<usize> = (0..chunks.len()).collect();
    sequence.sort_by(|a, b| keys[*a].0.total_cmp(&keys[*b].0).then_with(|| keys[*a].1.cmp(&keys[*b].1)));
    let mut runner = Runner {
        run,
        chunks: &chunks,
        resolved: &resolved,
        results: vec![None; chunks.len()],
        next_run_num: 0,
        in_progress: HashSet::new(),
        stop: false,
    };
    for i in &sequence {
        runner.chunk(*i);
        if runner.stop {
            break;
        }
    }
    let mut out: Vec<ChunkResult> = runner.results.iter().flatten().cloned().collect();
    out.sort_by_key(|r| r.run_num);
    if runner.stop {
        return Ok(out);
    }
    // listen: the listeners' watch actions run last, in run order, for targets that changed.
    let mut index: HashMap<String, usize> = HashMap::with_capacity(chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        index.entry(c.key()).or_insert(i);
    }
    for r in out.clone() {
        let Some(&i) = index.get(&r.key) else { continue };
        let listens = resolved.deps[i].iter().any(|d| d.kind.base == ReqBase::Listen);
        let changed: Vec<Value> = runner.changed_reqs(i, ReqBase::Listen);
        if !listens || changed.is_empty() {
            continue;
        }
        let c = &chunks[i];
        let t0 = Instant::now();
        let start = now_hms();
        let (result, changes, comment) = runner.call(i, Some(&[]), run.test);
        out.push(ChunkResult {
            key: format!("{}_|-listener_{}_|-{}_|-mod_watch", c.module, c.id, c.name),
            id: format!("listener_{}", c.id),
            name: c.name.clone(),
            sls: c.sls.clone(),
            function: format!("{}.mod_watch", c.module),
            result,
            changes,
            comment,
            start_time: start,
            duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
            run_num: runner.take_run_num(),
        });
    }
    for (module, pattern) in &resolved.listen_missing {
        out.push(ChunkResult {
            key: format!("Listen_Error_|-listen_{pattern}_|-listen_{module}_|-Listen_Error"),
            id: String::new(),
            name: format!("listen_{module}:{pattern}"),
            sls: String::new(),
            function: "Listen_Error".into(),
            result: Some(false),
            changes: Map::new(),
            comment: format!("Referenced state {module}: {pattern} does not exist"),
            start_time: now_hms(),
            duration_ms: 0.0,
            run_num: runner.take_run_num(),
        });
    }
    Ok(out)
}
