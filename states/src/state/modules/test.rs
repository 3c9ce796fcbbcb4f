//! `test.*` states: predictable outcomes for trying requisites and output.

use crate::state::{Outcome, StateContext, StateFunction};
use brine_proto::{Map, Value};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct NoArgs {}

fn pretend() -> Map {
    let mut inner = Map::new();
    inner.insert("old".into(), "Unchanged".into());
    inner.insert("new".into(), "Something pretended to change".into());
    let mut changes = Map::new();
    changes.insert("testing".into(), Value::Object(inner));
    changes
}

pub struct SucceedWithoutChanges;
impl StateFunction for SucceedWithoutChanges {
    const NAME: &'static str = "test.succeed_without_changes";
    const DOC: &'static str = "Always succeeds, changing nothing.\n\nExample:\n  ok:\n    test.succeed_without_changes";
    type Args = NoArgs;
    fn check_apply(&self, _: &StateContext, _: &str, _: NoArgs, _apply: bool) -> Outcome {
        Outcome::ok("Success!")
    }
    fn mod_watch(&self, _: &StateContext, _: &str, _: &Map, _: bool, watched: &[Value]) -> Option<Outcome> {
        Some(watch_fired(watched))
    }
}

pub struct SucceedWithChanges;
impl StateFunction for SucceedWithChanges {
    const NAME: &'static str = "test.succeed_with_changes";
    const DOC: &'static str =
        "Always succeeds and reports a change.\n\nExample:\n  changed:\n    test.succeed_with_changes";
    type Args = NoArgs;
    fn check_apply(&self, _: &StateContext, _: &str, _: NoArgs, apply: bool) -> Outcome {
        let comment = if apply { "Success!" } else { "If we weren't testing, this would be successful with changes" };
        Outcome::changed(comment, pretend())
    }
    fn mod_watch(&self, _: &StateContext, _: &str, _: &Map, _: bool, watched: &[Value]) -> Option<Outcome> {
        Some(watch_fired(watched))
    }
}

/// Every test state's watch action: report which watched states changed.
fn watch_fired(watched: &[Value]) -> Outcome {
    let mut changes = Map::new();
    changes.insert("Requisites with changes".into(), Value::Array(watched.to_vec()));
    Outcome::changed("Watch statement fired.", changes)
}

pub struct FailWithoutChanges;
impl StateFunction for FailWithoutChanges {
    const NAME: &'static str = "test.fail_without_changes";
    const DOC: &'static str = "Always fails, changing nothing.\n\nExample:\n  broken:\n    test.fail_without_changes";
    type Args = NoArgs;
    fn check_apply(&self, _: &StateContext, _: &str, _: NoArgs, apply: bool) -> Outcome {
        if apply {
            Outcome::failed("Failure!")
        } else {
            Outcome::failed("If we weren't testing, this would be a failure!")
        }
    }
    fn mod_watch(&self, _: &StateContext, _: &str, _: &Map, _: bool, watched: &[Value]) -> Option<Outcome> {
        Some(watch_fired(watched))
    }
}

pub struct FailWithChanges;
impl StateFunction for FailWithChanges {
    const NAME: &'static str = "test.fail_with_changes";
    const DOC: &'static str = "Always fails and reports a change.\n\nExample:\n  broken:\n    test.fail_with_changes";
    type Args = NoArgs;
    fn check_apply(&self, _: &StateContext, _: &str, _: NoArgs, apply: bool) -> Outcome {
        if apply {
            Outcome { ok: false, changes: pretend(), comment: "Failure!".into(), predicted: false }
        } else {
            Outcome::changed("If we weren't testing, this would be failed with changes", pretend())
        }
    }
    fn mod_watch(&self, _: &StateContext, _: &str, _: &Map, _: bool, watched: &[Value]) -> Option<Outcome> {
        Some(watch_fired(watched))
    }
}

pub struct Nop;
impl StateFunction for Nop {
    const NAME: &'static str = "test.nop";
    const DOC: &'static str =
        "Does nothing and succeeds: a place to hang requisites.\n\nExample:\n  milestone:\n    test.nop";
    type Args = Map;
    fn check_apply(&self, _: &StateContext, _: &str, _: Map, _apply: bool) -> Outcome {
        Outcome::ok("Success!")
    }
    fn mod_watch(&self, _: &StateContext, _: &str, _: &Map, _: bool, watched: &[Value]) -> Option<Outcome> {
        Some(watch_fired(watched))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurableArgs {
    #[serde(default = "yes")]
    changes: Value,
    #[serde(default = "yes")]
    result: Value,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    warnings: Option<Value>,
}

fn yes() -> Value {
    Value::Bool(true)
}

pub struct ConfigurableTestState;
impl StateFunction for ConfigurableTestState {
    const NAME: &'static str = "test.configurable_test_state";
    const DOC: &'static str = "Returns the changes, result and comment it is given (changes and result: \
        true, false or \"Random\").\n\nExample:\n  pretend:\n    test.configurable_test_state:\n      - changes: True\n      - result: False\n      - comment: as configured";
    type Args = ConfigurableArgs;
    fn check_apply(&self, _: &StateContext, _: &str, a: ConfigurableArgs, apply: bool) -> Outcome {
        let _ = a.warnings;
        let coin = || brine_proto::time::now_micros() % 2 == 0;
        let flag = |v: &Value| match v {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("random") => coin(),
            Value::String(s) => matches!(s.to_lowercase().as_str(), "true" | "yes"),
            _ => false,
        };
        let changes = if flag(&a.changes) { pretend() } else { Map::new() };
        // In test mode the configured result is not used: changes predict `None`.
        let ok = !apply || flag(&a.result);
        Outcome { ok, changes, comment: a.comment, predicted: false }
    }
    fn mod_watch(&self, _: &StateContext, _: &str, _: &Map, _: bool, watched: &[Value]) -> Option<Outcome> {
        Some(watch_fired(watched))
    }
}

/// The `test` state module.
pub static MODULE: crate::state::StateModule = crate::state::StateModule {
    name: "test",
    doc: "States with predictable outcomes, for trying requisites and output.",
    functions: &[
        &ConfigurableTestState,
        &FailWithChanges,
        &FailWithoutChanges,
        &Nop,
        &SucceedWithChanges,
        &SucceedWithoutChanges,
    ],
};
