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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

impl FileSource for LocalRoots {
    fn read(&self, env: &str, path: &str) -> Result<Vec<u8>, FileError> {
        let rel = clean_path(path)?;
        for dir in self.dirs(env) {
            let full = dir.join(&rel);
            // Symlinks inside a root may not lead out of it.
            if let (Ok(real), Ok(root)) = (full.canonicalize(), dir.canonicalize()) {
                if !real.starts_with(&root) {
                    return Err(FileError::BadPath(rel));
                }
                if real.is_file() {
                    return std::fs::read(&real).map_err(|e| FileError::Io(format!("{}: {e}", real.display())));
                }
            }
        }
        Err(FileError::NotFound { env: env.into(), path: rel })
    }

    fn list(&self, env: &str, dir: &str) -> Result<Vec<String>, FileError> {
        let rel = clean_path(dir)?;
        let mut out = Vec::new();
        for root in self.dirs(env) {
            let base = root.join(&rel);
            let mut stack = vec![base.clone()];
            while let Some(d) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else { continue };
                for e in entries.flatten() {
                    let p = e.path();
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
        assert_eq!(files.list("base", "web").unwrap(), vec!["web/init.sls", "web/leak"]);
    }
}
