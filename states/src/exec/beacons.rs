//! `beacons.*`: look at and change the minion's beacons while it runs, with Salt's
//! names, arguments and return shapes (`{"comment": …, "result": …}`).
//!
//! The beacons themselves live in the minion; these functions reach them through
//! [`Host`]. Unlike Salt, every change is kept in the minion's data dir at once, so
//! it survives a restart without `beacons.save`; `beacons.reset` drops the run-time
//! changes and goes back to the config file.
//!
//! A beacon's options are written as Salt writes them, a list of one-key maps
//! (`[{"processes": {"nginx": "running"}}, {"interval": 5}]`), or as one map; they
//! are listed back in Salt's list form.

use super::{opt_or, req, CallError, Context, Function, Host, Output, Param, ParamDefault};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

fn host(ctx: &Context) -> Result<&Arc<dyn Host>, CallError> {
    ctx.host.as_ref().ok_or_else(|| CallError::failed(super::NO_BEACONS))
}

fn outcome(result: bool, comment: impl Into<String>) -> Output {
    Output::ok(json!({"comment": comment.into(), "result": result}))
}

/// The options of one beacon as a map, from Salt's list of one-key maps or a map.
pub fn options_of(data: &Value) -> Result<Map, String> {
    match data {
        Value::Object(m) => Ok(m.clone()),
        Value::Array(items) => {
            let mut out = Map::new();
            for item in items {
                match item {
                    Value::Object(m) => out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
                    other => {
                        return Err(format!(
                        "beacon_data must be a list of one-key maps, like [{{\"interval\": 5}}]; {other} is not a map"
                    ))
                    }
                }
            }
            Ok(out)
        }
        other => Err(format!("beacon_data must be a list of one-key maps (like Salt's) or a map, not {other}")),
    }
}

/// A beacon's options in Salt's list form: one one-key map per option.
pub fn salt_form(options: &Map) -> Value {
    Value::Array(options.iter().map(|(k, v)| json!({ k: v })).collect())
}

/// The whole beacons dict in Salt's form: each beacon's options as a list, the
/// global `enabled` flag as it is.
fn listing(beacons: &Map) -> Map {
    beacons
        .iter()
        .map(|(name, v)| match v {
            Value::Object(opts) => (name.clone(), salt_form(opts)),
            other => (name.clone(), other.clone()),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    #[serde(default = "yes")]
    return_yaml: bool,
    #[serde(default = "yes")]
    include_pillar: bool,
    #[serde(default = "yes")]
    include_opts: bool,
}

fn yes() -> bool {
    true
}

pub struct List;
impl Function for List {
    const NAME: &'static str = "beacons.list";
    const DOC: &'static str = "Lists the beacons this minion runs, as YAML text (`beacons: …`) or, with \
        return_yaml=False, as a map. Beacons come from the config file and run-time changes (brine has \
        no pillar beacons: include_pillar is accepted and ignored).\n\n\
        CLI example: brine run '*' beacons.list";
    const PARAMS: &'static [Param] = &[
        opt_or("return_yaml", ParamDefault::Bool(true)),
        opt_or("include_pillar", ParamDefault::Bool(true)),
        opt_or("include_opts", ParamDefault::Bool(true)),
    ];
    type Args = ListArgs;
    fn call(&self, ctx: &Context, a: ListArgs) -> Result<Output, CallError> {
        let _ = a.include_pillar;
        let beacons = if a.include_opts { host(ctx)?.beacons().map_err(CallError::Failed)? } else { Map::new() };
        let listed = Value::Object(listing(&beacons));
        Ok(Output::ok(if a.return_yaml {
            Value::String(brine_proto::output::yaml(&json!({ "beacons": listed })))
        } else {
            listed
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAvailableArgs {
    #[serde(default = "yes")]
    return_yaml: bool,
}

pub struct ListAvailable;
impl Function for ListAvailable {
    const NAME: &'static str = "beacons.list_available";
    const DOC: &'static str = "Lists the beacon modules this minion can run (YAML text, or a list with \
        return_yaml=False).\n\nCLI example: brine run '*' beacons.list_available";
    const PARAMS: &'static [Param] = &[opt_or("return_yaml", ParamDefault::Bool(true))];
    type Args = ListAvailableArgs;
    fn call(&self, ctx: &Context, a: ListAvailableArgs) -> Result<Output, CallError> {
        let modules: Vec<Value> = host(ctx)?.beacon_modules().into_iter().map(Value::String).collect();
        if modules.is_empty() {
            return Ok(Output::ok(json!({"beacons": {}})));
        }
        let listed = Value::Array(modules);
        Ok(Output::ok(if a.return_yaml {
            Value::String(brine_proto::output::yaml(&json!({ "beacons": listed })))
        } else {
            listed
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataArgs {
    name: String,
    beacon_data: Value,
    #[serde(default)]
    test: bool,
}

pub struct Add;
impl Function for Add {
    const NAME: &'static str = "beacons.add";
    const DOC: &'static str = "Adds a beacon and starts it at once; kept across restarts. beacon_data is \
        Salt's list of one-key maps (or a map); `beacon_module` runs a module under another name.\n\n\
        CLI example: brine run '*' beacons.add ps \"[{processes: {nginx: running}}, {interval: 5}]\"";
    const PARAMS: &'static [Param] = &[req("name"), req("beacon_data"), opt_or("test", ParamDefault::Bool(false))];
    type Args = DataArgs;
    fn call(&self, ctx: &Context, a: DataArgs) -> Result<Output, CallError> {
        let host = host(ctx)?;
        let name = a.name;
        let mut beacons = host.beacons().map_err(CallError::Failed)?;
        if beacons.get(&name).is_some_and(Value::is_object) {
            return Ok(outcome(false, format!("Beacon {name} is already configured.")));
        }
        let options = options_of(&a.beacon_data).map_err(CallError::Failed)?;
        let module = options.get("beacon_module").and_then(Value::as_str).unwrap_or(&name).to_string();
        if !host.beacon_modules().contains(&module) {
            return Ok(outcome(false, format!("Beacon \"{module}\" is not available.")));
        }
        if a.test {
            return Ok(outcome(true, format!("Beacon: {name} would be added.")));
        }
        if let Err(why) = host.validate_beacon(&name, &options) {
            return Ok(outcome(false, format!("Beacon {name} configuration invalid, not adding.\n{why}")));
        }
        beacons.insert(name.clone(), Value::Object(options));
        match host.set_beacons(beacons) {
            Ok(()) => Ok(outcome(true, format!("Added beacon: {name}."))),
            Err(e) => Ok(outcome(false, format!("Failed to add beacon {name}: {e}"))),
        }
    }
}

/// `key:value` lines of a beacon's options, for the diff `beacons.modify` reports.
fn option_lines(options: &Map) -> Vec<String> {
    options.iter().map(|(k, v)| format!("{k}:{v}\n")).collect()
}

pub struct Modify;
impl Function for Modify {
    const NAME: &'static str = "beacons.modify";
    const DOC: &'static str = "Replaces the options of a configured beacon; reports the difference in \
        changes.diff.\n\nCLI example: brine run '*' beacons.modify ps \"[{processes: {nginx: stopped}}]\"";
    const PARAMS: &'static [Param] = &[req("name"), req("beacon_data"), opt_or("test", ParamDefault::Bool(false))];
    type Args = DataArgs;
    fn call(&self, ctx: &Context, a: DataArgs) -> Result<Output, CallError> {
        let host = host(ctx)?;
        let name = a.name;
        let mut beacons = host.beacons().map_err(CallError::Failed)?;
        let Some(Value::Object(current)) = beacons.get(&name).cloned() else {
            return Ok(outcome(false, format!("Beacon {name} is not configured.")));
        };
        if a.test {
            return Ok(outcome(true, format!("Beacon: {name} would be modified.")));
        }
        let options = options_of(&a.beacon_data).map_err(CallError::Failed)?;
        if let Err(why) = host.validate_beacon(&name, &options) {
            return Ok(outcome(false, format!("Beacon {name} configuration invalid, not modifying.\n{why}")));
        }
        if options == current {
            return Ok(outcome(true, format!("Job {name} in correct state")));
        }
        let (old, new) = (option_lines(&current), option_lines(&options));
        let mut diff = String::from("--- \n+++ \n");
        diff.extend(old.iter().filter(|l| !new.contains(l)).map(|l| format!("-{l}")));
        diff.extend(new.iter().filter(|l| !old.contains(l)).map(|l| format!("+{l}")));
        beacons.insert(name.clone(), Value::Object(options));
        match host.set_beacons(beacons) {
            Ok(()) => Ok(Output::ok(json!({
                "comment": format!("Modified beacon: {name}."),
                "result": true,
                "changes": {"diff": diff},
            }))),
            Err(e) => Ok(outcome(false, format!("Failed to modify beacon {name}: {e}"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameArgs {
    name: String,
    #[serde(default)]
    test: bool,
}

pub struct Delete;
impl Function for Delete {
    const NAME: &'static str = "beacons.delete";
    const DOC: &'static str = "Stops a beacon and removes it; kept across restarts (the config file's \
        beacon stays deleted until beacons.reset).\n\nCLI example: brine run '*' beacons.delete ps";
    const PARAMS: &'static [Param] = &[req("name"), opt_or("test", ParamDefault::Bool(false))];
    type Args = NameArgs;
    fn call(&self, ctx: &Context, a: NameArgs) -> Result<Output, CallError> {
        let host = host(ctx)?;
        let name = a.name;
        if a.test {
            return Ok(outcome(true, format!("Beacon: {name} would be deleted.")));
        }
        let mut beacons = host.beacons().map_err(CallError::Failed)?;
        // Like Salt, deleting a beacon that is not there succeeds: it is gone.
        if beacons.get(&name).is_some_and(Value::is_object) {
            beacons.remove(&name);
            if let Err(e) = host.set_beacons(beacons) {
                return Ok(outcome(false, format!("Failed to delete beacon {name}: {e}")));
            }
        }
        Ok(outcome(true, format!("Deleted beacon: {name}.")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestArgs {
    #[serde(default)]
    test: bool,
}

/// Sets the global `enabled` flag.
fn set_all(ctx: &Context, enabled: bool, test: bool) -> Result<Output, CallError> {
    let host = host(ctx)?;
    let word = if enabled { "enabled" } else { "disabled" };
    if test {
        return Ok(outcome(true, format!("Beacons would be {word}.")));
    }
    let mut beacons = host.beacons().map_err(CallError::Failed)?;
    beacons.insert("enabled".into(), Value::Bool(enabled));
    let verb = if enabled { "enable" } else { "disable" };
    Ok(match host.set_beacons(beacons) {
        Ok(()) => outcome(true, format!("{} beacons on minion.", if enabled { "Enabled" } else { "Disabled" })),
        Err(e) => outcome(false, format!("Failed to {verb} beacons on minion: {e}")),
    })
}

pub struct Enable;
impl Function for Enable {
    const NAME: &'static str = "beacons.enable";
    const DOC: &'static str = "Turns all beacons back on (those disabled one by one stay off).\n\n\
        CLI example: brine run '*' beacons.enable";
    const PARAMS: &'static [Param] = &[opt_or("test", ParamDefault::Bool(false))];
    type Args = TestArgs;
    fn call(&self, ctx: &Context, a: TestArgs) -> Result<Output, CallError> {
        set_all(ctx, true, a.test)
    }
}

pub struct Disable;
impl Function for Disable {
    const NAME: &'static str = "beacons.disable";
    const DOC: &'static str = "Stops all beacons without forgetting them (beacons.enable starts them \
        again).\n\nCLI example: brine run '*' beacons.disable";
    const PARAMS: &'static [Param] = &[opt_or("test", ParamDefault::Bool(false))];
    type Args = TestArgs;
    fn call(&self, ctx: &Context, a: TestArgs) -> Result<Output, CallError> {
        set_all(ctx, false, a.test)
    }
}

/// Sets one beacon's `enabled` option.
fn set_one(ctx: &Context, name: &str, enabled: bool, test: bool) -> Result<Output, CallError> {
    let host = host(ctx)?;
    if test {
        let word = if enabled { "enabled" } else { "disabled" };
        return Ok(outcome(true, format!("Beacon {name} would be {word}.")));
    }
    let mut beacons = host.beacons().map_err(CallError::Failed)?;
    let Some(Value::Object(options)) = beacons.get_mut(name) else {
        return Ok(outcome(false, format!("Beacon {name} is not currently configured.")));
    };
    options.insert("enabled".into(), Value::Bool(enabled));
    let (verb, past) = if enabled { ("enable", "Enabled") } else { ("disable", "Disabled") };
    Ok(match host.set_beacons(beacons) {
        Ok(()) => outcome(true, format!("{past} beacon {name} on minion.")),
        Err(e) => outcome(false, format!("Failed to {verb} beacon {name} on minion: {e}")),
    })
}

pub struct EnableBeacon;
impl Function for EnableBeacon {
    const NAME: &'static str = "beacons.enable_beacon";
    const DOC: &'static str = "Turns one beacon back on.\n\nCLI example: brine run '*' beacons.enable_beacon ps";
    const PARAMS: &'static [Param] = &[req("name"), opt_or("test", ParamDefault::Bool(false))];
    type Args = NameArgs;
    fn call(&self, ctx: &Context, a: NameArgs) -> Result<Output, CallError> {
        set_one(ctx, &a.name, true, a.test)
    }
}

pub struct DisableBeacon;
impl Function for DisableBeacon {
    const NAME: &'static str = "beacons.disable_beacon";
    const DOC: &'static str = "Stops one beacon without forgetting it.\n\n\
        CLI example: brine run '*' beacons.disable_beacon ps";
    const PARAMS: &'static [Param] = &[req("name"), opt_or("test", ParamDefault::Bool(false))];
    type Args = NameArgs;
    fn call(&self, ctx: &Context, a: NameArgs) -> Result<Output, CallError> {
        set_one(ctx, &a.name, false, a.test)
    }
}

pub struct Save;
impl Function for Save {
    const NAME: &'static str = "beacons.save";
    const DOC: &'static str = "Writes the beacons to the minion's data dir (brine already keeps every \
        run-time change there; this writes it again).\n\nCLI example: brine run '*' beacons.save";
    const PARAMS: &'static [Param] = &[];
    type Args = super::test::NoArgs;
    fn call(&self, ctx: &Context, _: super::test::NoArgs) -> Result<Output, CallError> {
        Ok(match host(ctx)?.save_beacons() {
            Ok(path) => outcome(true, format!("Beacons saved to {path}.")),
            Err(e) => outcome(false, format!("Unable to write to beacons file: {e}")),
        })
    }
}

pub struct Reset;
impl Function for Reset {
    const NAME: &'static str = "beacons.reset";
    const DOC: &'static str = "Forgets every run-time change and runs the config file's beacons again.\n\n\
        CLI example: brine run '*' beacons.reset";
    const PARAMS: &'static [Param] = &[opt_or("test", ParamDefault::Bool(false))];
    type Args = TestArgs;
    fn call(&self, ctx: &Context, a: TestArgs) -> Result<Output, CallError> {
        let host = host(ctx)?;
        if a.test {
            return Ok(outcome(true, "Beacons would be reset."));
        }
        Ok(match host.reset_beacons() {
            Ok(()) => outcome(true, "Beacon configuration reset."),
            Err(e) => outcome(false, format!("Failed to reset beacons: {e}")),
        })
    }
}

/// The `beacons` execution module.
pub static MODULE: super::Module = super::Module {
    name: "beacons",
    doc: "Manage the minion's beacons while it runs (Salt's names); changes survive restarts.",
    functions: &[
        &Add,
        &Delete,
        &Disable,
        &DisableBeacon,
        &Enable,
        &EnableBeacon,
        &List,
        &ListAvailable,
        &Modify,
        &Reset,
        &Save,
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A host that keeps beacons in memory and knows the `ps` module.
    #[derive(Debug, Default)]
    struct FakeHost(Mutex<Map>);

    impl Host for FakeHost {
        fn running(&self) -> Vec<Value> {
            Vec::new()
        }
        fn kill(&self, _: &str) -> bool {
            false
        }
        fn refresh_grains(&self) -> Result<Map, String> {
            Ok(Map::new())
        }
        fn beacons(&self) -> Result<Map, String> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn validate_beacon(&self, _: &str, data: &Map) -> Result<(), String> {
            match data.get("processes") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err("ps needs processes".into()),
            }
        }
        fn set_beacons(&self, beacons: Map) -> Result<(), String> {
            *self.0.lock().unwrap() = beacons;
            Ok(())
        }
        fn beacon_modules(&self) -> Vec<String> {
            vec!["ps".into()]
        }
    }

    fn call(ctx: &Context, fun: &str, args: Vec<Value>) -> Value {
        super::super::call(fun, ctx, args, Map::new()).unwrap().ret
    }

    #[test]
    fn add_list_modify_disable_delete_with_salts_shapes() {
        let ctx = Context { host: Some(Arc::new(FakeHost::default())), ..Default::default() };
        assert_eq!(call(&ctx, "beacons.list", vec![]), json!("beacons: {}\n"));
        let data = json!([{"processes": {"nginx": "running"}}, {"interval": 5}]);
        assert_eq!(
            call(&ctx, "beacons.add", vec![json!("ps"), data.clone()]),
            json!({"comment": "Added beacon: ps.", "result": true})
        );
        assert_eq!(
            call(&ctx, "beacons.add", vec![json!("ps"), data.clone()]),
            json!({"comment": "Beacon ps is already configured.", "result": false})
        );
        assert_eq!(
            call(&ctx, "beacons.add", vec![json!("x"), json!([{"a": 1}])]),
            json!({"comment": "Beacon \"x\" is not available.", "result": false})
        );
        assert_eq!(
            call(&ctx, "beacons.add", vec![json!("other"), json!([{"beacon_module": "ps"}])]),
            json!({"comment": "Beacon other configuration invalid, not adding.\nps needs processes", "result": false})
        );
        assert_eq!(
            call(&ctx, "beacons.list", vec![]),
            json!("beacons:\n  ps:\n  - processes:\n      nginx: running\n  - interval: 5\n")
        );
        assert_eq!(
            call(&ctx, "beacons.modify", vec![json!("ps"), data.clone()]),
            json!({"comment": "Job ps in correct state", "result": true})
        );
        let modified = call(&ctx, "beacons.modify", vec![json!("ps"), json!({"processes": {"nginx": "stopped"}})]);
        assert_eq!(modified["comment"], "Modified beacon: ps.");
        let diff = modified["changes"]["diff"].as_str().unwrap();
        assert!(diff.contains("-interval:5\n") && diff.contains("+processes:{\"nginx\":\"stopped\"}\n"), "{diff}");
        assert_eq!(
            call(&ctx, "beacons.disable_beacon", vec![json!("ps")]),
            json!({"comment": "Disabled beacon ps on minion.", "result": true})
        );
        assert_eq!(
            call(&ctx, "beacons.disable_beacon", vec![json!("nope")]),
            json!({"comment": "Beacon nope is not currently configured.", "result": false})
        );
        assert_eq!(
            call(&ctx, "beacons.disable", vec![]),
            json!({"comment": "Disabled beacons on minion.", "result": true})
        );
        let listed = super::super::call("beacons.list", &ctx, vec![], {
            let mut m = Map::new();
            m.insert("return_yaml".into(), json!(false));
            m
        })
        .unwrap()
        .ret;
        assert_eq!(listed, json!({"ps": [{"processes": {"nginx": "stopped"}}, {"enabled": false}], "enabled": false}));
        assert_eq!(
            call(&ctx, "beacons.delete", vec![json!("ps")]),
            json!({"comment": "Deleted beacon: ps.", "result": true})
        );
        assert_eq!(call(&ctx, "beacons.list", vec![]), json!("beacons:\n  enabled: false\n"));
    }

    #[test]
    fn without_a_minion_the_functions_say_so() {
        let err = super::super::call("beacons.list", &Context::default(), vec![], Map::new()).unwrap_err();
        assert!(err.to_string().contains("running minion"), "{err}");
        let err = options_of(&json!("x")).unwrap_err();
        assert!(err.contains("beacon_data"), "{err}");
    }
}
