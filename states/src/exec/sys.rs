//! `sys.*`: what this minion can do, read from the function registry.

use super::{functions, opt, CallError, Context, Function, Output, Param, MODULES};
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

/// The `sys` execution module.
pub static MODULE: super::Module = super::Module {
    name: "sys",
    doc: "What this minion can do: function lists and documentation.",
    functions: &[&Doc, &ListFunctions, &ListModules],
};
