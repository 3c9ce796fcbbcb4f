//! Any text as any type of target: compiling refuses or accepts without panicking,
//! matching what compiles never panics, and nodegroup expansion (against a fixed set
//! of groups that name each other) terminates. The first byte picks the target type.
#![no_main]

use brine_proto::target::{Facts, Nodegroups};
use brine_proto::{Map, Target, TargetMatcher};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn grains() -> &'static Map {
    static GRAINS: OnceLock<Map> = OnceLock::new();
    GRAINS.get_or_init(|| {
        let mut g = Map::new();
        g.insert("os".into(), "Debian".into());
        g.insert("roles".into(), vec!["web", "db"].into());
        g.insert("ipv4".into(), vec!["10.1.2.3", "127.0.0.1"].into());
        g.insert("ipv6".into(), vec!["::1"].into());
        g.insert("num".into(), 3.into());
        g.insert("nested".into(), brine_proto::Value::Object(g.clone()));
        g
    })
}

fn groups() -> Nodegroups {
    Nodegroups::from([
        ("web".to_string(), "G@roles:web or L@a,b".to_string()),
        ("prod".to_string(), "N@web and not E@test".to_string()),
        ("twice".to_string(), "N@prod or N@prod".to_string()),
        ("loop".to_string(), "N@loop".to_string()),
    ])
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest).into_owned();
    let target = match select % 11 {
        0 => Target::Glob(text),
        1 => Target::list_from_str(&text),
        2 => Target::List(text.split('\n').map(str::to_string).collect()),
        3 => Target::Pcre(text),
        4 => Target::Grain(text),
        5 => Target::GrainPcre(text),
        6 => Target::Pillar(text),
        7 => Target::PillarPcre(text),
        8 => Target::Cidr(text),
        9 => Target::Nodegroup(text),
        _ => Target::Compound(text),
    };
    let target = target.expand_nodegroups(&groups()).unwrap_or(target);
    if let Ok(m) = TargetMatcher::compile(&target) {
        for id in ["web1", "db2.example.com", ""] {
            m.matches_id(id);
            m.matches(&Facts { id, grains: Some(grains()), pillar: Some(grains()) });
        }
    }
});
