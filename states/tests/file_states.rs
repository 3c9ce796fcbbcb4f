//! Convergence tests for the `file.*` states, in temporary directories: test mode
//! predicts and touches nothing, apply changes and reports it, a second apply changes
//! nothing, and after the host is broken an apply puts it back. Comments and changes
//! are the ones Salt 3007.8 gives for the same calls (captured with `salt-call --local
//! state.single`), except where brine deliberately differs (noted at each test).

use brine_proto::{Map, Value};
use brine_states::exec::Context;
use brine_states::files::LocalRoots;
use brine_states::state::{lookup, StateContext};
use serde_json::json;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A scratch host: a state tree (`srv/`, the `base` environment) and a work directory.
struct Host {
    dir: tempfile::TempDir,
    roots: Arc<LocalRoots>,
    exec: Context,
    pillar: Arc<Map>,
}

/// What one state call returned, shaped as the engine records it.
#[derive(Debug)]
struct Ran {
    result: Option<bool>,
    changes: Value,
    comment: String,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("srv")).unwrap();
        fs::create_dir_all(dir.path().join("work")).unwrap();
        let roots = Arc::new(LocalRoots::base(dir.path().join("srv")));
        let grains = json!({"id": "m1", "os": "Debian", "os_family": "Debian"});
        let pillar = json!({"role": "web", "motd": {"text": "from pillar"}, "lines": ["l1", "l2"]});
        let pillar = Arc::new(pillar.as_object().unwrap().clone());
        let exec = Context {
            grains: Arc::new(grains.as_object().unwrap().clone()),
            files: Some(roots.clone()),
            pillar: pillar.clone(),
            ..Context::default()
        };
        Host { dir, roots, exec, pillar }
    }

    /// A path in the work directory.
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("work").join(rel)
    }

    /// `path(rel)` as the state's name.
    fn name(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// Writes a file of the state tree.
    fn srv(&self, rel: &str, text: &str) {
        let p = self.dir.path().join("srv").join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn call(&self, fun: &str, name: &str, args: Value, test: bool) -> Ran {
        let f = lookup(fun).unwrap_or_else(|| panic!("{fun} is not registered"));
        let ctx = StateContext {
            exec: &self.exec,
            files: self.roots.as_ref(),
            pillar: &self.pillar,
            saltenv: "base",
            orchestrator: None,
        };
        let args = args.as_object().cloned().unwrap_or_default();
        let o = f.call(&ctx, name, &args, !test);
        // As the engine does: in test mode, what would change is `None`.
        let result = match (o.ok, test && (!o.changes.is_empty() || o.predicted)) {
            (false, _) => Some(false),
            (true, true) => None,
            (true, false) => Some(true),
        };
        Ran { result, changes: Value::Object(o.changes), comment: o.comment }
    }

    fn test(&self, fun: &str, name: &str, args: Value) -> Ran {
        self.call(fun, name, args, true)
    }

    fn apply(&self, fun: &str, name: &str, args: Value) -> Ran {
        self.call(fun, name, args, false)
    }

    /// Applies and checks that nothing changed and the comment is `comment`.
    fn converged(&self, fun: &str, name: &str, args: Value, comment: &str) {
        let r = self.apply(fun, name, args.clone());
        assert_eq!((r.result, &r.changes, r.comment.as_str()), (Some(true), &json!({}), comment), "{fun} {name}");
        let t = self.test(fun, name, args);
        assert_eq!((t.result, &t.changes), (Some(true), &json!({})), "{fun} {name} in test mode: {t:?}");
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn set_to_change(name: &str) -> String {
    format!(
        "The file {name} is set to be changed\nNote: No changes made, actual changes may\nbe different due to other states."
    )
}

/// Root with a `nobody` user and a `nogroup` group, for ownership tests.
fn can_chown() -> bool {
    nix::unistd::Uid::effective().is_root()
        && nix::unistd::User::from_name("nobody").ok().flatten().is_some()
        && nix::unistd::Group::from_name("nogroup").ok().flatten().is_some()
}

#[test]
fn managed_contents_converge() {
    let h = Host::new();
    let (p, name) = (h.path("motd"), h.name("motd"));
    let args = json!({"contents": "hello", "mode": 600});

    let t = h.test("file.managed", &name, args.clone());
    assert_eq!(t.result, None);
    assert_eq!(t.changes, json!({"newfile": name}));
    assert_eq!(t.comment, set_to_change(&name));
    assert!(!p.exists(), "test mode must not create the file");

    let r = h.apply("file.managed", &name, args.clone());
    assert_eq!((r.result, r.comment.as_str()), (Some(true), format!("File {name} updated").as_str()));
    assert_eq!(r.changes, json!({"diff": "New file"}));
    assert_eq!((read(&p).as_str(), mode_of(&p)), ("hello\n", 0o600));
    h.converged("file.managed", &name, args.clone(), &format!("File {name} is in the correct state"));
    // Salt words it differently in test mode.
    assert_eq!(h.test("file.managed", &name, args.clone()).comment, format!("The file {name} is in the correct state"));

    // Break the contents: test mode shows Salt's diff and leaves the file alone.
    fs::write(&p, "other\n").unwrap();
    let t = h.test("file.managed", &name, args.clone());
    assert_eq!(t.result, None);
    assert_eq!(t.changes, json!({"diff": "--- \n+++ \n@@ -1 +1 @@\n-other\n+hello\n"}));
    assert_eq!(read(&p), "other\n");
    let r = h.apply("file.managed", &name, args.clone());
    assert_eq!(r.changes, json!({"diff": "--- \n+++ \n@@ -1 +1 @@\n-other\n+hello\n"}));
    assert_eq!(read(&p), "hello\n");
    assert_eq!(mode_of(&p), 0o600, "rewriting keeps the mode");

    // Break the mode.
    chmod(&p, 0o644);
    let t = h.test("file.managed", &name, args.clone());
    assert_eq!((t.result, &t.changes), (None, &json!({"mode": "0600"})));
    assert_eq!(mode_of(&p), 0o644);
    let r = h.apply("file.managed", &name, args.clone());
    assert_eq!((r.result, &r.changes), (Some(true), &json!({"mode": "0600"})));
    assert_eq!(mode_of(&p), 0o600);

    // Remove it.
    fs::remove_file(&p).unwrap();
    assert_eq!(h.apply("file.managed", &name, args.clone()).changes, json!({"diff": "New file"}));
    h.converged("file.managed", &name, args, &format!("File {name} is in the correct state"));

    // A list of lines, no trailing newline added when asked, an empty string.
    let lines = h.name("lines");
    h.apply("file.managed", &lines, json!({"contents": ["a", "b"]}));
    assert_eq!(read(&h.path("lines")), "a\nb\n");
    h.apply("file.managed", &lines, json!({"contents": "abc", "contents_newline": false}));
    assert_eq!(read(&h.path("lines")), "abc");
    h.apply("file.managed", &lines, json!({"contents": ""}));
    assert_eq!(read(&h.path("lines")), "");
}

#[test]
fn managed_sources_templates_and_hashes() {
    let h = Host::new();
    h.srv("web/app.conf.j2", "os={{ grains.os }} role={{ pillar.role }} color={{ color }} port={{ web.port }}\n");
    h.srv("web/map.jinja", "{% set web = {'port': 8080} %}");
    h.srv("web/plain.conf", "line1\nline2\n");
    let (p, name) = (h.path("app.conf"), h.name("app.conf"));
    let text = "{% from 'web/map.jinja' import web %}".to_string() + &read(&h.dir.path().join("srv/web/app.conf.j2"));
    h.srv("web/app.conf.j2", &text);
    let args = json!({
        "source": "salt://web/app.conf.j2", "template": "jinja", "mode": "0640",
        "defaults": {"color": "blue"}, "context": {"color": "red"},
    });
    let t = h.test("file.managed", &name, args.clone());
    assert_eq!((t.result, &t.changes), (None, &json!({"newfile": name})));
    let r = h.apply("file.managed", &name, args.clone());
    assert_eq!((r.result, &r.changes), (Some(true), &json!({"diff": "New file", "mode": "0640"})), "{r:?}");
    assert_eq!(read(&p), "os=Debian role=web color=red port=8080\n");
    h.converged("file.managed", &name, args.clone(), &format!("File {name} is in the correct state"));

    // The template changes: the rendered diff is shown, in test mode too.
    h.srv("web/app.conf.j2", &text.replace("color=", "colour="));
    let t = h.test("file.managed", &name, args.clone());
    let diff =
        "--- \n+++ \n@@ -1 +1 @@\n-os=Debian role=web color=red port=8080\n+os=Debian role=web colour=red port=8080\n";
    assert_eq!((t.result, &t.changes), (None, &json!({"diff": diff})));
    assert_eq!(h.apply("file.managed", &name, args).changes, json!({"diff": diff}));

    // An undefined variable fails, naming it, and writes nothing.
    let bad = h.apply("file.managed", &h.name("bad"), json!({"source": "salt://web/app.conf.j2", "template": "jinja"}));
    assert_eq!(bad.result, Some(false));
    assert!(bad.comment.starts_with("Unable to manage file: ") && bad.comment.contains("undefined"), "{}", bad.comment);
    assert!(!h.path("bad").exists());
    let r = h.apply("file.managed", &h.name("x"), json!({"contents": "x", "template": "mako"}));
    assert_eq!((r.result, r.comment.as_str()), (Some(false), "Specified template format mako is not supported"));

    // Contents rendered as a template; contents from pillar.
    h.apply("file.managed", &h.name("inline"), json!({"contents": "id={{ grains.id }}", "template": "jinja"}));
    assert_eq!(read(&h.path("inline")), "id=m1\n");
    h.apply("file.managed", &h.name("pillar"), json!({"contents_pillar": "motd:text"}));
    assert_eq!(read(&h.path("pillar")), "from pillar\n");
    h.apply("file.managed", &h.name("pillar-list"), json!({"contents_pillar": "lines"}));
    assert_eq!(read(&h.path("pillar-list")), "l1\nl2\n");
    let r = h.apply("file.managed", &h.name("nope"), json!({"contents_pillar": "motd:nope"}));
    assert_eq!((r.result, r.comment.as_str()), (Some(false), "Pillar motd:nope does not exist"));

    // source_hash: the right hash passes, a wrong one fails clearly and writes nothing.
    let sha = "2751a3a2f303ad21752038085e2b8c5f98ecff61a2e4ebbd43506a941725be80";
    let r = h.apply("file.managed", &h.name("h1"), json!({"source": "salt://web/plain.conf", "source_hash": sha}));
    assert_eq!(r.result, Some(true), "{r:?}");
    let zeros = "0".repeat(64);
    let hashed = h.name("h2");
    let r = h.apply(
        "file.managed",
        &hashed,
        json!({"source": "salt://web/plain.conf", "source_hash": format!("sha256={zeros}")}),
    );
    assert_eq!(r.result, Some(false));
    assert_eq!(
        r.comment,
        format!("Specified sha256 checksum for {hashed} ({zeros}) does not match actual checksum ({sha})")
    );
    assert!(!h.path("h2").exists());
    let t = h.test("file.managed", &hashed, json!({"source": "salt://web/plain.conf", "source_hash": zeros}));
    assert_eq!(t.result, Some(false), "a hash mismatch fails in test mode too");
    let r = h.apply(
        "file.managed",
        &hashed,
        json!({"source": "salt://web/plain.conf", "source_hash": zeros, "skip_verify": true}),
    );
    assert_eq!(r.result, Some(true));

    // Lists of sources, missing sources, local sources.
    let r = h.apply("file.managed", &h.name("l1"), json!({"source": ["salt://web/none", "salt://web/plain.conf"]}));
    assert_eq!((r.result, read(&h.path("l1")).as_str()), (Some(true), "line1\nline2\n"));
    let r = h.apply("file.managed", &h.name("l2"), json!({"source": "salt://web/none"}));
    assert_eq!(
        (r.result, r.comment.as_str()),
        (Some(false), "Source file salt://web/none not found in saltenv 'base'")
    );
    let r = h.apply("file.managed", &h.name("l2"), json!({"source": ["salt://web/n1", "salt://web/n2"]}));
    assert_eq!(r.comment, "Unable to manage file: none of the specified sources were found");
    let local = h.name("l1");
    let r = h.apply("file.managed", &h.name("l3"), json!({"source": local}));
    assert_eq!((r.result, read(&h.path("l3")).as_str()), (Some(true), "line1\nline2\n"));
    let r = h.apply("file.managed", &h.name("l4"), json!({"source": h.name("missing")}));
    assert_eq!(r.comment, format!("Local file source {} does not exist", h.name("missing")));
    let r = h.apply("file.managed", &h.name("l5"), json!({"source": "salt://web/plain.conf", "contents": "x"}));
    assert_eq!(
        r.comment,
        "'source' cannot be used in combination with 'contents', 'contents_pillar', or 'contents_grains'"
    );
    assert!(!p.with_file_name("l5").exists());
}

#[test]
fn sources_cannot_escape_the_state_tree() {
    let h = Host::new();
    fs::write(h.dir.path().join("secret"), "s3cret\n").unwrap();
    std::os::unix::fs::symlink(h.dir.path().join("secret"), h.dir.path().join("srv/leak")).unwrap();
    for source in ["salt://../secret", "salt://web/../../secret", "brine://../secret"] {
        for test in [true, false] {
            let r = h.call("file.managed", &h.name("stolen"), json!({ "source": source }), test);
            assert_eq!(r.result, Some(false), "{source}");
            assert!(r.comment.contains("may not contain '..'"), "{source}: {}", r.comment);
        }
    }
    let r = h.apply("file.managed", &h.name("stolen"), json!({"source": "salt://leak"}));
    assert_eq!(r.result, Some(false));
    let r = h.apply("file.recurse", &h.name("tree"), json!({"source": "salt://../"}));
    assert_eq!(r.result, Some(false));
    assert!(r.comment.contains("may not contain '..'"), "{}", r.comment);
    assert!(!h.path("stolen").exists() && !h.path("tree").exists());
}

#[test]
fn managed_options() {
    let h = Host::new();
    // Missing parents: refused, then made with dir_mode.
    let deep = h.name("d/e/f");
    let r = h.apply("file.managed", &deep, json!({"contents": "x"}));
    assert_eq!((r.result, r.comment.as_str()), (Some(false), "Parent directory not present"));
    let t = h.test("file.managed", &deep, json!({"contents": "x"}));
    assert_eq!((t.result, &t.changes), (None, &json!({"newfile": deep})));
    let r = h.apply("file.managed", &deep, json!({"contents": "x", "makedirs": true, "dir_mode": 700}));
    assert_eq!(r.result, Some(true));
    assert_eq!((mode_of(&h.path("d")), mode_of(&h.path("d/e"))), (0o700, 0o700));

    // replace: False only fixes the mode.
    chmod(&h.path("d/e/f"), 0o644);
    let args = json!({"contents": "other", "replace": false, "mode": 600});
    let t = h.test("file.managed", &deep, args.clone());
    assert_eq!(t.changes, json!({"mode": "0600"}));
    assert_eq!(t.comment, format!("File {deep} will be updated with permissions 0600 from its current state of 0644"));
    assert_eq!(h.apply("file.managed", &deep, args.clone()).changes, json!({"mode": "0600"}));
    assert_eq!(read(&h.path("d/e/f")), "x\n");
    h.converged(
        "file.managed",
        &deep,
        args.clone(),
        &format!("File {deep} exists with proper permissions. No changes made."),
    );
    assert_eq!(h.test("file.managed", &deep, args).comment, format!("File {deep} not updated"));

    // No contents: an empty file, then existing contents are left alone.
    let empty = h.name("empty");
    let r = h.apply("file.managed", &empty, json!({}));
    assert_eq!((r.comment.as_str(), &r.changes), ("Empty file", &json!({"new": format!("file {empty} created")})));
    fs::write(h.path("empty"), "kept").unwrap();
    h.converged(
        "file.managed",
        &empty,
        json!({}),
        &format!("File {empty} exists with proper permissions. No changes made."),
    );

    // create: False, a directory in the way, a relative name.
    let nope = h.name("nope");
    h.converged(
        "file.managed",
        &nope,
        json!({"contents": "x", "create": false}),
        &format!("File {nope} is not present and is not set for creation"),
    );
    let r = h.apply("file.managed", &h.name("d"), json!({"contents": "x"}));
    assert_eq!(r.comment, format!("Specified target {} is a directory", h.name("d")));
    let r = h.apply("file.managed", "rel/x", json!({"contents": "x"}));
    assert_eq!((r.result, r.comment.as_str()), (Some(false), "Specified file rel/x is not an absolute path"));

    // show_changes: False hides the diff; backup keeps the old file.
    let f = h.name("f");
    h.apply("file.managed", &f, json!({"contents": "one"}));
    let r = h.apply("file.managed", &f, json!({"contents": "two", "show_changes": false, "backup": "minion"}));
    assert_eq!(r.changes, json!({"diff": "<show_changes=False>"}));
    assert_eq!((read(&h.path("f")).as_str(), read(&h.path("f.bak")).as_str()), ("two\n", "one\n"));

    // A symlink is followed: the file it points to is managed.
    std::os::unix::fs::symlink(h.path("f"), h.path("link")).unwrap();
    h.apply("file.managed", &h.name("link"), json!({"contents": "three"}));
    assert!(fs::symlink_metadata(h.path("link")).unwrap().file_type().is_symlink());
    assert_eq!(read(&h.path("f")), "three\n");

    // Unknown arguments are refused rather than ignored.
    let r = h.apply("file.managed", &f, json!({"contents": "x", "atrs": "i"}));
    assert_eq!(r.result, Some(false));
    assert!(r.comment.contains("unknown field `atrs`"), "{}", r.comment);

    // Unknown owners: Salt's comment when applying; test mode predicts (the user may be
    // created by an earlier state).
    let r = h.apply(
        "file.managed",
        &h.name("o"),
        json!({"contents": "x", "user": "no-such-user-x", "group": "no-such-group-x"}),
    );
    assert_eq!(r.comment, "User no-such-user-x is not available Group no-such-group-x is not available");
    assert!(!h.path("o").exists());
    let t = h.test("file.managed", &h.name("o"), json!({"contents": "x", "user": "no-such-user-x"}));
    assert_eq!(t.result, None);
}

#[test]
fn managed_owners() {
    if !can_chown() {
        eprintln!("skipped: needs root and the nobody user / nogroup group");
        return;
    }
    let h = Host::new();
    let (p, name) = (h.path("owned"), h.name("owned"));
    let args = json!({"contents": "x", "user": "nobody", "group": "nogroup", "mode": 600});
    let r = h.apply("file.managed", &name, args.clone());
    assert_eq!(r.changes, json!({"diff": "New file", "user": "nobody", "group": "nogroup"}));
    let meta = fs::metadata(&p).unwrap();
    assert_eq!(meta.uid(), nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw());
    h.converged("file.managed", &name, args.clone(), &format!("File {name} is in the correct state"));
    std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
    let t = h.test("file.managed", &name, args.clone());
    assert_eq!(t.changes, json!({"user": "nobody", "group": "nogroup"}));
    assert_eq!(fs::metadata(&p).unwrap().uid(), 0);
    assert_eq!(h.apply("file.managed", &name, args.clone()).changes, json!({"user": "nobody", "group": "nogroup"}));
    // Rewriting the contents keeps the owner.
    let r = h.apply("file.managed", &name, json!({"contents": "y"}));
    assert_eq!(r.result, Some(true));
    assert_ne!(fs::metadata(&p).unwrap().uid(), 0);
}

#[test]
fn directory_converges() {
    let h = Host::new();
    let (p, name) = (h.path("d"), h.name("d"));
    let t = h.test("file.directory", &name, json!({"mode": 750}));
    assert_eq!((t.result, &t.changes), (None, &json!({ &name: {"directory": "new"} })));
    assert_eq!(t.comment, format!("The following files will be changed:\n{name}: directory - new\n"));
    assert!(!p.exists());
    let r = h.apply("file.directory", &name, json!({"mode": 750}));
    assert_eq!((r.result, &r.changes, r.comment.as_str()), (Some(true), &json!({ &name: {"directory": "new"} }), ""));
    assert_eq!(mode_of(&p), 0o750);
    h.converged(
        "file.directory",
        &name,
        json!({"mode": 750}),
        &format!("The directory {name} is in the correct state"),
    );

    chmod(&p, 0o755);
    let t = h.test("file.directory", &name, json!({"mode": 750}));
    assert_eq!(t.changes, json!({ &name: {"mode": "0750"} }));
    assert_eq!(t.comment, format!("The following files will be changed:\n{name}: mode - 0750\n"));
    let r = h.apply("file.directory", &name, json!({"mode": 750}));
    // Salt reports the directory's own changes under its path and at the top level.
    assert_eq!(r.changes, json!({ &name: {"mode": "0750"}, "mode": "0750" }));
    assert_eq!(r.comment, format!("Directory {name} updated"));
    assert_eq!(mode_of(&p), 0o750);

    // Missing parents and files in the way.
    let nested = h.name("x/y");
    let r = h.apply("file.directory", &nested, json!({}));
    assert_eq!((r.result, r.comment.as_str()), (Some(false), format!("No directory to create {nested} in").as_str()));
    assert_eq!(h.test("file.directory", &nested, json!({})).result, None);
    assert_eq!(h.apply("file.directory", &nested, json!({"makedirs": true})).result, Some(true));
    assert!(h.path("x/y").is_dir());
    fs::write(h.path("file"), "").unwrap();
    let r = h.apply("file.directory", &h.name("file"), json!({}));
    assert_eq!(r.comment, format!("Specified location {} exists and is a file", h.name("file")));

    // recurse: modes inside, listed in Salt's walk order, directory last.
    fs::create_dir_all(p.join("sub/deep")).unwrap();
    fs::write(p.join("f1"), "").unwrap();
    fs::write(p.join("sub/f2"), "").unwrap();
    chmod(&p, 0o755);
    let args = json!({"dir_mode": 750, "file_mode": 640, "recurse": ["mode"]});
    let t = h.test("file.directory", &name, args.clone());
    let lines: Vec<String> =
        ["f1: mode - 0640", "sub: mode - 0750", "sub/f2: mode - 0640", "sub/deep: mode - 0750", ": mode - 0750"]
            .iter()
            .map(|l| format!("{name}{}{l}\n", if l.starts_with(':') { "" } else { "/" }))
            .collect();
    assert_eq!(t.comment, format!("The following files will be changed:\n{}", lines.concat()));
    let r = h.apply("file.directory", &name, args.clone());
    assert_eq!(r.result, Some(true), "{r:?}");
    assert_eq!((mode_of(&p.join("f1")), mode_of(&p.join("sub/deep")), mode_of(&p)), (0o640, 0o750, 0o750));
    h.converged("file.directory", &name, args.clone(), &format!("The directory {name} is in the correct state"));
    chmod(&p.join("sub/f2"), 0o600);
    assert_eq!(h.apply("file.directory", &name, args).changes, json!({ format!("{name}/sub/f2"): {"mode": "0640"} }));

    // clean, keeping what exclude_pat matches.
    fs::write(p.join("keep.me"), "").unwrap();
    let args = json!({"clean": true, "exclude_pat": "*.me"});
    let t = h.test("file.directory", &name, args.clone());
    assert_eq!(t.result, None);
    assert!(t.comment.contains(&format!("{name}/sub/deep: removed - Removed due to clean\n")), "{}", t.comment);
    assert!(p.join("sub/f2").exists());
    let r = h.apply("file.directory", &name, args.clone());
    assert_eq!(r.comment, format!("Files cleaned from directory {name}"));
    assert_eq!(r.changes["removed"], json!([format!("{name}/f1"), format!("{name}/sub")]));
    let left: Vec<_> = fs::read_dir(&p).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["keep.me"]);
    h.converged("file.directory", &name, args, &format!("The directory {name} is in the correct state"));

    let r = h.apply("file.directory", &name, json!({"recurse": ["owner"]}));
    assert_eq!(r.comment, "Types for \"recurse\" limited to \"user\", \"group\", \"mode\", \"ignore_files\", \"ignore_dirs\", \"silent\".");
}

#[test]
fn directory_recurses_owners() {
    if !can_chown() {
        eprintln!("skipped: needs root and the nobody user / nogroup group");
        return;
    }
    let h = Host::new();
    let (p, name) = (h.path("d"), h.name("d"));
    fs::create_dir_all(p.join("sub")).unwrap();
    fs::write(p.join("sub/f"), "").unwrap();
    let args = json!({"user": "nobody", "group": "nogroup", "recurse": ["user", "group"]});
    let t = h.test("file.directory", &name, args.clone());
    assert_eq!(t.changes[format!("{name}/sub/f")], json!({"user": "nobody", "group": "nogroup"}));
    assert_eq!(fs::metadata(p.join("sub/f")).unwrap().uid(), 0);
    assert_eq!(h.apply("file.directory", &name, args.clone()).result, Some(true));
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw();
    assert_eq!(fs::metadata(p.join("sub/f")).unwrap().uid(), nobody);
    h.converged("file.directory", &name, args, &format!("The directory {name} is in the correct state"));
}

#[test]
fn absent_converges() {
    let h = Host::new();
    let (f, d) = (h.name("f"), h.name("d"));
    fs::write(h.path("f"), "x").unwrap();
    fs::create_dir_all(h.path("d/sub")).unwrap();
    let t = h.test("file.absent", &f, json!({}));
    assert_eq!(
        (t.result, &t.changes, t.comment.as_str()),
        (None, &json!({"removed": f}), format!("File {f} is set for removal").as_str())
    );
    assert!(h.path("f").exists());
    let r = h.apply("file.absent", &f, json!({}));
    assert_eq!(
        (r.result, &r.changes, r.comment.as_str()),
        (Some(true), &json!({"removed": f}), format!("Removed file {f}").as_str())
    );
    assert!(!h.path("f").exists());
    h.converged("file.absent", &f, json!({}), &format!("File {f} is not present"));
    assert_eq!(h.test("file.absent", &d, json!({})).comment, format!("Directory {d} is set for removal"));
    assert_eq!(h.apply("file.absent", &d, json!({})).comment, format!("Removed directory {d}"));
    assert!(!h.path("d").exists());
    std::os::unix::fs::symlink("/nonexistent", h.path("dangling")).unwrap();
    assert_eq!(h.apply("file.absent", &h.name("dangling"), json!({})).result, Some(true));
    assert!(fs::symlink_metadata(h.path("dangling")).is_err());
    let r = h.apply("file.absent", "/", json!({}));
    assert_eq!((r.result, r.comment.as_str()), (Some(false), "Refusing to make \"/\" absent"));
}

#[test]
fn symlink_converges() {
    let h = Host::new();
    let (l, t1, t2) = (h.name("l"), h.name("t1"), h.name("t2"));
    fs::write(h.path("t1"), "").unwrap();
    let me = nix::unistd::User::from_uid(nix::unistd::Uid::effective()).unwrap().unwrap();
    let owner = format!("{}:{}", me.name, nix::unistd::Group::from_gid(me.gid).unwrap().unwrap().name);
    let t = h.test("file.symlink", &l, json!({"target": t1}));
    assert_eq!((t.result, &t.changes), (None, &json!({"new": l})));
    assert_eq!(t.comment, format!("Symlink {l} to {t1} is set for creation"));
    assert!(fs::symlink_metadata(h.path("l")).is_err());
    let r = h.apply("file.symlink", &l, json!({"target": t1}));
    assert_eq!(
        (r.result, &r.changes, r.comment.as_str()),
        (Some(true), &json!({"new": l}), format!("Created new symlink {l} -> {t1}").as_str())
    );
    assert_eq!(fs::read_link(h.path("l")).unwrap(), h.path("t1"));
    h.converged("file.symlink", &l, json!({"target": t1}), &format!("Symlink {l} is present and owned by {owner}"));

    // Pointed elsewhere: re-pointed.
    let t = h.test("file.symlink", &l, json!({"target": t2}));
    assert_eq!(
        (t.result, &t.changes, t.comment.as_str()),
        (None, &json!({"change": l}), format!("Link {l} target is set to be changed to {t2}").as_str())
    );
    assert_eq!(h.apply("file.symlink", &l, json!({"target": t2})).changes, json!({"new": l}));
    assert_eq!(fs::read_link(h.path("l")).unwrap(), h.path("t2"));

    // A file in the way needs force.
    let f = h.name("f");
    fs::write(h.path("f"), "data").unwrap();
    let r = h.apply("file.symlink", &f, json!({"target": t1}));
    assert_eq!(
        (r.result, r.comment.as_str()),
        (Some(false), format!("File exists where the symlink {f} should be").as_str())
    );
    let t = h.test("file.symlink", &f, json!({"target": t1}));
    assert_eq!(
        t.comment,
        format!("File or directory exists where the symlink {f} should be. Did you mean to use force?")
    );
    assert_eq!(h.test("file.symlink", &f, json!({"target": t1, "force": true})).result, None);
    assert_eq!(read(&h.path("f")), "data");
    assert_eq!(h.apply("file.symlink", &f, json!({"target": t1, "force": true})).result, Some(true));
    assert!(fs::symlink_metadata(h.path("f")).unwrap().file_type().is_symlink());

    // Missing parents.
    let deep = h.name("x/y/l");
    let r = h.apply("file.symlink", &deep, json!({"target": t1}));
    assert_eq!(r.comment, format!("Directory {} for symlink is not present", h.name("x/y")));
    assert_eq!(h.apply("file.symlink", &deep, json!({"target": t1, "makedirs": true})).result, Some(true));

    if can_chown() {
        let args = json!({"target": t1, "user": "nobody", "group": "nogroup"});
        let r = h.apply("file.symlink", &l, args.clone());
        assert_eq!(r.result, Some(true));
        h.converged("file.symlink", &l, args, &format!("Symlink {l} is present and owned by nobody:nogroup"));
        let t = h.test("file.symlink", &l, json!({"target": t1}));
        assert_eq!(t.changes, json!({"ownership": owner}));
        let r = h.apply("file.symlink", &l, json!({"target": t1}));
        assert_eq!(
            (r.comment, r.changes),
            (format!("Set ownership of symlink {l} to {owner}"), json!({"ownership": owner}))
        );
    }
}

#[test]
fn append_converges() {
    let h = Host::new();
    let (p, name) = (h.path("hosts.allow"), h.name("hosts.allow"));
    fs::write(&p, "one\ntwo\n").unwrap();
    let args = json!({"text": ["two", "three", "four"]});
    let diff = "--- \n\n+++ \n\n@@ -1,2 +1,4 @@\n\n one\n two\n+three\n+four";
    let t = h.test("file.append", &name, args.clone());
    assert_eq!(
        (t.result, &t.changes, t.comment.as_str()),
        (None, &json!({"diff": diff}), format!("File {name} is set to be updated").as_str())
    );
    assert_eq!(read(&p), "one\ntwo\n");
    let r = h.apply("file.append", &name, args.clone());
    assert_eq!((r.result, &r.changes, r.comment.as_str()), (Some(true), &json!({"diff": diff}), "Appended 2 lines"));
    assert_eq!(read(&p), "one\ntwo\nthree\nfour\n");
    h.converged("file.append", &name, args.clone(), &format!("File {name} is in correct state"));

    // Break: a line is removed, and the file loses its last newline.
    fs::write(&p, "one\ntwo\nfour").unwrap();
    let r = h.apply("file.append", &name, args.clone());
    assert_eq!(r.comment, "Appended 1 lines");
    assert_eq!(read(&p), "one\ntwo\nfour\nthree\n");

    // Missing file: created; a multi-line text is several lines.
    let new = h.name("new");
    let t = h.test("file.append", &new, json!({"text": "a\nb"}));
    assert_eq!(
        (t.result, &t.changes, t.comment.as_str()),
        (None, &json!({"new": new}), format!("File {new} is set to be created").as_str())
    );
    assert!(!h.path("new").exists());
    let r = h.apply("file.append", &new, json!({"text": "a\nb"}));
    assert_eq!(r.changes, json!({"diff": "--- \n\n+++ \n\n@@ -0,0 +1,2 @@\n\n+a\n+b"}));
    assert_eq!(read(&h.path("new")), "a\nb\n");
    let r = h.apply("file.append", &h.name("no/dir"), json!({"text": "a"}));
    assert_eq!((r.result, r.comment), (Some(false), format!("{}: file not found", h.name("no/dir"))));
    assert_eq!(h.apply("file.append", &h.name("no/dir"), json!({"text": "a", "makedirs": true})).result, Some(true));
}

#[test]
fn replace_converges() {
    let h = Host::new();
    let (p, name) = (h.path("conf"), h.name("conf"));
    fs::write(&p, "a=1\nb=2\n").unwrap();
    let args = json!({"pattern": "^a=.*", "repl": "a=9"});
    let diff = "--- \n+++ \n@@ -1,2 +1,2 @@\n-a=1\n+a=9\n b=2\n";
    let t = h.test("file.replace", &name, args.clone());
    assert_eq!(
        (t.result, &t.changes, t.comment.as_str()),
        (None, &json!({"diff": diff}), "Changes would have been made")
    );
    assert_eq!(read(&p), "a=1\nb=2\n");
    let r = h.apply("file.replace", &name, args.clone());
    assert_eq!((r.result, &r.changes, r.comment.as_str()), (Some(true), &json!({"diff": diff}), "Changes were made"));
    assert_eq!((read(&p).as_str(), read(&h.path("conf.bak")).as_str()), ("a=9\nb=2\n", "a=1\nb=2\n"));
    h.converged("file.replace", &name, args.clone(), "No changes needed to be made");
    fs::write(&p, "a=2\nb=2\n").unwrap();
    assert_eq!(h.apply("file.replace", &name, args).result, Some(true));
    assert_eq!(read(&p), "a=9\nb=2\n");

    let args =
        json!({"pattern": "^c=.*", "repl": "c=3", "append_if_not_found": true, "backup": false, "show_changes": false});
    let r = h.apply("file.replace", &name, args.clone());
    assert_eq!(r.changes, json!({"diff": true}));
    assert_eq!(read(&p), "a=9\nb=2\nc=3\n");
    h.converged("file.replace", &name, args, "No changes needed to be made");

    let missing = h.name("missing");
    let r = h.apply("file.replace", &missing, json!({"pattern": "x", "repl": "y"}));
    assert_eq!((r.result, r.comment), (Some(false), format!("{missing}: file not found")));
    h.converged(
        "file.replace",
        &missing,
        json!({"pattern": "x", "repl": "y", "ignore_if_missing": true}),
        "No changes needed to be made",
    );
    let r = h.apply("file.replace", &name, json!({"pattern": "(", "repl": "y"}));
    assert_eq!(r.result, Some(false));
    assert!(r.comment.contains("Invalid regular expression"), "{}", r.comment);
}

#[test]
fn line_converges() {
    let h = Host::new();
    let (p, name) = (h.path("conf"), h.name("conf"));
    fs::write(&p, "a=1\nb=2\nc=3\n").unwrap();
    let args = json!({"content": "x=0", "mode": "ensure", "after": "a=1"});
    let diff = "--- \n+++ \n@@ -1,3 +1,4 @@\n a=1\n+x=0\n b=2\n c=3\n";
    let t = h.test("file.line", &name, args.clone());
    assert_eq!((t.result, &t.changes, t.comment.as_str()), (None, &json!({"diff": diff}), "Changes would be made"));
    assert_eq!(read(&p), "a=1\nb=2\nc=3\n");
    let r = h.apply("file.line", &name, args.clone());
    assert_eq!((r.result, &r.changes, r.comment.as_str()), (Some(true), &json!({"diff": diff}), "Changes were made"));
    h.converged("file.line", &name, args.clone(), "No changes needed to be made");
    fs::write(&p, "a=1\nb=2\nc=3\n").unwrap();
    assert_eq!(h.apply("file.line", &name, args).changes, json!({"diff": diff}));

    let steps = [
        (json!({"content": "b=5", "mode": "replace", "match": "^b="}), "a=1\nx=0\nb=5\nc=3\n"),
        (json!({"mode": "delete", "match": "^c="}), "a=1\nx=0\nb=5\n"),
        (json!({"content": "#top", "mode": "insert", "location": "start"}), "#top\na=1\nx=0\nb=5\n"),
        (json!({"content": "z=9", "mode": "insert", "location": "end"}), "#top\na=1\nx=0\nb=5\nz=9\n"),
        (json!({"content": "y=8", "mode": "insert", "before": "^z="}), "#top\na=1\nx=0\nb=5\ny=8\nz=9\n"),
    ];
    for (args, want) in steps {
        assert_eq!(h.apply("file.line", &name, args.clone()).result, Some(true), "{args}");
        assert_eq!(read(&p), want, "{args}");
        h.converged("file.line", &name, args, "No changes needed to be made");
    }
    let r = h.apply("file.line", &name, json!({"content": "q", "mode": "insert", "after": "nothing"}));
    assert_eq!((r.result, r.comment.as_str()), (Some(false), "Neither before or after was found in file"));
    let r = h.apply("file.line", &name, json!({"content": "q"}));
    assert_eq!(r.comment, "Mode was not defined. How to process the file?");

    let missing = h.name("missing");
    let r = h.apply("file.line", &missing, json!({"content": "q", "mode": "insert", "location": "end"}));
    assert_eq!((r.result, r.comment), (Some(false), format!("{missing}: file not found")));
    let args = json!({"content": "q", "mode": "insert", "location": "end", "create": true});
    assert_eq!(h.test("file.line", &missing, args.clone()).result, None);
    assert!(!h.path("missing").exists());
    assert_eq!(h.apply("file.line", &missing, args.clone()).result, Some(true));
    assert_eq!(read(&h.path("missing")), "q\n");
    h.converged("file.line", &missing, args, "No changes needed to be made");
}

#[test]
fn recurse_converges() {
    let h = Host::new();
    h.srv("app/a.conf", "line1\nline2\n");
    h.srv("app/sub/s.txt", "sub\n");
    h.srv("app/t.j2", "role={{ pillar.role }}\n");
    h.srv("application/other", "not part of app\n");
    let (p, name) = (h.path("app"), h.name("app"));
    let args = json!({"source": "salt://app", "file_mode": 640, "clean": true, "template": "jinja"});

    let t = h.test("file.recurse", &name, args.clone());
    assert_eq!(t.result, None);
    assert_eq!(t.changes[&name], json!({ &name: {"directory": "new"} }));
    assert_eq!(t.changes[format!("{name}/sub/s.txt")], json!({"newfile": format!("{name}/sub/s.txt")}));
    assert!(
        t.comment.starts_with(&format!(
            "#### {name} ####\nThe following files will be changed:\n{name}: directory - new\n\n\n"
        )),
        "{}",
        t.comment
    );
    assert!(!p.exists());

    let r = h.apply("file.recurse", &name, args.clone());
    assert_eq!((r.result, r.comment.as_str()), (Some(true), format!("Recursively updated {name}").as_str()), "{r:?}");
    assert_eq!(r.changes[format!("{name}/a.conf")], json!({"diff": "New file", "mode": "0640"}));
    assert_eq!(r.changes[format!("{name}/sub")], json!({ format!("{name}/sub"): {"directory": "new"} }));
    assert_eq!(read(&p.join("t.j2")), "role=web\n");
    assert_eq!(read(&p.join("sub/s.txt")), "sub\n");
    assert_eq!(mode_of(&p.join("a.conf")), 0o640);
    assert!(!p.join("other").exists(), "a sibling directory with a longer name is not part of the source");
    h.converged("file.recurse", &name, args.clone(), &format!("The directory {name} is in the correct state"));

    // Break: edit a file, chmod one, add strays.
    fs::write(p.join("a.conf"), "changed\n").unwrap();
    chmod(&p.join("sub/s.txt"), 0o666);
    fs::write(p.join("stray"), "").unwrap();
    fs::create_dir_all(p.join("straydir/x")).unwrap();
    let t = h.test("file.recurse", &name, args.clone());
    assert_eq!(t.result, None);
    assert_eq!(
        t.changes[format!("{name}/a.conf")],
        json!({"diff": "--- \n+++ \n@@ -1 +1,2 @@\n-changed\n+line1\n+line2\n"})
    );
    assert!(
        t.comment.ends_with(&format!("#### removed ####\n{name}/stray\n{name}/straydir\n{name}/straydir/x")),
        "{}",
        t.comment
    );
    assert!(p.join("stray").exists());
    let r = h.apply("file.recurse", &name, args.clone());
    assert_eq!(r.changes[format!("{name}/sub/s.txt")], json!({"mode": "0640"}));
    assert_eq!(r.changes["removed"], json!([format!("{name}/stray"), format!("{name}/straydir")]));
    assert_eq!(read(&p.join("a.conf")), "line1\nline2\n");
    assert!(!p.join("stray").exists() && !p.join("straydir").exists());
    h.converged("file.recurse", &name, args, &format!("The directory {name} is in the correct state"));

    // exclude_pat skips files of the source and keeps them in the target.
    let other = h.name("other");
    let r = h.apply("file.recurse", &other, json!({"source": "salt://app", "exclude_pat": "*.j2"}));
    assert_eq!(r.result, Some(true));
    assert!(!h.path("other/t.j2").exists() && h.path("other/a.conf").exists());

    let r = h.apply("file.recurse", &other, json!({"source": "salt://nope"}));
    assert_eq!(
        (r.result, r.comment.as_str()),
        (Some(false), "Recurse failed: none of the specified sources were found")
    );
    let r = h.apply("file.recurse", &other, json!({"source": "salt://app/a.conf"}));
    assert_eq!(r.comment, "The directory 'app/a.conf' does not exist on the salt fileserver in saltenv 'base'");
    let r = h.apply("file.recurse", &other, json!({"source": "/etc"}));
    assert_eq!(r.comment, "Invalid source '/etc' (must be a salt:// URI)");
}

#[test]
fn exists_and_missing_check_only() {
    let h = Host::new();
    let name = h.name("f");
    let r = h.apply("file.exists", &name, json!({}));
    assert_eq!((r.result, r.comment), (Some(false), format!("Specified path {name} does not exist")));
    h.converged("file.missing", &name, json!({}), &format!("Path {name} is missing"));
    fs::write(h.path("f"), "").unwrap();
    h.converged("file.exists", &name, json!({}), &format!("Path {name} exists"));
    let r = h.test("file.missing", &name, json!({}));
    assert_eq!((r.result, r.comment), (Some(false), format!("Specified path {name} exists")));
}

#[test]
fn touch_converges_with_times() {
    let h = Host::new();
    let (p, name) = (h.path("t"), h.name("t"));
    let t = h.test("file.touch", &name, json!({}));
    assert_eq!(
        (t.result, &t.changes, t.comment.as_str()),
        (None, &json!({"new": name}), format!("File {name} is set to be created").as_str())
    );
    assert!(!p.exists());
    let r = h.apply("file.touch", &name, json!({}));
    assert_eq!(
        (r.result, &r.changes, r.comment.as_str()),
        (Some(true), &json!({"new": name}), format!("Created empty file {name}").as_str())
    );
    // Without times, touching again updates them (as touch(1) does).
    let r = h.apply("file.touch", &name, json!({}));
    assert_eq!((r.changes, r.comment), (json!({"touched": name}), format!("Updated times on file {name}")));

    let args = json!({"atime": 1000, "mtime": 2000});
    let t = h.test("file.touch", &name, args.clone());
    assert_eq!((t.result, t.comment), (None, format!("Times set to be updated on file {name}")));
    assert_ne!(fs::metadata(&p).unwrap().mtime(), 2000);
    assert_eq!(h.apply("file.touch", &name, args.clone()).changes, json!({"touched": name}));
    let m = fs::metadata(&p).unwrap();
    assert_eq!((m.atime(), m.mtime()), (1000, 2000));
    h.converged("file.touch", &name, args.clone(), &format!("File {name} exists and has the correct times"));
    fs::write(&p, "x").unwrap();
    assert_eq!(h.apply("file.touch", &name, args).changes, json!({"touched": name}));
    assert_eq!(fs::metadata(&p).unwrap().mtime(), 2000);

    let deep = h.name("x/y");
    let r = h.apply("file.touch", &deep, json!({}));
    assert_eq!((r.result, r.comment), (Some(false), format!("Directory not present to touch file {deep}")));
    assert_eq!(h.apply("file.touch", &deep, json!({"makedirs": true})).result, Some(true));
}

#[test]
fn copy_converges() {
    let h = Host::new();
    let (src, dst) = (h.name("src"), h.name("dst"));
    fs::write(h.path("src"), "one\n").unwrap();
    chmod(&h.path("src"), 0o640);
    let t = h.test("file.copy", &dst, json!({"source": src}));
    assert_eq!((t.result, t.comment), (None, format!("File \"{src}\" is set to be copied to \"{dst}\"")));
    assert!(!h.path("dst").exists());
    let r = h.apply("file.copy", &dst, json!({"source": src}));
    assert_eq!(
        (r.result, &r.changes, r.comment.as_str()),
        (Some(true), &json!({ &dst: src }), format!("Copied \"{src}\" to \"{dst}\"").as_str())
    );
    assert_eq!((read(&h.path("dst")).as_str(), mode_of(&h.path("dst"))), ("one\n", 0o640));
    h.converged(
        "file.copy",
        &dst,
        json!({"source": src}),
        &format!("The target file \"{dst}\" exists and will not be overwritten"),
    );

    // The source changes: only force copies it again; an identical copy is left alone.
    fs::write(h.path("src"), "two\n").unwrap();
    h.converged(
        "file.copy",
        &dst,
        json!({"source": src}),
        &format!("The target file \"{dst}\" exists and will not be overwritten"),
    );
    assert_eq!(read(&h.path("dst")), "one\n");
    let args = json!({"source": src, "force": true});
    assert_eq!(h.test("file.copy", &dst, args.clone()).result, None);
    assert_eq!(h.apply("file.copy", &dst, args.clone()).changes, json!({ &dst: src }));
    assert_eq!(read(&h.path("dst")), "two\n");
    h.converged("file.copy", &dst, args, &format!("The target file \"{dst}\" is already a copy of \"{src}\""));

    // A mode is kept on an existing copy too.
    let args = json!({"source": src, "mode": 600});
    assert_eq!(h.apply("file.copy", &dst, args.clone()).changes, json!({"mode": "0600"}));
    h.converged("file.copy", &dst, args, &format!("The target file \"{dst}\" exists and will not be overwritten"));

    let r = h.apply("file.copy", &h.name("x"), json!({"source": h.name("nope")}));
    assert_eq!((r.result, r.comment), (Some(false), format!("Source file \"{}\" is not present", h.name("nope"))));
    let deep = h.name("a/b");
    let r = h.apply("file.copy", &deep, json!({"source": src}));
    assert_eq!(r.comment, format!("The target directory {} is not present", h.name("a")));
    assert_eq!(h.apply("file.copy", &deep, json!({"source": src, "makedirs": true})).result, Some(true));

    // Directories are copied whole.
    fs::create_dir_all(h.path("tree/sub")).unwrap();
    fs::write(h.path("tree/sub/f"), "f").unwrap();
    let copy = h.name("tree2");
    assert_eq!(h.apply("file.copy", &copy, json!({"source": h.name("tree")})).result, Some(true));
    assert_eq!(read(&h.path("tree2/sub/f")), "f");
    h.converged(
        "file.copy",
        &copy,
        json!({"source": h.name("tree"), "force": true}),
        &format!("The target file \"{copy}\" is already a copy of \"{}\"", h.name("tree")),
    );
}

#[test]
fn file_states_run_from_an_sls() {
    let h = Host::new();
    let work = h.path("");
    h.srv(
        "site/init.sls",
        &format!(
            "{{% set dir = '{}' %}}\n\
             site-dir:\n  file.directory:\n    - name: {{{{ dir }}}}/site\n    - mode: 755\n\
             site-conf:\n  file.managed:\n    - name: {{{{ dir }}}}/site/site.conf\n    - source: salt://site/site.conf.j2\n    - template: jinja\n    - require:\n      - file: site-dir\n\
             site-link:\n  file.symlink:\n    - name: {{{{ dir }}}}/current\n    - target: {{{{ dir }}}}/site\n",
            work.display().to_string().trim_end_matches('/')
        ),
    );
    h.srv("site/site.conf.j2", "host={{ grains.id }}\n");
    let run = |test: bool| {
        let mut kw = Map::new();
        kw.insert("test".into(), test.into());
        let out = brine_states::exec::call("state.apply", &h.exec, vec![Value::String("site".into())], kw).unwrap();
        out.ret.as_object().unwrap().clone()
    };
    let results = |m: &Map| -> Vec<(String, Value)> {
        let mut v: Vec<_> =
            m.values().map(|r| (r["__id__"].as_str().unwrap().to_string(), r["result"].clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let t = run(true);
    assert_eq!(
        results(&t),
        [("site-conf".into(), Value::Null), ("site-dir".into(), Value::Null), ("site-link".into(), Value::Null)]
    );
    assert!(!h.path("site").exists());
    let r = run(false);
    assert_eq!(
        results(&r),
        [("site-conf".into(), json!(true)), ("site-dir".into(), json!(true)), ("site-link".into(), json!(true))]
    );
    assert_eq!(read(&h.path("current/site.conf")), "host=m1\n");
    let again = run(false);
    assert!(again.values().all(|r| r["changes"] == json!({}) && r["result"] == json!(true)), "{again:?}");
}
