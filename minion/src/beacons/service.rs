//! The `service` beacon, as Salt's: `services = { nginx = { onchangeonly = true } }`
//! reports `{service_name: "nginx", nginx: {running: bool}}` with sub tag `nginx`,
//! at every interval, or with `onchangeonly` only when the service starts or stops
//! (and once at startup unless `emitatstartup = false`; after `delay` seconds if set).
//! `uncleanshutdown = "<pid file>"` adds `uncleanshutdown: bool` to a stopped
//! service's data: whether the pid file is still there.
//!
//! A service's state comes from the `service.status` execution function (systemd's
//! `systemctl is-active`).

use super::{only_keys, Beacon, Env, Fired};
use brine_proto::{Map, Value};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Whether a service runs now.
pub(crate) type StatusSource = Box<dyn FnMut(&str) -> Result<bool, String> + Send>;

#[derive(Debug, Clone)]
struct Watched {
    name: String,
    onchangeonly: bool,
    emitatstartup: bool,
    delay: Duration,
    uncleanshutdown: Option<String>,
}

pub(crate) struct Service {
    services: Vec<Watched>,
    /// The last state seen of each service, and since when a change waits out `delay`.
    last: HashMap<String, (bool, Option<Instant>)>,
    status: StatusSource,
}

/// Asks `service.status` like any job would.
fn systemd_status(name: &str) -> Result<bool, String> {
    let ctx = brine_states::exec::Context::default();
    let out = brine_states::exec::call_in(
        &[brine_states::exec::SERVICE],
        "service.status",
        &ctx,
        vec![Value::String(name.into())],
        Map::new(),
    )
    .map_err(|e| e.to_string())?;
    out.ret.as_bool().ok_or_else(|| format!("service.status {name} answered {}", out.ret))
}

pub(crate) fn build(_: &str, options: &Map, _: &Env) -> Result<Box<dyn Beacon>, String> {
    Ok(Box::new(with_status(options, Box::new(systemd_status))?))
}

/// The beacon with another source of service states (tests).
pub(crate) fn with_status(options: &Map, status: StatusSource) -> Result<Service, String> {
    only_keys(options, &["services"])?;
    let Some(Value::Object(services)) = options.get("services") else {
        return Err("service requires services, e.g. services = { nginx = {} }".into());
    };
    let services = services
        .iter()
        .map(|(name, opts)| {
            let empty = Map::new();
            let opts = match opts {
                Value::Object(m) => m,
                Value::Null => &empty,
                other => return Err(format!("services.{name} must be a table of options, not {other}")),
            };
            only_keys(opts, &["onchangeonly", "emitatstartup", "delay", "uncleanshutdown", "oncleanshutdown"])
                .map_err(|e| format!("services.{name}: {e}"))?;
            let flag = |key: &str, default: bool| match opts.get(key) {
                None => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(format!("services.{name}.{key} must be true or false, not {other}")),
            };
            let delay = match opts.get("delay") {
                None => Duration::ZERO,
                Some(v) => v
                    .as_f64()
                    .filter(|d| d.is_finite() && *d >= 0.0 && *d < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("services.{name}.delay must be a number of seconds, not {v}"))?,
            };
            Ok(Watched {
                name: name.clone(),
                onchangeonly: flag("onchangeonly", false)?,
                emitatstartup: flag("emitatstartup", true)?,
                delay,
                uncleanshutdown: opts.get("uncleanshutdown").and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Service { services, last: HashMap::new(), status })
}

impl Service {
    pub(crate) fn check(&mut self, now: Instant) -> Result<Vec<Fired>, String> {
        let mut out = Vec::new();
        for w in &self.services {
            let running = (self.status)(&w.name)?;
            let mut state = json!({ "running": running });
            if let (Some(pidfile), false) = (&w.uncleanshutdown, running) {
                state["uncleanshutdown"] = Value::Bool(std::path::Path::new(pidfile).exists());
            }
            let mut data = Map::new();
            data.insert(w.name.clone(), state);
            data.insert("service_name".into(), Value::String(w.name.clone()));
            let fired = Fired::tagged(w.name.clone(), data);
            if !w.onchangeonly {
                out.push(fired);
                continue;
            }
            match self.last.get(&w.name).copied() {
                None => {
                    let pending = (w.delay > Duration::ZERO && w.emitatstartup).then_some(now);
                    self.last.insert(w.name.clone(), (running, pending));
                    if w.emitatstartup && w.delay.is_zero() {
                        out.push(fired);
                    }
                }
                Some((was, _)) if was != running => {
                    if w.delay.is_zero() {
                        self.last.insert(w.name.clone(), (running, None));
                        out.push(fired);
                    } else {
                        self.last.insert(w.name.clone(), (running, Some(now)));
                    }
                }
                Some((state, Some(since))) if now.duration_since(since) >= w.delay => {
                    self.last.insert(w.name.clone(), (state, None));
                    out.push(fired);
                }
                Some(_) => {}
            }
        }
        Ok(out)
    }
}

impl Beacon for Service {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        self.check(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The service beacon over a fake status source: systemd does not run in every
    /// test environment, so the decision logic is tested here with states we set.
    #[test]
    fn onchangeonly_reports_starts_and_stops_once_each() {
        let state = Arc::new(Mutex::new(true));
        let source = state.clone();
        let opts = json!({"services": {"nginx": {"onchangeonly": true}, "cron": {}}});
        let mut b = with_status(opts.as_object().unwrap(), Box::new(move |_| Ok(*source.lock().unwrap()))).unwrap();
        let t = Instant::now();
        let first = b.check(t).unwrap();
        // cron (no onchangeonly) at every interval; nginx once at startup.
        assert_eq!(first.len(), 2);
        let nginx = first.iter().find(|f| f.tag.as_deref() == Some("nginx")).unwrap();
        assert_eq!(Value::Object(nginx.data.clone()), json!({"nginx": {"running": true}, "service_name": "nginx"}));
        assert_eq!(b.check(t).unwrap().len(), 1, "no change: only cron");
        *state.lock().unwrap() = false;
        let stopped = b.check(t).unwrap();
        let nginx = stopped.iter().find(|f| f.tag.as_deref() == Some("nginx")).unwrap();
        assert_eq!(nginx.data["nginx"], json!({"running": false}));
        assert_eq!(b.check(t).unwrap().len(), 1);
    }

    #[test]
    fn a_delay_waits_before_reporting_and_bad_options_are_named() {
        let state = Arc::new(Mutex::new(true));
        let source = state.clone();
        let opts = json!({"services": {"db": {"onchangeonly": true, "emitatstartup": false, "delay": 5}}});
        let mut b = with_status(opts.as_object().unwrap(), Box::new(move |_| Ok(*source.lock().unwrap()))).unwrap();
        let t = Instant::now();
        assert!(b.check(t).unwrap().is_empty());
        *state.lock().unwrap() = false;
        assert!(b.check(t + Duration::from_secs(1)).unwrap().is_empty());
        assert!(b.check(t + Duration::from_secs(3)).unwrap().is_empty());
        assert_eq!(b.check(t + Duration::from_secs(7)).unwrap().len(), 1);
        let bad = json!({"services": {"db": {"delay": "soon"}}});
        assert!(with_status(bad.as_object().unwrap(), Box::new(|_| Ok(true)))
            .err()
            .unwrap()
            .contains("services.db.delay"));
    }
}
