//! `event.*`: put events on the master's bus from a minion, signed by the minion and
//! confined to its own tag space.

use super::{opt, opt_or, req, CallError, Context, Function, Output, Param, ParamDefault};
use brine_proto::{Map, Value};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct SendArgs {
    tag: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    with_grains: Value,
    #[serde(default)]
    with_pillar: Value,
    /// Salt's remaining keyword arguments join the data.
    #[serde(flatten)]
    extra: Map,
}

/// The event's data: `data` (a mapping, or `{"data": value}`), the extra keywords, and
/// the grains and pillar asked for (`true` for all, or a list of keys).
fn event_data(ctx: &Context, a: SendArgs) -> Result<Map, CallError> {
    let mut out = match a.data {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("data".into(), other);
            m
        }
    };
    out.extend(a.extra);
    for (key, want, all) in [("grains", &a.with_grains, &ctx.grains), ("pillar", &a.with_pillar, &ctx.pillar)] {
        let picked = match want {
            Value::Null | Value::Bool(false) => continue,
            Value::Bool(true) => Value::Object((**all).clone()),
            Value::Array(keys) => Value::Object(
                keys.iter()
                    .filter_map(|k| k.as_str())
                    .filter_map(|k| all.get(k).map(|v| (k.to_string(), v.clone())))
                    .collect(),
            ),
            other => return Err(CallError::failed(format!("with_{key} must be True or a list of keys, not {other}"))),
        };
        out.insert(key.into(), picked);
    }
    Ok(out)
}

fn fire(ctx: &Context, tag: &str, data: Map) -> Result<Output, CallError> {
    let host = ctx.host.as_ref().ok_or_else(|| {
        CallError::failed("event.send needs a running minion connected to a master (not brine-call --local)")
    })?;
    host.fire_job_event(tag, Value::Object(data), ctx.jid.as_deref()).map_err(CallError::Failed)?;
    Ok(Output::ok(true))
}

pub struct Send;
impl Function for Send {
    const NAME: &'static str = "event.send";
    const DOC: &'static str = "Sends an event to the master's bus, signed by this minion, and returns True. The \
        tag is slash-separated (myapp/deploy/done); under brine/ a minion may only use brine/minion/<its id>/... \
        and brine/beacon/<its id>/.... data is a mapping (any other value is sent as {data: value}); other keyword \
        arguments join the data; with_grains and with_pillar add the minion's grains or pillar (True for all, or \
        a list of keys). The master's reactor can act on it.\n\nCLI example: brine run web1 event.send \
        myapp/deploy/done '{version: 42}' with_grains='[os]'";
    const PARAMS: &'static [Param] = &[
        req("tag"),
        opt("data"),
        opt_or("with_grains", ParamDefault::Bool(false)),
        opt_or("with_pillar", ParamDefault::Bool(false)),
    ];
    type Args = SendArgs;
    fn call(&self, ctx: &Context, a: SendArgs) -> Result<Output, CallError> {
        let tag = a.tag.clone();
        let data = event_data(ctx, a)?;
        fire(ctx, &tag, data)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FireMasterArgs {
    data: Value,
    tag: String,
    #[serde(default)]
    preload: Value,
}

pub struct FireMaster;
impl Function for FireMaster {
    const NAME: &'static str = "event.fire_master";
    const DOC: &'static str = "Sends an event with this data and tag to the master's bus (Salt's argument order: \
        data first); returns True. Same rules as event.send; preload is accepted and ignored.\n\nCLI example: \
        brine run web1 event.fire_master '{ok: true}' myapp/check";
    const PARAMS: &'static [Param] = &[req("data"), req("tag"), opt("preload")];
    type Args = FireMasterArgs;
    fn call(&self, ctx: &Context, a: FireMasterArgs) -> Result<Output, CallError> {
        let _ = a.preload;
        let data = match a.data {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("data".into(), other);
                m
            }
        };
        fire(ctx, &a.tag, data)
    }
}

pub static MODULE: super::Module = super::Module {
    name: "event",
    doc: "Events to the master's bus, signed by the minion (Salt's event module).",
    functions: &[&FireMaster, &Send],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Host;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<(String, Value, Option<String>)>>);
    impl Host for Recorder {
        fn running(&self) -> Vec<Value> {
            Vec::new()
        }
        fn kill(&self, _: &str) -> bool {
            false
        }
        fn refresh_grains(&self) -> Result<Map, String> {
            Ok(Map::new())
        }
        fn fire_job_event(&self, tag: &str, data: Value, jid: Option<&str>) -> Result<(), String> {
            self.0.lock().unwrap().push((tag.into(), data, jid.map(str::to_string)));
            Ok(())
        }
    }

    #[test]
    fn send_fires_with_data_extra_keywords_and_grains() {
        let host = Arc::new(Recorder::default());
        let mut grains = Map::new();
        grains.insert("os".into(), json!("Debian"));
        grains.insert("cpu".into(), json!(4));
        let ctx = Context {
            host: Some(host.clone()),
            grains: Arc::new(grains),
            jid: Some("20260101000000000001".into()),
            ..Default::default()
        };
        let mut kw = Map::new();
        kw.insert("with_grains".into(), json!(["os"]));
        kw.insert("extra".into(), json!(1));
        let out = crate::exec::call("event.send", &ctx, vec![json!("a/b"), json!({"x": 1})], kw).unwrap();
        assert_eq!(out, Output::ok(true));
        let fired = host.0.lock().unwrap().clone();
        assert_eq!(
            fired,
            vec![(
                "a/b".to_string(),
                json!({"x": 1, "extra": 1, "grains": {"os": "Debian"}}),
                Some("20260101000000000001".to_string())
            )]
        );
        let out = crate::exec::call("event.fire_master", &ctx, vec![json!("hi"), json!("c/d")], Map::new()).unwrap();
        assert_eq!(out, Output::ok(true));
        assert_eq!(host.0.lock().unwrap()[1].1, json!({"data": "hi"}));
    }

    #[test]
    fn send_without_a_minion_says_so() {
        let err = crate::exec::call("event.send", &Context::default(), vec![json!("a/b")], Map::new()).unwrap_err();
        assert!(err.to_string().contains("running minion"), "{err}");
    }
}
