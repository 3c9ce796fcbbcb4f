//! `pillar.*`: read this minion's pillar, the private data the master renders for it
//! alone.

use super::{opt, opt_or, req, CallError, Context, Function, Output, Param, ParamDefault};
use brine_proto::{Map, Value};
use serde::Deserialize;

pub use super::test::NoArgs;

/// The value at `path` (keys split on `delimiter`; list items by index).
pub fn traverse<'a>(map: &'a Map, path: &str, delimiter: &str) -> Option<&'a Value> {
    let mut parts = path.split(delimiter);
    let mut cur = map.get(parts.next()?)?;
    for part in parts {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A fresh pillar from the master when running under a minion, else the one in hand.
fn fresh(ctx: &Context) -> Result<Map, CallError> {
    match &ctx.host {
        Some(host) => host.refresh_pillar().map_err(CallError::Failed),
        None => Ok((*ctx.pillar).clone()),
    }
}

fn text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn default_delimiter() -> String {
    ":".into()
}

pub struct Items;
impl Function for Items {
    const NAME: &'static str = "pillar.items";
    const DOC: &'static str = "Returns this minion's whole pillar, freshly rendered by the master.\n\n\
        CLI example: brine run '*' pillar.items";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(fresh(ctx)?))
    }
}

pub struct Data;
impl Function for Data {
    const NAME: &'static str = "pillar.data";
    const DOC: &'static str = "Same as pillar.items.\n\nCLI example: brine run '*' pillar.data";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, a: NoArgs) -> Result<Output, CallError> {
        Items.call(ctx, a)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArgs {
    #[serde(default)]
    key: Option<String>,
}

pub struct Raw;
impl Function for Raw {
    const NAME: &'static str = "pillar.raw";
    const DOC: &'static str = "Returns the pillar this minion holds now (no new render), or one key of it.\n\n\
        CLI example: brine run '*' pillar.raw";
    const PARAMS: &'static [Param] = &[opt("key")];
    type Args = RawArgs;
    fn call(&self, ctx: &Context, a: RawArgs) -> Result<Output, CallError> {
        Ok(Output::ok(match a.key {
            None => Value::Object((*ctx.pillar).clone()),
            Some(k) => ctx.pillar.get(&k).cloned().unwrap_or_else(|| Value::Object(Map::new())),
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    key: Value,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default)]
    merge: bool,
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default)]
    #[allow(dead_code)]
    saltenv: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pillarenv: Option<String>,
}

pub struct Get;
impl Function for Get {
    const NAME: &'static str = "pillar.get";
    const DOC: &'static str = "Returns one pillar value by `:` path (`delimiter` changes the separator), \
        or `default` (an empty string if not given) when it is missing. With merge=True and a dictionary \
        default, the pillar value is merged over the default.\n\n\
        CLI example: brine run '*' pillar.get users:alice:uid";
    const PARAMS: &'static [Param] = &[
        req("key"),
        opt_or("default", ParamDefault::Str("")),
        opt_or("merge", ParamDefault::Bool(false)),
        opt_or("delimiter", ParamDefault::Str(":")),
    ];
    type Args = GetArgs;
    fn call(&self, ctx: &Context, a: GetArgs) -> Result<Output, CallError> {
        let key = text(a.key);
        let found = traverse(&ctx.pillar, &key, &a.delimiter).cloned();
        let value = match (found, a.default) {
            (Some(Value::Object(found)), Some(Value::Object(mut default))) if a.merge => {
                crate::pillar::merge(&mut default, found);
                Value::Object(default)
            }
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => Value::String(String::new()),
        };
        Ok(Output::ok(value))
    }
}

#[derive(Deserialize)]
pub struct ItemArgs {
    args: Vec<Value>,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default = "default_delimiter")]
    delimiter: String,
}

pub struct Item;
impl Function for Item {
    const NAME: &'static str = "pillar.item";
    const DOC: &'static str = "Returns the named pillar keys as a map (missing ones map to `default`, an \
        empty string if not given); nested values by `:` path.\n\n\
        CLI example: brine run '*' pillar.item users role";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = ItemArgs;
    fn call(&self, ctx: &Context, a: ItemArgs) -> Result<Output, CallError> {
        let mut out = Map::new();
        for name in a.args.into_iter().map(text) {
            let v = traverse(&ctx.pillar, &name, &a.delimiter)
                .cloned()
                .or_else(|| a.default.clone())
                .unwrap_or_else(|| Value::String(String::new()));
            out.insert(name, v);
        }
        Ok(Output::ok(out))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysArgs {
    key: Value,
    #[serde(default = "default_delimiter")]
    delimiter: String,
}

pub struct Keys;
impl Function for Keys {
    const NAME: &'static str = "pillar.keys";
    const DOC: &'static str = "Returns the keys of the pillar dictionary at `key` (a `:` path).\n\n\
        CLI example: brine run '*' pillar.keys users";
    const PARAMS: &'static [Param] = &[req("key"), opt_or("delimiter", ParamDefault::Str(":"))];
    type Args = KeysArgs;
    fn call(&self, ctx: &Context, a: KeysArgs) -> Result<Output, CallError> {
        let key = text(a.key);
        match traverse(&ctx.pillar, &key, &a.delimiter) {
            Some(Value::Object(m)) => Ok(Output::ok(Value::Array(m.keys().cloned().map(Value::String).collect()))),
            Some(_) => Err(CallError::failed("Pillar value must be a dict")),
            None => Err(CallError::failed(format!("Pillar key not found: {key}"))),
        }
    }
}

pub struct Ls;
impl Function for Ls {
    const NAME: &'static str = "pillar.ls";
    const DOC: &'static str = "Returns the top-level pillar keys, freshly rendered by the master.\n\n\
        CLI example: brine run '*' pillar.ls";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, ctx: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(Value::Array(fresh(ctx)?.keys().cloned().map(Value::String).collect())))
    }
}

/// The `pillar` execution module.
pub static MODULE: super::Module = super::Module {
    name: "pillar",
    doc: "Read this minion's pillar: the private data the master renders for it alone.",
    functions: &[&Data, &Get, &Item, &Items, &Keys, &Ls, &Raw],
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn ctx() -> Context {
        let pillar = json!({"users": {"alice": {"uid": 1000}, "bob": {"uid": 1001}}, "role": "web", "list": [1, 2]});
        Context { pillar: Arc::new(pillar.as_object().unwrap().clone()), ..Context::default() }
    }

    fn run(fun: &str, args: &[Value], kw: Value) -> Result<Value, CallError> {
        super::super::call(fun, &ctx(), args.to_vec(), kw.as_object().unwrap().clone()).map(|o| o.ret)
    }

    #[test]
    fn get_walks_paths_and_falls_back_like_salt() {
        assert_eq!(run("pillar.get", &[json!("users:alice:uid")], json!({})).unwrap(), json!(1000));
        assert_eq!(run("pillar.get", &[json!("list:1")], json!({})).unwrap(), json!(2));
        assert_eq!(run("pillar.get", &[json!("nope")], json!({})).unwrap(), json!(""));
        assert_eq!(run("pillar.get", &[json!("nope"), json!(7)], json!({})).unwrap(), json!(7));
        assert_eq!(run("pillar.get", &[json!("users/bob/uid")], json!({"delimiter": "/"})).unwrap(), json!(1001));
        let merged =
            run("pillar.get", &[json!("users")], json!({"default": {"carol": {"uid": 1}}, "merge": true})).unwrap();
        assert_eq!(merged["carol"]["uid"], json!(1));
        assert_eq!(merged["alice"]["uid"], json!(1000));
    }

    #[test]
    fn item_keys_raw_and_items() {
        assert_eq!(
            run("pillar.item", &[json!("role"), json!("users:bob:uid"), json!("x")], json!({})).unwrap(),
            json!({"role": "web", "users:bob:uid": 1001, "x": ""})
        );
        assert_eq!(run("pillar.keys", &[json!("users")], json!({})).unwrap(), json!(["alice", "bob"]));
        assert_eq!(
            run("pillar.keys", &[json!("role")], json!({})).unwrap_err().to_string(),
            "Pillar value must be a dict"
        );
        assert_eq!(run("pillar.raw", &[json!("role")], json!({})).unwrap(), json!("web"));
        assert_eq!(run("pillar.items", &[], json!({})).unwrap()["role"], json!("web"));
        assert_eq!(run("pillar.ls", &[], json!({})).unwrap(), json!(["users", "role", "list"]), "in pillar order");
    }
}
