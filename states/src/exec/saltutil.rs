//! `saltutil.*`: manage the minion itself: its running jobs and its grains. These
//! keep Salt's names, so scripts and habits carry over.

use super::{req, CallError, Context, Function, Host, Output, Param};
use brine_proto::Value;
use serde::Deserialize;
use std::sync::Arc;

pub use super::test::NoArgs;

fn host(ctx: &Context) -> Result<&Arc<dyn Host>, CallError> {
    ctx.host.as_ref().ok_or_else(|| CallError::failed("this function needs a running brine-minion (not brine-call)"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JidArgs {
    jid: Value,
}

fn jid_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub struct Running;
impl Function for Running {
    const NAME: &'static str = "saltutil.running";
    const DOC: &'static str = "Lists the jobs this minion is running now (jid, fun, arg, tgt, user, pid).\n\n\
        CLI example: brine run '*' saltutil.running";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(Value::Array(host(ctx)?.running())))
    }
}

pub struct FindJob;
impl Function for FindJob {
    const NAME: &'static str = "saltutil.find_job";
    const DOC: &'static str = "Returns the data of a running job, or an empty map if the job is not \
        running on this minion.\n\nCLI example: brine run '*' saltutil.find_job 20260101120000000000";
    const PARAMS: &'static [Param] = &[req("jid")];
    type Args = JidArgs;
    fn call(&self, ctx: &Context, a: JidArgs) -> Result<Output, CallError> {
        let jid = jid_text(&a.jid);
        let found = host(ctx)?.running().into_iter().find(|j| j.get("jid").and_then(Value::as_str) == Some(&jid));
        Ok(Output::ok(found.unwrap_or_else(|| Value::Object(Default::default()))))
    }
}

pub struct KillJob;
impl Function for KillJob {
    const NAME: &'static str = "saltutil.kill_job";
    const DOC: &'static str = "Stops a running job: its command and everything it started are killed. \
        Returns what was done, or an empty string if the job was not running.\n\n\
        CLI example: brine run '*' saltutil.kill_job 20260101120000000000";
    const PARAMS: &'static [Param] = &[req("jid")];
    type Args = JidArgs;
    fn call(&self, ctx: &Context, a: JidArgs) -> Result<Output, CallError> {
        let jid = jid_text(&a.jid);
        let text = if host(ctx)?.kill(&jid) { format!("Signal 9 sent to job {jid}") } else { String::new() };
        Ok(Output::ok(text))
    }
}

pub struct TermJob;
impl Function for TermJob {
    const NAME: &'static str = "saltutil.term_job";
    const DOC: &'static str = "Stops a running job, like saltutil.kill_job.\n\n\
        CLI example: brine run '*' saltutil.term_job 20260101120000000000";
    const PARAMS: &'static [Param] = &[req("jid")];
    type Args = JidArgs;
    fn call(&self, ctx: &Context, a: JidArgs) -> Result<Output, CallError> {
        KillJob.call(ctx, a)
    }
}

pub struct RefreshGrains;
impl Function for RefreshGrains {
    const NAME: &'static str = "saltutil.refresh_grains";
    const DOC: &'static str = "Collects this minion's grains again and sends them to the master (for \
        targeting and inventory). Returns True.\n\nCLI example: brine run '*' saltutil.refresh_grains";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        host(ctx)?.refresh_grains().map_err(CallError::Failed)?;
        Ok(Output::ok(true))
    }
}

pub struct RefreshPillar;
impl Function for RefreshPillar {
    const NAME: &'static str = "saltutil.refresh_pillar";
    const DOC: &'static str = "Asks the master to render this minion's pillar again and keeps the new \
        pillar for the jobs that follow. Returns True, or False if the pillar failed to render.\n\n\
        CLI example: brine run '*' saltutil.refresh_pillar";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        let pillar = host(ctx)?.refresh_pillar().map_err(CallError::Failed)?;
        Ok(Output::ok(!pillar.contains_key("_errors")))
    }
}

/// The `saltutil` execution module.
pub static MODULE: super::Module = super::Module {
    name: "saltutil",
    doc: "Manage the minion itself: running jobs, grains and pillar (Salt's names).",
    functions: &[&FindJob, &KillJob, &RefreshGrains, &RefreshPillar, &Running, &TermJob],
};
