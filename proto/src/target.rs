//! Target expressions and the matcher that decides whether a minion is targeted.
//!
//! The master resolves a target to minion ids (from accepted keys and cached grains)
//! before publishing; each minion checks again, against its own facts, that the target
//! names it before running anything. Both use this matcher, so they cannot disagree.
//!
//! Every target type is one case of the compound grammar, with Salt's letters:
//!
//! | letter | flag | matches |
//! |---|---|---|
//! | (none) | (default) | glob on the minion id: `web*`, `db[12]`, `web?` |
//! | `L@` | `-L` | a comma-separated list of ids |
//! | `E@` | `-E` | a regular expression on the id, anchored at the start |
//! | `G@` | `-G` | a grain glob, `path:pattern` (`os:Debian`, `roles:web`, `ip_interfaces:eth0:10.*`) |
//! | `P@` | `-P` | a grain regular expression, `path:regex` |
//! | `I@` | `-I` | a pillar glob, `path:pattern` |
//! | `J@` | `-J` | a pillar regular expression |
//! | `S@` | `-S` | an address or CIDR network of the minion's `ipv4`/`ipv6` grains |
//! | `N@` | `-N` | a nodegroup from the master's config (expanded by the master) |
//!
//! Compound targets (`-C`) combine them with `and`, `or`, `not` and parentheses:
//! `G@os:Debian and web* or L@a,b and not E@db\d+`. `not` binds tightest, then `and`,
//! then `or`; `not` right after a term means `and not`, as in Salt. Grain and pillar
//! values match case-insensitively, a list value matches if any element does, and the
//! deepest `:`-split of the path is tried first.

use crate::Map;
use crate::Value;
use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The most nested parentheses and nodegroup expansions accepted.
const MAX_DEPTH: usize = 64;
/// The longest target expression accepted, in bytes.
pub const MAX_TARGET_LEN: usize = 64 * 1024;
/// Compiled regular expressions are capped at this size.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A target as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Shell-style glob on the minion id, Salt's default.
    Glob(String),
    /// An explicit list of ids (`-L a,b,c`).
    List(Vec<String>),
    /// A regular expression on the id (`-E`).
    Pcre(String),
    /// A grain glob, `path:pattern` (`-G`).
    Grain(String),
    /// A grain regular expression, `path:regex` (`-P`).
    GrainPcre(String),
    /// A pillar glob, `path:pattern` (`-I`).
    Pillar(String),
    /// A pillar regular expression (`-J`).
    PillarPcre(String),
    /// An address or network (`-S`).
    Cidr(String),
    /// A nodegroup name (`-N`).
    Nodegroup(String),
    /// A compound expression (`-C`).
    Compound(String),
}

impl Target {
    /// A list target from Salt's comma-separated form, ignoring blanks around ids.
    pub fn list_from_str(s: &str) -> Target {
        Target::List(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
    }

    /// The target as one compound expression.
    pub fn to_compound(&self) -> String {
        match self {
            Target::Glob(g) => g.clone(),
            Target::List(ids) => format!("L@{}", ids.join(",")),
            Target::Pcre(e) => format!("E@{e}"),
            Target::Grain(e) => format!("G@{e}"),
            Target::GrainPcre(e) => format!("P@{e}"),
            Target::Pillar(e) => format!("I@{e}"),
            Target::PillarPcre(e) => format!("J@{e}"),
            Target::Cidr(e) => format!("S@{e}"),
            Target::Nodegroup(n) => format!("N@{n}"),
            Target::Compound(c) => c.clone(),
        }
    }

    /// Replaces nodegroups by their definitions, giving a target a minion can check
    /// without the master's config.
    pub fn expand_nodegroups(&self, groups: &Nodegroups) -> Result<Target, TargetError> {
        match self {
            Target::Nodegroup(_) | Target::Compound(_) => {
                let text = self.to_compound();
                let mut out = Expansion::default();
                for tok in tokenize(&text)? {
                    expand_token(&tok.text, groups, &mut out, 0, &mut Vec::new())?;
                }
                Ok(Target::Compound(out.words.join(" ")))
            }
            other => Ok(other.clone()),
        }
    }

    /// Whether matching needs the minion's grains.
    pub fn uses_grains(&self) -> bool {
        let c = self.to_compound();
        ["G@", "P@", "S@"].iter().any(|p| c.contains(p))
    }

    /// Whether matching needs the minion's pillar.
    pub fn uses_pillar(&self) -> bool {
        let c = self.to_compound();
        ["I@", "J@"].iter().any(|p| c.contains(p))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_compound())
    }
}

/// Named compound expressions from the master's config.
pub type Nodegroups = BTreeMap<String, String>;

/// The words of an expanded target and their length joined by spaces, which may not
/// pass [`MAX_TARGET_LEN`]: nodegroups that each name another twice would otherwise
/// expand to 2^n words.
#[derive(Default)]
struct Expansion {
    words: Vec<String>,
    len: usize,
}

impl Expansion {
    /// Adds a word of the expansion of `group` (the outermost nodegroup being
    /// expanded, if any).
    fn push(&mut self, word: &str, group: Option<&String>) -> Result<(), TargetError> {
        self.len += word.len() + 1;
        if self.len > MAX_TARGET_LEN + 1 {
            return Err(match group {
                Some(name) => TargetError::Nodegroup {
                    name: name.clone(),
                    reason: format!("it expands to more than {MAX_TARGET_LEN} bytes"),
                },
                None => TargetError::TooLong(self.len - 1),
            });
        }
        self.words.push(word.to_string());
        Ok(())
    }
}

fn expand_token(
    tok: &str,
    groups: &Nodegroups,
    out: &mut Expansion,
    depth: usize,
    stack: &mut Vec<String>,
) -> Result<(), TargetError> {
    let Some(name) = tok.strip_prefix("N@") else {
        return out.push(tok, stack.first());
    };
    if depth > MAX_DEPTH || stack.iter().any(|s| s == name) {
        return Err(TargetError::Nodegroup { name: name.to_string(), reason: "it includes itself".into() });
    }
    let def = groups
        .get(name)
        .ok_or_else(|| TargetError::Nodegroup { name: name.to_string(), reason: "no such nodegroup".into() })?;
    stack.push(name.to_string());
    out.push("(", stack.first())?;
    for t in tokenize(def)? {
        expand_token(&t.text, groups, out, depth + 1, stack)?;
    }
    out.push(")", stack.first())?;
    stack.pop();
    Ok(())
}

/// Why a target expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The expression is empty.
    #[error("the target is empty")]
    Empty,
    /// The expression is longer than [`MAX_TARGET_LEN`].
    #[error("the target is {0} bytes long; at most {MAX_TARGET_LEN} are allowed")]
    TooLong(usize),
    /// A part of the expression is malformed.
    #[error("bad target at {token:?} (character {pos}): {reason}")]
    Syntax { token: String, pos: usize, reason: String },
    /// A nodegroup is unknown or recursive.
    #[error("nodegroup {name:?}: {reason}")]
    Nodegroup { name: String, reason: String },
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    pos: usize,
}

/// Splits an expression into words and parentheses (a parenthesis may touch a word).
fn tokenize(s: &str) -> Result<Vec<Token>, TargetError> {
    if s.len() > MAX_TARGET_LEN {
        return Err(TargetError::TooLong(s.len()));
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if !cur.is_empty() {
                out.push(Token { text: std::mem::take(&mut cur), pos: start });
            }
            if c == '(' || c == ')' {
                out.push(Token { text: c.to_string(), pos: i });
            }
        } else {
            if cur.is_empty() {
                start = i;
            }
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(Token { text: cur, pos: start });
    }
    Ok(out)
}

/// What a minion is, as far as targeting is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub id: &'a str,
    pub grains: Option<&'a Map>,
    pub pillar: Option<&'a Map>,
}

impl<'a> Facts<'a> {
    /// Facts with only an id (grain and pillar matchers then match nothing).
    pub fn id(id: &'a str) -> Facts<'a> {
        Facts { id, grains: None, pillar: None }
    }
}

/// A compiled target.
#[derive(Debug, Clone)]
pub struct TargetMatcher {
    expr: Expr,
}

#[derive(Debug, Clone)]
enum Expr {
    Any,
    IdExact(String),
    IdGlob(GlobMatcher),
    IdRegex(regex::Regex),
    IdList(Vec<String>),
    Data { source: Source, splits: Vec<(String, ValueMatch)> },
    Cidr(ipnet::IpNet),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Grains,
    Pillar,
}

#[derive(Debug, Clone)]
enum ValueMatch {
    Glob { raw: String, glob: GlobMatcher },
    Regex { raw: String, re: regex::Regex },
}

impl ValueMatch {
    fn raw(&self) -> &str {
        match self {
            ValueMatch::Glob { raw, .. } | ValueMatch::Regex { raw, .. } => raw,
        }
    }

    fn matches_str(&self, s: &str) -> bool {
        let s = s.to_lowercase();
        match self {
            ValueMatch::Glob { glob, .. } => glob.is_match(&s),
            ValueMatch::Regex { re, .. } => re.is_match(&s),
        }
    }

    fn matches_scalar(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.matches_str(s),
            Value::Bool(b) => self.matches_str(if *b { "true" } else { "false" }),
            Value::Null => self.matches_str("none"),
            Value::Number(n) => self.matches_str(&n.to_string()),
            other => self.matches_str(&other.to_string()),
        }
    }

    /// A map matches when the pattern is `*` or names one of its keys, or a deeper
    /// `:`-split matches inside it.
    fn matches_map(&self, m: &Map) -> bool {
        let raw = self.raw();
        raw == "*" || m.contains_key(raw) || data_match(m, &splits_of(raw, self.is_regex()).unwrap_or_default())
    }

    fn is_regex(&self) -> bool {
        matches!(self, ValueMatch::Regex { .. })
    }

    fn matches_value(&self, v: &Value) -> bool {
        match v {
            Value::Object(m) => self.matches_map(m),
            Value::Array(items) => items.iter().any(|i| match i {
                Value::Object(m) => self.matches_map(m),
                other => self.matches_scalar(other),
            }),
            other => self.matches_scalar(other),
        }
    }
}

fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

fn regex(pattern: &str, lower: bool) -> Result<regex::Regex, String> {
    // Anchored at the start only, like Python's re.match.
    let anchored = format!("^(?:{})", if lower { pattern.to_lowercase() } else { pattern.to_string() });
    regex::RegexBuilder::new(&anchored).size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| e.to_string())
}

/// Every `path:pattern` split of a data expression, deepest path first.
fn splits_of(expr: &str, is_regex: bool) -> Result<Vec<(String, ValueMatch)>, String> {
    let parts: Vec<&str> = expr.split(':').collect();
    if parts.len() < 2 {
        return Err(format!("{expr:?} needs a path and a pattern separated by ':'"));
    }
    let mut out = Vec::new();
    for idx in (1..parts.len()).rev() {
        let path = parts[..idx].join(":");
        let raw = parts[idx..].join(":");
        let m = if is_regex {
            ValueMatch::Regex { re: regex(&raw, true)?, raw }
        } else {
            ValueMatch::Glob { glob: glob(&raw.to_lowercase())?, raw }
        };
        out.push((path, m));
    }
    Ok(out)
}

/// Looks up a `:` path in nested maps and lists.
fn lookup<'a>(data: &'a Map, path: &str) -> Option<&'a Value> {
    let mut parts = path.split(':');
    let mut cur = data.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn data_match(data: &Map, splits: &[(String, ValueMatch)]) -> bool {
    splits.iter().any(|(path, m)| {
        if path == "*" {
            return data.values().any(|v| m.matches_value(v));
        }
        lookup(data, path).is_some_and(|v| m.matches_value(v))
    })
}

impl Expr {
    fn eval(&self, f: &Facts<'_>) -> bool {
        match self {
            Expr::Any => true,
            Expr::IdExact(s) => s == f.id,
            Expr::IdGlob(g) => g.is_match(f.id),
            Expr::IdRegex(r) => r.is_match(f.id),
            Expr::IdList(ids) => ids.binary_search_by(|x| x.as_str().cmp(f.id)).is_ok(),
            Expr::Data { source, splits } => {
                let data = match source {
                    Source::Grains => f.grains,
                    Source::Pillar => f.pillar,
                };
                data.is_some_and(|d| data_match(d, splits))
            }
            Expr::Cidr(net) => f.grains.is_some_and(|g| {
                ["ipv4", "ipv6"].iter().any(|k| {
                    g.get(*k).and_then(Value::as_array).is_some_and(|ips| {
                        ips.iter()
                            .filter_map(Value::as_str)
                            .filter_map(|s| s.parse::<IpAddr>().ok())
                            .any(|ip| net.contains(&ip))
                    })
                })
            }),
            Expr::Not(e) => !e.eval(f),
            Expr::And(a, b) => a.eval(f) && b.eval(f),
            Expr::Or(a, b) => a.eval(f) || b.eval(f),
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn err(&self, tok: Option<&Token>, reason: impl Into<String>) -> TargetError {
        match tok {
            Some(t) => TargetError::Syntax { token: t.text.clone(), pos: t.pos, reason: reason.into() },
            None => TargetError::Syntax { token: String::new(), pos: self.end, reason: reason.into() },
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, TargetError> {
        let mut left = self.and(depth)?;
        while self.peek().is_some_and(|t| t.text == "or") {
            self.next += 1;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, TargetError> {
        let mut left = self.unary(depth)?;
        loop {
            match self.peek().map(|t| t.text.as_str()) {
                Some("and") => {
                    self.next += 1;
                }
                // `a not b` means `a and not b`.
                Some("not") => {}
                Some("or") | Some(")") | None => return Ok(left),
                Some(_) => {
                    let tok = self.peek().cloned();
                    return Err(self.err(tok.as_ref(), "expected 'and', 'or' or the end of the target"));
                }
            }
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, TargetError> {
        if depth > MAX_DEPTH {
            let tok = self.peek().cloned();
            return Err(self.err(tok.as_ref(), "nested too deeply"));
        }
        let tok = self.peek().cloned();
        match tok.as_ref().map(|t| t.text.as_str()) {
            Some("not") => {
                self.next += 1;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some("(") => {
                self.next += 1;
                if self.peek().is_some_and(|t| t.text == "and" || t.text == "or") {
                    let t = self.peek().cloned();
                    return Err(self.err(t.as_ref(), "an operator cannot follow '('"));
                }
                let inner = self.or(depth + 1)?;
                match self.peek() {
                    Some(t) if t.text == ")" => {
                        self.next += 1;
                        Ok(inner)
                    }
                    _ => Err(self.err(tok.as_ref(), "this '(' is never closed")),
                }
            }
            Some(")") => Err(self.err(tok.as_ref(), "expected a target before ')'")),
            Some("and") | Some("or") => Err(self.err(tok.as_ref(), "expected a target before this operator")),
            Some(_) => {
                self.next += 1;
                let t = tok.expect("peeked");
                term(&t.text).map_err(|reason| self.err(Some(&t), reason))
            }
            None => Err(self.err(None, "the target ends where a term was expected")),
        }
    }
}

/// Compiles one matcher word.
fn term(word: &str) -> Result<Expr, String> {
    let engine = word.split_once('@').filter(|(e, _)| e.len() == 1 && e.chars().all(|c| c.is_ascii_uppercase()));
    let Some((engine, rest)) = engine else {
        return id_glob(word);
    };
    if rest.is_empty() {
        return Err(format!("{engine}@ needs an expression"));
    }
    match engine {
        "L" => {
            let mut ids: Vec<String> =
                rest.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            if ids.is_empty() {
                return Err("the list is empty".into());
            }
            ids.sort();
            ids.dedup();
            Ok(Expr::IdList(ids))
        }
        "E" => Ok(Expr::IdRegex(regex(rest, false).map_err(|e| format!("bad regular expression: {e}"))?)),
        "G" | "P" | "I" | "J" => {
            let source = if matches!(engine, "G" | "P") { Source::Grains } else { Source::Pillar };
            let splits = splits_of(rest, matches!(engine, "P" | "J"))?;
            Ok(Expr::Data { source, splits })
        }
        "S" => {
            let net = match rest.parse::<ipnet::IpNet>() {
                Ok(n) => n,
                Err(_) => rest
                    .parse::<IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| format!("{rest:?} is not an address or CIDR network"))?,
            };
            Ok(Expr::Cidr(net))
        }
        "N" => Err("nodegroups are expanded by the master; this one was not".into()),
        other => Err(format!("unknown target type {other}@ (use G@ P@ I@ J@ L@ E@ S@ N@)")),
    }
}

fn id_glob(word: &str) -> Result<Expr, String> {
    if word == "*" {
        Ok(Expr::Any)
    } else if !word.contains(['*', '?', '[']) {
        Ok(Expr::IdExact(word.to_string()))
    } else {
        Ok(Expr::IdGlob(glob(word).map_err(|e| format!("bad glob: {e}"))?))
    }
}

impl TargetMatcher {
    /// Compiles a target, refusing malformed ones with the offending part named.
    /// Nodegroups must have been expanded ([`Target::expand_nodegroups`]).
    pub fn compile(target: &Target) -> Result<TargetMatcher, TargetError> {
        let expr = match target {
            Target::Glob(g) if g.is_empty() => return Err(TargetError::Empty),
            Target::Glob(g) => id_glob(g).map_err(|reason| TargetError::Syntax { token: g.clone(), pos: 0, reason })?,
            Target::List(ids) if ids.iter().all(|i| i.trim().is_empty()) => return Err(TargetError::Empty),
            Target::List(ids) => {
                let mut ids: Vec<String> = ids.iter().map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect();
                ids.sort();
                ids.dedup();
                Expr::IdList(ids)
            }
            other => {
                let text = other.to_compound();
                if text.len() > MAX_TARGET_LEN {
                    return Err(TargetError::TooLong(text.len()));
                }
                // A single term of a typed target may contain spaces (`-G 'os:Red Hat'`).
                if !matches!(other, Target::Compound(_)) {
                    term(&text).map_err(|reason| TargetError::Syntax { token: text.clone(), pos: 0, reason })?
                } else {
                    let tokens = tokenize(&text)?;
                    if tokens.is_empty() {
                        return Err(TargetError::Empty);
                    }
                    let mut p = Parser { tokens, next: 0, end: text.len() };
                    let e = p.or(0)?;
                    if let Some(t) = p.peek().cloned() {
                        return Err(p.err(Some(&t), "unexpected ')'"));
                    }
                    e
                }
            }
        };
        Ok(TargetMatcher { expr })
    }

    /// Whether the minion with these facts is targeted.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        self.expr.eval(facts)
    }

    /// Whether the minion `id` is targeted, knowing nothing else about it.
    pub fn matches_id(&self, id: &str) -> bool {
        self.expr.eval(&Facts::id(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(t: Target) -> TargetMatcher {
        TargetMatcher::compile(&t).unwrap()
    }

    fn c(expr: &str) -> TargetMatcher {
        m(Target::Compound(expr.into()))
    }

    fn grains(v: serde_json::Value) -> Map {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn globs_match_like_fnmatch() {
        let web = m(Target::Glob("web*".into()));
        assert!(web.matches_id("web1"));
        assert!(web.matches_id("web1.example.com"));
        assert!(!web.matches_id("db1"));
        assert!(!web.matches_id("aweb1"));
        let q = m(Target::Glob("web?".into()));
        assert!(q.matches_id("web1") && !q.matches_id("web12"));
        let class = m(Target::Glob("web[13]".into()));
        assert!(class.matches_id("web1") && class.matches_id("web3") && !class.matches_id("web2"));
        let neg = m(Target::Glob("web[!1]".into()));
        assert!(!neg.matches_id("web1") && neg.matches_id("web2"));
        assert!(m(Target::Glob("*".into())).matches_id("anything.at.all"));
        let exact = m(Target::Glob("db1".into()));
        assert!(exact.matches_id("db1") && !exact.matches_id("db10"));
        assert!(!m(Target::Glob("Web*".into())).matches_id("web1"), "id globs are case-sensitive");
    }

    #[test]
    fn lists_match_exactly() {
        let l = m(Target::list_from_str("a, b.example.com,c"));
        assert!(l.matches_id("a") && l.matches_id("b.example.com") && l.matches_id("c"));
        assert!(!l.matches_id("b") && !l.matches_id("d"));
    }

    #[test]
    fn pcre_is_anchored_at_the_start_only() {
        let e = m(Target::Pcre(r"web\d+".into()));
        assert!(e.matches_id("web12") && e.matches_id("web1.example.com"));
        assert!(!e.matches_id("aweb1") && !e.matches_id("web"));
    }

    #[test]
    fn grain_targets_follow_salt_rules() {
        let g = grains(json!({
            "os": "Debian", "osmajorrelease": 12, "roles": ["web", "cache"], "virtual": null,
            "ip_interfaces": {"eth0": ["10.1.2.3"]}, "tz": "Europe:Paris", "flag": true
        }));
        let f = Facts { id: "m", grains: Some(&g), pillar: None };
        let ok = |t: Target| m(t).matches(&f);
        assert!(ok(Target::Grain("os:Debian".into())));
        assert!(ok(Target::Grain("os:debian".into())), "grain values match case-insensitively");
        assert!(ok(Target::Grain("os:Deb*".into())));
        assert!(!ok(Target::Grain("os:RedHat".into())));
        assert!(ok(Target::Grain("osmajorrelease:12".into())), "numbers match as text");
        assert!(ok(Target::Grain("roles:web".into())), "a list matches if any element does");
        assert!(ok(Target::Grain("ip_interfaces:eth0:10.1.*".into())), "nested paths");
        assert!(ok(Target::Grain("ip_interfaces:eth0".into())), "a map matches one of its keys");
        assert!(ok(Target::Grain("tz:Europe:Paris".into())), "a value may contain the delimiter");
        assert!(ok(Target::Grain("virtual:None".into())));
        assert!(ok(Target::Grain("flag:True".into())));
        assert!(!ok(Target::Grain("missing:*".into())));
        assert!(ok(Target::GrainPcre(r"os:(Debian|Ubuntu)".into())));
        assert!(!ok(Target::GrainPcre(r"os:Ubuntu".into())));
        // Without grains, grain targets match nothing.
        assert!(!m(Target::Grain("os:Debian".into())).matches_id("m"));
    }

    #[test]
    fn cidr_targets_match_ip_grains() {
        let g = grains(json!({"ipv4": ["127.0.0.1", "10.1.2.3"], "ipv6": ["::1"]}));
        let f = Facts { id: "m", grains: Some(&g), pillar: None };
        assert!(m(Target::Cidr("10.1.0.0/16".into())).matches(&f));
        assert!(m(Target::Cidr("10.1.2.3".into())).matches(&f));
        assert!(!m(Target::Cidr("192.168.0.0/16".into())).matches(&f));
        assert!(m(Target::Cidr("::1/128".into())).matches(&f));
    }

    #[test]
    fn pillar_targets_read_the_pillar() {
        let p = grains(json!({"role": "db", "tags": {"tier": "gold"}}));
        let f = Facts { id: "m", grains: None, pillar: Some(&p) };
        assert!(m(Target::Pillar("role:db".into())).matches(&f));
        assert!(m(Target::Pillar("tags:tier:gold".into())).matches(&f));
        assert!(m(Target::PillarPcre("role:d.".into())).matches(&f));
        assert!(!m(Target::Pillar("role:web".into())).matches(&f));
    }

    /// The compound grammar, valid and invalid, as a table.
    #[test]
    fn compound_grammar_table() {
        let g = grains(json!({"os": "Debian", "roles": ["web"], "ipv4": ["10.0.0.5"]}));
        let facts = |id| Facts { id, grains: Some(&g), pillar: None };
        let valid: &[(&str, &str, bool)] = &[
            ("web1", "web*", true),
            ("web1", "G@os:Debian and web*", true),
            ("db1", "G@os:Debian and web*", false),
            ("db1", "G@os:Debian and web* or L@db1,db2", true),
            ("db1", "web* or L@a,b and not E@db\\d+", false),
            ("db1", "not web*", true),
            ("web1", "not web*", false),
            ("web1", "web* not E@web1", false),
            ("web2", "web* not E@web1", true),
            ("db1", "( web* or db* ) and G@roles:web", true),
            ("db1", "(web* or db*) and not G@roles:web", false),
            ("x", "not not x", true),
            ("x", "S@10.0.0.0/8 and x", true),
            ("x", "( ( x ) )", true),
            ("x", "P@os:deb.* or nothing", true),
            ("x", "G@os:Debian or G@os:Ubuntu and not x", true),
        ];
        for (id, expr, want) in valid {
            assert_eq!(c(expr).matches(&facts(id)), *want, "{expr} for {id}");
        }
        let invalid: &[(&str, &str, &str)] = &[
            ("and web*", "and", "expected a target before"),
            ("web* and", "", "ends where a term was expected"),
            ("web* or or db*", "or", "expected a target before"),
            ("( web*", "(", "never closed"),
            ("web* )", ")", "unexpected ')'"),
            ("( web* or )", ")", "expected a target before ')'"),
            ("( and web* )", "and", "cannot follow '('"),
            ("web* db*", "db*", "expected 'and', 'or'"),
            ("X@foo", "X@foo", "unknown target type X@"),
            ("G@os", "G@os", "needs a path and a pattern"),
            ("E@web[", "E@web[", "bad regular expression"),
            ("S@10.0.0.0/33", "S@10.0.0.0/33", "not an address or CIDR"),
            ("web[ and x", "web[", "bad glob"),
            ("L@", "L@", "needs an expression"),
            ("N@web", "N@web", "expanded by the master"),
        ];
        for (expr, token, reason) in invalid {
            let err = TargetMatcher::compile(&Target::Compound((*expr).into())).unwrap_err();
            let text = err.to_string();
            match &err {
                TargetError::Syntax { token: t, .. } => assert_eq!(t, token, "{expr}: {text}"),
                other => panic!("{expr}: {other}"),
            }
            assert!(text.contains(reason), "{expr}: {text}");
        }
        assert_eq!(TargetMatcher::compile(&Target::Compound("   ".into())).unwrap_err(), TargetError::Empty);
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        let err = TargetMatcher::compile(&Target::Compound("G@os:Debian and and x".into())).unwrap_err();
        assert_eq!(err.to_string(), "bad target at \"and\" (character 16): expected a target before this operator");
    }

    #[test]
    fn nodegroups_expand_recursively_and_refuse_cycles() {
        let mut groups = Nodegroups::new();
        groups.insert("web".into(), "G@roles:web or L@a,b".into());
        groups.insert("prod".into(), "N@web and not E@test".into());
        groups.insert("loop".into(), "N@loop2".into());
        groups.insert("loop2".into(), "N@loop".into());
        let t = Target::Nodegroup("prod".into()).expand_nodegroups(&groups).unwrap();
        assert_eq!(t, Target::Compound("( ( G@roles:web or L@a,b ) and not E@test )".into()));
        assert!(m(t.clone()).matches_id("a"));
        assert!(!m(t).matches_id("test1"));
        let err = Target::Nodegroup("loop".into()).expand_nodegroups(&groups).unwrap_err();
        assert!(err.to_string().contains("includes itself"), "{err}");
        let err = Target::Compound("N@nope or x".into()).expand_nodegroups(&groups).unwrap_err();
        assert!(err.to_string().contains("no such nodegroup"), "{err}");
    }

    #[test]
    fn nodegroups_that_expand_exponentially_are_refused() {
        // Each group names the next twice: 2^40 words if expanded blindly. Found while
        // writing the property tests; the master expands nodegroups when it loads its
        // config and for every `-N` request.
        let mut groups = Nodegroups::new();
        for i in 0..40 {
            groups.insert(format!("g{i}"), format!("N@g{} or N@g{}", i + 1, i + 1));
        }
        groups.insert("g40".into(), "web*".into());
        let started = std::time::Instant::now();
        let err = Target::Nodegroup("g0".into()).expand_nodegroups(&groups).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(err.to_string(), format!("nodegroup \"g0\": it expands to more than {MAX_TARGET_LEN} bytes"),);
        // A few levels are fine.
        let t = Target::Nodegroup("g37".into()).expand_nodegroups(&groups).unwrap();
        assert_eq!(t.to_compound().matches("web*").count(), 8);
    }

    #[test]
    fn targets_display_as_compound() {
        assert_eq!(Target::Glob("web*".into()).to_string(), "web*");
        assert_eq!(Target::list_from_str("a,b").to_string(), "L@a,b");
        assert_eq!(Target::Grain("os:Debian".into()).to_string(), "G@os:Debian");
    }

    #[test]
    fn huge_targets_are_refused() {
        let big = "x or ".repeat(MAX_TARGET_LEN);
        assert!(matches!(TargetMatcher::compile(&Target::Compound(big)), Err(TargetError::TooLong(_))));
        let deep = format!("{}x{}", "( ".repeat(200), " )".repeat(200));
        assert!(TargetMatcher::compile(&Target::Compound(deep)).is_err());
    }
}
