//! `state.*`: apply states on this host (highstate, named SLS, single states) and
//! show what would run.

use super::{opt, CallError, Context, Function, Output, Param};
use crate::state::compile::{Chunk, Loader};
use crate::state::engine::{run_chunks, StateRun};
use crate::state::StateContext;
use brine_proto::{Map, Value};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The state run in progress on each minion (by id), if any: only one at a time. (One
/// process can host several minions, as the tests do.)
static RUNNING: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Holds a minion's state lock until dropped.
struct StateLock(String);

impl Drop for StateLock {
    fn drop(&mut self) {
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.0);
    }
}

/// Takes the state lock; with `queue`, waits for it.
fn lock(ctx: &Context, fun: &str, queue: bool) -> Result<StateLock, CallError> {
    let id = ctx.grains.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    loop {
        {
            let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
            match running.get(&id) {
                None => {
                    running.insert(id.clone(), format!("{fun} (jid {})", ctx.jid.as_deref().unwrap_or("local")));
                    return Ok(StateLock(id));
                }
                Some(other) if !queue => {
                    return Err(CallError::failed(format!(
                        "The function \"{fun}\" cannot run: {other} is already running on this minion; \
                         add queue=True to wait for it"
                    )))
                }
                Some(_) => {}
            }
        }
        if ctx.cancel.is_cancelled() {
            return Err(CallError::failed("killed while waiting for another state run"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Arguments shared by the state-running functions.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StateArgs {
    #[serde(default)]
    mods: Option<Value>,
    #[serde(default)]
    test: Option<bool>,
    #[serde(default)]
    saltenv: Option<String>,
    /// Extra pillar for this run, merged over the minion's.
    #[serde(default)]
    pillar: Option<Map>,
    #[serde(default)]
    queue: bool,
    /// Accepted, and like Salt 3007.8 without effect: use `failhard: True` on states.
    #[serde(default)]
    #[allow(dead_code)]
    failhard: Option<bool>,
    /// Accepted for compatibility; brine always runs states in one process.
    #[serde(default)]
    #[allow(dead_code)]
    concurrent: Option<bool>,
}

fn mods_list(v: &Option<Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        Some(other) => vec![other.to_string()],
    }
}

fn files(ctx: &Context) -> Result<Arc<dyn crate::files::FileSource>, CallError> {
    ctx.files.clone().ok_or_else(|| {
        CallError::failed("no state tree is available: configure file_roots (brine-call --local --file-root DIR) or run under a master")
    })
}

/// The retcode of a run refused because the pillar failed to render (Salt's 5).
const PILLAR_FAILED: i32 = 5;

/// The pillar for a run: the minion's, with `extra` merged over it; the render errors
/// (Salt's message first) when the minion's pillar failed to render.
fn pillar_of(ctx: &Context, extra: &Option<Map>) -> Result<Arc<Map>, Vec<String>> {
    if let Some(Value::Array(errs)) = ctx.pillar.get("_errors") {
        let mut out = vec!["Pillar failed to render with the following messages:".to_string()];
        out.extend(errs.iter().map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string)));
        return Err(out);
    }
    Ok(match extra {
        Some(e) if !e.is_empty() => {
            let mut p = (*ctx.pillar).clone();
            crate::pillar::merge(&mut p, e.clone());
            Arc::new(p)
        }
        _ => ctx.pillar.clone(),
    })
}

fn loader<'a>(ctx: &Context, files: &'a Arc<dyn crate::files::FileSource>, pillar: &Arc<Map>) -> Loader<'a> {
    let mut ctx = ctx.clone();
    ctx.pillar = pillar.clone();
    Loader::new(files, &ctx)
}

/// Errors as Salt returns them: a list of strings, retcode 1.
fn errors(list: Vec<String>) -> Output {
    Output { ret: Value::Array(list.into_iter().map(Value::String).collect()), retcode: 1 }
}

/// Runs chunks and shapes the results; retcode 2 if any state failed.
fn execute(ctx: &Context, chunks: Vec<Chunk>, pillar: &Arc<Map>, env: &str, test: bool) -> Output {
    let files = ctx.files.clone();
    let null: Arc<dyn crate::files::FileSource> = Arc::new(crate::files::LocalRoots::default());
    let files_ref: &dyn crate::files::FileSource = files.as_deref().unwrap_or(null.as_ref());
    let mut exec = ctx.clone();
    exec.pillar = pillar.clone();
    let run = StateRun {
        ctx: StateContext { exec: &exec, files: files_ref, pillar, saltenv: env, orchestrator: None },
        test,
    };
    match run_chunks(chunks, &run) {
        Err(list) => errors(list),
        Ok(results) => {
            let failed = results.iter().any(|r| r.result == Some(false));
            let mut m = Map::new();
            for r in results {
                m.insert(r.key.clone(), r.to_value());
            }
            Output { ret: Value::Object(m), retcode: if failed { 2 } else { 0 } }
        }
    }
}

/// The SLS names the top file assigns to this minion, environment by environment.
pub fn top_matches(
    ctx: &Context,
    files: &Arc<dyn crate::files::FileSource>,
    pillar: &Arc<Map>,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let text = match files.read("base", "top.sls") {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(crate::files::FileError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let l = loader(ctx, files, pillar);
    let rendered = crate::sls::render::render_jinja("top.sls", &text, &l.render, None).map_err(|e| e.to_string())?;
    let Some(node) = crate::sls::yaml::parse(&rendered).map_err(|e| format!("top.sls:{e}"))? else {
        return Ok(Vec::new());
    };
    let id = ctx.grains.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    let facts = brine_proto::target::Facts { id: &id, grains: Some(&ctx.grains), pillar: Some(pillar) };
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (env, targets) in node.as_map().unwrap_or_default() {
        let env = env.key_string();
        let mut mods = Vec::new();
        for (tgt, list) in targets.as_map().unwrap_or_default() {
            let expr = tgt.key_string();
            let items = list.to_value();
            let items = items.as_array().cloned().unwrap_or_default();
            let mut kind = "glob".to_string();
            let mut names = Vec::new();
            for it in items {
                match it {
                    Value::String(s) => names.push(s),
                    Value::Object(m) => {
                        if let Some(Value::String(k)) = m.get("match") {
                            kind = k.clone();
                        }
                    }
                    _ => {}
                }
            }
            let target = match kind.as_str() {
                "glob" => brine_proto::Target::Glob(expr.clone()),
                "list" => brine_proto::Target::list_from_str(&expr),
                "pcre" => brine_proto::Target::Pcre(expr.clone()),
                "grain" => brine_proto::Target::Grain(expr.clone()),
                "grain_pcre" => brine_proto::Target::GrainPcre(expr.clone()),
                "pillar" => brine_proto::Target::Pillar(expr.clone()),
                "pillar_pcre" => brine_proto::Target::PillarPcre(expr.clone()),
                "ipcidr" => brine_proto::Target::Cidr(expr.clone()),
                "compound" => brine_proto::Target::Compound(expr.clone()),
                other => return Err(format!("top.sls: unknown match type {other:?} for {expr:?}")),
            };
            let matcher = brine_proto::TargetMatcher::compile(&target).map_err(|e| format!("top.sls: {expr}: {e}"))?;
            if matcher.matches(&facts) {
                for n in names {
                    if !mods.contains(&n) {
                        mods.push(n);
                    }
                }
            }
        }
        if !mods.is_empty() {
            out.push((env, mods));
        }
    }
    Ok(out)
}

fn highstate(ctx: &Context, a: StateArgs, fun: &str) -> Result<Output, CallError> {
    let files = files(ctx)?;
    let _lock = lock(ctx, fun, a.queue)?;
    let pillar = match pillar_of(ctx, &a.pillar) {
        Ok(p) => p,
        Err(e) => return Ok(Output { retcode: PILLAR_FAILED, ..errors(e) }),
    };
    let matches = top_matches(ctx, &files, &pillar).map_err(CallError::Failed)?;
    if matches.is_empty() {
        return Ok(Output {
            ret: Value::Array(vec![
                "No Top file or master_tops data matches found. Please see master log for details.".into(),
            ]),
            retcode: 2,
        });
    }
    let mut all = Vec::new();
    for (env, mods) in matches {
        match loader(ctx, &files, &pillar).compile(&env, &mods) {
            Ok(c) => all.extend(c),
            Err(e) => return Ok(errors(e.into_iter().map(|e| e.to_string()).collect())),
        }
    }
    Ok(execute(ctx, all, &pillar, "base", a.test.unwrap_or(false)))
}

fn sls(ctx: &Context, a: StateArgs, fun: &str, test: bool) -> Result<Output, CallError> {
    let mods = mods_list(&a.mods);
    if mods.is_empty() {
        return highstate(ctx, StateArgs { test: Some(test), ..a }, fun);
    }
    let files = files(ctx)?;
    let _lock = lock(ctx, fun, a.queue)?;
    let pillar = match pillar_of(ctx, &a.pillar) {
        Ok(p) => p,
        Err(e) => return Ok(Output { retcode: PILLAR_FAILED, ..errors(e) }),
    };
    let env = a.saltenv.clone().unwrap_or_else(|| "base".into());
    match loader(ctx, &files, &pillar).compile(&env, &mods) {
        Ok(chunks) => Ok(execute(ctx, chunks, &pillar, &env, test)),
        Err(e) => Ok(errors(e.into_iter().map(|e| e.to_string()).collect())),
    }
}

pub struct Apply;
impl Function for Apply {
    const NAME: &'static str = "state.apply";
    const DOC: &'static str = "Applies states: the named SLS files (comma-separated or a list), or the \
        highstate (what top.sls assigns to this minion) when none are named.\n\n\
        Keywords: test=True (predict, change nothing), saltenv, pillar={...} (extra pillar for this run), \
        queue=True (wait for a running state job instead of refusing).\n\n\
        CLI example: brine run '*' state.apply webserver test=True";
    const PARAMS: &'static [Param] = &[opt("mods")];
    type Args = StateArgs;
    fn call(&self, ctx: &Context, a: StateArgs) -> Result<Output, CallError> {
        let test = a.test.unwrap_or(false);
        sls(ctx, a, Self::NAME, test)
    }
}

pub struct Sls;
impl Function for Sls {
    const NAME: &'static str = "state.sls";
    const DOC: &'static str = "Applies the named SLS files (comma-separated or a list).\n\n\
        Keywords: test, saltenv, pillar, queue, as for state.apply.\n\nCLI example: brine run 'web*' state.sls nginx,php";
    const PARAMS: &'static [Param] = &[opt("mods")];
    type Args = StateArgs;
    fn call(&self, ctx: &Context, a: StateArgs) -> Result<Output, CallError> {
        if mods_list(&a.mods).is_empty() {
            return Err(CallError::failed(
                "state.sls needs the SLS to apply (state.apply or state.highstate apply the top file)",
            ));
        }
        let test = a.test.unwrap_or(false);
        sls(ctx, a, Self::NAME, test)
    }
}

pub struct Highstate;
impl Function for Highstate {
    const NAME: &'static str = "state.highstate";
    const DOC: &'static str = "Applies every SLS the top file assigns to this minion.\n\n\
        Keywords: test, pillar, queue, as for state.apply.\n\nCLI example: brine run '*' state.highstate";
    const PARAMS: &'static [Param] = &[];
    type Args = StateArgs;
    fn call(&self, ctx: &Context, a: StateArgs) -> Result<Output, CallError> {
        highstate(ctx, a, Self::NAME)
    }
}

pub struct Test;
impl Function for Test {
    const NAME: &'static str = "state.test";
    const DOC: &'static str = "Like state.apply with test=True: shows what would change, changes nothing.\n\n\
        CLI example: brine run '*' state.test webserver";
    const PARAMS: &'static [Param] = &[opt("mods")];
    type Args = StateArgs;
    fn call(&self, ctx: &Context, a: StateArgs) -> Result<Output, CallError> {
        sls(ctx, a, Self::NAME, true)
    }
}

#[derive(Deserialize)]
pub struct SingleArgs {
    fun: String,
    name: String,
    #[serde(default)]
    test: Option<bool>,
    #[serde(default)]
    queue: bool,
    #[serde(flatten)]
    args: Map,
}

pub struct Single;
impl Function for Single {
    const NAME: &'static str = "state.single";
    const DOC: &'static str = "Applies one state function without an SLS file: the function, the name, \
        then its arguments as keywords.\n\nCLI example: brine run '*' state.single pkg.installed name=vim";
    const PARAMS: &'static [Param] = &[super::req("fun"), super::req("name")];
    type Args = SingleArgs;
    fn call(&self, ctx: &Context, a: SingleArgs) -> Result<Output, CallError> {
        let Some((module, fun)) = a.fun.split_once('.') else {
            return Err(CallError::failed(format!("{:?} is not a state function (module.function)", a.fun)));
        };
        if crate::state::lookup(&a.fun).is_none() {
            return Err(CallError::failed(format!("State '{}' was not found", a.fun)));
        }
        let _lock = lock(ctx, Self::NAME, a.queue)?;
        let chunk = Chunk {
            id: a.name.clone(),
            name: a.name.clone(),
            module: module.into(),
            fun: fun.into(),
            sls: String::new(),
            env: "base".into(),
            args: a.args,
            reqs: Vec::new(),
            reqs_in: Vec::new(),
            order: None,
            auto_order: 10_000,
            name_order: None,
            failhard: false,
            onlyif: Vec::new(),
            unless: Vec::new(),
            creates: Vec::new(),
            retry: None,
            file: String::new(),
            line: 0,
        };
        Ok(execute(ctx, vec![chunk], &ctx.pillar.clone(), "base", a.test.unwrap_or(false)))
    }
}

fn chunk_value(c: &Chunk) -> Value {
    let mut m = Map::new();
    m.insert("__id__".into(), c.id.clone().into());
    m.insert("__sls__".into(), c.sls.clone().into());
    m.insert("__env__".into(), c.env.clone().into());
    m.insert("name".into(), c.name.clone().into());
    m.insert("state".into(), c.module.clone().into());
    m.insert("fun".into(), c.fun.clone().into());
    m.insert("order".into(), c.order.clone().unwrap_or_else(|| c.auto_order.into()));
    for (k, v) in &c.args {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

fn compile_only(ctx: &Context, a: &StateArgs) -> Result<Result<Vec<Chunk>, Vec<String>>, CallError> {
    let files = files(ctx)?;
    let pillar = match pillar_of(ctx, &a.pillar) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let mut mods = mods_list(&a.mods);
    let env = a.saltenv.clone().unwrap_or_else(|| "base".into());
    if mods.is_empty() {
        mods = top_matches(ctx, &files, &pillar).map_err(CallError::Failed)?.into_iter().flat_map(|(_, m)| m).collect();
    }
    Ok(loader(ctx, &files, &pillar).compile(&env, &mods).map_err(|e| e.into_iter().map(|e| e.to_string()).collect()))
}

pub struct ShowLowstate;
impl Function for ShowLowstate {
    const NAME: &'static str = "state.show_lowstate";
    const DOC: &'static str = "Shows the low chunks (one per state function call) the named SLS files, or \
        the highstate, compile to.\n\nCLI example: brine run '*' state.show_lowstate webserver";
    const PARAMS: &'static [Param] = &[opt("mods")];
    type Args = StateArgs;
    fn call(&self, ctx: &Context, a: StateArgs) -> Result<Output, CallError> {
        Ok(match compile_only(ctx, &a)? {
            Ok(chunks) => Output::ok(Value::Array(chunks.iter().map(chunk_value).collect())),
            Err(e) => errors(e),
        })
    }
}

pub struct ShowSls;
impl Function for ShowSls {
    const NAME: &'static str = "state.show_sls";
    const DOC: &'static str = "Shows the high data (id → state functions and arguments) of the named SLS \
        files after rendering, include, extend and names.\n\nCLI example: brine run '*' state.show_sls webserver";
    const PARAMS: &'static [Param] = &[opt("mods")];
    type Args = StateArgs;
    fn call(&self, ctx: &Context, a: StateArgs) -> Result<Output, CallError> {
        if mods_list(&a.mods).is_empty() {
            return Err(CallError::failed("state.show_sls needs the SLS to show"));
        }
        Ok(match compile_only(ctx, &a)? {
            Ok(chunks) => {
                let mut high = Map::new();
                for c in chunks {
                    let entry = high.entry(c.id.clone()).or_insert_with(|| {
                        let mut m = Map::new();
                        m.insert("__sls__".into(), c.sls.clone().into());
                        m.insert("__env__".into(), c.env.clone().into());
                        Value::Object(m)
                    });
                    if let Value::Object(m) = entry {
                        let mut args: Vec<Value> =
                            vec![Value::Object(Map::from_iter([("name".to_string(), c.name.clone().into())]))];
                        args.extend(
                            c.args.iter().map(|(k, v)| Value::Object(Map::from_iter([(k.clone(), v.clone())]))),
                        );
                        args.push(c.fun.clone().into());
                        args.push(Value::Object(Map::from_iter([(
                            "order".to_string(),
                            c.order.clone().unwrap_or_else(|| c.auto_order.into()),
                        )])));
                        m.insert(c.module.clone(), Value::Array(args));
                    }
                }
                Output::ok(high)
            }
            Err(e) => errors(e),
        })
    }
}

pub struct ShowTop;
impl Function for ShowTop {
    const NAME: &'static str = "state.show_top";
    const DOC: &'static str = "Shows which SLS files the top file assigns to this minion, by environment.\n\n\
        CLI example: brine run '*' state.show_top";
    const PARAMS: &'static [Param] = &[];
    type Args = StateArgs;
    fn call(&self, ctx: &Context, a: StateArgs) -> Result<Output, CallError> {
        let files = files(ctx)?;
        let pillar = match pillar_of(ctx, &a.pillar) {
            Ok(p) => p,
            Err(e) => return Ok(Output { retcode: PILLAR_FAILED, ..errors(e) }),
        };
        let m: Map = top_matches(ctx, &files, &pillar)
            .map_err(CallError::Failed)?
            .into_iter()
            .map(|(env, mods)| (env, Value::Array(mods.into_iter().map(Value::String).collect())))
            .collect();
        Ok(Output::ok(m))
    }
}

/// The `state` execution module.
pub static MODULE: super::Module = super::Module {
    name: "state",
    doc: "Apply states: highstate, SLS files, single states; show what would run.",
    functions: &[&Apply, &Highstate, &ShowLowstate, &ShowSls, &ShowTop, &Single, &Sls, &Test],
};
