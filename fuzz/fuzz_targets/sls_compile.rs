//! Any text as an SLS file: the YAML loader and the compiler (include, extend,
//! exclude, names, requisite checks) refuse or accept it without panicking, and what
//! the loader accepts converts to a value. The text is compiled as `#!yaml`, so no
//! Jinja runs: a template could call execution modules, which a fuzzer must not.
#![no_main]

use brine_states::exec::Context;
use brine_states::files::{FileError, FileSource};
use brine_states::sls::yaml;
use brine_states::state::compile::Loader;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::Arc;

/// One SLS file, `fuzz.sls`, and a fixed `other.sls` it may include or extend.
#[derive(Debug)]
struct OneFile(String);

impl FileSource for OneFile {
    fn read(&self, _env: &str, path: &str) -> Result<Vec<u8>, FileError> {
        match path {
            "fuzz.sls" => Ok(format!("#!yaml\n{}", self.0).into_bytes()),
            "other.sls" => Ok(b"#!yaml\nother:\n  test.nop:\n    - require:\n      - test: fuzz\n".to_vec()),
            _ => Err(FileError::NotFound { env: "base".into(), path: path.into() }),
        }
    }

    fn list(&self, _env: &str, _dir: &str) -> Result<Vec<String>, FileError> {
        Ok(vec!["fuzz.sls".into(), "other.sls".into()])
    }

    fn cache(&self, env: &str, path: &str) -> Result<PathBuf, FileError> {
        Err(FileError::Io(format!("{env}:{path} is only in memory")))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(Some(node)) = yaml::parse(text) {
        let _ = node.to_value();
    }
    let files: Arc<dyn FileSource> = Arc::new(OneFile(text.to_string()));
    let loader = Loader::new(&files, &Context::default());
    let _ = loader.compile("base", &["fuzz".to_string()]);
});
