//! Property tests of the config parser: whatever the file holds, the minion gets a
//! validated config or an error naming the file — never a panic. The fuzz target
//! `minion_config` (see `fuzz/`) drives the same function coverage-guided.
//!
//! Every document names an `id`: without one the parser asks the host for its
//! fully qualified name, which is slow and not what is under test.

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
            "99ms",
            "1e30",
            "-1",
            "brine",
            "m:4000",
            "nats://h:1",
            "[::1]:4222",
            "a b",
            "web1.example.com",
            "bad id",
            "-x",
            "auto",
            "nkey",
            "none",
            "jwt",
            "fleet.eu-1",
            "a..b",
            "/etc/brine/ca.pem",
            "",
            "07:e9:62:1c:a8:45:16:c4:33:21:ba:0b:74:4a:46:c3:b2:91:cb:a9:6b:ae:0c:e3:a2:b3:c0:23:a8:6e:0f:c4",
            "aéééééééééééééééééééééééééééééééb",
        ][..],
    );
    let leaf = prop_oneof![
        4 => words.prop_map(|w| toml::Value::String(w.into())),
        1 => any::<String>().prop_map(toml::Value::String),
        1 => any::<i64>().prop_map(toml::Value::Integer),
        1 => prop::sample::select(&[1e30, -1.0, f64::NAN, f64::INFINITY, 0.05, 1.8446744073709552e19, 1e12][..])
            .prop_map(toml::Value::Float),
        1 => any::<bool>().prop_map(toml::Value::Boolean),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::vec(("\\PC{0,6}", inner), 0..3)
                .prop_map(|kv| toml::Value::Table(kv.into_iter().collect())),
        ]
    })
}

/// A value for a key of this kind: mostly a valid one, sometimes a wrong one of the
/// right type, now and then anything at all.
fn setting(kind: &'static str) -> BoxedStrategy<toml::Value> {
    let text = |words: &'static [&'static str]| prop::sample::select(words).prop_map(|w| toml::Value::String(w.into()));
    let (good, bad): (BoxedStrategy<toml::Value>, BoxedStrategy<toml::Value>) = match kind {
        "id" => (
            "[a-z0-9][a-z0-9.@:+_-]{0,20}".prop_map(toml::Value::String).boxed(),
            text(&["bad id", "-x", "", ".."]).boxed(),
        ),
        "master" => (
            text(&["brine", "m:4000", "nats://h:1", "tls://10.0.0.1:4443", "127.0.0.1", "[::1]:4222"]).boxed(),
            text(&["a b", "", " "]).boxed(),
        ),
        "finger" => (
            text(&[
                "07:e9:62:1c:a8:45:16:c4:33:21:ba:0b:74:4a:46:c3:b2:91:cb:a9:6b:ae:0c:e3:a2:b3:c0:23:a8:6e:0f:c4",
                "07e9621ca84516c43321ba0b744a46c3b291cba96bae0ce3a2b3c023a86e0fc4",
                "",
            ])
            .boxed(),
            text(&[
                "zz",
                "aéééééééééééééééééééééééééééééééb",
                "+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1",
            ])
            .boxed(),
        ),
        "prefix" => (text(&["brine", "fleet.eu-1", "a_b"]).boxed(), text(&["a..b", "", "a b", "x.*"]).boxed()),
        "workers" => {
            ((1i64..=1024).prop_map(toml::Value::Integer).boxed(), any::<i64>().prop_map(toml::Value::Integer).boxed())
        }
        "duration" => (
            prop_oneof![
                text(&["10s", "250ms", "2h", "1.5m", "100ms"]),
                (1i64..100_000).prop_map(toml::Value::Integer),
                (0.1..1e5f64).prop_map(toml::Value::Float),
            ]
            .boxed(),
            prop_oneof![
                text(&["0", "99ms", "forever", "1e30", "", "1.2.3"]),
                prop::sample::select(&[1e30, -1.0, f64::NAN, 1.8446744073709552e19, 1e12, 0.0][..])
                    .prop_map(toml::Value::Float),
                any::<i64>().prop_map(toml::Value::Integer),
            ]
            .boxed(),
        ),
        "auth" => (text(&["nkey", "none"]).boxed(), text(&["jwt", ""]).boxed()),
        "required" => (
            prop_oneof![any::<bool>().prop_map(toml::Value::Boolean), text(&["auto"])].boxed(),
            prop_oneof![text(&["yes", ""]), any::<i64>().prop_map(toml::Value::Integer)].boxed(),
        ),
        _ => (text(&["/var/lib/brine/minion", "x", "info"]).boxed(), text(&[""]).boxed()),
    };
    prop_oneof![12 => good, 2 => bad, 1 => toml_value(), 1 => any::<String>().prop_map(toml::Value::String)].boxed()
}

/// Some of `keys`, each with a value for its kind, present with probability `p`.
fn entries(p: f64, keys: &'static [(&'static str, &'static str)]) -> impl Strategy<Value = toml::Table> {
    let each: Vec<_> =
        keys.iter().map(|&(key, kind)| prop::option::weighted(p, setting(kind)).prop_map(move |v| (key, v))).collect();
    each.prop_map(|kv| kv.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect())
}

/// A TOML document of the minion's keys with arbitrary values.
fn document() -> impl Strategy<Value = String> {
    const TOP: &[(&str, &str)] = &[
        ("master", "master"),
        ("master_finger", "finger"),
        ("data_dir", "path"),
        ("prefix", "prefix"),
        ("workers", "workers"),
        ("presence_interval", "duration"),
        ("enroll_retry_min", "duration"),
        ("enroll_retry_max", "duration"),
        ("log_level", "path"),
    ];
    let grains = prop::collection::vec(("[a-z_]{1,8}|\\PC{0,6}", toml_value()), 0..3)
        .prop_map(|kv| kv.into_iter().collect::<toml::Table>());
    (
        setting("id"),
        entries(0.3, TOP),
        entries(0.3, &[("auth", "auth")]),
        entries(0.3, &[("ca_file", "path"), ("required", "required")]),
        grains,
    )
        .prop_filter_map("TOML can write it", |(id, mut doc, nats, tls, grains)| {
            doc.insert("id".into(), id);
            for (name, table) in [("nats", nats), ("tls", tls), ("grains", grains)] {
                if !table.is_empty() {
                    doc.insert(name.into(), toml::Value::Table(table));
                }
            }
            toml::to_string(&doc).ok()
        })
}

/// What holds of every config that parses.
fn check(text: &str) -> Result<(), TestCaseError> {
    match MinionConfig::parse(text, Some(Path::new("/etc/brine/minion.toml"))) {
        Ok(c) => {
            prop_assert!((1..=1024).contains(&c.workers));
            prop_assert!(c.presence_interval >= Duration::from_millis(100));
            prop_assert!(!c.enroll_retry_min.is_zero() && c.enroll_retry_min <= c.enroll_retry_max);
            prop_assert!(c.master_url.contains("://"), "{}", c.master_url);
            prop_assert!(Subjects::new(c.subjects.prefix()).is_ok());
            prop_assert_eq!(MinionId::new(c.id.as_str()), Ok(c.id.clone()));
        }
        Err(e) => prop_assert!(e.to_string().starts_with("config file /etc/brine/minion.toml"), "{}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn arbitrary_text_is_a_config_or_an_error(text in any::<String>()) {
        check(&format!("id = \"x\"\n{text}"))?;
    }

    #[test]
    fn toml_like_text_is_a_config_or_an_error(text in "([a-z_]{1,10} = |\\[[a-z]{1,10}\\]\n)([\"'0-9.a-z\\[\\]{}=,: -]{0,16})\n{0,2}") {
        check(&format!("id = \"x\"\n{text}"))?;
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
        let text = include_str!("../../../packaging/minion.toml");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let settings: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].contains(" = ")).collect();
        let i = settings[line.index(settings.len())];
        let key = lines[i].trim_start_matches('#').split(" = ").next().unwrap_or_default().to_string();
        lines[i] = format!("{key} = {value}");
        check(&format!("id = \"x\"\n{}", lines.join("\n")))?;
    }
}
