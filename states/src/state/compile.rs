//! From SLS files to low chunks.
//!
//! Each SLS is rendered, parsed and turned into declarations (`id` → state functions
//! with arguments). `include` pulls in other SLS files, `extend` amends declarations
//! of included files, `exclude` drops some, and `names` expands one declaration into
//! several. The result is one [`Chunk`] per id, state function and name, in the order
//! Salt gives them (declarations numbered in file order as they are rendered).

use super::lookup;
use crate::files::{FileError, FileSource};
use crate::sls::render::{render_jinja, RenderContext, TemplateSource};
use crate::sls::yaml::{self, Kind, Node};
use brine_proto::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// A compile error, pointing at the SLS file, line and column where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (true, _) => f.write_str(&self.message),
            (false, 0) => write!(f, "{}: {}", self.file, self.message),
            (false, line) => write!(f, "{}:{line}:{}: {}", self.file, self.col, self.message),
        }
    }
}

impl std::error::Error for CompileError {}

/// The requisite relations, as Salt names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReqBase {
    Require,
    Watch,
    Onchanges,
    Onfail,
    Prereq,
    Use,
    Listen,
}

/// A requisite kind: the relation and its `_any`/`_all` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReqKind {
    pub base: ReqBase,
    /// `_any`: one satisfied target is enough.
    pub any: bool,
    /// `onfail_all`: every target must have failed.
    pub all: bool,
}

impl ReqKind {
    /// Parses a requisite argument name; the bool says whether it is an `_in` form.
    pub fn parse(key: &str) -> Option<(ReqKind, bool)> {
        let (key, inverted) = match key.strip_suffix("_in") {
            Some(k) => (k, true),
            None => (key, false),
        };
        let (key, any, all) = if let Some(k) = key.strip_suffix("_any") {
            (k, true, false)
        } else if let Some(k) = key.strip_suffix("_all") {
            (k, false, true)
        } else {
            (key, false, false)
        };
        let base = match key {
            "require" => ReqBase::Require,
            "watch" => ReqBase::Watch,
            "onchanges" => ReqBase::Onchanges,
            "onfail" => ReqBase::Onfail,
            "prereq" => ReqBase::Prereq,
            "use" => ReqBase::Use,
            "listen" => ReqBase::Listen,
            _ => return None,
        };
        if all && base != ReqBase::Onfail {
            return None;
        }
        Some((ReqKind { base, any, all }, inverted))
    }

    /// The name Salt uses in messages (`require`, `onchanges_any`).
    pub fn word(&self) -> String {
        let base = match self.base {
            ReqBase::Require => "require",
            ReqBase::Watch => "watch",
            ReqBase::Onchanges => "onchanges",
            ReqBase::Onfail => "onfail",
            ReqBase::Prereq => "prereq",
            ReqBase::Use => "use",
            ReqBase::Listen => "listen",
        };
        match (self.any, self.all) {
            (true, _) => format!("{base}_any"),
            (_, true) => format!("{base}_all"),
            _ => base.to_string(),
        }
    }
}

/// What a requisite points at: `module: pattern`, where module is a state module
/// (`file`), `id` (any module) or `sls` (every state of an SLS).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReqTarget {
    pub module: String,
    pub pattern: String,
    /// Written as a bare id (`- foo`) rather than `- module: foo`.
    pub bare: bool,
}

impl fmt::Display for ReqTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.module, self.pattern)
    }
}

/// One state function call: the unit the engine orders and runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The declaration's id (`__id__`).
    pub id: String,
    /// The `name` argument (the id unless given, or one of `names`).
    pub name: String,
    /// The state module (`file`).
    pub module: String,
    /// The function (`managed`).
    pub fun: String,
    pub sls: String,
    pub env: String,
    /// Arguments for the state function.
    pub args: Map,
    /// Requisites declared on this chunk.
    pub reqs: Vec<(ReqKind, ReqTarget)>,
    /// `_in` requisites declared on this chunk, pointing the other way.
    pub reqs_in: Vec<(ReqKind, ReqTarget)>,
    /// The explicit `order`, if any (a number, `first` or `last`).
    pub order: Option<Value>,
    /// The declaration's number in render order (Salt's automatic order).
    pub auto_order: u64,
    /// Position among `names`.
    pub name_order: Option<usize>,
    pub failhard: bool,
    /// `onlyif`, `unless`, `creates` (run by the engine).
    pub onlyif: Vec<Value>,
    pub unless: Vec<Value>,
    pub creates: Vec<String>,
    /// Salt's `retry`: run again until the result is the one wanted.
    pub retry: Option<Retry>,
    /// Where it was declared.
    pub file: String,
    pub line: usize,
}

/// Salt's `retry` argument: run a state again, up to `attempts` runs in all, while
/// its result is not `until`, waiting `interval` seconds (plus up to `splay`) between
/// runs. `retry: True` is 2 attempts, 30 seconds apart, until True.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub until: bool,
    pub interval: f64,
    pub splay: f64,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry { attempts: 2, until: true, interval: 30.0, splay: 0.0 }
    }
}

impl Retry {
    /// Reads `retry: True|False|{attempts, until, interval, splay}`.
    pub fn parse(v: &Value) -> Result<Retry, String> {
        let seconds = |key: &str, v: &Value| match v.as_f64() {
            Some(s) if (0.0..=86_400.0).contains(&s) => Ok(s),
            _ => Err(format!("retry: {key} must be a number of seconds from 0 to 86400, not {v}")),
        };
        match v {
            Value::Bool(true) => Ok(Retry::default()),
            Value::Bool(false) => Ok(Retry { attempts: 0, ..Retry::default() }),
            Value::Object(m) => {
                let mut r = Retry::default();
                for (k, v) in m {
                    match k.as_str() {
                        "attempts" => {
                            r.attempts =
                                v.as_u64().filter(|n| *n <= 10_000).ok_or_else(|| {
                                    format!("retry: attempts must be a whole number up to 10000, not {v}")
                                })? as u32
                        }
                        "until" => {
                            r.until =
                                v.as_bool().ok_or_else(|| format!("retry: until must be True or False, not {v}"))?
                        }
                        "interval" => r.interval = seconds("interval", v)?,
                        "splay" => r.splay = seconds("splay", v)?,
                        other => {
                            return Err(format!("retry: unknown key {other:?} (use attempts, until, interval, splay)"))
                        }
                    }
                }
                Ok(r)
            }
            other => {
                Err(format!("retry must be True, False or a map of attempts, until, interval, splay; not {other}"))
            }
        }
    }
}

impl Chunk {
    /// The key of this chunk in a state run's results.
    pub fn key(&self) -> String {
        format!("{}_|-{}_|-{}_|-{}", self.module, self.id, self.name, self.fun)
    }

    /// `module.function`.
    pub fn function(&self) -> String {
        format!("{}.{}", self.module, self.fun)
    }
}

/// Arguments that control the engine rather than the state function.
const CONTROL: &[&str] = &[
    "name",
    "names",
    "order",
    "failhard",
    "onlyif",
    "unless",
    "creates",
    "check_cmd",
    "reload_modules",
    "reload_grains",
    "reload_pillar",
    "retry",
    "parallel",
    "fire_event",
    "state_id",
    "__env__",
    "__sls__",
];

/// The first declaration number Salt uses (explicit orders below it run first).
const FIRST_AUTO_ORDER: u64 = 10_000;

/// Where the SLS text and imported templates come from, and what rendering sees.
pub struct Loader<'a> {
    pub files: &'a Arc<dyn FileSource>,
    pub render: RenderContext,
}

impl<'a> Loader<'a> {
    /// A loader of the `base` environment's trees that renders with the grains and
    /// pillar of `ctx`, and runs `salt[...]` calls with `ctx`.
    pub fn new(files: &'a Arc<dyn FileSource>, ctx: &crate::exec::Context) -> Loader<'a> {
        Loader {
            files,
            render: RenderContext {
                grains: ctx.grains.clone(),
                pillar: ctx.pillar.clone(),
                opts: Map::new(),
                saltenv: "base".into(),
                sls: String::new(),
                slspath: String::new(),
                extra: Map::new(),
                exec: ctx.clone(),
            },
        }
    }
}

struct FileTemplates {
    files: Arc<dyn FileSource>,
    env: String,
}

impl TemplateSource for FileTemplates {
    fn template(&self, path: &str) -> Option<String> {
        let bytes = self.files.read(&self.env, path).ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// One declared state function of an id, before `names` expansion.
#[derive(Debug, Clone)]
struct Decl {
    module: String,
    fun: Option<String>,
    /// Arguments in order: (name, value, line).
    args: Vec<(String, Node)>,
    auto_order: u64,
    line: usize,
}

#[derive(Debug, Clone)]
struct IdDecl {
    sls: String,
    file: String,
    decls: Vec<Decl>,
}

/// The high data of a run: every id, in declaration order.
#[derive(Default)]
struct High {
    order: Vec<String>,
    ids: HashMap<String, IdDecl>,
    extends: Vec<(String, String, Node)>, // (sls, file, body)
    excludes: Vec<(String, String)>,      // (kind, value)
    next_order: u64,
    loaded: HashSet<String>,
}

fn err(file: &str, node: Option<&Node>, message: impl Into<String>) -> CompileError {
    let (line, col) = node.map_or((0, 0), |n| (n.pos.line, n.pos.col));
    CompileError { file: file.to_string(), line, col, message: message.into() }
}

/// The path of an SLS name: `web.app` → `web/app.sls`, else `web/app/init.sls`.
fn sls_candidates(name: &str) -> [String; 2] {
    let base = name.replace('.', "/");
    [format!("{base}.sls"), format!("{base}/init.sls")]
}

/// Resolves `.sibling` / `..parent` includes against the including SLS.
fn resolve_include(current: &str, current_is_init: bool, inc: &str) -> String {
    if !inc.starts_with('.') {
        return inc.to_string();
    }
    let dots = inc.chars().take_while(|c| *c == '.').count();
    let rest = &inc[dots..];
    let mut parts: Vec<&str> = current.split('.').collect();
    // `.x` in `web` (web/init.sls) is `web.x`; in `web.app` it is `web.x`.
    if !current_is_init {
        parts.pop();
    }
    for _ in 1..dots {
        parts.pop();
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts.join(".")
}

impl Loader<'_> {
    /// Renders and parses one SLS; returns its file name, whether it is an `init.sls`,
    /// and its top node.
    fn load(&self, env: &str, sls: &str) -> Result<(String, bool, Option<Node>), CompileError> {
        let mut found = None;
        for (i, cand) in sls_candidates(sls).iter().enumerate() {
            match self.files.read(env, cand) {
                Ok(bytes) => {
                    found = Some((cand.clone(), i == 1, bytes));
                    break;
                }
                Err(FileError::NotFound { .. }) => {}
                Err(e) => return Err(err(cand, None, e.to_string())),
            }
        }
        let Some((file, is_init, bytes)) = found else {
            return Err(err("", None, format!("No matching sls found for '{sls}' in env '{env}'")));
        };
        let text = String::from_utf8(bytes).map_err(|_| err(&file, None, "the file is not UTF-8 text"))?;
        let first = text.lines().next().unwrap_or_default();
        let renderers = first.strip_prefix("#!").map(|r| r.trim().to_string()).unwrap_or_else(|| "jinja|yaml".into());
        let body = if first.starts_with("#!") {
            text.split_once('\n').map_or("", |(_, b)| b).to_string()
        } else {
            text.clone()
        };
        let rendered = match renderers.as_str() {
            "jinja|yaml" | "jinja | yaml" | "yaml_jinja" => {
                let mut ctx = self.render.clone();
                ctx.saltenv = env.to_string();
                ctx.sls = sls.to_string();
                ctx.slspath = file.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_string());
                let source: Arc<dyn TemplateSource> =
                    Arc::new(FileTemplates { files: self.files.clone(), env: env.to_string() });
                render_jinja(&file, &body, &ctx, Some(source)).map_err(|e| CompileError {
                    file: file.clone(),
                    line: e.line.unwrap_or(0),
                    col: 0,
                    message: e.to_string(),
                })?
            }
            "yaml" => body,
            other => {
                return Err(err(&file, None, format!("renderer {other:?} is not supported (use jinja|yaml or yaml)")))
            }
        };
        let node = yaml::parse(&rendered).map_err(|e| CompileError {
            file: file.clone(),
            line: e.pos.line,
            col: e.pos.col,
            message: format!("YAML error: {}", e.message),
        })?;
        Ok((file, is_init, node))
    }

    /// Renders the SLS files named (and what they include) into low chunks.
    pub fn compile(&self, env: &str, sls_names: &[String]) -> Result<Vec<Chunk>, Vec<CompileError>> {
        let mut high = High { next_order: FIRST_AUTO_ORDER, ..High::default() };
        let mut errors = Vec::new();
        for sls in sls_names {
            self.add_sls(env, sls, &mut high, &mut errors);
        }
        apply_extends(&mut high, &mut errors);
        apply_excludes(&mut high);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut chunks = Vec::new();
        for id in &high.order {
            let decl = &high.ids[id];
            if let Err(e) = chunks_of(id, decl, env, &mut chunks) {
                errors.push(e);
            }
        }
        errors.extend(recursive_requisites(&high));
        errors.extend(check_requisites(&chunks, env));
        if errors.is_empty() {
            Ok(chunks)
        } else {
            Err(errors)
        }
    }

    fn add_sls(&self, env: &str, sls: &str, high: &mut High, errors: &mut Vec<CompileError>) {
        if !high.loaded.insert(sls.to_string()) {
            return;
        }
        let (file, is_init, node) = match self.load(env, sls) {
            Ok(l) => l,
            Err(e) => return errors.push(e),
        };
        let Some(node) = node else { return };
        let Some(pairs) = node.as_map() else {
            return errors.push(err(&file, Some(&node), format!("SLS '{sls}' does not render to a dictionary")));
        };
        // Included files are ordered before the file that includes them.
        let mut includes = Vec::new();
        for (k, v) in pairs.iter().filter(|(k, _)| k.key_string() == "include") {
            match v.as_seq() {
                Some(items) => {
                    for item in items {
                        let name = match &item.kind {
                            Kind::Scalar(Value::String(s)) => s.clone(),
                            Kind::Map(p) if p.len() == 1 => p[0].0.key_string(),
                            _ => {
                                errors.push(err(&file, Some(item), "an include must be an SLS name"));
                                continue;
                            }
                        };
                        includes.push((resolve_include(sls, is_init, &name), k.clone()));
                    }
                }
                None => errors.push(err(&file, Some(v), "include must be a list of SLS names")),
            }
        }
        for (inc, node) in includes {
            if !self.exists(env, &inc) {
                errors.push(err(
                    &file,
                    Some(&node),
                    format!("Specified SLS {inc} in saltenv {env} is not available on the salt master or through a configured fileserver"),
                ));
                continue;
            }
            self.add_sls(env, &inc, high, errors);
        }
        for (k, v) in pairs {
            let key = k.key_string();
            match key.as_str() {
                "include" => {}
                "extend" => match v.as_map() {
                    Some(ext) => {
                        for (id, body) in ext {
                            high.extends.push((
                                sls.to_string(),
                                file.clone(),
                                Node { pos: id.pos, kind: Kind::Map(vec![(id.clone(), body.clone())]) },
                            ));
                        }
                    }
                    None => errors.push(err(&file, Some(v), "extend must be a dictionary of IDs")),
                },
                "exclude" => {
                    for item in v.as_seq().unwrap_or_default() {
                        match item.as_map() {
                            Some([(k, val)]) => high
                                .excludes
                                .push((k.key_string(), val.to_value().as_str().unwrap_or_default().to_string())),
                            _ => match item.as_str() {
                                Some(s) => high.excludes.push(("sls".into(), s.to_string())),
                                None => {
                                    errors.push(err(&file, Some(item), "an exclude must be `sls: NAME` or `id: ID`"))
                                }
                            },
                        }
                    }
                }
                _ if key.starts_with("__") => {}
                _ => match parse_id(&file, sls, k, v, &mut high.next_order) {
                    Ok(decl) => {
                        if let Some(prev) = high.ids.get(&key) {
                            errors.push(err(
                                &file,
                                Some(k),
                                format!(
                                    "Detected conflicting IDs, SLS IDs need to be globally unique.\n    The conflicting ID is '{key}' and is found in SLS '{env}:{}' and SLS '{env}:{sls}'",
                                    prev.sls
                                ),
                            ));
                        } else {
                            high.order.push(key.clone());
                            high.ids.insert(key, decl);
                        }
                    }
                    Err(e) => errors.push(e),
                },
            }
        }
    }

    /// Whether the SLS exists in `env`.
    fn exists(&self, env: &str, sls: &str) -> bool {
        sls_candidates(sls).iter().any(|c| self.files.read(env, c).is_ok())
    }
}

/// Parses one id's declaration: `id: {module.fun: [args]}` or `id: {module: [fun, args]}`.
fn parse_id(file: &str, sls: &str, key: &Node, body: &Node, next_order: &mut u64) -> Result<IdDecl, CompileError> {
    let id = key.key_string();
    let mut decls = Vec::new();
    let pairs: Vec<(Node, Node)> = match &body.kind {
        Kind::Map(p) => p.clone(),
        // `id: pkg.installed` is a declaration without arguments.
        Kind::Scalar(Value::String(s)) if s.contains('.') => {
            vec![(
                Node { pos: body.pos, kind: Kind::Scalar(Value::String(s.clone())) },
                Node { pos: body.pos, kind: Kind::Seq(vec![]) },
            )]
        }
        _ => {
            return Err(err(file, Some(key), format!("ID '{id}' in SLS '{sls}' is not a dictionary")));
        }
    };
    for (mk, mv) in pairs {
        let mkey = mk.key_string();
        if mkey.starts_with("__") {
            continue;
        }
        let (module, mut fun) = match mkey.split_once('.') {
            Some((m, f)) => (m.to_string(), Some(f.to_string())),
            None => (mkey.clone(), None),
        };
        let items: Vec<Node> = match &mv.kind {
            Kind::Seq(items) => items.clone(),
            Kind::Scalar(Value::Null) => Vec::new(),
            _ => return Err(err(file, Some(&mv), format!("State '{id}' in SLS '{sls}' is not formed as a list"))),
        };
        let mut args = Vec::new();
        for item in items {
            match &item.kind {
                Kind::Scalar(Value::String(s)) => {
                    if fun.is_some() {
                        return Err(err(
                            file,
                            Some(&item),
                            format!("Too many functions declared in state '{mkey}' in SLS '{sls}'"),
                        ));
                    }
                    fun = Some(s.clone());
                }
                Kind::Map(p) if p.len() == 1 => args.push((p[0].0.key_string(), p[0].1.clone())),
                _ => {
                    return Err(err(
                        file,
                        Some(&item),
                        format!(
                            "State '{id}' in SLS '{sls}': an argument must be `name: value`, not {}",
                            item.type_name()
                        ),
                    ))
                }
            }
        }
        let Some(fun) = fun else {
            return Err(err(file, Some(&mk), format!("No function declared in state '{mkey}' in SLS '{sls}'")));
        };
        let function = format!("{module}.{fun}");
        if lookup(&function).is_none() {
            return Err(err(file, Some(&mk), format!("State '{function}' was not found in SLS '{sls}'")));
        }
        decls.push(Decl { module, fun: Some(fun), args, auto_order: *next_order, line: mk.pos.line });
        *next_order += 1;
    }
    Ok(IdDecl { sls: sls.to_string(), file: file.to_string(), decls })
}

fn apply_extends(high: &mut High, errors: &mut Vec<CompileError>) {
    for (sls, file, node) in std::mem::take(&mut high.extends) {
        let Some([(idk, body)]) = node.as_map() else { continue };
        let id = idk.key_string();
        let Some(target) = high.ids.get_mut(&id) else {
            errors.push(err(
                &file,
                Some(idk),
                format!("Cannot extend ID '{id}' in 'base:{sls}'. It is not part of the high state."),
            ));
            continue;
        };
        let mut ignored = 0;
        let ext = match parse_id(&file, &sls, idk, body, &mut ignored) {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for edecl in ext.decls {
            match target.decls.iter_mut().find(|d| d.module == edecl.module) {
                Some(d) => {
                    for (k, v) in edecl.args {
                        let is_req = ReqKind::parse(&k).is_some();
                        match d.args.iter_mut().find(|(dk, _)| *dk == k) {
                            // Requisites are added to; everything else is replaced.
                            Some((_, dv)) if is_req => {
                                if let (Kind::Seq(a), Kind::Seq(b)) = (&mut dv.kind, &v.kind) {
                                    a.extend(b.iter().cloned());
                                } else {
                                    *dv = v;
                                }
                            }
                            Some((_, dv)) => *dv = v,
                            None => d.args.push((k, v)),
                        }
                    }
                }
                None => target.decls.push(edecl),
            }
        }
    }
}

fn apply_excludes(high: &mut High) {
    for (kind, value) in std::mem::take(&mut high.excludes) {
        let gone: Vec<String> = high
            .order
            .iter()
            .filter(|id| match kind.as_str() {
                "id" => **id == value,
                _ => high.ids[*id].sls == value || high.ids[*id].sls.starts_with(&format!("{value}.")),
            })
            .cloned()
            .collect();
        for id in gone {
            high.ids.remove(&id);
            high.order.retain(|i| *i != id);
        }
    }
}

/// Parses a requisite list: `[{file: /etc/x}, {sls: web}, "some-id"]`.
fn parse_reqs(file: &str, kind: ReqKind, node: &Node) -> Result<Vec<(ReqKind, ReqTarget)>, CompileError> {
    let items: Vec<Node> = match &node.kind {
        Kind::Seq(items) => items.clone(),
        // A single requisite without the list is accepted too.
        _ => vec![node.clone()],
    };
    let mut out = Vec::new();
    for item in items {
        match &item.kind {
            Kind::Scalar(Value::String(s)) => {
                out.push((kind, ReqTarget { module: "id".into(), pattern: s.clone(), bare: true }))
            }
            Kind::Map(p) if p.len() == 1 => {
                let pattern = match &p[0].1.kind {
                    Kind::Scalar(Value::String(s)) => s.clone(),
                    Kind::Scalar(v) => v.to_string(),
                    _ => {
                        return Err(err(
                            file,
                            Some(&item),
                            format!("Invalid requisite in {}: the target must be a string", kind.word()),
                        ))
                    }
                };
                let module = p[0].0.key_string();
                if let Some((before, _)) = module.split_once('.') {
                    return Err(err(
                        file,
                        Some(&item),
                        format!(
                            "Invalid requisite type '{module}' in state '{{id}}', in SLS '{{sls}}'. Requisite types must not contain dots, did you mean '{before}'?"
                        ),
                    ));
                }
                out.push((kind, ReqTarget { module, pattern, bare: false }));
            }
            _ => {
                return Err(err(
                    file,
                    Some(&item),
                    format!("Invalid requisite in {}: use `- module: name` or `- id`", kind.word()),
                ))
            }
        }
    }
    Ok(out)
}

fn as_list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Expands one id into its chunks.
fn chunks_of(id: &str, decl: &IdDecl, env: &str, out: &mut Vec<Chunk>) -> Result<(), CompileError> {
    for d in &decl.decls {
        let fun = d.fun.clone().unwrap_or_default();
        let mut args = Map::new();
        let mut reqs = Vec::new();
        let mut reqs_in = Vec::new();
        let mut names: Option<Vec<(String, Map)>> = None;
        let mut name = id.to_string();
        let (mut order, mut failhard) = (None, false);
        let (mut onlyif, mut unless, mut creates) = (Vec::new(), Vec::new(), Vec::new());
        let mut retry = None;
        for (k, v) in &d.args {
            if let Some((kind, inverted)) = ReqKind::parse(k) {
                let parsed = parse_reqs(&decl.file, kind, v).map_err(|e| CompileError {
                    message: e.message.replace("{id}", id).replace("{sls}", &decl.sls),
                    ..e
                })?;
                if inverted {
                    reqs_in.extend(parsed);
                } else {
                    reqs.extend(parsed);
                }
                continue;
            }
            let value = v.to_value();
            match k.as_str() {
                "name" => name = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string()),
                "names" => {
                    let mut list = Vec::new();
                    for item in as_list(value) {
                        match item {
                            Value::Object(m) if m.len() == 1 => {
                                let (n, extra) = m.into_iter().next().unwrap_or_default();
                                let mut extra_args = Map::new();
                                for a in as_list(extra) {
                                    if let Value::Object(am) = a {
                                        extra_args.extend(am);
                                    }
                                }
                                list.push((n, extra_args));
                            }
                            Value::String(s) => list.push((s, Map::new())),
                            other => list.push((other.to_string(), Map::new())),
                        }
                    }
                    names = Some(list);
                }
                "order" => order = Some(value),
                "failhard" => failhard = value.as_bool().unwrap_or(false),
                "retry" => {
                    retry =
                        Some(Retry::parse(&value).map_err(|m| {
                            err(&decl.file, Some(v), format!("State '{id}' in SLS '{}': {m}", decl.sls))
                        })?)
                }
                "onlyif" => onlyif = as_list(value),
                "unless" => unless = as_list(value),
                "creates" => {
                    creates = as_list(value).into_iter().map(|c| c.as_str().unwrap_or_default().to_string()).collect()
                }
                _ if CONTROL.contains(&k.as_str()) => {}
                _ => {
                    args.insert(k.clone(), value);
                }
            }
        }
        let base = Chunk {
            id: id.to_string(),
            name: name.clone(),
            module: d.module.clone(),
            fun,
            sls: decl.sls.clone(),
            env: env.to_string(),
            args,
            reqs,
            reqs_in,
            order,
            auto_order: d.auto_order,
            name_order: None,
            failhard,
            onlyif,
            unless,
            creates,
            retry,
            file: decl.file.clone(),
            line: d.line,
        };
        match names {
            Some(list) => {
                for (i, (n, extra)) in list.into_iter().enumerate() {
                    let mut c = base.clone();
                    c.name = n;
                    c.name_order = Some(i);
                    for (k, v) in extra {
                        if let Some((kind, inverted)) = ReqKind::parse(&k) {
                            let node = yaml_node_of(&v);
                            let parsed = parse_reqs(&decl.file, kind, &node)?;
                            if inverted {
                                c.reqs_in.extend(parsed);
                            } else {
                                c.reqs.extend(parsed);
                            }
                        } else {
                            c.args.insert(k, v);
                        }
                    }
                    out.push(c);
                }
            }
            None => out.push(base),
        }
    }
    Ok(())
}

/// A value as a position-less node (for requisites given per name).
fn yaml_node_of(v: &Value) -> Node {
    let kind = match v {
        Value::Array(a) => Kind::Seq(a.iter().map(yaml_node_of).collect()),
        Value::Object(m) => Kind::Map(
            m.iter()
                .map(|(k, v)| {
                    (Node { pos: Default::default(), kind: Kind::Scalar(Value::String(k.clone())) }, yaml_node_of(v))
                })
                .collect(),
        ),
        other => Kind::Scalar(other.clone()),
    };
    Node { pos: Default::default(), kind }
}

/// Salt's compile-time recursive requisite check (`verify_high`), on the high data
/// after `extend`: two ids that `require`/`watch`/`prereq`/`onchanges` each other in
/// the `module: id` form, each naming the other's module (or one id doing so to
/// itself), stop the run. Salt remembers only the module and targets of the last such
/// argument of each id, so other cycles are left to the run (`Recursive requisite
/// found` on the state that closes them); the same bookkeeping is kept here.
fn recursive_requisites(high: &High) -> Vec<CompileError> {
    // id -> (module of its last requisite argument, target -> requisite key)
    let mut reqs: HashMap<&str, (&str, HashMap<String, String>)> = HashMap::new();
    let mut errors = Vec::new();
    for id in &high.order {
        let decl = &high.ids[id];
        for d in &decl.decls {
            for (key, node) in &d.args {
                let Some(items) = node.as_seq() else { continue };
                if !matches!(key.as_str(), "require" | "watch" | "prereq" | "onchanges") {
                    continue;
                }
                reqs.insert(id.as_str(), (&d.module, HashMap::new()));
                for item in items {
                    let (req_key, req_val) = match (&item.kind, item.as_map()) {
                        (Kind::Scalar(Value::String(s)), _) => ("id".to_string(), s.clone()),
                        (_, Some([(k, v)])) => match &v.kind {
                            Kind::Scalar(Value::String(s)) => (k.key_string(), s.clone()),
                            Kind::Scalar(v) => (k.key_string(), v.to_string()),
                            _ => continue,
                        },
                        _ => continue,
                    };
                    if let Some((_, targets)) = reqs.get_mut(id.as_str()) {
                        targets.insert(req_val.clone(), req_key.clone());
                    }
                    let recursive = reqs.get(req_val.as_str()).is_some_and(|(other_module, other_targets)| {
                        other_targets.get(id.as_str()).is_some_and(|m| *m == d.module) && *other_module == req_key
                    });
                    if recursive {
                        errors.push(CompileError {
                            file: decl.file.clone(),
                            line: d.line,
                            col: 0,
                            message: format!(
                                "A recursive requisite was found, SLS \"{}\" ID \"{id}\" ID \"{req_val}\"",
                                decl.sls
                            ),
                        });
                    }
                }
            }
        }
    }
    errors
}

/// Compile-time requisite checks, as Salt makes them: `_in` requisites must name an
/// existing id of that module.
fn check_requisites(chunks: &[Chunk], env: &str) -> Vec<CompileError> {
    let mut errors = Vec::new();
    for c in chunks {
        for (_, t) in &c.reqs_in {
            let found = chunks.iter().any(|o| match t.module.as_str() {
                "sls" => o.sls == t.pattern,
                "id" => o.id == t.pattern,
                m => o.module == m && (o.id == t.pattern || o.name == t.pattern),
            });
            if !found {
                let message = format!(
                    "Cannot extend ID '{id}' in '{env}:{sls}'. It is not part of the high state.\n\
                     This is likely due to a missing include statement or an incorrectly typed ID.\n\
                     Ensure that a state with an ID of '{id}' is available\n\
                     in environment '{env}' and to SLS '{sls}'",
                    id = t.pattern,
                    sls = c.sls
                );
                if !errors.iter().any(|e: &CompileError| e.message == message) {
                    errors.push(CompileError { file: c.file.clone(), line: c.line, col: 0, message });
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requisite_names_parse() {
        let (k, inv) = ReqKind::parse("require_in").unwrap();
        assert_eq!((k.base, k.any, inv), (ReqBase::Require, false, true));
        let (k, inv) = ReqKind::parse("onchanges_any").unwrap();
        assert_eq!((k.base, k.any, inv), (ReqBase::Onchanges, true, false));
        let (k, _) = ReqKind::parse("onfail_all").unwrap();
        assert!(k.all);
        assert!(ReqKind::parse("require_all").is_none());
        assert!(ReqKind::parse("requires").is_none());
        assert_eq!(k.word(), "onfail_all");
    }

    #[test]
    fn relative_includes_resolve_like_salt() {
        assert_eq!(resolve_include("web", true, ".sub"), "web.sub");
        assert_eq!(resolve_include("web.app", false, ".sub"), "web.sub");
        assert_eq!(resolve_include("a.b.c", false, "..x"), "a.x");
        assert_eq!(resolve_include("web", true, "other"), "other");
    }
}
