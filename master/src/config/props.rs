//! Property tests of the config parser: whatever the file holds, the master gets a
//! validated config or an error naming the file — never a panic. The fuzz target
//! `master_config` (see `fuzz/`) drives the same function coverage-guided.

use super::*;
use proptest::prelude::*;

/// `n` cases, unless `PROPTEST_CASES` asks for another number.
fn cases(n: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = n;
    }
    config
}

/// Values of the kinds config keys take, with the troublesome ones well represented.
fn toml_value() -> impl Strategy<Value = toml::Value> {
    let words = prop::sample::select(
        &[
            "10s",
            "0",
            "250ms",
            "7d",
            "8d",
            "1e30",
            "-1",
            "forever",
            "0.0.0.0:4222",
            "[::1]:0",
            "nowhere",
            "nats://h:4222",
            "brine",
            "fleet.eu-1",
            "a..b",
            "G@os:Debian or L@a,b",
            "N@web",
            "N@a and N@a",
            "( x",
            "web*",
            "/var/lib/brine",
            "",
            "info",
            "true",
        ][..],
    );
    let leaf = prop_oneof![
        4 => words.prop_map(|w| toml::Value::String(w.into())),
        1 => any::<String>().prop_map(toml::Value::String),
        1 => any::<i64>().prop_map(toml::Value::Integer),
        1 => prop::sample::select(&[1e30, -1.0, f64::NAN, f64::INFINITY, 0.5, 1.8446744073709552e19, 1e12][..])
            .prop_map(toml::Value::Float),
        1 => any::<bool>().prop_map(toml::Value::Boolean),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(toml::Value::Array))
}

/// A value for a key of this kind: mostly a valid one, sometimes a wrong one of the
/// right type, now and then anything at all.
fn setting(kind: &'static str) -> BoxedStrategy<toml::Value> {
    let text = |words: &'static [&'static str]| prop::sample::select(words).prop_map(|w| toml::Value::String(w.into()));
    let (good, bad): (BoxedStrategy<toml::Value>, BoxedStrategy<toml::Value>) = match kind {
        "bool" => (any::<bool>().prop_map(toml::Value::Boolean).boxed(), text(&["yes"]).boxed()),
        "duration" => (
            prop_oneof![
                text(&["10s", "250ms", "2h", "7d", "1.5m", ".5h", "90"]),
                (60i64..600_000).prop_map(toml::Value::Integer),
                (60.0..1e5f64).prop_map(toml::Value::Float),
            ]
            .boxed(),
            prop_oneof![
                text(&["0", "59s", "8d", "forever", "1e30", "", "1.2.3"]),
                prop::sample::select(&[1e30, -1.0, f64::NAN, 1.8446744073709552e19, 1e12][..])
                    .prop_map(toml::Value::Float),
                any::<i64>().prop_map(toml::Value::Integer),
            ]
            .boxed(),
        ),
        "prefix" => (text(&["brine", "fleet.eu-1", "a_b"]).boxed(), text(&["a..b", "", "a b", "x.*"]).boxed()),
        "listen" => (text(&["0.0.0.0:4222", "[::1]:0", "127.0.0.1:0"]).boxed(), text(&["nowhere", ":4222"]).boxed()),
        "url" => (text(&["nats://h:4222", "tls://10.0.0.1:4443"]).boxed(), text(&["h", ""]).boxed()),
        "names" => (
            prop::collection::vec(text(&["brine.example.com", "10.0.0.1", "*.x"]), 0..3)
                .prop_map(toml::Value::Array)
                .boxed(),
            text(&["brine.example.com"]).boxed(),
        ),
        _ => (text(&["/var/lib/brine", "x", "info", "debug"]).boxed(), text(&[""]).boxed()),
    };
    prop_oneof![12 => good, 2 => bad, 1 => toml_value(), 1 => any::<String>().prop_map(toml::Value::String)].boxed()
}

/// Some of `keys`, each with a value for its kind, present with probability `p`.
fn entries(p: f64, keys: &'static [(&'static str, &'static str)]) -> impl Strategy<Value = toml::Table> {
    let each: Vec<_> =
        keys.iter().map(|&(key, kind)| prop::option::weighted(p, setting(kind)).prop_map(move |v| (key, v))).collect();
    each.prop_map(|kv| kv.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect())
}

/// Nodegroups: names (some invalid) defined by target expressions that may name each
/// other.
fn nodegroups() -> impl Strategy<Value = toml::Table> {
    let term =
        prop::sample::select(&["web*", "L@a,b", "G@os:Debian", "S@10.0.0.0/8", "N@a", "N@b", "N@c", "E@db\\d"][..]);
    let junk = prop::sample::select(&["and", "or", "not", "(", ")", "E@(", "N@zz", "G@"][..]);
    let expr = (term.clone(), prop::collection::vec((prop::sample::select(&["and", "or", "and not"][..]), term), 0..3))
        .prop_map(|(first, rest)| rest.iter().fold(first.to_string(), |acc, (op, t)| format!("{acc} {op} {t}")));
    let def = prop_oneof![
        6 => expr.clone().prop_map(toml::Value::String),
        2 => expr.prop_map(|e| toml::Value::Array(e.split(' ').map(|w| toml::Value::String(w.into())).collect())),
        1 => prop::collection::vec(junk, 1..4).prop_map(|w| toml::Value::String(w.join(" "))),
        1 => toml_value(),
    ];
    prop::collection::vec((prop_oneof![8 => "[abc]", 1 => "\\PC{0,4}"], def), 0..4)
        .prop_map(|kv| kv.into_iter().collect::<toml::Table>())
}

/// A TOML document of the master's keys (and an unknown one) with arbitrary values.
fn document() -> impl Strategy<Value = String> {
    const TOP: &[(&str, &str)] = &[
        ("data_dir", "path"),
        ("prefix", "prefix"),
        ("auto_accept", "bool"),
        ("job_ttl", "duration"),
        ("keep_jobs", "duration"),
        ("presence_timeout", "duration"),
        ("log_level", "text"),
    ];
    // Embedded or external mode, and now and then a mix of the two.
    const EMBEDDED: &[(&str, &str)] = &[("listen", "listen"), ("server_bin", "path")];
    const EXTERNAL: &[(&str, &str)] = &[("url", "url"), ("tls_ca_file", "path")];
    const USER: &[(&str, &str)] = &[("user", "text"), ("password", "text")];
    const CREDS: &[(&str, &str)] = &[("creds_file", "path")];
    let external = (setting("url"), entries(0.3, &EXTERNAL[1..]), entries(0.3, USER), entries(0.2, CREDS)).prop_map(
        |(url, mut table, user, creds)| {
            table.insert("url".into(), url);
            table.extend(user);
            table.extend(creds);
            table
        },
    );
    const ALL: &[(&str, &str)] = &[
        ("listen", "listen"),
        ("server_bin", "path"),
        ("url", "url"),
        ("tls_ca_file", "path"),
        ("user", "text"),
        ("password", "text"),
        ("creds_file", "path"),
    ];
    const TLS: &[(&str, &str)] = &[("enabled", "bool"), ("names", "names")];
    let nats = prop_oneof![3 => entries(0.3, EMBEDDED), 3 => external, 1 => entries(0.2, ALL)];
    (entries(0.3, TOP), nats, entries(0.3, TLS), nodegroups()).prop_filter_map(
        "TOML can write it",
        |(mut doc, nats, tls, groups)| {
            for (name, table) in [("nats", nats), ("tls", tls), ("nodegroups", groups)] {
                if !table.is_empty() {
                    doc.insert(name.into(), toml::Value::Table(table));
                }
            }
            toml::to_string(&doc).ok()
        },
    )
}

/// What holds of every config that parses.
fn check(text: &str) -> Result<(), TestCaseError> {
    match MasterConfig::parse(text, Some(Path::new("/etc/brine/master.toml"))) {
        Ok(c) => {
            prop_assert!(c.job_ttl >= Duration::from_secs(1) && c.job_ttl <= brine_proto::envelope::MAX_TTL);
            prop_assert!(c.keep_jobs >= Duration::from_secs(60));
            prop_assert!(Subjects::new(c.subjects.prefix()).is_ok());
            for name in c.nodegroups.keys() {
                let t = brine_proto::Target::Nodegroup(name.clone()).expand_nodegroups(&c.nodegroups);
                prop_assert!(t.is_ok_and(|t| brine_proto::TargetMatcher::compile(&t).is_ok()), "{}", name);
            }
        }
        Err(e) => prop_assert!(e.to_string().starts_with("config file /etc/brine/master.toml"), "{}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn arbitrary_text_is_a_config_or_an_error(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn toml_like_text_is_a_config_or_an_error(text in "([a-z_]{1,10} = |\\[[a-z]{1,10}\\]\n)([\"'0-9.a-z\\[\\]{}=,: -]{0,16})\n{0,2}") {
        check(&text)?;
    }

    #[test]
    fn any_value_for_any_key_is_a_config_or_an_error(text in document()) {
        check(&text)?;
    }

    /// The packaged file (all defaults) with one setting given an arbitrary value.
    #[test]
    fn the_packaged_file_with_one_value_set_is_a_config_or_an_error(
        line in any::<prop::sample::Index>(),
        value in toml_value(),
    ) {
        let text = include_str!("../../../packaging/master.toml");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let settings: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].contains(" = ")).collect();
        let i = settings[line.index(settings.len())];
        let key = lines[i].trim_start_matches('#').split(" = ").next().unwrap_or_default().to_string();
        lines[i] = format!("{key} = {value}");
        check(&lines.join("\n"))?;
    }
}
