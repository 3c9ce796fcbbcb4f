//! Benchmarks of the state system on the tree `scripts/bench-states` runs end to end:
//! 100 `file.managed` states in three SLS files (60 with `contents`, 30 from a
//! `salt://` Jinja template using a grain and the pillar, 10 with `mode` and
//! `makedirs`).
//!
//! - `render_compile_100`, `render_compile_1000`: render (Jinja) the top file's SLS,
//!   parse the YAML and compile it to low chunks, from a tree held in memory: no disk
//!   at all (the 1 000-state tree has the same mix, ten times over).
//! - `apply_no_change_100`: `state.apply` (highstate) with every target file already in
//!   place in a temporary directory: render, compile, then check each file (read,
//!   hash-compare, stat) and change nothing.
//!
//! `cargo bench -p brine-states --bench states`; see BENCHMARKS.md for figures.

use brine_proto::{Map, Value};
use brine_states::exec::{call, Context};
use brine_states::files::{FileError, FileSource, LocalRoots};
use brine_states::state::compile::Loader;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The number of states, as in `scripts/bench-states`.
const STATES: usize = 100;

/// The state tree of `states` states (path relative to the roots → text); the
/// targets' directory comes from the pillar.
fn tree(states: usize) -> BTreeMap<String, String> {
    let (templates, modes) = (states * 30 / 100, states * 10 / 100);
    let contents = states - templates - modes;
    let mut t = BTreeMap::new();
    t.insert("top.sls".to_string(), "base:\n  '*':\n    - bench\n".to_string());
    t.insert(
        "bench/init.sls".to_string(),
        "include:\n  - bench.contents\n  - bench.templates\n  - bench.modes\n".to_string(),
    );
    let header = "{%- set root = pillar['bench']['root'] %}\n";
    let mut sls = header.to_string();
    for i in 0..contents {
        sls += &format!("bench-contents-{i}:\n  file.managed:\n    - name: {{{{ root }}}}/contents/file-{i}.txt\n");
        if i % 2 == 1 {
            sls += &format!(
                "    - contents: |\n        # file {i}, managed by the benchmark\n        \
                 minion = {{{{ grains['id'] }}}}\n        index = {i}\n"
            );
        } else {
            sls += &format!("    - contents: \"contents of file {i} on {{{{ grains['id'] }}}}\"\n");
        }
    }
    t.insert("bench/contents.sls".to_string(), sls);
    let mut sls = header.to_string();
    for i in 0..templates {
        sls += &format!(
            "bench-template-{i}:\n  file.managed:\n    - name: {{{{ root }}}}/templates/file-{i}.conf\n    \
             - source: salt://files/f{i}\n    - template: jinja\n"
        );
        t.insert(
            format!("files/f{i}"),
            format!(
                "# template {i}, rendered by the benchmark\nminion = {{{{ grains['id'] }}}}\n\
                 kernel = {{{{ grains['kernel'] }}}}\nrole = {{{{ pillar['bench']['role'] }}}}\n\
                 port = {{{{ pillar['bench']['ports'][{}] }}}}\n\
                 {{% for v in pillar['bench']['values'] %}}value{{{{ loop.index }}}} = {{{{ v }}}}\n\
                 {{% endfor %}}# end of template {i}\n",
                i % 4
            ),
        );
    }
    t.insert("bench/templates.sls".to_string(), sls);
    let mut sls = header.to_string();
    for i in 0..modes {
        let mode = ["0600", "0640", "0644", "0755"][i % 4];
        sls += &format!(
            "bench-mode-{i}:\n  file.managed:\n    - name: {{{{ root }}}}/modes/dir-{i}/sub/file-{i}\n    \
             - contents: \"mode file {i}\"\n    - mode: '{mode}'\n    - makedirs: True\n"
        );
    }
    t.insert("bench/modes.sls".to_string(), sls);
    // Keep the generated tree honest: every state is declared once.
    let declared = t.values().map(|s| s.matches("file.managed:").count()).sum::<usize>();
    assert_eq!(declared, states);
    t
}

/// A state tree in memory, so that rendering and compiling read no disk.
#[derive(Debug)]
struct MemoryTree(BTreeMap<String, Vec<u8>>);

impl FileSource for MemoryTree {
    fn read(&self, env: &str, path: &str) -> Result<Vec<u8>, FileError> {
        match (env, self.0.get(path)) {
            ("base", Some(bytes)) => Ok(bytes.clone()),
            _ => Err(FileError::NotFound { env: env.into(), path: path.into() }),
        }
    }

    fn list(&self, _env: &str, dir: &str) -> Result<Vec<String>, FileError> {
        Ok(self.0.keys().filter(|p| p.starts_with(dir)).cloned().collect())
    }

    fn cache(&self, env: &str, path: &str) -> Result<PathBuf, FileError> {
        Err(FileError::Io(format!("{env}:{path} is only in memory")))
    }
}

/// What the states see of the host: fixed grains (collecting real ones is not what is
/// measured) and the pillar the benchmark tree reads.
fn context(root: &Path, files: Arc<dyn FileSource>) -> Context {
    let grains = json!({"id": "bench", "kernel": "Linux", "os": "Debian", "os_family": "Debian"});
    let pillar = json!({"bench": {
        "root": root.display().to_string(),
        "role": "web",
        "ports": [80, 443, 8080, 8443],
        "values": ["alpha", "beta", "gamma"],
    }});
    let object = |v: Value| v.as_object().cloned().unwrap_or_default();
    Context {
        grains: Arc::new(object(grains)),
        pillar: Arc::new(object(pillar)),
        files: Some(files),
        ..Context::default()
    }
}

fn render_compile(c: &mut Criterion) {
    for states in [STATES, 1000] {
        let root = Path::new("/nonexistent/brine-bench");
        let memory: BTreeMap<String, Vec<u8>> = tree(states).into_iter().map(|(p, s)| (p, s.into_bytes())).collect();
        let files: Arc<dyn FileSource> = Arc::new(MemoryTree(memory));
        let ctx = context(root, files.clone());
        let loader = Loader::new(&files, &ctx);
        let mods = vec!["bench".to_string()];
        let chunks =
            loader.compile("base", &mods).unwrap_or_else(|e| panic!("the benchmark tree does not compile: {e:?}"));
        assert_eq!(chunks.len(), states);
        c.bench_function(&format!("render_compile_{states}"), |b| {
            b.iter(|| loader.compile("base", black_box(&mods)).map(|chunks| chunks.len()))
        });
    }
}

/// Runs `state.apply` (the highstate) and returns (states, changed, not successful).
fn apply(ctx: &Context) -> (usize, usize, usize) {
    let out = call("state.apply", ctx, Vec::new(), Map::new()).unwrap_or_else(|e| panic!("state.apply: {e}"));
    let Value::Object(states) = &out.ret else { panic!("state.apply returned {}", out.ret) };
    let changed =
        states.values().filter(|s| s.get("changes").and_then(Value::as_object).is_some_and(|c| !c.is_empty()));
    let failed = states.values().filter(|s| s.get("result") != Some(&Value::Bool(true)));
    (states.len(), changed.count(), failed.count())
}

fn apply_no_change(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let (srv, root) = (dir.path().join("srv"), dir.path().join("target"));
    for (path, text) in tree(STATES) {
        let p = srv.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(&srv)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    for sub in ["contents", "templates", "modes"] {
        std::fs::create_dir_all(root.join(sub)).unwrap_or_else(|e| panic!("{sub}: {e}"));
    }
    let ctx = context(&root, Arc::new(LocalRoots::base(&srv)));
    assert_eq!(apply(&ctx), (STATES, STATES, 0), "the first run puts every file in place");
    assert_eq!(apply(&ctx), (STATES, 0, 0), "the second run changes nothing");
    c.bench_function("apply_no_change_100", |b| b.iter(|| apply(black_box(&ctx))));
    assert_eq!(apply(&ctx), (STATES, 0, 0), "nothing changed while measuring");
}

criterion_group!(benches, render_compile, apply_no_change);
criterion_main!(benches);
