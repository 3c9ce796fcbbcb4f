//! `grains.*`: read this host's grains, and set custom ones.
//!
//! Custom grains (`grains.setval`, `grains.delval`, `grains.delkey`) are saved in the
//! grains file the minion names in [`Context::grains_file`], like Salt's
//! `/etc/salt/grains`; the minion lays it over the collected grains. On a running
//! minion the grains are then collected again and sent to the master, so targeting
//! sees the change at once.

use super::host::{fnmatch, word_text, Word};
use super::{opt, opt_or, req, CallError, Context, Function, Output, Param, ParamDefault};
use crate::grains::{get_path, load_saved, save};
use brine_proto::{Map, Value};
use serde::Deserialize;
use std::path::Path;

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
    const PARAMS: &'static [Param] = &[req("key"), opt_or("default", ParamDefault::Str(""))];
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyArgs {
    key: Word,
}

pub struct HasValue;
impl Function for HasValue {
    const NAME: &'static str = "grains.has_value";
    const DOC: &'static str = "Returns whether a grain exists, by `:` path into maps and lists \
        (`pkg:apache`, `ipv4:0`); a grain set to None exists.\n\n\
        CLI example: brine run '*' grains.has_value pkg:apache";
    const PARAMS: &'static [Param] = &[req("key")];
    type Args = KeyArgs;
    fn call(&self, ctx: &Context, a: KeyArgs) -> Result<Output, CallError> {
        Ok(Output::ok(get_path(&ctx.grains, a.key.as_str()).is_some()))
    }
}

/// The saved-grains file, or why `fun` cannot save grains here.
fn grains_file<'a>(ctx: &'a Context, fun: &str) -> Result<&'a Path, CallError> {
    ctx.grains_file.as_deref().ok_or_else(|| CallError::failed(format!("{fun} needs a minion data directory")))
}

/// Sets (or, with `None` and `destructive`, removes) the top-level grain `key` in the
/// grains file, then has a running minion collect and publish its grains again.
fn save_top_level(ctx: &Context, fun: &str, key: &str, val: Value, destructive: bool) -> Result<(), CallError> {
    let path = grains_file(ctx, fun)?;
    let mut saved = load_saved(path).map_err(|e| CallError::failed(e.to_string()))?;
    if val.is_null() && destructive {
        saved.remove(key);
    } else {
        saved.insert(key.to_string(), val);
    }
    save(path, &saved).map_err(|e| CallError::failed(e.to_string()))?;
    if let Some(host) = &ctx.host {
        host.refresh_grains().map_err(|e| {
            CallError::failed(format!(
                "saved grain '{key}' in {}, but collecting the grains again failed: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetValArgs {
    key: Word,
    val: Value,
    #[serde(default)]
    destructive: bool,
    /// Accepted for compatibility: brine renders pillar on the master for each job.
    #[serde(default)]
    #[allow(dead_code)]
    refresh_pillar: Option<bool>,
}

pub struct SetVal;
impl Function for SetVal {
    const NAME: &'static str = "grains.setval";
    const DOC: &'static str = "Sets a custom grain to a value (a string, number, list or map) and \
        saves it in the minion's grains file, where it overrides the collected grain of that name \
        (grains in the minion config still win). Returns the grain set, as a map.\n\n\
        Keywords: destructive (with val None, remove the grain instead of setting it to None), \
        refresh_pillar (accepted; pillar is rendered on the master).\n\n\
        CLI example: brine run '*' grains.setval roles '[web, db]'";
    const PARAMS: &'static [Param] = &[
        req("key"),
        req("val"),
        opt_or("destructive", ParamDefault::Bool(false)),
        opt_or("refresh_pillar", ParamDefault::Bool(true)),
    ];
    type Args = SetValArgs;
    fn call(&self, ctx: &Context, a: SetValArgs) -> Result<Output, CallError> {
        save_top_level(ctx, Self::NAME, a.key.as_str(), a.val.clone(), a.destructive)?;
        let mut ret = Map::new();
        ret.insert(a.key.0, a.val);
        Ok(Output::ok(ret))
    }
}

/// Salt's `{comment, changes, result}` answer; a false result fails the job.
fn outcome(comment: impl Into<String>, changes: Map, result: bool) -> Output {
    let mut m = Map::new();
    m.insert("comment".into(), Value::String(comment.into()));
    m.insert("changes".into(), Value::Object(changes));
    m.insert("result".into(), result.into());
    Output { ret: Value::Object(m), retcode: if result { 0 } else { 1 } }
}

fn complex(v: &Value) -> bool {
    matches!(v, Value::Array(_) | Value::Object(_))
}

/// Salt's `grains.set` with `:` paths, which `grains.delval` runs with None: refuses to
/// overwrite a list or map without `force`, then rebuilds the top-level grain with the
/// new value at the end of the path and saves that.
fn set_path(
    ctx: &Context,
    fun: &str,
    key: &str,
    val: Value,
    force: bool,
    destructive: bool,
) -> Result<Output, CallError> {
    let existing = get_path(&ctx.grains, key);
    if existing.is_some_and(|e| *e == val) && !(val.is_null() && destructive) {
        return Ok(outcome("Grain is already set", Map::new(), true));
    }
    if !force && existing.is_none_or(|e| !e.is_null()) {
        if existing.is_some_and(complex) {
            let why = format!("The key '{key}' exists but is a dict or a list. Use 'force=True' to overwrite.");
            return Ok(outcome(why, Map::new(), false));
        }
        if existing.is_some() && complex(&val) {
            let why = format!(
                "The key '{key}' exists and the given value is a dict or a list. Use 'force=True' to overwrite."
            );
            return Ok(outcome(why, Map::new(), false));
        }
    }
    // Walk up the path, putting the value into each parent's current value.
    let single = |k: &str, v: Value| Value::Object(Map::from_iter([(k.to_string(), v)]));
    let mut value = val;
    let mut key = key.to_string();
    while let Some((parent, rest)) = key.rsplit_once(':') {
        let current = get_path(&ctx.grains, parent).cloned().unwrap_or_else(|| Value::Object(Map::new()));
        value = match current {
            Value::Object(mut m) => {
                if value.is_null() && destructive {
                    m.remove(rest);
                } else {
                    m.insert(rest.to_string(), value);
                }
                Value::Object(m)
            }
            Value::Array(mut items) => {
                let mut updated = false;
                for item in &mut items {
                    if item.as_str() == Some(rest) {
                        *item = single(rest, value.clone());
                        updated = true;
                    } else if let Value::Object(m) = item {
                        if let Some(slot) = m.get_mut(rest) {
                            *slot = value.clone();
                            updated = true;
                        }
                    }
                }
                if !updated {
                    items.push(single(rest, value));
                }
                Value::Array(items)
            }
            other if other.as_str() == Some(rest) || force => single(rest, value),
            other => {
                let why = format!(
                    "The key '{parent}' value is '{}', which is different from the provided key '{rest}'. \
                     Use 'force=True' to overwrite.",
                    word_text(&other)
                );
                return Ok(outcome(why, Map::new(), false));
            }
        };
        key = parent.to_string();
    }
    save_top_level(ctx, fun, &key, value.clone(), destructive)?;
    Ok(outcome("", Map::from_iter([(key, value)]), true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelValArgs {
    key: Word,
    #[serde(default)]
    destructive: bool,
    #[serde(default)]
    force: bool,
}

pub struct DelVal;
impl Function for DelVal {
    const NAME: &'static str = "grains.delval";
    const DOC: &'static str = "Sets a grain to None in the minion's grains file (`:` paths reach into \
        maps and lists), or removes it with destructive=True. Returns Salt's map of comment, \
        changes and result; the job fails when result is False.\n\n\
        Keywords: destructive (remove the key too), force (also when the grain is a list or a map, \
        or a path crosses a plain value).\n\n\
        CLI example: brine run '*' grains.delval roles";
    const PARAMS: &'static [Param] =
        &[req("key"), opt_or("destructive", ParamDefault::Bool(false)), opt_or("force", ParamDefault::Bool(false))];
    type Args = DelValArgs;
    fn call(&self, ctx: &Context, a: DelValArgs) -> Result<Output, CallError> {
        set_path(ctx, Self::NAME, a.key.as_str(), Value::Null, a.force, a.destructive)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelKeyArgs {
    key: Word,
    #[serde(default)]
    force: bool,
}

pub struct DelKey;
impl Function for DelKey {
    const NAME: &'static str = "grains.delkey";
    const DOC: &'static str = "Removes a grain from the minion's grains file: grains.delval with \
        destructive=True.\n\n\
        Keywords: force (also when the grain is a list or a map).\n\n\
        CLI example: brine run '*' grains.delkey roles force=True";
    const PARAMS: &'static [Param] = &[req("key"), opt_or("force", ParamDefault::Bool(false))];
    type Args = DelKeyArgs;
    fn call(&self, ctx: &Context, a: DelKeyArgs) -> Result<Output, CallError> {
        set_path(ctx, Self::NAME, a.key.as_str(), Value::Null, a.force, true)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterByArgs {
    lookup_dict: Map,
    #[serde(default = "os_family")]
    grain: Word,
    #[serde(default)]
    merge: Option<Value>,
    #[serde(default = "default_key")]
    default: Word,
    #[serde(default)]
    base: Option<Word>,
}

fn os_family() -> Word {
    Word("os_family".into())
}

fn default_key() -> Word {
    Word("default".into())
}

/// Python's truth value of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Merges `upd` into `dest`: maps merge key by key, anything else is replaced.
fn deep_update(dest: &mut Map, upd: Map) {
    for (k, v) in upd {
        match (dest.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(u)) => deep_update(d, u),
            (_, v) => {
                dest.insert(k, v);
            }
        }
    }
}

pub struct FilterBy;
impl Function for FilterBy {
    const NAME: &'static str = "grains.filter_by";
    const DOC: &'static str = "Looks a grain's value up in a map whose keys are globs and returns \
        the first match's value (for a list grain, the first item that matches), else the value \
        under `default`, else None. Meant for templates choosing per-OS data.\n\n\
        Keywords: grain (default os_family; a `:` path), merge (a map merged over the result, e.g. \
        from pillar), default (the lookup key used when nothing matches; default `default`), base \
        (a lookup key whose map the result is merged over).\n\n\
        CLI example: brine run '*' grains.filter_by '{Debian: apache2, RedHat: httpd}'";
    const PARAMS: &'static [Param] = &[
        req("lookup_dict"),
        opt_or("grain", ParamDefault::Str("os_family")),
        opt("merge"),
        opt_or("default", ParamDefault::Str("default")),
        opt("base"),
    ];
    type Args = FilterByArgs;
    fn call(&self, ctx: &Context, a: FilterByArgs) -> Result<Output, CallError> {
        let found = get_path(&ctx.grains, a.grain.as_str()).cloned().unwrap_or_else(|| Value::Array(Vec::new()));
        let candidates = match found {
            Value::Array(items) => items,
            other => vec![other],
        };
        let mut ret = Value::Null;
        for each in &candidates {
            let text = word_text(each);
            // The first matching key decides for this item, even when its value is None.
            if let Some((_, v)) = a.lookup_dict.iter().find(|(pattern, _)| fnmatch(pattern, &text)) {
                ret = v.clone();
            }
            if !ret.is_null() {
                break;
            }
        }
        if ret.is_null() {
            ret = a.lookup_dict.get(a.default.as_str()).cloned().unwrap_or(Value::Null);
        }
        if let Some(base) = a.base.as_ref().filter(|b| !b.as_str().is_empty()) {
            if let Some(base_values) = a.lookup_dict.get(base.as_str()) {
                if ret.is_null() {
                    ret = base_values.clone();
                } else if let Value::Object(base_map) = base_values {
                    let Value::Object(over) = ret else {
                        return Err(CallError::failed(
                            "filter_by default and look-up values must both be dictionaries.",
                        ));
                    };
                    let mut merged = base_map.clone();
                    deep_update(&mut merged, over);
                    ret = Value::Object(merged);
                }
            }
        }
        if let Some(merge) = a.merge.filter(truthy) {
            let Value::Object(merge) = merge else {
                return Err(CallError::failed("filter_by merge argument must be a dictionary."));
            };
            ret = match ret {
                Value::Null => Value::Object(merge),
                Value::Object(mut m) => {
                    deep_update(&mut m, merge);
                    Value::Object(m)
                }
                _ => return Err(CallError::failed("Cannot update using non-dict types in dictupdate.update().")),
            };
        }
        Ok(Output::ok(ret))
    }
}

/// The `grains` execution module.
pub static MODULE: super::Module = super::Module {
    name: "grains",
    doc: "Read this host's grains, and set custom ones.",
    functions: &[&DelKey, &DelVal, &FilterBy, &Get, &HasValue, &Item, &Items, &Ls, &Refresh, &SetVal],
};

#[cfg(test)]
mod tests {
    use crate::exec::{call, CallError, Context, Host};
    use brine_proto::{Map, Value};
    use serde_json::json;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A minion's view after a restart: `base` grains with the grains file laid over.
    fn ctx_for(file: &Path, base: Value) -> Context {
        let Value::Object(mut grains) = base else { panic!("grains must be a map") };
        grains.extend(crate::grains::load_saved(file).unwrap());
        Context { grains: Arc::new(grains), grains_file: Some(file.to_path_buf()), ..Context::default() }
    }

    fn run(ctx: &Context, fun: &str, args: &[Value], kwargs: Value) -> Result<crate::exec::Output, CallError> {
        let Value::Object(kwargs) = kwargs else { panic!("kwargs must be a map") };
        call(fun, ctx, args.to_vec(), kwargs)
    }

    fn saved(file: &Path) -> Value {
        Value::Object(crate::grains::load_saved(file).unwrap())
    }

    #[test]
    fn setval_saves_grains_and_returns_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grains");
        let ctx = ctx_for(&file, json!({"os": "Debian"}));
        let out = run(&ctx, "grains.setval", &[json!("roles"), json!(["web", "db"])], json!({})).unwrap();
        assert_eq!((out.ret, out.retcode), (json!({"roles": ["web", "db"]}), 0));
        let out = run(&ctx, "grains.setval", &[json!("d"), json!({"a": 1, "b": {"c": 2}})], json!({})).unwrap();
        assert_eq!(out.ret, json!({"d": {"a": 1, "b": {"c": 2}}}));
        run(&ctx, "grains.setval", &[json!("os"), json!("Custom")], json!({"refresh_pillar": false})).unwrap();
        assert_eq!(saved(&file), json!({"d": {"a": 1, "b": {"c": 2}}, "os": "Custom", "roles": ["web", "db"]}));
        // Restarted, the minion sees them, and the saved one wins over the collected one.
        let ctx = ctx_for(&file, json!({"os": "Debian"}));
        assert_eq!(run(&ctx, "grains.get", &[json!("d:b:c")], json!({})).unwrap().ret, json!(2));
        assert_eq!(run(&ctx, "grains.get", &[json!("os")], json!({})).unwrap().ret, json!("Custom"));
        // None with destructive removes it.
        let out = run(&ctx, "grains.setval", &[json!("os"), json!(null)], json!({"destructive": true})).unwrap();
        assert_eq!(out.ret, json!({"os": null}));
        assert_eq!(saved(&file), json!({"d": {"a": 1, "b": {"c": 2}}, "roles": ["web", "db"]}));
    }

    #[test]
    fn setval_needs_somewhere_to_save() {
        let err = run(&Context::default(), "grains.setval", &[json!("a"), json!(1)], json!({})).unwrap_err();
        assert_eq!(err.to_string(), "grains.setval needs a minion data directory");
        let err = run(&Context::default(), "grains.delval", &[json!("a")], json!({})).unwrap_err();
        assert_eq!(err.to_string(), "grains.delval needs a minion data directory");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grains");
        std::fs::write(&file, "- not\n- a map\n").unwrap();
        let ctx = ctx_for(&dir.path().join("other"), json!({}));
        let ctx = Context { grains_file: Some(file.clone()), ..ctx };
        let err = run(&ctx, "grains.setval", &[json!("a"), json!(1)], json!({})).unwrap_err().to_string();
        assert!(err.contains("is not a YAML map of grains"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "- not\n- a map\n", "left alone");
    }

    #[derive(Debug, Default)]
    struct CountingHost(AtomicUsize);
    impl Host for CountingHost {
        fn running(&self) -> Vec<Value> {
            Vec::new()
        }
        fn kill(&self, _: &str) -> bool {
            false
        }
        fn refresh_grains(&self) -> Result<Map, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Map::new())
        }
    }

    #[test]
    fn a_running_minion_collects_and_publishes_its_grains_again() {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(CountingHost::default());
        let ctx = Context { host: Some(host.clone()), ..ctx_for(&dir.path().join("grains"), json!({})) };
        run(&ctx, "grains.setval", &[json!("a"), json!(1)], json!({})).unwrap();
        run(&ctx, "grains.delval", &[json!("b")], json!({})).unwrap();
        assert_eq!(host.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn delval_and_delkey_answer_like_salt() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grains");
        std::fs::write(&file, "d:\n  a: 1\n  b:\n    c: 2\nnum: 5\nroles:\n- web\n- db\n").unwrap();
        let base = json!({"os": "Debian"});
        let answer = |comment: &str, changes: Value, result: bool| json!({"comment": comment, "changes": changes, "result": result});

        let out = run(&ctx_for(&file, base.clone()), "grains.delval", &[json!("num")], json!({})).unwrap();
        assert_eq!((out.ret, out.retcode), (answer("", json!({"num": null}), true), 0));
        assert_eq!(saved(&file)["num"], json!(null));
        let ctx = ctx_for(&file, base.clone());
        let out = run(&ctx, "grains.delval", &[json!("num")], json!({})).unwrap();
        assert_eq!(out.ret, answer("Grain is already set", json!({}), true));
        let out = run(&ctx, "grains.delval", &[json!("num")], json!({"destructive": true})).unwrap();
        assert_eq!(out.ret, answer("", json!({"num": null}), true));
        assert!(!saved(&file).as_object().unwrap().contains_key("num"));

        let ctx = ctx_for(&file, base.clone());
        let out = run(&ctx, "grains.delval", &[json!("roles")], json!({})).unwrap();
        let refused = "The key 'roles' exists but is a dict or a list. Use 'force=True' to overwrite.";
        assert_eq!((out.ret, out.retcode), (answer(refused, json!({}), false), 1));
        let out = run(&ctx, "grains.delval", &[json!("d:b")], json!({})).unwrap();
        assert_eq!(
            out.ret["comment"],
            json!("The key 'd:b' exists but is a dict or a list. Use 'force=True' to overwrite.")
        );
        let out = run(&ctx, "grains.delval", &[json!("d:a")], json!({"destructive": true})).unwrap();
        assert_eq!(out.ret, answer("", json!({"d": {"b": {"c": 2}}}), true));
        let out = run(&ctx, "grains.delval", &[json!("os:x")], json!({})).unwrap();
        let crossed = "The key 'os' value is 'Debian', which is different from the provided key 'x'. \
                       Use 'force=True' to overwrite.";
        assert_eq!((out.ret, out.retcode), (answer(crossed, json!({}), false), 1));
        // A path into a list replaces the matching item with a one-key map.
        let out = run(&ctx, "grains.delval", &[json!("roles:web")], json!({})).unwrap();
        assert_eq!(out.ret, answer("", json!({"roles": [{"web": null}, "db"]}), true));
        let out = run(&ctx, "grains.delval", &[json!("nosuch")], json!({"destructive": true})).unwrap();
        assert_eq!(out.ret, answer("", json!({"nosuch": null}), true));

        let ctx = ctx_for(&file, base);
        let out = run(&ctx, "grains.delkey", &[json!("d")], json!({})).unwrap();
        assert_eq!(out.ret["result"], json!(false));
        let out = run(&ctx, "grains.delkey", &[json!("d")], json!({"force": true})).unwrap();
        assert_eq!(out.ret, answer("", json!({"d": null}), true));
        assert_eq!(saved(&file), json!({"roles": [{"web": null}, "db"]}));
    }

    #[test]
    fn has_value_follows_paths_into_maps_and_lists() {
        let ctx = Context {
            grains: Arc::new(
                serde_json::from_value(json!({"d": {"b": {"c": 2}}, "ipv4": ["127.0.0.1"], "n": null})).unwrap(),
            ),
            ..Context::default()
        };
        for (key, want) in
            [("d:b:c", true), ("ipv4:0", true), ("n", true), ("ipv4:9", false), ("d:b:c:e", false), ("x", false)]
        {
            assert_eq!(run(&ctx, "grains.has_value", &[json!(key)], json!({})).unwrap().ret, json!(want), "{key}");
        }
    }

    #[test]
    fn filter_by_gives_salts_answers() {
        let ctx = Context {
            grains: Arc::new(
                serde_json::from_value(json!({"os_family": "Debian", "id": "local", "roles": ["db", "web"]})).unwrap(),
            ),
            ..Context::default()
        };
        let filter = |args: &[Value], kwargs: Value| run(&ctx, "grains.filter_by", args, kwargs);
        let ok = |args: &[Value], kwargs: Value| filter(args, kwargs).unwrap().ret;
        // The outputs Salt 3007.8 gives on Debian for its documented examples.
        assert_eq!(
            ok(&[json!({"Debian": "Debheads rule", "RedHat": "I love my hat"})], json!({})),
            json!("Debheads rule")
        );
        let lookup = json!({"A": "B", "C": {"D": {"E": "F", "G": "H"}}});
        assert_eq!(
            ok(&[lookup, json!("xxx"), json!({"D": {"E": "I"}, "J": "K"}), json!("C")], json!({})),
            json!({"D": {"E": "I", "G": "H"}, "J": "K"})
        );
        let lookup = json!({"default": {"A": {"B": "C"}, "D": "E"}, "F": {"A": {"B": "G"}}, "H": {"D": "I"}});
        assert_eq!(
            ok(&[lookup, json!("xxx"), json!({"D": "J"}), json!("F"), json!("default")], json!({})),
            json!({"A": {"B": "G"}, "D": "J"})
        );
        assert_eq!(ok(&[json!({"loc*": "got it", "default": "no"}), json!("id")], json!({})), json!("got it"));
        assert_eq!(ok(&[json!({"x": 1})], json!({})), json!(null));
        assert_eq!(ok(&[json!({"x": 1})], json!({"default": "x"})), json!(1));
        assert_eq!(ok(&[json!({"Debian": 5})], json!({"base": "Debian"})), json!(5));
        assert_eq!(ok(&[json!({"Debian": {"a": 1}})], json!({"base": "nosuch"})), json!({"a": 1}));
        // A list grain: the first item that matches; a None match lets later items try.
        assert_eq!(ok(&[json!({"web": "w", "db": null})], json!({"grain": "roles"})), json!("w"));
        assert_eq!(ok(&[json!({"nosuch": 1, "default": 2})], json!({"grain": "nosuch"})), json!(2));
        assert_eq!(ok(&[json!({"x": 1})], json!({"merge": {"a": 1}})), json!({"a": 1}));
        let err = filter(&[json!({"Debian": 5})], json!({"merge": {"a": 1}})).unwrap_err();
        assert_eq!(err.to_string(), "Cannot update using non-dict types in dictupdate.update().");
        let err = filter(&[json!({"Debian": {"a": 1}})], json!({"merge": "x"})).unwrap_err();
        assert_eq!(err.to_string(), "filter_by merge argument must be a dictionary.");
        let err = filter(&[json!({"Debian": 5, "b": {"a": 1}})], json!({"base": "b"})).unwrap_err();
        assert_eq!(err.to_string(), "filter_by default and look-up values must both be dictionaries.");
    }
}
