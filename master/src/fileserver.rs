//! The file server and pillar: what minions fetch over `P.rpc.<minion>.file_*` and
//! `P.rpc.<minion>.pillar`.
//!
//! Files come from `file_roots`, by environment; a path is always relative to the roots
//! and may not leave them (`..`, or a symlink leading out, is refused). Minions ask for
//! a file's SHA-256 first and fetch it in [`FILE_CHUNK`] pieces only when their cached
//! copy differs. Pillar is rendered here, for the asking minion only, from
//! `pillar_roots`.

use brine_proto::msg::{RpcResult, FILE_CHUNK};
use brine_proto::{Map, MinionId, Value};
use brine_states::files::{FileError, FileSource, LocalRoots};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Serves `file_roots` and renders pillar from `pillar_roots`.
#[derive(Debug)]
pub struct FileServer {
    files: LocalRoots,
    pillar: Arc<dyn FileSource>,
    /// SHA-256 by real path, valid while the file's mtime and size are unchanged.
    hashes: Mutex<HashMap<PathBuf, (SystemTime, u64, String)>>,
}

fn refused(e: FileError) -> RpcResult {
    match e {
        FileError::NotFound { .. } => RpcResult::NotFound(e.to_string()),
        FileError::BadPath(_) => RpcResult::BadPath(e.to_string()),
        FileError::Io(m) => RpcResult::Error(m),
    }
}

impl FileServer {
    pub fn new(files: LocalRoots, pillar: LocalRoots) -> FileServer {
        FileServer { files, pillar: Arc::new(pillar), hashes: Mutex::new(HashMap::new()) }
    }

    /// The files under `prefix` in `env`.
    pub fn list(&self, env: &str, prefix: &str) -> RpcResult {
        match self.files.list(env, prefix) {
            Ok(list) => RpcResult::Files(list),
            Err(e) => refused(e),
        }
    }

    /// A file's SHA-256 and size.
    pub fn hash(&self, env: &str, path: &str) -> RpcResult {
        let real = match self.files.resolve(env, path) {
            Ok(p) => p,
            Err(e) => return refused(e),
        };
        let meta = match std::fs::metadata(&real) {
            Ok(m) => m,
            Err(e) => return RpcResult::Error(format!("{}: {e}", real.display())),
        };
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        if let Some((mtime, size, hash)) = self.hashes.lock().unwrap_or_else(|e| e.into_inner()).get(&real) {
            if (*mtime, *size) == stamp {
                return RpcResult::Hash { sha256: hash.clone(), size: *size };
            }
        }
        let hash = match sha256_file(&real) {
            Ok(h) => h,
            Err(e) => return RpcResult::Error(format!("{}: {e}", real.display())),
        };
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).insert(real, (stamp.0, stamp.1, hash.clone()));
        RpcResult::Hash { sha256: hash, size: stamp.1 }
    }

    /// Up to [`FILE_CHUNK`] bytes of a file from `offset`.
    pub fn read(&self, env: &str, path: &str, offset: u64) -> RpcResult {
        let real = match self.files.resolve(env, path) {
            Ok(p) => p,
            Err(e) => return refused(e),
        };
        let chunk = || -> std::io::Result<(Vec<u8>, u64)> {
            let mut f = std::fs::File::open(&real)?;
            let size = f.metadata()?.len();
            f.seek(SeekFrom::Start(offset.min(size)))?;
            let mut data = Vec::with_capacity(FILE_CHUNK.min(size.saturating_sub(offset) as usize));
            f.take(FILE_CHUNK as u64).read_to_end(&mut data)?;
            Ok((data, size))
        };
        match chunk() {
            Ok((data, size)) => RpcResult::Chunk { data, size },
            Err(e) => RpcResult::Error(format!("{}: {e}", real.display())),
        }
    }

    /// Renders the pillar of minion `id`. Its grains come from the minion, but `id` is
    /// always the authenticated one, so a minion cannot pose as another to the pillar
    /// top file.
    pub fn pillar(&self, id: &MinionId, mut grains: Map) -> (Map, Vec<String>) {
        grains.insert("id".into(), Value::String(id.to_string()));
        let grains = Arc::new(grains);
        let ctx = brine_states::Context { grains: grains.clone(), ..Default::default() };
        match brine_states::pillar::compile(self.pillar.clone(), grains, &ctx) {
            Ok(p) => (p, Vec::new()),
            Err(errors) => (Map::new(), errors),
        }
    }
}

fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> (tempfile::TempDir, FileServer) {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("salt");
        let pillar = dir.path().join("pillar");
        std::fs::create_dir_all(files.join("web")).unwrap();
        std::fs::create_dir_all(&pillar).unwrap();
        std::fs::write(files.join("web/init.sls"), "nginx:\n  pkg.installed\n").unwrap();
        std::fs::write(files.join("big.bin"), vec![7u8; FILE_CHUNK + 10]).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::fs::write(pillar.join("top.sls"), "base:\n  'web*':\n    - web\n  'db*':\n    - db\n").unwrap();
        std::fs::write(pillar.join("web.sls"), "role: web\n").unwrap();
        std::fs::write(pillar.join("db.sls"), "db_password: hunter2\n").unwrap();
        let fs = FileServer::new(LocalRoots::base(files), LocalRoots::base(pillar));
        (dir, fs)
    }

    #[test]
    fn serves_files_in_chunks_with_their_hash() {
        let (_dir, fs) = server();
        assert_eq!(fs.list("base", ""), RpcResult::Files(vec!["big.bin".into(), "web/init.sls".into()]));
        let RpcResult::Hash { sha256, size } = fs.hash("base", "salt://web/init.sls") else { panic!() };
        assert_eq!(size, 23);
        assert_eq!(sha256.len(), 64);
        let RpcResult::Chunk { data, size } = fs.read("base", "big.bin", 0) else { panic!() };
        assert_eq!((data.len(), size), (FILE_CHUNK, FILE_CHUNK as u64 + 10));
        let RpcResult::Chunk { data, .. } = fs.read("base", "big.bin", FILE_CHUNK as u64) else { panic!() };
        assert_eq!(data.len(), 10);
        let RpcResult::Chunk { data, .. } = fs.read("base", "big.bin", 10 * FILE_CHUNK as u64) else { panic!() };
        assert!(data.is_empty());
    }

    #[test]
    fn refuses_paths_out_of_the_roots() {
        let (_dir, fs) = server();
        for path in ["../secret", "web/../../secret", "salt://../secret"] {
            assert!(matches!(fs.hash("base", path), RpcResult::BadPath(_)), "{path}");
            assert!(matches!(fs.read("base", path, 0), RpcResult::BadPath(_)), "{path}");
        }
        assert!(matches!(fs.list("base", "../"), RpcResult::BadPath(_)));
        assert!(matches!(fs.hash("base", "nope"), RpcResult::NotFound(_)));
        assert!(matches!(fs.hash("prod", "web/init.sls"), RpcResult::NotFound(_)));
    }

    #[test]
    fn pillar_uses_the_authenticated_id() {
        let (_dir, fs) = server();
        let id = MinionId::new("web1").unwrap();
        let mut lying = Map::new();
        lying.insert("id".into(), Value::String("db1".into()));
        let (pillar, errors) = fs.pillar(&id, lying);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(pillar.get("role"), Some(&Value::String("web".into())));
        assert!(!pillar.contains_key("db_password"));
    }
}
