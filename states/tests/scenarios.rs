//! Requisite and ordering scenarios recorded from Salt 3007.8 (`scenarios/*/salt.json`,
//! see `scenarios/capture.sh`): brine must give the same order, results, comments and
//! changes.

use brine_proto::{Map, Value};
use brine_states::exec::{call, Context};
use brine_states::files::LocalRoots;
use std::path::Path;
use std::sync::Arc;

/// Drops what differs between any two runs (pids, times).
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "pid" | "duration" | "start_time"))
                .map(|(k, v)| (k.clone(), normalise(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

fn run(dir: &Path, name: &str, scratch: &Path) -> (Value, i32) {
    let mut grains = Map::new();
    grains.insert("id".into(), "local".into());
    grains.insert("os".into(), "Debian".into());
    let mut pillar = Map::new();
    pillar.insert("scratch".into(), scratch.display().to_string().into());
    let ctx = Context {
        grains: Arc::new(grains),
        files: Some(Arc::new(LocalRoots::base(dir))),
        pillar: Arc::new(pillar),
        ..Context::default()
    };
    let mut kwargs = Map::new();
    if let Ok(args) = std::fs::read_to_string(dir.join(name).join("ARGS")) {
        for word in args.split_whitespace() {
            if let Some((k, v)) = word.split_once('=') {
                kwargs.insert(k.to_string(), brine_proto::args::type_word(v));
            }
        }
    }
    match call("state.apply", &ctx, vec![Value::String(name.into())], kwargs) {
        Ok(out) => (out.ret, out.retcode),
        Err(e) => (Value::String(e.to_string()), 1),
    }
}

/// Salt lists failed requisites from a Python set, in no fixed order: compare as sets.
fn same_failed_list(a: Option<&Value>, b: Option<&Value>) -> bool {
    const PREFIX: &str = "One or more requisite failed: ";
    let items = |v: Option<&Value>| -> Option<Vec<String>> {
        let mut list: Vec<String> = v?.as_str()?.strip_prefix(PREFIX)?.split(", ").map(str::to_string).collect();
        list.sort();
        Some(list)
    };
    matches!((items(a), items(b)), (Some(x), Some(y)) if x == y)
}

/// Compares one scenario; returns the differences.
fn compare(name: &str, expected: &Value, got: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    match (expected, got) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, w) in want {
                match have.get(key) {
                    None => diffs.push(format!("{name}: missing {key}")),
                    Some(h) => {
                        let (w, h) = (normalise(w), normalise(h));
                        for field in ["__run_num__", "result", "comment", "changes", "name", "__id__", "__sls__"] {
                            if field == "comment" && same_failed_list(w.get(field), h.get(field)) {
                                continue;
                            }
                            if w.get(field) != h.get(field) {
                                diffs.push(format!(
                                    "{name}: {key}: {field}: salt {} / brine {}",
                                    w.get(field).unwrap_or(&Value::Null),
                                    h.get(field).unwrap_or(&Value::Null)
                                ));
                            }
                        }
                    }
                }
            }
            for key in have.keys().filter(|k| !want.contains_key(*k)) {
                diffs.push(format!("{name}: extra {key}"));
            }
        }
        (Value::Array(_), Value::Array(_)) => {}
        (w, h) => diffs.push(format!("{name}: salt returned {w}, brine {h}")),
    }
    diffs
}

#[test]
fn salt_scenarios_give_the_same_results() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let scratch = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    let mut ran = 0;
    let mut names: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(entry.path().join("salt.json")) else { continue };
        let text = text.replace("/tmp/brine-scn", &scratch.path().display().to_string());
        let expected: Value = serde_json::from_str(&text).unwrap();
        let expected = expected.get("local").cloned().unwrap_or(expected);
        let _ = std::fs::remove_dir_all(scratch.path());
        std::fs::create_dir_all(scratch.path()).unwrap();
        let (got, _) = run(&root, &name, scratch.path());
        all.extend(compare(&name, &expected, &got));
        ran += 1;
    }
    assert!(ran > 0, "no scenarios found");
    assert!(all.is_empty(), "{} differences from Salt:\n{}", all.len(), all.join("\n"));
}
