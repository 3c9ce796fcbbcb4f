//! Micro-benchmarks of what every message and every job costs, whatever the fleet:
//!
//! - `seal_return` / `open_return`: sign, and decode + verify + check, one signed
//!   return of `test.ping` (what a minion and the master's ingestion do per return);
//! - `encode_return` / `decode_return`: MessagePack alone, no signature;
//! - `verify_1024_strict` / `verify_1024_batch`: 1 024 return signatures checked one by
//!   one with `verify_strict` (what the master does) or with ed25519 batch verification
//!   (the fast path the issue asks to measure);
//! - `target_10k/*`: resolving a target over 10 000 minions with swarm-like ids and
//!   grains, the master's work per `brine run`;
//! - `events_1024/one_by_one` / `events_1024/tree`: sealing the 1 024
//!   `brine/job/<jid>/ret/<id>` events of a batch of returns, each signed alone or all
//!   under one hash-tree signature (what the master does), and
//!   `events_1024/open_tree`: a listener checking all of them (one signature check).
//!
//! `cargo bench -p brine-proto --bench proto`; see BENCHMARKS.md for figures.

use brine_proto::envelope::{open, seal, seal_tree, Envelope, Stamp, TreeRoots};
use brine_proto::msg::{Event, Return};
use brine_proto::target::Facts;
use brine_proto::{Jid, Map, MinionId, Target, TargetMatcher, Value};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::hint::black_box;
use std::time::Duration;

fn ping_return(i: usize) -> Return {
    let jid = Jid::from_micros(1_763_000_000_000_000);
    Return {
        stamp: Stamp::new(jid.to_string(), Duration::from_secs(3600)),
        jid,
        id: MinionId::new(format!("swarm-{i:05}")).expect("id"),
        fun: "test.ping".into(),
        ret: Value::Bool(true),
        retcode: 0,
        success: true,
        started_at: 1_763_000_000_000,
        duration_ms: 0,
        schedule: None,
    }
}

fn key(i: usize) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn envelope(c: &mut Criterion) {
    let sk = key(1);
    let vk = sk.verifying_key();
    let ret = ping_return(1);
    let sealed = seal(&ret, &sk).expect("seal");
    let now = brine_proto::time::now_ms();
    c.bench_function("seal_return", |b| b.iter(|| seal(black_box(&ret), &sk).expect("seal")));
    c.bench_function("open_return", |b| b.iter(|| open::<Return>(black_box(&sealed), &vk, now).expect("open")));
    c.bench_function("encode_return", |b| b.iter(|| rmp_serde::to_vec_named(black_box(&ret)).expect("encode")));
    let body = rmp_serde::to_vec_named(&ret).expect("encode");
    c.bench_function("decode_return", |b| {
        b.iter(|| rmp_serde::from_slice::<Return>(black_box(&body)).expect("decode"))
    });
    c.bench_function("decode_envelope", |b| b.iter(|| Envelope::decode(black_box(&sealed)).expect("decode")));
}

fn batch(c: &mut Criterion) {
    // 1 024 returns from 1 024 minions, as one ingestion batch.
    let items: Vec<(VerifyingKey, Vec<u8>, Signature)> = (0..1024)
        .map(|i| {
            let sk = key(i);
            let msg = rmp_serde::to_vec_named(&ping_return(i)).expect("encode");
            let sig = sk.sign(&msg);
            (sk.verifying_key(), msg, sig)
        })
        .collect();
    let mut g = c.benchmark_group("verify_1024");
    g.sample_size(20);
    g.bench_function("strict", |b| {
        b.iter(|| {
            for (vk, msg, sig) in &items {
                vk.verify_strict(msg, sig).expect("valid");
            }
        })
    });
    g.bench_function("batch", |b| {
        b.iter_batched(
            || {
                let msgs: Vec<&[u8]> = items.iter().map(|(_, m, _)| m.as_slice()).collect();
                let sigs: Vec<Signature> = items.iter().map(|(_, _, s)| *s).collect();
                let keys: Vec<VerifyingKey> = items.iter().map(|(k, _, _)| *k).collect();
                (msgs, sigs, keys)
            },
            |(msgs, sigs, keys)| ed25519_dalek::verify_batch(&msgs, &sigs, &keys).expect("valid"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn targets(c: &mut Criterion) {
    let fleet: Vec<(String, Map)> = (0..10_000usize)
        .map(|i| {
            let id = format!("swarm-{i:05}");
            let role = ["web", "db", "cache", "worker"][i % 4];
            let grains = serde_json::json!({"id": id, "os": "Debian", "osrelease": "12", "role": role,
                "ipv4": [format!("10.0.{}.{}", (i >> 8) & 255, i & 255)]});
            let Value::Object(m) = grains else { unreachable!() };
            (id, m)
        })
        .collect();
    let cases = [
        ("glob_all", Target::Glob("*".into())),
        ("glob_prefix", Target::Glob("swarm-01*".into())),
        ("list_100", Target::List((0..100).map(|i| format!("swarm-{:05}", i * 97)).collect())),
        ("pcre", Target::Pcre(r"swarm-0[0-4]\d{3}".into())),
        ("grain", Target::Grain("role:web".into())),
        ("cidr", Target::Cidr("10.0.3.0/24".into())),
        ("compound", Target::Compound(r"G@role:web and not E@swarm-0[5-9]\d{3} or L@swarm-00001,swarm-00002".into())),
    ];
    let mut g = c.benchmark_group("target_10k");
    g.sample_size(20);
    for (name, target) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                let m = TargetMatcher::compile(black_box(&target)).expect("target");
                fleet.iter().filter(|(id, grains)| m.matches(&Facts { id, grains: Some(grains), pillar: None })).count()
            })
        });
    }
    g.finish();
}

fn events(c: &mut Criterion) {
    let sk = key(1);
    let vk = sk.verifying_key();
    let events: Vec<Event> = (0..1024)
        .map(|i| {
            let data = serde_json::json!({"jid": "20261207000000000000", "id": format!("swarm-{i:05}"),
                "fun": "test.ping", "retcode": 0, "success": true, "return": true});
            Event::new(
                Stamp::random(Duration::from_secs(600)),
                format!("brine/job/20261207000000000000/ret/swarm-{i:05}"),
                data,
            )
        })
        .collect();
    let mut g = c.benchmark_group("events_1024");
    g.sample_size(20);
    g.bench_function("one_by_one", |b| {
        b.iter(|| events.iter().map(|e| seal(black_box(e), &sk).expect("seal").len()).sum::<usize>())
    });
    g.bench_function("tree", |b| {
        b.iter(|| seal_tree(black_box(&events), &sk).into_iter().map(|r| r.expect("seal").len()).sum::<usize>())
    });
    let wire: Vec<Envelope> =
        seal_tree(&events, &sk).into_iter().map(|r| Envelope::decode(&r.expect("seal")).expect("decode")).collect();
    g.bench_function("open_tree", |b| {
        b.iter(|| {
            let mut roots = TreeRoots::default();
            wire.iter().all(|e| e.verify_cached(&vk, &mut roots).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, envelope, batch, targets, events);
criterion_main!(benches);
