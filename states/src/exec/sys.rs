//! `sys.*`: what this minion can do, read from the function registry.

use super::host::fnmatch;
use super::{
    functions, opt, opt_or, CallError, Context, DynFunction, Function, Keywords, Output, Param, ParamDefault, MODULES,
};
use brine_proto::{Map, Value};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Filter {
    args: Vec<Value>,
}

/// Whether `name` is selected by the filter words: a module name selects its
/// functions, a full name selects itself, a glob-ish `*` suffix selects a prefix.
fn selected(name: &str, words: &[Value]) -> bool {
    if words.is_empty() {
        return true;
    }
    words.iter().filter_map(Value::as_str).any(|w| {
        if let Some(prefix) = w.strip_suffix('*') {
            name.starts_with(prefix)
        } else if w.contains('.') {
            name == w
        } else {
            name.split_once('.').is_some_and(|(m, _)| m == w)
        }
    })
}

pub struct Doc;
impl Function for Doc {
    const NAME: &'static str = "sys.doc";
    const DOC: &'static str = "Returns the documentation of functions: all of them, those of a \
        module (`sys.doc cmd`) or one (`sys.doc cmd.run`).\n\nCLI example: brine run '*' sys.doc test";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = Filter;
    fn call(&self, _: &Context, a: Filter) -> Result<Output, CallError> {
        let docs: Map = functions()
            .filter(|f| selected(f.name(), &a.args))
            .map(|f| (f.name().to_string(), Value::String(format!("{}\n\nUsage: {}", f.doc(), f.usage()))))
            .collect();
        Ok(Output::ok(docs))
    }
}

pub struct ListFunctions;
impl Function for ListFunctions {
    const NAME: &'static str = "sys.list_functions";
    const DOC: &'static str = "Lists function names, optionally only those of the given modules.\n\n\
        CLI example: brine run '*' sys.list_functions cmd test";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = Filter;
    fn call(&self, _: &Context, a: Filter) -> Result<Output, CallError> {
        Ok(Output::ok(Value::Array(
            functions().filter(|f| selected(f.name(), &a.args)).map(|f| f.name().into()).collect(),
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModFilter {
    #[serde(default)]
    glob: Option<String>,
}

pub struct ListModules;
impl Function for ListModules {
    const NAME: &'static str = "sys.list_modules";
    const DOC: &'static str = "Lists execution module names.\n\nCLI example: brine run '*' sys.list_modules";
    const PARAMS: &'static [Param] = &[opt("glob")];
    type Args = ModFilter;
    fn call(&self, _: &Context, a: ModFilter) -> Result<Output, CallError> {
        let mods = MODULES.iter().map(|m| m.name);
        let prefix = a.glob.as_deref().map(|g| g.trim_end_matches('*'));
        Ok(Output::ok(Value::Array(
            mods.filter(|m| prefix.is_none_or(|p| m.starts_with(p))).map(Value::from).collect(),
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgspecArgs {
    #[serde(default)]
    module: Option<String>,
    args: Vec<Value>,
}

/// Whether Salt's `sys.argspec` selects `name` for `word`: a word with `*` or `.` is a
/// glob over full names (`cmd.run`, `cmd.r*`, `pkg*`), else a module name (`sys`
/// selects `sys.*` but not `sysctl.*`).
fn argspec_selects(word: &str, name: &str) -> bool {
    if word.contains(['*', '.']) {
        fnmatch(word, name)
    } else {
        name.strip_prefix(word).is_some_and(|rest| rest.starts_with('.'))
    }
}

/// One function's signature in Salt's shape: positional `args`, the `defaults` of the
/// trailing optional ones, and whether it takes `*args` and further keywords (`True` or
/// `None`, as Salt reports them).
fn argspec(f: &dyn DynFunction) -> Value {
    let params = f.params();
    let names: Vec<Value> = params.iter().map(|p| Value::from(p.name)).collect();
    // Defaults belong to the parameters after the last required one, as in Python.
    let first_defaulted = params.iter().rposition(|p| !p.optional).map_or(0, |i| i + 1);
    let defaults: Vec<Value> = params[first_defaulted..].iter().map(|p| p.default.to_value()).collect();
    let takes_more_keywords = match f.keywords() {
        Keywords::Any => true,
        Keywords::Named(fields) => fields.iter().any(|k| {
            let listed = params.iter().any(|p| p.name == *k);
            let rest_of_args = f.varargs() && *k == "args";
            !(listed || rest_of_args)
        }),
    };
    let or_none = |v: Vec<Value>| if v.is_empty() { Value::Null } else { Value::Array(v) };
    let flag = |b: bool| if b { Value::Bool(true) } else { Value::Null };
    let mut spec = Map::new();
    spec.insert("args".into(), or_none(names));
    spec.insert("defaults".into(), or_none(defaults));
    spec.insert("varargs".into(), flag(f.varargs()));
    spec.insert("kwargs".into(), flag(takes_more_keywords));
    Value::Object(spec)
}

pub struct Argspec;
impl Function for Argspec {
    const NAME: &'static str = "sys.argspec";
    const DOC: &'static str = "Returns the argument specification of functions, keyed by name: \
        `args` (positional names in order), `defaults` (of the trailing optional ones), `varargs` \
        and `kwargs` (True when it takes extra positional arguments or keywords beyond `args`, \
        else None).\n\n\
        Keywords: module (a module name like `cmd`, a function name like `cmd.run`, or a glob like \
        `cmd.r*`; more words may follow). With none, every function (Salt documents that but \
        returns nothing).\n\n\
        CLI example: brine run '*' sys.argspec cmd.run";
    const PARAMS: &'static [Param] = &[opt_or("module", ParamDefault::Str(""))];
    const VARARGS: bool = true;
    type Args = ArgspecArgs;
    fn call(&self, _: &Context, a: ArgspecArgs) -> Result<Output, CallError> {
        let mut words: Vec<String> = a.module.into_iter().filter(|m| !m.is_empty()).collect();
        words.extend(a.args.iter().map(super::host::word_text));
        let specs: Map = functions()
            .filter(|f| words.is_empty() || words.iter().any(|w| argspec_selects(w, f.name())))
            .map(|f| (f.name().to_string(), argspec(f)))
            .collect();
        Ok(Output::ok(specs))
    }
}

/// The `sys` execution module.
/// Every state function, in name order.
fn state_functions() -> impl Iterator<Item = &'static dyn crate::state::DynState> {
    crate::state::STATE_MODULES.iter().flat_map(|m| m.functions.iter().copied())
}

pub struct StateDoc;
impl Function for StateDoc {
    const NAME: &'static str = "sys.state_doc";
    const DOC: &'static str = "Returns the documentation of state functions: all of them, those of a \
        state module (`sys.state_doc file`) or one (`sys.state_doc file.managed`).\n\n\
        CLI example: brine run '*' sys.state_doc service";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = Filter;
    fn call(&self, _: &Context, a: Filter) -> Result<Output, CallError> {
        let mut docs = Map::new();
        for m in crate::state::STATE_MODULES {
            if a.args.is_empty() || a.args.iter().any(|w| w.as_str() == Some(m.name)) {
                docs.insert(m.name.to_string(), Value::String(m.doc.to_string()));
            }
        }
        for f in state_functions().filter(|f| selected(f.name(), &a.args)) {
            docs.insert(f.name().to_string(), Value::String(f.doc().to_string()));
        }
        Ok(Output::ok(docs))
    }
}

pub struct ListStateFunctions;
impl Function for ListStateFunctions {
    const NAME: &'static str = "sys.list_state_functions";
    const DOC: &'static str = "Lists state function names, optionally only those of the given state \
        modules.\n\nCLI example: brine run '*' sys.list_state_functions file";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = Filter;
    fn call(&self, _: &Context, a: Filter) -> Result<Output, CallError> {
        Ok(Output::ok(Value::Array(
            state_functions().filter(|f| selected(f.name(), &a.args)).map(|f| f.name().into()).collect(),
        )))
    }
}

pub struct ListStateModules;
impl Function for ListStateModules {
    const NAME: &'static str = "sys.list_state_modules";
    const DOC: &'static str = "Lists state module names.\n\nCLI example: brine run '*' sys.list_state_modules";
    const PARAMS: &'static [Param] = &[opt("glob")];
    type Args = ModFilter;
    fn call(&self, _: &Context, a: ModFilter) -> Result<Output, CallError> {
        let prefix = a.glob.as_deref().map(|g| g.trim_end_matches('*'));
        Ok(Output::ok(Value::Array(
            crate::state::STATE_MODULES
                .iter()
                .map(|m| m.name)
                .filter(|n| prefix.is_none_or(|p| n.starts_with(p)))
                .map(Value::from)
                .collect(),
        )))
    }
}

pub static MODULE: super::Module = super::Module {
    name: "sys",
    doc: "What this minion can do: function lists, documentation and argument specifications.",
    functions: &[&Argspec, &Doc, &ListFunctions, &ListModules, &ListStateFunctions, &ListStateModules, &StateDoc],
};

#[cfg(test)]
mod tests {
    use crate::exec::{call, Context};
    use brine_proto::Map;
    use serde_json::json;

    fn argspec(words: &[&str]) -> serde_json::Value {
        let args = words.iter().map(|w| json!(w)).collect();
        call("sys.argspec", &Context::default(), args, Map::new()).unwrap().ret
    }

    #[test]
    fn state_functions_are_listed_and_documented() {
        let call = |fun: &str, args: &[&str]| {
            crate::exec::call(fun, &Context::default(), args.iter().map(|a| json!(a)).collect(), Map::new())
                .unwrap()
                .ret
        };
        let services = call("sys.list_state_functions", &["service"]);
        assert_eq!(services, json!(["service.dead", "service.disabled", "service.enabled", "service.running"]));
        let all = call("sys.list_state_functions", &[]);
        assert!(all.as_array().unwrap().len() > 30);
        assert!(call("sys.list_state_modules", &[]).as_array().unwrap().contains(&json!("file")));
        let docs = call("sys.state_doc", &["file.managed", "cmd"]);
        let docs = docs.as_object().unwrap();
        assert!(docs.contains_key("file.managed") && docs.contains_key("cmd") && docs.contains_key("cmd.run"));
        assert!(!docs.contains_key("file.absent"));
        for f in super::state_functions() {
            assert!(!f.doc().trim().is_empty(), "{} has no documentation", f.name());
        }
    }

    #[test]
    fn argspec_has_salts_shape() {
        let got = argspec(&["cmd.which"]);
        assert_eq!(got, json!({"cmd.which": {"args": ["cmd"], "defaults": null, "varargs": null, "kwargs": null}}));
        let run = &argspec(&["cmd.run"])["cmd.run"];
        assert_eq!(
            run["args"],
            json!(["cmd", "cwd", "stdin", "runas", "group", "shell", "python_shell", "env", "clean_env"]),
            "Salt's order"
        );
        assert_eq!(run["defaults"], json!([null, null, null, null, null, null, null, false]));
        assert_eq!((run["varargs"].clone(), run["kwargs"].clone()), (json!(null), json!(true)), "timeout= etc.");
        let keys: Vec<&String> = run.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["args", "defaults", "varargs", "kwargs"]);
        // Free-form keywords and *args.
        assert_eq!(
            argspec(&["test.arg"])["test.arg"],
            json!({"args": null, "defaults": null, "varargs": true, "kwargs": true})
        );
        assert_eq!(
            argspec(&["test.ping"])["test.ping"],
            json!({"args": null, "defaults": null, "varargs": null, "kwargs": null})
        );
        assert_eq!(argspec(&["sys.argspec"])["sys.argspec"]["defaults"], json!([""]));
    }

    #[test]
    fn argspec_selects_modules_functions_and_globs_like_salt() {
        let names = |v: serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(argspec(&["cmd.run"])), ["cmd.run"]);
        assert_eq!(
            names(argspec(&["cmd.r*"])),
            ["cmd.retcode", "cmd.run", "cmd.run_all", "cmd.run_stderr", "cmd.run_stdout"]
        );
        let sys = names(argspec(&["sys"]));
        assert!(sys.iter().all(|n| n.starts_with("sys.")) && sys.contains(&"sys.argspec".to_string()));
        assert!(names(argspec(&["sy"])).is_empty(), "a module name is not a prefix");
        assert_eq!(names(argspec(&["cmd.which", "cmd.has_exec"])), ["cmd.has_exec", "cmd.which"]);
        assert_eq!(argspec(&["nosuch"]), json!({}));
        let mut kw = Map::new();
        kw.insert("module".into(), json!("cmd.which"));
        let got = call("sys.argspec", &Context::default(), vec![], kw).unwrap().ret;
        assert_eq!(names(got), ["cmd.which"]);
        let all = argspec(&[]);
        assert_eq!(all.as_object().unwrap().len(), crate::exec::functions().count());
    }
}
