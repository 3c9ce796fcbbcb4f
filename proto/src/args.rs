//! Command-line arguments to functions, typed the way Salt types them.
//!
//! `brine run '*' test.arg 1 2.5 yes '[a, b]' name=web port=80` calls the function with
//! positional arguments `[1, 2.5, true, ["a", "b"]]` and keyword arguments
//! `{name: "web", port: 80}`. Each word is read as a YAML scalar (YAML 1.1 booleans
//! such as `yes`/`off`, integers, floats, `null`/`~`, and `None`), a flow list or map
//! when it starts with `[` or `{`, and otherwise stays the string it was. A word that
//! only looks like a number with underscores (`1_000`), a date, or text that YAML
//! would partly swallow as a comment (`a #b`) stays a string too, so nothing the
//! operator typed is lost.

use crate::{Map, Value};

/// Splits command-line words into positional and keyword arguments.
pub fn parse_cli_args<S: AsRef<str>>(words: &[S]) -> (Vec<Value>, Map) {
    let mut args = Vec::new();
    let mut kwargs = Map::new();
    for word in words {
        let word = word.as_ref();
        match split_kwarg(word) {
            Some((key, value)) => {
                kwargs.insert(key.to_string(), type_word(value));
            }
            None => args.push(type_word(word)),
        }
    }
    (args, kwargs)
}

/// `key=value` where `key` is an identifier (letters, digits, `_`, `-`, `.`; not
/// starting with a digit) and the value does not start with another `=`.
fn split_kwarg(word: &str) -> Option<(&str, &str)> {
    let (key, value) = word.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    if !chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return None;
    }
    if value.starts_with('=') {
        return None;
    }
    Some((key, value))
}

/// Types one word (see the module docs).
pub fn type_word(word: &str) -> Value {
    let trimmed = word.trim();
    if trimmed.is_empty() {
        return Value::String(word.to_string());
    }
    if trimmed == "None" {
        return Value::Null;
    }
    if trimmed.contains('_') && trimmed.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return Value::String(word.to_string());
    }
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return match serde_saphyr::from_str::<Value>(trimmed) {
            Ok(v @ (Value::Array(_) | Value::Object(_))) => v,
            _ => Value::String(word.to_string()),
        };
    }
    if let Some(inner) = unquote(trimmed) {
        return Value::String(inner);
    }
    // A comment marker would make YAML drop the rest of the word: keep it whole.
    if trimmed.starts_with('#') || trimmed.contains(" #") {
        return Value::String(word.to_string());
    }
    scalar(trimmed).unwrap_or_else(|| Value::String(word.to_string()))
}

/// A quoted YAML scalar's content, for `"..."` (with the common escapes) and `'...'`
/// (with `''` for a quote).
fn unquote(s: &str) -> Option<String> {
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        let inner = &s[1..s.len() - 1];
        if inner.replace("''", "").contains('\'') {
            return None;
        }
        return Some(inner.replace("''", "'"));
    }
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        let inner = &s[1..s.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '/' => out.push('/'),
                    ' ' => out.push(' '),
                    _ => return None,
                },
                '"' => return None,
                c => out.push(c),
            }
        }
        return Some(out);
    }
    None
}

/// How YAML files (SLS, pillar) read a plain, untagged scalar: YAML 1.1 booleans and
/// nulls, integers (leading zeros dropped, as Salt reads them; `_` separators;
/// base 60) and floats; anything else is the string itself.
pub fn yaml_plain_scalar(s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    scalar(s).unwrap_or_else(|| Value::String(s.to_string()))
}

/// The YAML 1.1 reading of a plain scalar, or `None` if it is a plain string.
fn scalar(s: &str) -> Option<Value> {
    match s {
        "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Some(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN"
        | ".NAN" => {
            // JSON has no infinities or NaN; keep the word.
            return None;
        }
        _ => {}
    }
    if let Some(i) = integer(s) {
        return Some(i);
    }
    float(s)
}

fn integer(s: &str) -> Option<Value> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() || digits.starts_with('_') {
        return None;
    }
    let magnitude: i128 = if let Some(hex) = clean.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = clean.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if clean.len() > 1 && clean.starts_with('0') {
        // What YAML 1.1 calls octal, Salt reads as decimal with the zeros dropped
        // (`0644` is 644, which file modes then read as octal digits); a leading zero
        // followed by 8 or 9 is no number at all.
        if !clean.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        clean.parse().ok()?
    } else if clean.bytes().all(|b| b.is_ascii_digit()) {
        clean.parse().ok()?
    } else {
        sexagesimal(&clean)?
    };
    let v = if neg { -magnitude } else { magnitude };
    if let Ok(i) = i64::try_from(v) {
        Some(Value::from(i))
    } else if let Ok(u) = u64::try_from(v) {
        Some(Value::from(u))
    } else {
        None
    }
}

/// YAML 1.1 base-60 integers: `12:30` is 750, `1:2:3` is 3723.
fn sexagesimal(s: &str) -> Option<i128> {
    let mut parts = s.split(':');
    let first = parts.next()?;
    if first.is_empty() || first.starts_with('0') || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = first.parse().ok()?;
    let mut any = false;
    for p in parts {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i128 = p.parse().ok()?;
        if n > 59 {
            return None;
        }
        v = v.checked_mul(60)?.checked_add(n)?;
        any = true;
    }
    any.then_some(v)
}

fn float(s: &str) -> Option<Value> {
    // YAML 1.1 floats need a dot: `1e3` is a string, `1.0e+3` a float.
    let body = s.trim_start_matches(['-', '+']);
    if !body.contains('.') || body.starts_with('_') {
        return None;
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if !mantissa.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '_')
        || mantissa.matches('.').count() != 1
        || !mantissa.chars().any(|c| c.is_ascii_digit())
    {
        return None;
    }
    if let Some(exp) = exp {
        let digits = exp.strip_prefix(['-', '+'])?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let f: f64 = clean.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed(s: &str) -> Value {
        type_word(s)
    }

    #[test]
    fn scalars_are_typed_like_yaml_1_1() {
        assert_eq!(typed("1"), json!(1));
        assert_eq!(typed("-7"), json!(-7));
        assert_eq!(typed("2.5"), json!(2.5));
        assert_eq!(typed("0x1f"), json!(31));
        assert_eq!(typed("010"), json!(10), "leading zeros are dropped, as Salt does");
        assert_eq!(typed("0644"), json!(644));
        assert_eq!(typed("08"), json!("08"));
        assert_eq!(typed("0o17"), json!("0o17"));
        assert_eq!(typed("0b11"), json!(3));
        assert_eq!(typed("12:30"), json!(750));
        assert_eq!(typed("1:2:3"), json!(3723));
        assert_eq!(typed("1:75"), json!("1:75"));
        assert_eq!(typed("+5"), json!(5));
        assert_eq!(typed("yes"), json!(true));
        assert_eq!(typed("Off"), json!(false));
        assert_eq!(typed("true"), json!(true));
        assert_eq!(typed("null"), json!(null));
        assert_eq!(typed("~"), json!(null));
        assert_eq!(typed("None"), json!(null));
        assert_eq!(typed("hello"), json!("hello"));
        assert_eq!(typed("1e3"), json!("1e3"));
        assert_eq!(typed("1.0e+3"), json!(1000.0));
    }

    #[test]
    fn words_that_would_lose_content_stay_strings() {
        assert_eq!(typed("1_000"), json!("1_000"));
        assert_eq!(typed("echo hi #there"), json!("echo hi #there"));
        assert_eq!(typed("#"), json!("#"));
        assert_eq!(typed(""), json!(""));
        assert_eq!(typed("2024-01-01"), json!("2024-01-01"));
        assert_eq!(typed("a: b"), json!("a: b"), "maps need braces");
        assert_eq!(typed("- a"), json!("- a"), "lists need brackets");
        assert_eq!(typed("[unclosed"), json!("[unclosed"));
        assert_eq!(typed(".inf"), json!(".inf"));
    }

    #[test]
    fn quoted_words_lose_their_quotes_and_stay_strings() {
        assert_eq!(typed("\"42\""), json!("42"));
        assert_eq!(typed("'yes'"), json!("yes"));
        assert_eq!(typed("'it''s'"), json!("it's"));
    }

    #[test]
    fn yaml_plain_scalars_follow_yaml_1_1_like_salt() {
        assert_eq!(yaml_plain_scalar(""), json!(null));
        assert_eq!(yaml_plain_scalar("yes"), json!(true));
        assert_eq!(yaml_plain_scalar("0644"), json!(644));
        assert_eq!(yaml_plain_scalar("1_000"), json!(1000));
        assert_eq!(yaml_plain_scalar("2.5"), json!(2.5));
        assert_eq!(yaml_plain_scalar("web"), json!("web"));
        assert_eq!(yaml_plain_scalar("None"), json!("None"), "None is Python, not YAML");
    }

    #[test]
    fn flow_collections_are_parsed() {
        assert_eq!(typed("[1, two, 3.5]"), json!([1, "two", 3.5]));
        assert_eq!(typed("{a: 1, b: [x]}"), json!({"a": 1, "b": ["x"]}));
    }

    #[test]
    fn kwargs_need_an_identifier_before_the_equals_sign() {
        let (args, kwargs) =
            parse_cli_args(&["echo a=b", "name=web", "port=80", "cmd=echo x=y", "==x", "1a=2", "a==b"]);
        assert_eq!(args, vec![json!("echo a=b"), json!("==x"), json!("1a=2"), json!("a==b")]);
        assert_eq!(kwargs.get("name"), Some(&json!("web")));
        assert_eq!(kwargs.get("port"), Some(&json!(80)));
        assert_eq!(kwargs.get("cmd"), Some(&json!("echo x=y")));
        assert_eq!(kwargs.len(), 3);
    }
}
