//! `cp.*`: copy files from the master's file server (`salt://` or `brine://` URLs) to
//! this host. Under a minion the files come over NATS, hash-checked, through the
//! minion's cache; under `brine-call --local` from the local file roots.

use super::{opt, opt_or, req, CallError, Context, Function, Output, Param, ParamDefault};
use crate::files::{clean_path, split_url, write_atomic, FileError, FileSource};
use brine_proto::Value;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn files(ctx: &Context) -> Result<&Arc<dyn FileSource>, CallError> {
    ctx.files.as_ref().ok_or_else(|| {
        CallError::failed("no file server is available: run under a master or give brine-call --file-root")
    })
}

fn env_of(saltenv: &Option<String>) -> String {
    saltenv.clone().unwrap_or_else(|| "base".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetFileArgs {
    path: String,
    dest: String,
    #[serde(default)]
    saltenv: Option<String>,
    #[serde(default)]
    makedirs: bool,
}

pub struct GetFile;
impl Function for GetFile {
    const NAME: &'static str = "cp.get_file";
    const DOC: &'static str = "Copies a file of the file server to `dest` on this host (into it, if it is a \
        directory). Returns the written path, or an empty string if the file does not exist or the \
        destination's directory is missing (makedirs=True creates it).\n\n\
        CLI example: brine run '*' cp.get_file salt://motd /etc/motd";
    const PARAMS: &'static [Param] =
        &[req("path"), req("dest"), opt("saltenv"), opt_or("makedirs", ParamDefault::Bool(false))];
    type Args = GetFileArgs;
    fn call(&self, ctx: &Context, a: GetFileArgs) -> Result<Output, CallError> {
        let (env, path) = split_url(&a.path, &env_of(&a.saltenv));
        let data = match files(ctx)?.read(&env, &path) {
            Ok(d) => d,
            Err(FileError::NotFound { .. }) => return Ok(Output::ok("")),
            Err(e) => return Err(CallError::failed(e.to_string())),
        };
        let mut dest = PathBuf::from(&a.dest);
        if dest.is_dir() {
            let name = clean_path(&path).map_err(|e| CallError::failed(e.to_string()))?;
            dest = dest.join(Path::new(&name).file_name().unwrap_or_default());
        }
        match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => {
                if !a.makedirs {
                    return Ok(Output::ok(""));
                }
                std::fs::create_dir_all(parent).map_err(|e| CallError::failed(format!("{}: {e}", parent.display())))?;
            }
            _ => {}
        }
        write_atomic(&dest, &data).map_err(|e| CallError::failed(format!("{}: {e}", dest.display())))?;
        Ok(Output::ok(dest.to_string_lossy().into_owned()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    path: String,
    #[serde(default)]
    saltenv: Option<String>,
}

pub struct GetFileStr;
impl Function for GetFileStr {
    const NAME: &'static str = "cp.get_file_str";
    const DOC: &'static str = "Returns the text of a file of the file server, or False if it does not exist.\n\n\
        CLI example: brine run '*' cp.get_file_str salt://motd";
    const PARAMS: &'static [Param] = &[req("path"), opt("saltenv")];
    type Args = PathArgs;
    fn call(&self, ctx: &Context, a: PathArgs) -> Result<Output, CallError> {
        let (env, path) = split_url(&a.path, &env_of(&a.saltenv));
        match files(ctx)?.read(&env, &path) {
            Ok(d) => Ok(Output::ok(String::from_utf8_lossy(&d).into_owned())),
            Err(FileError::NotFound { .. }) => Ok(Output::ok(false)),
            Err(e) => Err(CallError::failed(e.to_string())),
        }
    }
}

pub struct CacheFile;
impl Function for CacheFile {
    const NAME: &'static str = "cp.cache_file";
    const DOC: &'static str = "Fetches a file of the file server into this minion's cache (checked against \
        the master's SHA-256) and returns the cached path, or False if it does not exist.\n\n\
        CLI example: brine run '*' cp.cache_file salt://pkgs/tool.deb";
    const PARAMS: &'static [Param] = &[req("path"), opt("saltenv")];
    type Args = PathArgs;
    fn call(&self, ctx: &Context, a: PathArgs) -> Result<Output, CallError> {
        let (env, path) = split_url(&a.path, &env_of(&a.saltenv));
        match files(ctx)?.cache(&env, &path) {
            Ok(p) => Ok(Output::ok(p.to_string_lossy().into_owned())),
            Err(FileError::NotFound { .. }) => Ok(Output::ok(false)),
            Err(e) => Err(CallError::failed(e.to_string())),
        }
    }
}

pub struct HashFile;
impl Function for HashFile {
    const NAME: &'static str = "cp.hash_file";
    const DOC: &'static str = "Returns the SHA-256 of a file of the file server as {hash_type, hsum}, or \
        False if it does not exist.\n\nCLI example: brine run '*' cp.hash_file salt://motd";
    const PARAMS: &'static [Param] = &[req("path"), opt("saltenv")];
    type Args = PathArgs;
    fn call(&self, ctx: &Context, a: PathArgs) -> Result<Output, CallError> {
        let (env, path) = split_url(&a.path, &env_of(&a.saltenv));
        match files(ctx)?.read(&env, &path) {
            Ok(d) => {
                let hsum: String = Sha256::digest(&d).iter().map(|b| format!("{b:02x}")).collect();
                Ok(Output::ok(serde_json::json!({"hash_type": "sha256", "hsum": hsum})))
            }
            Err(FileError::NotFound { .. }) => Ok(Output::ok(false)),
            Err(e) => Err(CallError::failed(e.to_string())),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    #[serde(default)]
    saltenv: Option<String>,
    #[serde(default)]
    prefix: String,
}

pub struct ListMaster;
impl Function for ListMaster {
    const NAME: &'static str = "cp.list_master";
    const DOC: &'static str = "Lists the files of the file server in an environment (under `prefix`).\n\n\
        CLI example: brine run '*' cp.list_master prefix=web";
    const PARAMS: &'static [Param] = &[opt("saltenv"), opt_or("prefix", ParamDefault::Str(""))];
    type Args = ListArgs;
    fn call(&self, ctx: &Context, a: ListArgs) -> Result<Output, CallError> {
        let list = files(ctx)?.list(&env_of(&a.saltenv), &a.prefix).map_err(|e| CallError::failed(e.to_string()))?;
        Ok(Output::ok(Value::Array(list.into_iter().map(Value::String).collect())))
    }
}

pub struct ListStates;
impl Function for ListStates {
    const NAME: &'static str = "cp.list_states";
    const DOC: &'static str = "Lists the SLS names the file server offers in an environment.\n\n\
        CLI example: brine run '*' cp.list_states";
    const PARAMS: &'static [Param] = &[opt("saltenv")];
    type Args = ListArgs;
    fn call(&self, ctx: &Context, a: ListArgs) -> Result<Output, CallError> {
        let list = files(ctx)?.list(&env_of(&a.saltenv), "").map_err(|e| CallError::failed(e.to_string()))?;
        let mut names: Vec<String> = list
            .iter()
            .filter_map(|f| f.strip_suffix(".sls"))
            .map(|f| f.strip_suffix("/init").unwrap_or(f).replace('/', "."))
            .collect();
        names.sort();
        names.dedup();
        Ok(Output::ok(Value::Array(names.into_iter().map(Value::String).collect())))
    }
}

/// The `cp` execution module.
pub static MODULE: super::Module = super::Module {
    name: "cp",
    doc: "Copy files from the master's file server (salt:// and brine:// URLs) to this host.",
    functions: &[&CacheFile, &GetFile, &GetFileStr, &HashFile, &ListMaster, &ListStates],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::LocalRoots;
    use serde_json::json;

    fn ctx(root: &Path) -> Context {
        Context { files: Some(Arc::new(LocalRoots::base(root))), ..Context::default() }
    }

    fn run(ctx: &Context, fun: &str, args: &[Value], kw: Value) -> Result<Value, CallError> {
        super::super::call(fun, ctx, args.to_vec(), kw.as_object().unwrap().clone()).map(|o| o.ret)
    }

    #[test]
    fn get_file_copies_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("srv");
        std::fs::create_dir_all(root.join("web")).unwrap();
        std::fs::write(root.join("web/motd"), "hello\n").unwrap();
        std::fs::write(root.join("web/init.sls"), "{}\n").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let ctx = ctx(&root);
        let dest = dir.path().join("out/motd");
        assert_eq!(run(&ctx, "cp.get_file", &[json!("salt://web/motd"), json!(dest)], json!({})).unwrap(), json!(""));
        let got = run(&ctx, "cp.get_file", &[json!("salt://web/motd"), json!(dest)], json!({"makedirs": true}));
        assert_eq!(got.unwrap(), json!(dest.to_string_lossy()));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "hello\n");
        let into_dir = run(&ctx, "cp.get_file", &[json!("brine://web/motd"), json!(dir.path())], json!({})).unwrap();
        assert_eq!(into_dir, json!(dir.path().join("motd").to_string_lossy()));
        let escape = run(&ctx, "cp.get_file", &[json!("salt://../secret"), json!(dir.path().join("x"))], json!({}));
        assert!(escape.unwrap_err().to_string().contains("not allowed"));
        assert_eq!(run(&ctx, "cp.get_file_str", &[json!("salt://web/motd")], json!({})).unwrap(), json!("hello\n"));
        assert_eq!(run(&ctx, "cp.get_file_str", &[json!("salt://nope")], json!({})).unwrap(), json!(false));
        assert_eq!(
            run(&ctx, "cp.hash_file", &[json!("salt://web/motd")], json!({})).unwrap()["hsum"],
            json!("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        );
        assert_eq!(run(&ctx, "cp.list_master", &[], json!({})).unwrap(), json!(["web/init.sls", "web/motd"]));
        assert_eq!(run(&ctx, "cp.list_states", &[], json!({})).unwrap(), json!(["web"]));
        let cached = run(&ctx, "cp.cache_file", &[json!("salt://web/motd")], json!({})).unwrap();
        assert_eq!(std::fs::read_to_string(cached.as_str().unwrap()).unwrap(), "hello\n");
    }
}
