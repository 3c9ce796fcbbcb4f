//! The state system: from SLS files to results, with Salt's semantics.
//!
//! render (Jinja) → YAML → high data (`include`, `extend`, `names`) → low chunks (one per
//! id and state function) → requisites and order → run → results.
//!
//! A state function implements [`StateFunction`]: it inspects the host, reports what
//! differs, and changes it only when asked to apply. Test mode is therefore the same
//! code with `apply = false`; the engine turns "would change" into `result: None`.

pub mod compile;
pub mod engine;
mod modules;
pub mod orchestrator;
pub mod output;

use crate::exec::Context;
use crate::files::FileSource;
use brine_proto::{Map, Value};
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub use compile::{Chunk, CompileError};
pub use engine::{run_chunks, StateRun};

/// Every state module, alphabetical by name (one line per module).
pub static STATE_MODULES: &[&StateModule] = &[
    &modules::brine::MODULE,
    &modules::cmd::MODULE,
    &modules::cron::MODULE,
    &modules::event::MODULE,
    &modules::file::MODULE,
    &modules::group::MODULE,
    &modules::host::MODULE,
    &modules::pkg::MODULE,
    &modules::brine::SALT,
    &modules::service::MODULE,
    &modules::sysctl::MODULE,
    &modules::test::MODULE,
    &modules::user::MODULE,
];

/// A state module: a name and its functions.
pub struct StateModule {
    pub name: &'static str,
    pub doc: &'static str,
    pub functions: &'static [&'static dyn DynState],
}

/// Looks a state function up by `module.function`.
pub fn lookup(name: &str) -> Option<&'static dyn DynState> {
    let (module, _) = name.split_once('.')?;
    let m = STATE_MODULES.binary_search_by(|m| m.name.cmp(module)).ok().map(|i| STATE_MODULES[i])?;
    m.functions.iter().copied().find(|f| f.name() == name)
}

/// What a state function sees.
pub struct StateContext<'a> {
    /// For execution functions and grains.
    pub exec: &'a Context,
    /// The state trees (for `salt://` sources and templates).
    pub files: &'a dyn FileSource,
    pub pillar: &'a Arc<Map>,
    pub saltenv: &'a str,
    /// The master running an orchestration (for the `brine.*` states); `None` on a
    /// minion.
    pub orchestrator: Option<&'a dyn orchestrator::Orchestrator>,
}

/// What a state function found or did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether the host is (or, when not applying, could be brought) in the declared
    /// state.
    pub ok: bool,
    /// What changed, or would change when not applying.
    pub changes: Map,
    pub comment: String,
    /// When not applying: something would be done even though no changes can be
    /// predicted (a command would run). Test mode then reports `None`.
    pub predicted: bool,
}

impl Outcome {
    pub fn ok(comment: impl Into<String>) -> Outcome {
        Outcome { ok: true, changes: Map::new(), comment: comment.into(), predicted: false }
    }

    pub fn changed(comment: impl Into<String>, changes: Map) -> Outcome {
        Outcome { ok: true, changes, comment: comment.into(), predicted: false }
    }

    pub fn failed(comment: impl Into<String>) -> Outcome {
        Outcome { ok: false, changes: Map::new(), comment: comment.into(), predicted: false }
    }

    /// Something would be done (test mode).
    pub fn would(comment: impl Into<String>) -> Outcome {
        Outcome { ok: true, changes: Map::new(), comment: comment.into(), predicted: true }
    }
}

/// A state function with typed arguments.
pub trait StateFunction: Sync + Send + 'static {
    /// `module.function`.
    const NAME: &'static str;
    /// What it manages, its arguments, and an example.
    const DOC: &'static str;
    type Args: DeserializeOwned;
    /// Inspects the host; changes it only when `apply` is true.
    fn check_apply(&self, ctx: &StateContext, name: &str, args: Self::Args, apply: bool) -> Outcome;
    /// What a `watch` that saw changes runs (a service restart, a command), after the
    /// function itself changed nothing; `watched` names the targets that changed
    /// (`module: id`). `None`: the function has no watch action.
    fn mod_watch(
        &self,
        _ctx: &StateContext,
        _name: &str,
        _args: &Map,
        _apply: bool,
        _watched: &[Value],
    ) -> Option<Outcome> {
        None
    }
}

/// A state function looked up by name; implemented for every [`StateFunction`].
pub trait DynState: Sync {
    fn name(&self) -> &'static str;
    fn doc(&self) -> &'static str;
    /// Runs the function with the chunk's arguments (`name` already taken out).
    fn call(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool) -> Outcome;
    fn watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, watched: &[Value]) -> Option<Outcome>;
}

impl<F: StateFunction> DynState for F {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn doc(&self) -> &'static str {
        F::DOC
    }
    fn call(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool) -> Outcome {
        match serde_json::from_value::<F::Args>(Value::Object(args.clone())) {
            Ok(a) => self.check_apply(ctx, name, a, apply),
            Err(e) => Outcome::failed(format!("Invalid arguments to {}: {e}", F::NAME)),
        }
    }
    fn watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, watched: &[Value]) -> Option<Outcome> {
        self.mod_watch(ctx, name, args, apply, watched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_registry_is_sorted_and_documented() {
        for pair in STATE_MODULES.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} must come before {}", pair[1].name, pair[0].name);
        }
        for m in STATE_MODULES {
            for f in m.functions {
                assert!(f.name().starts_with(&format!("{}.", m.name)), "{}", f.name());
                assert!(f.doc().contains("Example:"), "{} needs an example", f.name());
                assert!(lookup(f.name()).is_some());
            }
        }
    }
}
