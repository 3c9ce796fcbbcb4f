//! Pillar: per-minion data rendered from `pillar_roots`, selected by the pillar
//! `top.sls` with the same matchers as the state top file, and merged in order (later
//! files win; maps merge recursively, as Salt's default `smart` merge does).
//!
//! The master renders pillar for each minion and sends it only to that minion;
//! `brine-call --local` renders it on the host from local pillar roots.

use crate::exec::Context;
use crate::files::FileSource;
use crate::sls::render::{render_jinja, RenderContext, TemplateSource};
use brine_proto::{Map, Value};
use std::sync::Arc;

struct Templates {
    files: Arc<dyn FileSource>,
    env: String,
}

impl TemplateSource for Templates {
    fn template(&self, path: &str) -> Option<String> {
        String::from_utf8(self.files.read(&self.env, path).ok()?).ok()
    }
}

/// Merges `over` into `base`: maps recursively, everything else replaced.
pub fn merge(base: &mut Map, over: Map) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Renders the pillar of the minion whose grains are `grains` from the pillar roots
/// `files`. Errors name the file (and line) that failed.
pub fn compile(files: Arc<dyn FileSource>, grains: Arc<Map>, exec: &Context) -> Result<Map, Vec<String>> {
    let ctx = RenderContext {
        grains: grains.clone(),
        pillar: Arc::new(Map::new()),
        opts: Map::new(),
        saltenv: "base".into(),
        sls: String::new(),
        slspath: String::new(),
        extra: Map::new(),
        exec: exec.clone(),
    };
    let top_ctx = Context { files: None, grains: grains.clone(), ..exec.clone() };
    let matches =
        crate::exec::top_matches(&top_ctx, &files, &Arc::new(Map::new())).map_err(|e| vec![format!("pillar {e}")])?;
    let mut pillar = Map::new();
    let mut errors = Vec::new();
    for (env, names) in matches {
        for name in names {
            let base = name.replace('.', "/");
            let (file, text) = match [format!("{base}.sls"), format!("{base}/init.sls")]
                .into_iter()
                .find_map(|f| files.read(&env, &f).ok().map(|b| (f, b)))
            {
                Some((f, b)) => (f, String::from_utf8_lossy(&b).into_owned()),
                None => {
                    errors.push(format!(
                        "Specified SLS '{name}' in environment '{env}' was not found in the pillar roots"
                    ));
                    continue;
                }
            };
            let mut rctx = ctx.clone();
            rctx.saltenv = env.clone();
            rctx.sls = name.clone();
            rctx.slspath = file.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_string());
            let source: Arc<dyn TemplateSource> = Arc::new(Templates { files: files.clone(), env: env.clone() });
            let rendered = match render_jinja(&file, &text, &rctx, Some(source)) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("pillar {e}"));
                    continue;
                }
            };
            match crate::sls::yaml::parse(&rendered) {
                Ok(Some(node)) => match node.to_value() {
                    Value::Object(m) => merge(&mut pillar, m),
                    other => errors.push(format!("pillar {file}: renders to {} instead of a dictionary", kind(&other))),
                },
                Ok(None) => {}
                Err(e) => errors.push(format!("pillar {file}:{e}")),
            }
        }
    }
    if errors.is_empty() {
        Ok(pillar)
    } else {
        Err(errors)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::LocalRoots;
    use serde_json::json;

    #[test]
    fn pillar_follows_its_top_file_and_merges_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("top.sls"), "base:\n  '*':\n    - common\n  'web*':\n    - web\n  'db*':\n    - db\n")
            .unwrap();
        std::fs::write(root.join("common.sls"), "users:\n  alice: 1000\nrole: none\n").unwrap();
        std::fs::write(root.join("web.sls"), "users:\n  bob: 1001\nrole: web\nos: {{ grains.os }}\n").unwrap();
        std::fs::write(root.join("db.sls"), "secret: db-only\n").unwrap();
        let files: Arc<dyn FileSource> = Arc::new(LocalRoots::base(root));
        let grains: Map = json!({"id": "web1", "os": "Debian"}).as_object().unwrap().clone();
        let p = compile(files.clone(), Arc::new(grains), &Context::default()).unwrap();
        assert_eq!(
            Value::Object(p.clone()),
            json!({"users": {"alice": 1000, "bob": 1001}, "role": "web", "os": "Debian"})
        );
        assert!(!p.contains_key("secret"), "a minion gets only its own pillar");
        let grains: Map = json!({"id": "db1", "os": "Debian"}).as_object().unwrap().clone();
        let p = compile(files, Arc::new(grains), &Context::default()).unwrap();
        assert_eq!(p["secret"], json!("db-only"));
    }

    #[test]
    fn pillar_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("top.sls"), "base:\n  '*':\n    - broken\n    - gone\n").unwrap();
        std::fs::write(dir.path().join("broken.sls"), "a: {{ nope }}\n").unwrap();
        let files: Arc<dyn FileSource> = Arc::new(LocalRoots::base(dir.path()));
        let grains: Map = json!({"id": "m"}).as_object().unwrap().clone();
        let errs = compile(files, Arc::new(grains), &Context::default()).unwrap_err();
        assert!(errs[0].contains("broken.sls") && errs[0].contains("line 1"), "{errs:?}");
        assert!(errs[1].contains("'gone'"), "{errs:?}");
    }
}
