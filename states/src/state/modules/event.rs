//! `event.send` state: fire an event on the master's bus from a state run.

use crate::state::{Outcome, StateContext, StateFunction};
use brine_proto::{Map, Value};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct SendArgs {
    #[serde(default)]
    data: Value,
    #[serde(default = "yes")]
    show_changed: bool,
    #[serde(default)]
    with_grains: Value,
    #[serde(default)]
    with_pillar: Value,
}

fn yes() -> bool {
    true
}

pub struct Send;
impl StateFunction for Send {
    const NAME: &'static str = "event.send";
    const DOC: &'static str = "Sends an event (the state's name is the tag) to the master's bus, signed by this \
        minion, as Salt's event.send state: changes are {tag, data} (none with show_changed: False); in test mode \
        nothing is sent and the result is None. data, with_grains and with_pillar are passed to the event.send \
        function.\n\nExample:\n  deployed:\n    event.send:\n      - name: myapp/deploy/done\n      - data:\n          \
        version: 42";
    type Args = SendArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: SendArgs, apply: bool) -> Outcome {
        let mut changes = Map::new();
        if a.show_changed {
            changes.insert("tag".into(), name.into());
            changes.insert("data".into(), a.data.clone());
        }
        if !apply {
            return Outcome { ok: true, changes, comment: "Event would have been fired".into(), predicted: true };
        }
        let mut kwargs = Map::new();
        kwargs.insert("data".into(), a.data);
        kwargs.insert("with_grains".into(), a.with_grains);
        kwargs.insert("with_pillar".into(), a.with_pillar);
        match crate::exec::call("event.send", ctx.exec, vec![name.into()], kwargs) {
            Ok(_) => Outcome::changed("Event fired", changes),
            Err(e) => Outcome { ok: false, changes, comment: format!("Event not fired: {e}"), predicted: false },
        }
    }
}

pub static MODULE: crate::state::StateModule = crate::state::StateModule {
    name: "event",
    doc: "Events to the master's bus from a state run (Salt's event state).",
    functions: &[&Send],
};
