//! `grains.*`: read this host's grains.

use super::{opt, req, CallError, Context, Function, Output, Param};
use brine_proto::{Map, Value};
use serde::Deserialize;

pub use super::test::NoArgs;

pub struct Items;
impl Function for Items {
    const NAME: &'static str = "grains.items";
    const DOC: &'static str = "Returns every grain of the minion.\n\nCLI example: brine run '*' grains.items";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(Value::Object((*ctx.grains).clone())))
    }
}

#[derive(Deserialize)]
pub struct ItemArgs {
    args: Vec<Value>,
}

pub struct Item;
impl Function for Item {
    const NAME: &'static str = "grains.item";
    const DOC: &'static str = "Returns the named grains as a map (missing ones map to an empty \
        string); nested values by `:` path.\n\nCLI example: brine run '*' grains.item os osrelease";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = ItemArgs;
    fn call(&self, ctx: &Context, a: ItemArgs) -> Result<Output, CallError> {
        let mut out = Map::new();
        for name in a.args {
            let name = match name {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let v =
                crate::grains::get_path(&ctx.grains, &name).cloned().unwrap_or_else(|| Value::String(String::new()));
            out.insert(name, v);
        }
        Ok(Output::ok(out))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    key: String,
    #[serde(default)]
    default: Option<Value>,
}

pub struct Get;
impl Function for Get {
    const NAME: &'static str = "grains.get";
    const DOC: &'static str = "Returns one grain by `:` path, or `default` (an empty string if not \
        given) when it is missing.\n\nCLI example: brine run '*' grains.get ipv4:0";
    const PARAMS: &'static [Param] = &[req("key"), opt("default")];
    type Args = GetArgs;
    fn call(&self, ctx: &Context, a: GetArgs) -> Result<Output, CallError> {
        let v = crate::grains::get_path(&ctx.grains, &a.key)
            .cloned()
            .or(a.default)
            .unwrap_or_else(|| Value::String(String::new()));
        Ok(Output::ok(v))
    }
}

pub struct Refresh;
impl Function for Refresh {
    const NAME: &'static str = "grains.refresh";
    const DOC: &'static str = "Collects the grains again and sends them to the master; returns the new \
        grains (like saltutil.refresh_grains, which returns True).\n\nCLI example: brine run '*' grains.refresh";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        let host = ctx.host.as_ref().ok_or_else(|| CallError::failed("grains.refresh needs a running brine-minion"))?;
        Ok(Output::ok(Value::Object(host.refresh_grains().map_err(CallError::Failed)?)))
    }
}

pub struct Ls;
impl Function for Ls {
    const NAME: &'static str = "grains.ls";
    const DOC: &'static str = "Returns the sorted names of every grain.\n\nCLI example: brine run '*' grains.ls";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        let mut names: Vec<&String> = ctx.grains.keys().collect();
        names.sort();
        Ok(Output::ok(Value::Array(names.into_iter().map(|n| Value::String(n.clone())).collect())))
    }
}

/// The `grains` execution module.
pub static MODULE: super::Module =
    super::Module { name: "grains", doc: "Read this host's grains.", functions: &[&Get, &Item, &Items, &Ls, &Refresh] };
