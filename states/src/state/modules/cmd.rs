//! `cmd.*` states: run commands.

use crate::state::{Outcome, StateContext, StateFunction};
use brine_proto::{Map, Value};

/// Runs `name` with `args` through `cmd.run_all`; the changes are its output.
fn run(ctx: &StateContext, name: &str, args: &Map) -> Outcome {
    let mut kw = args.clone();
    kw.remove("stateful");
    kw.insert("ignore_retcode".into(), Value::Bool(true));
    match crate::exec::call("cmd.run_all", ctx.exec, vec![Value::String(name.to_string())], kw) {
        Ok(out) => {
            let retcode = out.ret.get("retcode").and_then(Value::as_i64).unwrap_or(1);
            let changes = out.ret.as_object().cloned().unwrap_or_default();
            let comment = format!("Command \"{name}\" run");
            Outcome { ok: retcode == 0, changes, comment, predicted: false }
        }
        Err(e) => Outcome::failed(e.to_string()),
    }
}

/// What test mode says of a command.
fn would_run(name: &str) -> Outcome {
    let mut changes = Map::new();
    changes.insert("cmd".into(), Value::String(name.to_string()));
    Outcome::changed(format!("Command \"{name}\" would have been executed"), changes)
}

pub struct Run;
impl crate::state::StateFunction for Run {
    const NAME: &'static str = "cmd.run";
    const DOC: &'static str = "Runs a command (`name`) every time the state runs; use onlyif, unless, \
        creates or onchanges to make it conditional. Keywords as for the cmd.run function (cwd, env, \
        runas, shell, timeout, stdin).\n\nExample:\n  reload-firewall:\n    cmd.run:\n      - name: nft -f /etc/nftables.conf\n      - onchanges:\n        - file: /etc/nftables.conf";
    type Args = Map;
    fn check_apply(&self, ctx: &StateContext, name: &str, args: Map, apply: bool) -> Outcome {
        if !apply {
            return would_run(name);
        }
        run(ctx, name, &args)
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        Some(if apply { run(ctx, name, args) } else { would_run(name) })
    }
}

pub struct Wait;
impl StateFunction for Wait {
    const NAME: &'static str = "cmd.wait";
    const DOC: &'static str = "Runs a command only when a watched state changed (its watch action); on \
        its own it does nothing.\n\nExample:\n  restart-app:\n    cmd.wait:\n      - name: systemctl restart app\n      - watch:\n        - file: /etc/app.conf";
    type Args = Map;
    fn check_apply(&self, _: &StateContext, _: &str, _: Map, _apply: bool) -> Outcome {
        Outcome::ok("")
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        Some(if apply { run(ctx, name, args) } else { would_run(name) })
    }
}

/// Runs the script `source` (default `name`) through `cmd.script`.
fn run_script(ctx: &StateContext, name: &str, args: &Map) -> Outcome {
    let mut kw = args.clone();
    kw.remove("stateful");
    let source = kw.remove("source").unwrap_or_else(|| Value::String(name.to_string()));
    let env = kw.get("saltenv").and_then(Value::as_str).unwrap_or(ctx.saltenv).to_string();
    kw.insert("saltenv".into(), Value::String(env.clone()));
    kw.insert("ignore_retcode".into(), Value::Bool(true));
    match crate::exec::call("cmd.script", ctx.exec, vec![source.clone()], kw) {
        Ok(out) if out.ret.get("cache_error") == Some(&Value::Bool(true)) => {
            let source = source.as_str().map_or_else(|| source.to_string(), str::to_string);
            Outcome {
                ok: false,
                changes: out.ret.as_object().cloned().unwrap_or_default(),
                comment: format!("Unable to cache script {source} from saltenv '{env}'"),
                predicted: false,
            }
        }
        Ok(out) => {
            let retcode = out.ret.get("retcode").and_then(Value::as_i64).unwrap_or(1);
            let changes = out.ret.as_object().cloned().unwrap_or_default();
            Outcome { ok: retcode == 0, changes, comment: format!("Command '{name}' run"), predicted: false }
        }
        Err(e) => Outcome::failed(e.to_string()),
    }
}

pub struct Script;
impl StateFunction for Script {
    const NAME: &'static str = "cmd.script";
    const DOC: &'static str = "Fetches a script from the file server (`source`, default `name`) and runs \
        it every time the state runs, with `args`; keywords as for the cmd.script function (cwd, env, runas, \
        template, saltenv). Use onlyif, unless, creates or onchanges to make it conditional.\n\nExample:\n  \
        setup-app:\n    cmd.script:\n      - source: salt://app/setup.sh\n      - args: --init\n      - creates: /opt/app/.done";
    type Args = Map;
    fn check_apply(&self, ctx: &StateContext, name: &str, args: Map, apply: bool) -> Outcome {
        if !apply {
            return Outcome::would(format!("Command '{name}' would have been executed"));
        }
        run_script(ctx, name, &args)
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        Some(self.check_apply(ctx, name, args.clone(), apply))
    }
}

/// The `cmd` state module.
pub static MODULE: crate::state::StateModule =
    crate::state::StateModule { name: "cmd", doc: "Run commands.", functions: &[&Run, &Script, &Wait] };
