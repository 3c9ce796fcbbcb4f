//! Rendering state and pillar files: Jinja (minijinja) with Salt's context.
//!
//! Templates see `grains`, `pillar`, `opts`, `saltenv`, `sls`, `slspath`, `tpldir`,
//! `tplfile`, and `salt`, through which they call execution functions
//! (`salt['cmd.run']('hostname')` or `salt.cmd.run('hostname')`). Python-style methods
//! (`.items()`, `.get()`, `.startswith()`) work; `import` and `from … import` load
//! other templates (`map.jinja`) from the same file roots. Undefined names are errors,
//! and a fuel limit stops runaway templates. Errors name the template and line.

use crate::exec::Context;
use brine_proto::{Map, Value};
use minijinja::value::{Object, Value as JValue};
use minijinja::{Environment, Error as JError, ErrorKind, State, UndefinedBehavior};
use std::sync::Arc;

/// Most template instructions one render may execute.
const FUEL: u64 = 50_000_000;

/// A rendering failure: which template, which line, what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Rendering SLS '{file}' failed{}: {message}", .line.map(|l| format!(" at line {l}")).unwrap_or_default())]
pub struct RenderError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Finds templates imported by others (`{% from "apache/map.jinja" import x %}`).
pub trait TemplateSource: Send + Sync {
    /// The text of the template at `path` (relative to the file roots), if any.
    fn template(&self, path: &str) -> Option<String>;
}

/// What a render sees besides its own text.
#[derive(Clone)]
pub struct RenderContext {
    pub grains: Arc<Map>,
    pub pillar: Arc<Map>,
    pub opts: Map,
    pub saltenv: String,
    /// The SLS name (`apache.mod`), empty for non-SLS templates.
    pub sls: String,
    /// The directory of the file, relative to the roots (`apache`).
    pub slspath: String,
    /// Extra variables (`context` / `defaults` of file.managed).
    pub extra: Map,
    /// For `salt[...]` calls.
    pub exec: Context,
}

/// The `salt` object: `salt['mod.fun']` and `salt.mod.fun`.
#[derive(Debug)]
struct Salt {
    exec: Context,
}

/// `salt.mod` (waiting for `.fun`).
#[derive(Debug)]
struct SaltModule {
    exec: Context,
    module: String,
}

/// One callable execution function.
#[derive(Debug)]
struct SaltFunction {
    exec: Context,
    name: String,
}

impl Object for Salt {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let key = key.as_str()?;
        if key.contains('.') {
            crate::exec::exists(key)
                .then(|| JValue::from_object(SaltFunction { exec: self.exec.clone(), name: key.into() }))
        } else {
            Some(JValue::from_object(SaltModule { exec: self.exec.clone(), module: key.into() }))
        }
    }
}

impl Object for SaltModule {
    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = format!("{}.{}", self.module, key.as_str()?);
        crate::exec::exists(&name).then(|| JValue::from_object(SaltFunction { exec: self.exec.clone(), name }))
    }
}

impl Object for SaltFunction {
    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[JValue]) -> Result<JValue, JError> {
        let (mut pos, mut kw) = (Vec::new(), Map::new());
        for a in args {
            let v = serde_json::to_value(a)
                .map_err(|e| JError::new(ErrorKind::InvalidOperation, format!("{}: bad argument: {e}", self.name)))?;
            match (a.is_kwargs(), v) {
                (true, Value::Object(m)) => kw.extend(m),
                (_, v) => pos.push(v),
            }
        }
        match crate::exec::call(&self.name, &self.exec, pos, kw) {
            Ok(out) => Ok(jv(&out.ret)),
            Err(e) => Err(JError::new(ErrorKind::InvalidOperation, format!("{} failed: {e}", self.name))),
        }
    }
}

/// A serializable value as a template value.
fn jv<T: serde::Serialize>(v: T) -> JValue {
    JValue::from(minijinja::value::Serde(v))
}

fn yaml_load(text: &str) -> Result<JValue, JError> {
    match super::yaml::parse(text) {
        Ok(Some(node)) => Ok(jv(node.to_value())),
        Ok(None) => Ok(JValue::from(())),
        Err(e) => Err(JError::new(ErrorKind::InvalidOperation, format!("load_yaml: {e}"))),
    }
}

fn json_load(text: &str) -> Result<JValue, JError> {
    serde_json::from_str::<Value>(text)
        .map(jv)
        .map_err(|e| JError::new(ErrorKind::InvalidOperation, format!("load_json: {e}")))
}

fn to_json(v: JValue) -> Result<String, JError> {
    serde_json::to_string(&v).map_err(|e| JError::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// A Jinja environment for one render.
fn environment(source: Option<Arc<dyn TemplateSource>>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build() {
        env.set_syntax(syntax);
    }
    if let Some(source) = source {
        env.set_loader(move |name| {
            Ok(source.template(name.trim_start_matches("salt://").trim_start_matches("brine://")))
        });
    }
    env.add_filter("load_yaml", |s: String| yaml_load(&s));
    env.add_filter("load_json", |s: String| json_load(&s));
    // JSON is valid YAML: the `yaml` and `json` filters give compact, safe output.
    env.add_filter("yaml", to_json);
    env.add_filter("json", to_json);
    env.add_function("load_yaml", |s: String| yaml_load(&s));
    env.add_function("load_json", |s: String| json_load(&s));
    env.add_function("raise", |msg: String| -> Result<JValue, JError> {
        Err(JError::new(ErrorKind::InvalidOperation, msg))
    });
    env
}

/// Renders `text` (the file `file`, for messages) with Jinja.
pub fn render_jinja(
    file: &str,
    text: &str,
    ctx: &RenderContext,
    source: Option<Arc<dyn TemplateSource>>,
) -> Result<String, RenderError> {
    let env = environment(source);
    let tplfile = if ctx.slspath.is_empty() {
        file.to_string()
    } else {
        format!("{}/{}", ctx.slspath, file.rsplit('/').next().unwrap_or(file))
    };
    let mut vars = Map::new();
    vars.insert("grains".into(), Value::Object((*ctx.grains).clone()));
    vars.insert("pillar".into(), Value::Object((*ctx.pillar).clone()));
    vars.insert("opts".into(), Value::Object(ctx.opts.clone()));
    vars.insert("saltenv".into(), ctx.saltenv.clone().into());
    vars.insert("env".into(), ctx.saltenv.clone().into());
    vars.insert("sls".into(), ctx.sls.clone().into());
    vars.insert("slspath".into(), ctx.slspath.clone().into());
    vars.insert("tpldir".into(), ctx.slspath.clone().into());
    vars.insert("tplfile".into(), tplfile.into());
    for (k, v) in &ctx.extra {
        vars.insert(k.clone(), v.clone());
    }
    let mut jctx: std::collections::BTreeMap<String, JValue> = vars.into_iter().map(|(k, v)| (k, jv(v))).collect();
    jctx.insert("salt".into(), JValue::from_object(Salt { exec: ctx.exec.clone() }));
    env.render_named_str(file, text, jctx).map_err(|e| RenderError {
        file: e.name().unwrap_or(file).to_string(),
        line: e.line(),
        message: match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> RenderContext {
        let grains: Map = json!({"os": "Debian", "id": "m1"}).as_object().unwrap().clone();
        RenderContext {
            grains: Arc::new(grains),
            pillar: Arc::new(json!({"users": {"alice": 1000}}).as_object().unwrap().clone()),
            opts: Map::new(),
            saltenv: "base".into(),
            sls: "web.app".into(),
            slspath: "web".into(),
            extra: Map::new(),
            exec: Context::default(),
        }
    }

    struct Files;
    impl TemplateSource for Files {
        fn template(&self, path: &str) -> Option<String> {
            (path == "web/map.jinja").then(|| "{% set web = {'port': 80} %}".to_string())
        }
    }

    #[test]
    fn grains_pillar_salt_and_python_methods_work() {
        let text = "os={{ grains.os }} {% for u, uid in pillar.users.items() %}{{ u }}:{{ uid }}{% endfor %} \
                    echo={{ salt['test.echo']('hi') }} {{ salt.test.echo(text='kw') }} \
                    {{ pillar.get('missing', 'dflt') }} {{ sls }} {{ slspath }} {{ 'abc'.startswith('a') }}";
        let out = render_jinja("web/app.sls", text, &ctx(), None).unwrap();
        assert_eq!(out, "os=Debian alice:1000 echo=hi kw dflt web.app web True");
    }

    #[test]
    fn imports_come_from_the_file_roots() {
        let text = "{% from 'web/map.jinja' import web %}port: {{ web.port }}";
        let out = render_jinja("web/app.sls", text, &ctx(), Some(Arc::new(Files))).unwrap();
        assert_eq!(out, "port: 80");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = render_jinja("web/app.sls", "a: 1\nb: {{ nope.x }}\n", &ctx(), None).unwrap_err();
        assert_eq!(err.file, "web/app.sls");
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().contains("undefined"), "{err}");
        let err = render_jinja("x.sls", "{% for %}", &ctx(), None).unwrap_err();
        assert_eq!(err.line, Some(1));
        let err = render_jinja("x.sls", "{{ salt['test.exception']('boom') }}", &ctx(), None).unwrap_err();
        assert!(err.message.contains("boom"), "{err}");
    }

    #[test]
    fn filters_load_and_dump_data() {
        let out = render_jinja("x", "{{ ('a: [1, 2]' | load_yaml).a | json }} {{ {'k': 'v'} | yaml }}", &ctx(), None)
            .unwrap();
        assert_eq!(out, "[1,2] {\"k\":\"v\"}");
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let err = render_jinja(
            "x",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &ctx(),
            None,
        )
        .unwrap_err();
        assert!(err.message.to_lowercase().contains("fuel"), "{err}");
    }
}
