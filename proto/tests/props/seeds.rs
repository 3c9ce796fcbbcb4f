//! Writes the fuzz targets' seed inputs (`fuzz/seeds/`) from the generators the
//! properties use, so that fuzzing starts from well-formed messages of every type:
//!
//! ```text
//! BRINE_FUZZ_SEEDS=fuzz/seeds cargo test -p brine-proto --test props -- --ignored write_fuzz_seeds
//! ```
//!
//! The seeds are deterministic; rerun it after changing a message type.

use crate::strategies::{any_message, AnyMessage};
use ed25519_dalek::SigningKey;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use std::path::Path;

/// The selector byte `open_messages` reads a body's type from (its `TYPES` order).
fn selector(msg: &AnyMessage) -> u8 {
    match msg {
        AnyMessage::EnrollRequest(_) => 0,
        AnyMessage::EnrollReply(_) => 1,
        AnyMessage::Job(_) => 2,
        AnyMessage::Return(_) => 3,
        AnyMessage::Ctl(_) => 4,
        AnyMessage::CtlReply(_) => 5,
        AnyMessage::Event(_) => 6,
        AnyMessage::Presence(_) => 7,
        AnyMessage::Rpc(_) => 8,
        AnyMessage::RpcReply(_) => 9,
    }
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes files; run by hand to refresh fuzz/seeds"]
fn write_fuzz_seeds() {
    let dir = std::env::var_os("BRINE_FUZZ_SEEDS").expect("set BRINE_FUZZ_SEEDS to the seeds directory");
    let dir = Path::new(&dir);
    // The key `open_messages` signs with.
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut runner = TestRunner::deterministic();
    let messages = any_message();
    let mut per_type = [0usize; 10];
    while per_type.iter().any(|&n| n < 3) {
        let msg = messages.new_tree(&mut runner).unwrap().current();
        let sel = selector(&msg);
        let n = &mut per_type[usize::from(sel)];
        if *n >= 3 {
            continue;
        }
        *n += 1;
        let sealed = msg.seal(&key);
        let name = format!("{sel}-{n}");
        write(dir, "envelope_decode", &name, &sealed);
        let body = brine_proto::Envelope::decode(&sealed).unwrap().body;
        write(dir, "open_messages", &format!("body-{name}"), &[&[sel][..], &body].concat());
        write(dir, "open_messages", &format!("wire-{name}"), &[&[sel | 0x80][..], &sealed].concat());
    }
    let targets: &[(u8, &str)] = &[
        (0, "web*"),
        (1, "a, b.example.com,c"),
        (3, "web\\d+"),
        (4, "os:Debian"),
        (5, "roles:w.*"),
        (6, "role:web"),
        (8, "10.0.0.0/8"),
        (9, "twice"),
        (10, "G@os:Debian and web* or L@a,b and not E@db\\d+"),
        (10, "( N@prod or S@::1 ) and not ( I@x:y or P@ipv4:10\\..* )"),
    ];
    for (i, (sel, text)) in targets.iter().enumerate() {
        write(dir, "target_compile", &format!("{i}"), &[&[*sel][..], text.as_bytes()].concat());
    }
    let args: [&[&str]; 2] = [
        &["1", "2.5", "yes", "[a, b]", "name=web", "port=80"],
        &["'it''s'", "\"42\"", "{a: 1, b: [x]}", "echo hi #there", "012:30"],
    ];
    for (i, words) in args.iter().enumerate() {
        write(dir, "cli_args", &format!("{i}"), words.join("\0").as_bytes());
    }
    let texts = [
        "250ms",
        "1.5d",
        "20231114221320123456",
        "web1~example~com",
        "a%40b",
        "07:e9:62:1c:a8:45:16:c4:33:21:ba:0b:74:4a:46:c3:b2:91:cb:a9:6b:ae:0c:e3:a2:b3:c0:23:a8:6e:0f:c4",
        "brine.ret.web1~x.20231114221320123456",
    ];
    for (i, text) in texts.iter().enumerate() {
        write(dir, "text_parsers", &format!("{i}"), text.as_bytes());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (target, file) in [("master_config", "packaging/master.toml"), ("minion_config", "packaging/minion.toml")] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        write(dir, target, "packaged", text.as_bytes());
        // The minion target supplies its own id.
        let uncommented: String = text
            .lines()
            .filter(|l| !l.starts_with("#id "))
            .map(|l| l.strip_prefix('#').unwrap_or(l).to_string() + "\n")
            .collect();
        write(dir, target, "uncommented", uncommented.as_bytes());
    }
}
