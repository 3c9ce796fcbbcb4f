//! The master's file server as the state system on a minion sees it: every file is
//! checked against the SHA-256 the master gives for it and kept in a local cache
//! (`<cache>/files/<env>/<path>`), so an unchanged file costs one small request and
//! a changed one is fetched again in chunks.

use brine_proto::msg::{RpcCall, RpcResult};
use brine_states::files::{clean_path, write_atomic, FileError, FileSource};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Sends one request to the master and waits for its (verified) answer.
pub type Ask = Arc<dyn Fn(RpcCall) -> Result<RpcResult, String> + Send + Sync>;

/// Files of the master's file server, cached on this host.
pub struct RemoteFiles {
    ask: Ask,
    cache_dir: PathBuf,
    /// SHA-256 of cached files by path, valid while their mtime and size are unchanged.
    hashes: Mutex<HashMap<PathBuf, (SystemTime, u64, String)>>,
}

impl std::fmt::Debug for RemoteFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteFiles({})", self.cache_dir.display())
    }
}

fn answer_error(r: RpcResult) -> FileError {
    match r {
        RpcResult::NotFound(m) | RpcResult::BadPath(m) | RpcResult::Error(m) => FileError::Io(m),
        other => FileError::Io(format!("the master's file server gave an unexpected answer: {other:?}")),
    }
}

impl RemoteFiles {
    /// `cache_dir` is the minion's cache; files go under its `files/` directory.
    pub fn new(ask: Ask, cache_dir: &Path) -> RemoteFiles {
        RemoteFiles { ask, cache_dir: cache_dir.join("files"), hashes: Mutex::new(HashMap::new()) }
    }

    fn ask(&self, call: RpcCall) -> Result<RpcResult, FileError> {
        (self.ask)(call).map_err(|e| FileError::Io(format!("cannot reach the master's file server: {e}")))
    }

    fn cached_hash(&self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let stamp = (meta.modified().ok()?, meta.len());
        if let Some((mtime, size, hash)) = self.hashes.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            if (*mtime, *size) == stamp {
                return Some(hash.clone());
            }
        }
        let mut f = std::fs::File::open(path).ok()?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let hash = hex(&h.finalize());
        self.hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), (stamp.0, stamp.1, hash.clone()));
        Some(hash)
    }

    /// Makes the cached copy of `path` current and returns where it is.
    fn fetch(&self, env: &str, path: &str) -> Result<PathBuf, FileError> {
        let rel = clean_path(path)?;
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
            return Err(FileError::NotFound { env: env.into(), path: rel });
        }
        let local = self.cache_dir.join(env).join(&rel);
        let (sha256, size) = match self.ask(RpcCall::FileHash { env: env.into(), path: rel.clone() })? {
            RpcResult::Hash { sha256, size } => (sha256, size),
            RpcResult::NotFound(_) => return Err(FileError::NotFound { env: env.into(), path: rel }),
            RpcResult::BadPath(_) => return Err(FileError::BadPath(rel)),
            other => return Err(answer_error(other)),
        };
        if self.cached_hash(&local).as_deref() == Some(sha256.as_str()) {
            return Ok(local);
        }
        let mut data = Vec::with_capacity(size.min(64 << 20) as usize);
        while (data.len() as u64) < size {
            let offset = data.len() as u64;
            match self.ask(RpcCall::FileRead { env: env.into(), path: rel.clone(), offset })? {
                RpcResult::Chunk { data: chunk, .. } if chunk.is_empty() => break,
                RpcResult::Chunk { data: chunk, .. } => data.extend_from_slice(&chunk),
                RpcResult::NotFound(_) => return Err(FileError::NotFound { env: env.into(), path: rel }),
                other => return Err(answer_error(other)),
            }
        }
        let got = hex(&Sha256::digest(&data));
        if got != sha256 {
            return Err(FileError::Io(format!(
                "{env}:{rel} changed on the master while it was fetched, or was damaged on the way \
                 (expected SHA-256 {sha256}, got {got}); try again"
            )));
        }
        let io = |e: std::io::Error| FileError::Io(format!("cannot cache {}: {e}", local.display()));
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        write_atomic(&local, &data).map_err(io)?;
        tracing::debug!(env, path = %rel, bytes = data.len(), "fetched a file from the master");
        Ok(local)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FileSource for RemoteFiles {
    fn read(&self, env: &str, path: &str) -> Result<Vec<u8>, FileError> {
        let local = self.fetch(env, path)?;
        std::fs::read(&local).map_err(|e| FileError::Io(format!("{}: {e}", local.display())))
    }

    fn list(&self, env: &str, dir: &str) -> Result<Vec<String>, FileError> {
        let prefix = clean_path(dir)?;
        match self.ask(RpcCall::FileList { env: env.into(), prefix })? {
            RpcResult::Files(list) => Ok(list),
            RpcResult::BadPath(_) => Err(FileError::BadPath(dir.into())),
            other => Err(answer_error(other)),
        }
    }

    fn cache(&self, env: &str, path: &str) -> Result<PathBuf, FileError> {
        self.fetch(env, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file server of one file, counting the chunks it serves.
    fn server(content: Vec<u8>, reads: Arc<AtomicUsize>, corrupt: bool) -> Ask {
        let content = Arc::new(Mutex::new(content));
        Arc::new(move |call| {
            let data = content.lock().unwrap().clone();
            Ok(match call {
                RpcCall::FileHash { path, .. } if path == "a/file" => {
                    RpcResult::Hash { sha256: hex(&Sha256::digest(&data)), size: data.len() as u64 }
                }
                RpcCall::FileRead { path, offset, .. } if path == "a/file" => {
                    reads.fetch_add(1, Ordering::SeqCst);
                    let start = (offset as usize).min(data.len());
                    let end = (start + 3).min(data.len());
                    let mut chunk = data[start..end].to_vec();
                    if corrupt && !chunk.is_empty() {
                        chunk[0] ^= 1;
                    }
                    RpcResult::Chunk { data: chunk, size: data.len() as u64 }
                }
                RpcCall::FileHash { path, .. } if path.contains("..") => RpcResult::BadPath(path),
                _ => RpcResult::NotFound("no such file".into()),
            })
        })
    }

    #[test]
    fn fetches_in_chunks_once_and_again_only_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let reads = Arc::new(AtomicUsize::new(0));
        let files = RemoteFiles::new(server(b"hello world".to_vec(), reads.clone(), false), dir.path());
        assert_eq!(files.read("base", "salt://a/file").unwrap(), b"hello world");
        assert_eq!(reads.load(Ordering::SeqCst), 4, "11 bytes in chunks of 3");
        assert_eq!(files.read("base", "a/file").unwrap(), b"hello world");
        assert_eq!(reads.load(Ordering::SeqCst), 4, "the cached copy is current");
        assert_eq!(files.cache("base", "a/file").unwrap(), dir.path().join("files/base/a/file"));
        // Tampering with the cache is noticed: the hash no longer matches.
        std::fs::write(dir.path().join("files/base/a/file"), "tampered!!!").unwrap();
        assert_eq!(files.read("base", "a/file").unwrap(), b"hello world");
        assert_eq!(reads.load(Ordering::SeqCst), 8);
    }

    #[test]
    fn a_damaged_transfer_is_refused_and_escapes_never_reach_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let files = RemoteFiles::new(server(b"hello".to_vec(), Arc::new(AtomicUsize::new(0)), true), dir.path());
        let err = files.read("base", "a/file").unwrap_err().to_string();
        assert!(err.contains("expected SHA-256"), "{err}");
        assert!(!dir.path().join("files/base/a/file").exists());
        assert!(matches!(files.read("base", "../../etc/passwd"), Err(FileError::BadPath(_))));
        assert!(matches!(files.read("../x", "a/file"), Err(FileError::NotFound { .. })));
        assert!(matches!(files.read("base", "missing"), Err(FileError::NotFound { .. })));
    }
}
