//! `test.*`: functions for checking that minions answer and that arguments arrive
//! as typed.

use super::{opt, req, CallError, Context, Function, Output, Param};
use brine_proto::{Map, Value};
use serde::Deserialize;
use std::time::{Duration, Instant};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

pub struct Ping;
impl Function for Ping {
    const NAME: &'static str = "test.ping";
    const DOC: &'static str =
        "Returns True: the minion is up and answering jobs.\n\nCLI example: brine run '*' test.ping";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, _: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(true))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoArgs {
    text: Value,
}

pub struct Echo;
impl Function for Echo {
    const NAME: &'static str = "test.echo";
    const DOC: &'static str = "Returns the text it was given.\n\nCLI example: brine run '*' test.echo 'hello'";
    const PARAMS: &'static [Param] = &[req("text")];
    type Args = EchoArgs;
    fn call(&self, _: &Context, a: EchoArgs) -> Result<Output, CallError> {
        // Salt returns the argument as the shell gave it; a typed word comes back as
        // its text form.
        let text = match a.text {
            Value::String(s) => s,
            other => other.to_string(),
        };
        Ok(Output::ok(text))
    }
}

pub struct Version;
impl Function for Version {
    const NAME: &'static str = "test.version";
    const DOC: &'static str = "Returns the brine version of the minion.\n\nCLI example: brine run '*' test.version";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, _: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(brine_proto::VERSION))
    }
}

#[derive(Deserialize)]
pub struct ArgArgs {
    args: Vec<Value>,
    #[serde(flatten)]
    kwargs: Map,
}

pub struct Arg;
impl Function for Arg {
    const NAME: &'static str = "test.arg";
    const DOC: &'static str = "Returns the positional and keyword arguments it received, typed: shows how \
        command-line words are read.\n\nCLI example: brine run '*' test.arg 1 yes '[a, b]' name=web";
    const PARAMS: &'static [Param] = &[];
    const VARARGS: bool = true;
    type Args = ArgArgs;
    fn call(&self, _: &Context, a: ArgArgs) -> Result<Output, CallError> {
        let mut out = Map::new();
        out.insert("args".into(), Value::Array(a.args));
        out.insert("kwargs".into(), Value::Object(a.kwargs));
        Ok(Output::ok(out))
    }
}

pub struct True;
impl Function for True {
    const NAME: &'static str = "test.true";
    const DOC: &'static str = "Returns True.\n\nCLI example: brine run '*' test.true";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, _: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(true))
    }
}

pub struct False;
impl Function for False {
    const NAME: &'static str = "test.false";
    const DOC: &'static str = "Returns False.\n\nCLI example: brine run '*' test.false";
    const PARAMS: &'static [Param] = &[];
    type Args = NoArgs;
    fn call(&self, _: &Context, _: NoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(false))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionArgs {
    #[serde(default = "default_exception")]
    message: String,
}

fn default_exception() -> String {
    "Test exception raised on purpose".into()
}

pub struct Exception;
impl Function for Exception {
    const NAME: &'static str = "test.exception";
    const DOC: &'static str = "Fails with the given message, for testing how failures are reported.\n\n\
        CLI example: brine run '*' test.exception 'boom'";
    const PARAMS: &'static [Param] = &[opt("message")];
    type Args = ExceptionArgs;
    fn call(&self, _: &Context, a: ExceptionArgs) -> Result<Output, CallError> {
        Err(CallError::Failed(a.message))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    length: f64,
}

pub struct Sleep;
impl Function for Sleep {
    const NAME: &'static str = "test.sleep";
    const DOC: &'static str = "Sleeps for the given number of seconds, then returns True; stops early \
        if the job is killed.\n\nCLI example: brine run '*' test.sleep 20";
    const PARAMS: &'static [Param] = &[req("length")];
    type Args = SleepArgs;
    fn call(&self, ctx: &Context, a: SleepArgs) -> Result<Output, CallError> {
        if !(a.length.is_finite() && a.length >= 0.0) {
            return Err(CallError::failed(format!(
                "length must be a non-negative number of seconds, not {}",
                a.length
            )));
        }
        let end = Instant::now() + Duration::from_secs_f64(a.length);
        while Instant::now() < end {
            if ctx.cancel.is_cancelled() {
                return Err(CallError::failed("killed"));
            }
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
        Ok(Output::ok(true))
    }
}

/// The `test` execution module.
pub static MODULE: super::Module = super::Module {
    name: "test",
    doc: "Check that minions answer and that arguments arrive as typed.",
    functions: &[&Arg, &Echo, &Exception, &False, &Ping, &Sleep, &True, &Version],
};

#[cfg(test)]
mod tests {
    use crate::exec::{call, Context};
    use brine_proto::args::parse_cli_args;
    use serde_json::json;

    #[test]
    fn test_arg_shows_typed_arguments() {
        let (args, kwargs) = parse_cli_args(&["1", "yes", "[a, b]", "name=web"]);
        let out = call("test.arg", &Context::default(), args, kwargs).unwrap();
        assert_eq!(out.ret, json!({"args": [1, true, ["a", "b"]], "kwargs": {"name": "web"}}));
    }

    #[test]
    fn test_sleep_stops_when_cancelled() {
        let ctx = Context::default();
        ctx.cancel.cancel();
        let started = std::time::Instant::now();
        assert!(call("test.sleep", &ctx, vec![json!(30)], Default::default()).is_err());
        assert!(started.elapsed().as_secs() < 5);
    }
}
