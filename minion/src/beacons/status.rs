//! The `status` beacon, as Salt's: at each interval, the data of `status.*`
//! execution functions (`loadavg = ["all"]`, `meminfo = ["MemTotal", "MemFree"]`),
//! `{loadavg: {...}, meminfo: {...}}`, with the time (ISO 8601, UTC) as sub tag.
//! Without options it reports `loadavg`, `meminfo` and `uptime` in full.

use super::{Beacon, Env, Fired};
use brine_proto::{Map, Value};

struct Status {
    /// Function (after `status.`) and the items to keep (`all` for everything).
    functions: Vec<(String, Vec<Value>)>,
}

pub(crate) fn build(_: &str, options: &Map, _: &Env) -> Result<Box<dyn Beacon>, String> {
    let functions: Vec<(String, Vec<Value>)> = if options.is_empty() {
        ["loadavg", "meminfo", "uptime"].iter().map(|f| (f.to_string(), vec![Value::String("all".into())])).collect()
    } else {
        options
            .iter()
            .map(|(f, items)| {
                let items = match items {
                    Value::Array(a) => a.clone(),
                    one => vec![one.clone()],
                };
                (f.clone(), items)
            })
            .collect()
    };
    for (f, _) in &functions {
        if brine_states::exec::lookup_in(&[brine_states::exec::STATUS], &format!("status.{f}")).is_none() {
            return Err(format!("there is no function status.{f}"));
        }
    }
    Ok(Box::new(Status { functions }))
}

impl Beacon for Status {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        let ctx = brine_states::exec::Context::default();
        let mut data = Map::new();
        for (f, items) in &self.functions {
            let got = match brine_states::exec::call_in(
                &[brine_states::exec::STATUS],
                &format!("status.{f}"),
                &ctx,
                vec![],
                Map::new(),
            ) {
                Ok(out) => out.ret,
                Err(e) => {
                    tracing::debug!(function = %f, error = %e, "status beacon: function failed");
                    continue;
                }
            };
            let value = if items.iter().any(|i| i == "all") {
                got
            } else {
                let mut picked = Map::new();
                for item in items {
                    let key = match item {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let v = match (&got, item) {
                        (Value::Object(m), _) => m.get(&key).cloned(),
                        (Value::Array(a), Value::Number(n)) => n.as_u64().and_then(|i| a.get(i as usize)).cloned(),
                        _ => None,
                    };
                    match v {
                        Some(v) => {
                            picked.insert(key, v);
                        }
                        None => {
                            data.insert(
                                f.clone(),
                                Value::String(format!("Status beacon is incorrectly configured: '{key}'")),
                            );
                            continue;
                        }
                    }
                }
                Value::Object(picked)
            };
            data.entry(f.clone()).or_insert(value);
        }
        let now = brine_proto::time::Civil::from_unix_micros(brine_proto::time::now_micros()).to_string();
        // Salt's tag is Python's isoformat() of the UTC time, without a zone.
        let tag = now.trim_end_matches('Z').to_string();
        let mut event = Map::new();
        event.insert("data".into(), Value::Object(data));
        Ok(vec![Fired::tagged(tag, event)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_reports_the_chosen_items_under_a_time_tag() {
        let env = Env { id: "m".into(), data_dir: std::env::temp_dir() };
        let opts = json!({"loadavg": ["1-min"], "meminfo": "all"});
        let fired = build("status", opts.as_object().unwrap(), &env).unwrap().poll().unwrap();
        let data = &fired[0].data["data"];
        assert!(data["loadavg"]["1-min"].is_number(), "{data}");
        assert!(data["meminfo"]["MemTotal"].is_object(), "{data}");
        assert!(fired[0].tag.as_deref().unwrap().contains('T'));
        assert!(build("status", json!({"nope": "all"}).as_object().unwrap(), &env).is_err());
    }
}
