//! Where state trees, templates and `salt://` files come from.
//!
//! [`FileSource`] is what the state system reads through: [`LocalRoots`] reads
//! `file_roots` directories on this host (`brine-call --local`, and the master's file
//! server); the minion's implementation fetches from the master's file server with a
//! hash-checked cache. Paths are always relative to an environment's roots and may
//! never leave them.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Why a file could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum FileError {
    #[error("no file {path:?} in environment {env:?}")]
    NotFound { env: String, path: String },
    #[error("path {0:?} is not allowed: paths are relative to the file roots and may not contain '..'")]
    BadPath(String),
    #[error("{0}")]
    Io(String),
}

/// Files of the state trees, by environment.
pub trait FileSource: Send + Sync + std::fmt::Debug {
    /// The bytes of `path` (relative to the roots of `env`).
    fn read(&self, env: &str, path: &str) -> Result<Vec<u8>, FileError>;
    /// Every file path under `dir` (relative, `/`-separated, sorted).
    fn list(&self, env: &str, dir: &str) -> Result<Vec<String>, FileError>;
    /// A path on this host holding the file's current contents: the file itself for
    /// local roots, the verified cached copy for the master's file server.
    fn cache(&self, env: &str, path: &str) -> Result<PathBuf, FileError>;
}

/// Splits a `salt://path?saltenv=env` (or `brine://`) URL into environment and path;
/// without `saltenv` the environment is `default_env`.
pub fn split_url(url: &str, default_env: &str) -> (String, String) {
    let rest = url.strip_prefix("salt://").or_else(|| url.strip_prefix("brine://")).unwrap_or(url);
    match rest.split_once('?') {
        Some((path, query)) => {
            let env = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("saltenv=").or_else(|| kv.strip_prefix("env=")))
                .filter(|e| !e.is_empty())
                .unwrap_or(default_env);
            (env.to_string(), path.to_string())
        }
        None => (default_env.to_string(), rest.to_string()),
    }
}

/// Writes `data` to `dest` through a new file in the same directory renamed over it,
/// so a reader never sees half a file; an existing file's mode is kept.
pub fn write_atomic(dest: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dest.with_file_name(format!(".{name}.brine-{}-{n}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        if let Ok(meta) = std::fs::metadata(dest) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, dest)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Whether `source` names a file of the file server.
pub fn is_server_url(source: &str) -> bool {
    source.starts_with("salt://") || source.starts_with("brine://")
}

/// Checks a relative path and returns it normalised (`a//b/./c` → `a/b/c`).
pub fn clean_path(path: &str) -> Result<String, FileError> {
    let path = path.trim_start_matches("salt://").trim_start_matches("brine://");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(|| FileError::BadPath(path.into()))?.to_string()),
            Component::CurDir => {}
            Component::RootDir if parts.is_empty() => {}
            _ => return Err(FileError::BadPath(path.into())),
        }
    }
    Ok(parts.join("/"))
}

/// `file_roots` on this host: environment → directories, searched in order.
#[derive(Debug, Clone, Default)]
pub struct LocalRoots {
    pub roots: BTreeMap<String, Vec<PathBuf>>,
}

impl LocalRoots {
    /// Roots with one directory for the `base` environment.
    pub fn base(dir: impl Into<PathBuf>) -> LocalRoots {
        let mut roots = BTreeMap::new();
        roots.insert("base".to_string(), vec![dir.into()]);
        LocalRoots { roots }
    }

    fn dirs(&self, env: &str) -> &[PathBuf] {
        self.roots.get(env).map(Vec::as_slice).unwrap_or(&[])
    }
}

impl LocalRoots {
    /// The real path of `path` in `env`: the first root that has it. Symlinks inside a
    /// root may not lead out of it.
    pub fn resolve(&self, env: &str, path: &str) -> Result<PathBuf, FileError> {
        let rel = clean_path(path)?;
        for dir in self.dirs(env) {
            let full = dir.join(&rel);
            if let (Ok(real), Ok(root)) = (full.canonicalize(), dir.canonicalize()) {
                if !real.starts_with(&root) {
                    return Err(FileError::BadPath(rel));
                }
                if real.is_file() {
                    return Ok(real);
                }
            }
        }
        Err(FileError::NotFound { env: env.into(), path: rel })
    }
}

impl FileSource for LocalRoots {
    fn read(&self, env: &str, path: &str) -> Result<Vec<u8>, FileError> {
        let real = self.resolve(env, path)?;
        std::fs::read(&real).map_err(|e| FileError::Io(format!("{}: {e}", real.display())))
    }

    fn cache(&self, env: &str, path: &str) -> Result<PathBuf, FileError> {
        self.resolve(env, path)
    }

    fn list(&self, env: &str, dir: &str) -> Result<Vec<String>, FileError> {
        let rel = clean_path(dir)?;
        let mut out = Vec::new();
        for root in self.dirs(env) {
            let Ok(real_root) = root.canonicalize() else { continue };
            let base = root.join(&rel);
            let mut stack = vec![base.clone()];
            while let Some(d) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else { continue };
                for e in entries.flatten() {
                    let p = e.path();
                    // Nothing a symlink leads to outside the root is listed (or served).
                    if !p.canonicalize().is_ok_and(|r| r.starts_with(&real_root)) {
                        continue;
                    }
                    if p.is_dir() {
                        stack.push(p);
                    } else if let Ok(sub) = p.strip_prefix(root) {
                        out.push(sub.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape_the_roots() {
        assert_eq!(clean_path("salt://a//b/./c.sls").unwrap(), "a/b/c.sls");
        assert_eq!(clean_path("/a/b").unwrap(), "a/b");
        assert_eq!(split_url("salt://a/b.conf?saltenv=prod", "base"), ("prod".into(), "a/b.conf".into()));
        assert_eq!(split_url("brine://a/b.conf", "base"), ("base".into(), "a/b.conf".into()));
        for bad in ["../etc/passwd", "a/../../x", "salt://../x"] {
            assert!(matches!(clean_path(bad), Err(FileError::BadPath(_))), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("web")).unwrap();
        std::fs::write(root.join("web/init.sls"), "x").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("web/leak")).unwrap();
        let files = LocalRoots::base(&root);
        assert_eq!(files.read("base", "web/init.sls").unwrap(), b"x");
        assert!(matches!(files.read("base", "web/leak"), Err(FileError::BadPath(_))));
        assert!(matches!(files.read("base", "../secret"), Err(FileError::BadPath(_))));
        assert!(matches!(files.read("base", "nope.sls"), Err(FileError::NotFound { .. })));
        assert!(matches!(files.read("dev", "web/init.sls"), Err(FileError::NotFound { .. })));
        assert_eq!(files.list("base", "web").unwrap(), vec!["web/init.sls"]);
    }
}
