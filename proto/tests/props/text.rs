//! Everything in `brine-proto` that parses text: subject tokens, minion ids, subjects,
//! JIDs, command-line arguments, durations, fingerprints and target expressions.

use crate::cases;
use crate::strategies::{jid, minion_id};
use brine_proto::args::{parse_cli_args, type_word};
use brine_proto::config::{format_duration, parse_duration};
use brine_proto::id::{decode_token, encode_token};
use brine_proto::keys::Fingerprint;
use brine_proto::target::{Facts, Nodegroups};
use brine_proto::{Jid, Map, MinionId, Subjects, Target, TargetMatcher, Value};
use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;

/// Words target expressions are made of, valid and not.
const TARGET_WORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "(",
    ")",
    "*",
    "web*",
    "db[12]",
    "web?",
    "[!a]",
    "a.b.c",
    "L@a,b",
    "L@",
    "L@,",
    "E@web\\d+",
    "E@(",
    "E@a{1000}{1000}",
    "G@os:Debian",
    "G@roles:web*",
    "G@a:b:c",
    "G@",
    "G@x",
    "P@os:Deb.*",
    "P@a:(",
    "I@role:web",
    "J@x:y",
    "S@10.0.0.0/8",
    "S@::1",
    "S@300.1.1.1",
    "S@fe80::/10",
    "N@web",
    "N@",
    "X@y",
    "@",
    "a@b",
    "G@*:*",
    "\\",
    "[",
    "{a,b}",
    "**",
    "G@ipv4:10.*",
];

fn target_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TARGET_WORDS), 0..12).prop_map(|w| w.join(" "))
}

/// Grains with the shapes targets look into: nested maps, lists, addresses.
fn facts_grains() -> Map {
    json!({
        "os": "Debian", "roles": ["web", "db"], "a": {"b": {"c": "d"}}, "num": 3, "none": null, "yes": true,
        "ipv4": ["10.1.2.3", "127.0.0.1", "not an address"], "ipv6": ["::1"], "list": [{"x": 1}, "y"],
    })
    .as_object()
    .unwrap()
    .clone()
}

fn compile_and_match(target: &Target) {
    if let Ok(m) = TargetMatcher::compile(target) {
        let grains = facts_grains();
        for id in ["web1", "db2.example.com", "a", ""] {
            m.matches_id(id);
            m.matches(&Facts { id, grains: Some(&grains), pillar: Some(&grains) });
        }
    }
}

fn every_variant(s: &str) -> Vec<Target> {
    vec![
        Target::Glob(s.into()),
        Target::list_from_str(s),
        Target::List(vec![s.into()]),
        Target::Pcre(s.into()),
        Target::Grain(s.into()),
        Target::GrainPcre(s.into()),
        Target::Pillar(s.into()),
        Target::PillarPcre(s.into()),
        Target::Cidr(s.into()),
        Target::Nodegroup(s.into()),
        Target::Compound(s.into()),
    ]
}

/// Whether `word` is written as a quoted YAML scalar (whose quotes typing removes).
fn quoted(word: &str) -> bool {
    let t = word.trim();
    t.len() >= 2 && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn tokens_round_trip_and_stay_one_subject_token(s in any::<String>()) {
        let token = encode_token(&s);
        prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-~%".contains(&b)), "{}", token);
        prop_assert_eq!(decode_token(&token), Some(s));
    }

    #[test]
    fn every_string_has_exactly_one_token(token in "[A-Za-z0-9_~%-]{0,12}(%[0-9A-Fa-f]{2}){0,3}|\\PC{0,16}") {
        if let Some(decoded) = decode_token(&token) {
            prop_assert_eq!(encode_token(&decoded), token);
        }
    }

    #[test]
    fn minion_ids_validate_without_panicking(s in any::<String>()) {
        if let Ok(id) = MinionId::new(s.clone()) {
            prop_assert_eq!(id.as_str(), &s);
            prop_assert_eq!(MinionId::from_token(&id.token()), Ok(id));
        }
        let _ = MinionId::from_token(&s);
    }

    #[test]
    fn subjects_name_their_minion_and_job(
        prefix in "[a-z0-9_-]{1,8}(\\.[A-Za-z0-9_-]{1,8}){0,2}",
        id in minion_id(),
        jid in jid(),
        op in "[a-z]{1,8}",
    ) {
        let s = Subjects::new(&prefix).unwrap();
        let (ret, job, qjob, rpc, j) = (s.ret(&id, jid), s.job(&id, jid), s.qjob(&id, jid), s.rpc(&id, &op), jid.to_string());
        prop_assert_eq!(s.parse_ret(&ret), Some((id.clone(), j.as_str())));
        prop_assert_eq!(s.parse_job(&job), Some((id.clone(), j.as_str())));
        prop_assert_eq!(s.parse_job(&qjob), Some((id.clone(), j.as_str())));
        prop_assert_eq!(s.parse_rpc(&rpc), Some((id.clone(), op.as_str())));
        prop_assert_eq!(s.parse_presence(&s.presence(&id)), Some(id));
    }

    #[test]
    fn subject_parsers_never_panic(subject in "(brine\\.)?(ret|job|qjob|rpc|presence)?\\.?\\PC{0,24}") {
        let s = Subjects::default();
        let _ = (s.parse_ret(&subject), s.parse_job(&subject), s.parse_rpc(&subject), s.parse_presence(&subject));
        let _ = Subjects::new(&subject);
    }

    #[test]
    fn jids_display_as_twenty_digits_and_parse_back(jid in jid()) {
        let s = jid.to_string();
        prop_assert_eq!(s.len(), 20);
        prop_assert_eq!(s.parse::<Jid>(), Ok(jid));
    }

    #[test]
    fn jid_parsing_is_canonical_and_never_panics(s in "[0-9]{20}|\\PC{0,24}") {
        if let Ok(jid) = s.parse::<Jid>() {
            prop_assert_eq!(jid.to_string(), s);
        }
    }

    #[test]
    fn typed_words_lose_nothing(word in any::<String>()) {
        // A word typed as a string is the word itself, unless it was quoted.
        if let Value::String(s) = type_word(&word) {
            if !quoted(&word) {
                prop_assert_eq!(s, word);
            }
        }
    }

    #[test]
    fn plain_words_stay_strings(word in "[a-zA-Z][a-zA-Z0-9/_.@-]{0,20}( [a-z#:=,-]{1,8}){0,2}") {
        let scalar = ["true", "false", "yes", "no", "on", "off", "null", "none"];
        prop_assume!(!scalar.contains(&word.to_lowercase().as_str()));
        prop_assert_eq!(type_word(&word), Value::String(word));
    }

    #[test]
    fn yaml_looking_words_never_panic(word in "[\\[{\"' ]{0,3}[a-z0-9:,#&*!|>%@`\\[\\]{}\"' \\\\-]{0,24}") {
        let _ = type_word(&word);
    }

    #[test]
    fn integers_are_typed_as_integers(n in any::<i64>(), u in any::<u64>()) {
        prop_assert_eq!(type_word(&n.to_string()), Value::from(n));
        prop_assert_eq!(type_word(&u.to_string()), Value::from(u));
    }

    #[test]
    fn every_word_is_an_argument_or_a_keyword(
        words in prop::collection::vec(prop_oneof![any::<String>(), "[a-z_][a-z0-9_.-]{0,6}=\\PC{0,8}"], 0..6),
    ) {
        let (args, kwargs) = parse_cli_args(&words);
        let without_equals = words.iter().filter(|w| !w.contains('=')).count();
        prop_assert!(args.len() >= without_equals);
        prop_assert!(args.len() + kwargs.len() <= words.len());
        for word in &words {
            let Some((key, value)) = word.split_once('=') else { continue };
            let once = words.iter().filter(|w| w.split_once('=').is_some_and(|(k, _)| k == key)).count() == 1;
            if once && kwargs.contains_key(key) {
                prop_assert_eq!(&kwargs[key], &type_word(value));
            }
        }
    }

    #[test]
    fn durations_parse_without_panicking(s in "[0-9.]{0,24} ?(ms|s|m|h|d|min|secs|x)?|\\PC{0,12}") {
        if let Ok(d) = parse_duration(&s) {
            prop_assert!(d.as_secs() <= 1_000_000_000_000);
        }
    }

    #[test]
    fn durations_format_and_parse_back(ms in 0u64..100_000_000_000) {
        let d = Duration::from_millis(ms);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn fingerprints_parse_back_and_garbage_never_panics(
        key in any::<[u8; 32]>(),
        garbage in "([0-9a-fA-F:]|\\PC){60,70}",
    ) {
        let fp = Fingerprint::of_bytes(&key);
        prop_assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        prop_assert_eq!(Fingerprint::parse(&fp.to_string().replace(':', "")), Some(fp));
        if let Some(parsed) = Fingerprint::parse(&garbage) {
            prop_assert!(garbage.chars().all(|c| c.is_ascii_hexdigit() || c == ':'));
            prop_assert_eq!(parsed.to_string().replace(':', ""), garbage.replace(':', "").to_lowercase());
        }
    }

    #[test]
    fn any_text_as_any_target_type_compiles_or_is_refused(s in any::<String>()) {
        for target in every_variant(&s) {
            compile_and_match(&target);
        }
    }

    #[test]
    fn target_soup_compiles_or_is_refused(s in target_soup()) {
        for target in every_variant(&s) {
            compile_and_match(&target);
        }
    }

    #[test]
    fn plain_globs_mean_the_same_as_compound_terms(glob in "[a-z0-9*?.-]{1,8}", id in "[a-z0-9.-]{0,10}") {
        // A compound reads these words as its operators, not as globs.
        prop_assume!(!["and", "or", "not"].contains(&glob.as_str()));
        let a = TargetMatcher::compile(&Target::Glob(glob.clone())).unwrap();
        let b = TargetMatcher::compile(&Target::Compound(glob)).unwrap();
        prop_assert_eq!(a.matches_id(&id), b.matches_id(&id));
    }

    #[test]
    fn nodegroups_expand_or_are_refused(
        defs in prop::collection::vec(target_soup(), 1..6),
        refs in prop::collection::vec((0usize..6, 0usize..6), 0..12),
        start in 0usize..6,
    ) {
        let mut groups = Nodegroups::new();
        for (i, def) in defs.iter().enumerate() {
            groups.insert(format!("g{i}"), def.clone());
        }
        for (from, to) in refs {
            if let Some(def) = groups.get_mut(&format!("g{from}")) {
                def.push_str(&format!(" or N@g{to} and N@g{to}"));
            }
        }
        if let Ok(t) = Target::Nodegroup(format!("g{start}")).expand_nodegroups(&groups) {
            prop_assert!(!t.to_compound().contains("N@g"));
            compile_and_match(&t);
        }
    }
}

/// Words cron expressions are made of, valid and not.
const CRON_WORDS: &[&str] = &[
    "*", "*/5", "*/0", "0", "59", "60", "1-5", "5-1", "1,2", ",", "1,,2", "jan", "DEC", "mon-fri", "sun", "7", "8",
    "5/15", "@daily", "@hourly", "@x", "/", "-", "31", "30", "2", "feb", "29", "x",
];

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn cron_next_runs_are_whole_minutes_later_and_the_first_match(
        words in prop::collection::vec(prop::sample::select(CRON_WORDS), 0..7),
        after in 0u64..4_102_444_800_000,
    ) {
        if let Ok(cron) = words.join(" ").parse::<brine_proto::cron::Cron>() {
            if let Some(next) = cron.next_after(after) {
                prop_assert!(next > after && next % 60_000 == 0);
                // No match is skipped: asking from just before it finds it again.
                prop_assert_eq!(cron.next_after(next - 1), Some(next));
            }
        }
    }

    #[test]
    fn schedule_text_parsers_never_panic(s in "\\PC{0,32}") {
        let _ = s.parse::<brine_proto::cron::Cron>();
        let _ = brine_proto::schedule::parse_datetime(&s);
        let _ = brine_proto::schedule::parse_moment(&s);
    }
}
