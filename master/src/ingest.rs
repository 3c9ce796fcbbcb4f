//! Return ingestion: the pipeline that turns minions' signed returns into stored job
//! results.
//!
//! Returns arrive two ways, in batches: handed to the running master directly
//! (request/reply on `P.dret.<minion>.<jid>`, the usual way), or through a JetStream
//! work-queue stream (`<PREFIX>_RET` on `P.ret.>`) read by one durable pull consumer —
//! where a minion sends a return the master did not take in time (stopped, or too
//! busy), and where older minions send them all. Either way: decode → verify against
//! the minion's accepted key → store (idempotent by JID and minion) → flush →
//! acknowledge (a stream message is acked, a direct one answered
//! [`brine_proto::msg::RETURN_STORED`]; until then the minion keeps the return
//! spooled). A return is acknowledged only once it is durable, so a master that dies
//! mid-batch gets the batch again (from the stream, or from the minion). Anything that
//! fails a check is dropped, acknowledged (it would fail again) and counted. Verified
//! returns are then forwarded to operators following the job, and announced on the
//! event bus.
//!
//! The direct way keeps the common case off JetStream's disk: a stored-and-deleted
//! stream message costs the NATS server a file write, a delivery, an acknowledgement
//! and a delete, a direct return two routed messages.
//!
//! Checking and committing are separate stages (see [`Ingest::run`]): batches are
//! verified while earlier ones are flushed, and every batch checked during a flush
//! goes into the next one.

use crate::master::{Shared, StartError};
use crate::stats::Stats;
use crate::store::JobCache;
use async_nats::jetstream::{self, consumer::pull, stream};
use brine_proto::envelope::{open, open_many, seal, OpenError, Stamp};
use brine_proto::msg::{CtlReply, CtlResult, Event, Return, RETURN_STORED};
use brine_proto::{Jid, MinionId};
use ed25519_dalek::VerifyingKey;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Most returns handled in one batch.
const BATCH: usize = 1024;

/// Returns arriving together that make a burst, worth gathering for up to [`GATHER`]
/// into one batch.
const BURST: usize = 32;

/// How long a burst's batch waits for more returns.
const GATHER: Duration = Duration::from_millis(1);

/// The ingestion pipeline's sources: the returns stream's consumer and the direct
/// returns' subscription.
pub struct Ingest {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    direct: async_nats::Subscriber,
}

/// A return as it arrived, and how to acknowledge it.
struct Incoming {
    subject: String,
    payload: bytes::Bytes,
    ack: Ack,
}

/// How an incoming return is acknowledged once durable.
enum Ack {
    /// Through the returns stream: acknowledged to JetStream.
    Stream(Box<jetstream::Message>),
    /// Handed over directly: the minion waits for [`RETURN_STORED`] on `reply`.
    Direct(Option<async_nats::Subject>),
}

impl Incoming {
    fn from_stream(m: jetstream::Message) -> Incoming {
        Incoming { subject: m.subject.to_string(), payload: m.payload.clone(), ack: Ack::Stream(Box::new(m)) }
    }

    fn from_direct(m: async_nats::Message) -> Incoming {
        Incoming { subject: m.subject.to_string(), payload: m.payload, ack: Ack::Direct(m.reply) }
    }
}

impl Ingest {
    /// Creates (or finds) the returns stream and the master's durable consumer.
    pub async fn setup(shared: &Shared) -> Result<Ingest, StartError> {
        let js = jetstream::new(shared.client.clone());
        let subjects = &shared.cfg.subjects;
        let stream = js
            .get_or_create_stream(stream::Config {
                name: subjects.stream_name("RET"),
                subjects: vec![subjects.all_rets()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                max_age: Duration::from_secs(7 * 24 * 3600),
                duplicate_window: Duration::from_secs(120),
                max_message_size: crate::nats::MAX_PAYLOAD as i32,
                ..Default::default()
            })
            .await
            .map_err(|e| StartError::JetStream(e.to_string()))?;
        let consumer = stream
            .get_or_create_consumer(
                "master",
                pull::Config {
                    durable_name: Some("master".into()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(10),
                    max_ack_pending: 50_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| StartError::JetStream(e.to_string()))?;
        // A queue group, so that several masters could share the direct returns.
        let direct = shared
            .returns_client
            .queue_subscribe(subjects.all_direct_rets(), "brine-master".into())
            .await
            .map_err(|e| StartError::Connect { url: "direct returns".into(), reason: e.to_string() })?;
        Ok(Ingest { consumer, direct })
    }

    /// Runs the pipeline until the task is aborted.
    ///
    /// The stages overlap: one task reads the stream into batches while this one
    /// verifies the batch before; while the committer makes one group of returns
    /// durable (store, flush, then acknowledge), the next batches are read and
    /// verified, and the committer then takes them together — one flush for all of
    /// them (group commit). A slow disk makes groups bigger rather than the pipeline
    /// slower.
    pub async fn run(self, shared: Arc<Shared>) {
        let (read_tx, mut read_rx) = tokio::sync::mpsc::channel::<Vec<Incoming>>(READ_AHEAD);
        let (checked_tx, checked_rx) = tokio::sync::mpsc::channel::<Checked>(QUEUED_BATCHES);
        let (events_tx, events_rx) = tokio::sync::mpsc::channel::<Vec<Return>>(QUEUED_BATCHES);
        // The other stages end with this task: a JoinSet aborts its tasks when dropped.
        let mut stages = tokio::task::JoinSet::new();
        stages.spawn(read_direct(self.direct, read_tx.clone()));
        stages.spawn(read_loop(self.consumer, read_tx));
        stages.spawn(commit_loop(shared.clone(), checked_rx, events_tx));
        stages.spawn(announce_loop(shared.clone(), events_rx));
        while let Some(msgs) = read_rx.recv().await {
            let checked = check(&shared, msgs).await;
            if checked_tx.send(checked).await.is_err() {
                return;
            }
        }
    }
}

/// Batches read ahead of the one being verified.
const READ_AHEAD: usize = 2;

/// Reads the direct returns into batches, as [`read_loop`] does the stream.
async fn read_direct(direct: async_nats::Subscriber, out: tokio::sync::mpsc::Sender<Vec<Incoming>>) {
    let mut batches = direct.ready_chunks(BATCH);
    while let Some(batch) = batches.next().await {
        let burst = batch.len() >= BURST;
        let mut msgs: Vec<Incoming> = batch.into_iter().map(Incoming::from_direct).collect();
        let until = tokio::time::Instant::now() + GATHER;
        while burst && msgs.len() < BATCH {
            match tokio::time::timeout_at(until, batches.next()).await {
                Ok(Some(more)) => msgs.extend(more.into_iter().map(Incoming::from_direct)),
                _ => break,
            }
        }
        if out.send(msgs).await.is_err() {
            return;
        }
    }
    tracing::error!("the subscription to direct returns ended; returns come through the stream only");
}

/// Reads the returns stream into batches, so that the stream keeps flowing while a
/// batch is verified.
async fn read_loop(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    out: tokio::sync::mpsc::Sender<Vec<Incoming>>,
) {
    loop {
        let messages = match consumer.stream().max_messages_per_batch(BATCH).messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the returns stream; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut batches = messages.ready_chunks(BATCH);
        while let Some(batch) = batches.next().await {
            let mut msgs = Vec::with_capacity(BATCH);
            let burst = batch.len() >= BURST;
            take_messages(&mut msgs, batch);
            // A burst (a big job's returns, a backlog): gather more for a moment.
            // Batch verification gets cheaper per signature with size, and every
            // batch costs hand-offs between threads; a few returns go at once.
            let until = tokio::time::Instant::now() + GATHER;
            while burst && msgs.len() < BATCH {
                match tokio::time::timeout_at(until, batches.next()).await {
                    Ok(Some(more)) => take_messages(&mut msgs, more),
                    _ => break,
                }
            }
            if !msgs.is_empty() && out.send(msgs).await.is_err() {
                return;
            }
        }
        tracing::warn!("the returns stream ended; resubscribing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Moves the messages of a chunk read from the stream into `msgs`.
fn take_messages<E: std::fmt::Display>(msgs: &mut Vec<Incoming>, chunk: Vec<Result<jetstream::Message, E>>) {
    for m in chunk {
        match m {
            Ok(m) => msgs.push(Incoming::from_stream(m)),
            Err(e) => tracing::debug!(error = %e, "returns stream hiccup"),
        }
    }
}

/// Batches checked and waiting for the committer (or groups for the announcer)
/// before the stage ahead waits.
const QUEUED_BATCHES: usize = 16;

/// One batch after the checks: its messages (all to be acknowledged once the good
/// returns are durable) and the returns that passed.
struct Checked {
    acks: Vec<Ack>,
    good: Vec<Return>,
    checked_us: u64,
}

/// Decodes and verifies one batch on the blocking threads, the signatures split
/// over the machine's cores; counts and logs what is dropped.
async fn check(shared: &Arc<Shared>, msgs: Vec<Incoming>) -> Checked {
    let t0 = std::time::Instant::now();
    let (inputs, acks): (Vec<(String, bytes::Bytes)>, Vec<Ack>) =
        msgs.into_iter().map(|m| ((m.subject, m.payload), m.ack)).unzip();
    let inputs = Arc::new(inputs);
    let now = brine_proto::time::now_ms();
    let parts = verify_parts(inputs.len());
    let per = inputs.len().div_ceil(parts);
    let mut tasks = Vec::with_capacity(parts);
    for start in (0..inputs.len()).step_by(per) {
        let (work, inputs) = (shared.clone(), inputs.clone());
        let end = (start + per).min(inputs.len());
        tasks.push(tokio::task::spawn_blocking(move || verify_all(&work, &inputs[start..end], now)));
    }
    let mut good = Vec::with_capacity(inputs.len());
    let mut offset = 0;
    for task in tasks {
        let part = task.await;
        let Ok(part) = part else {
            // A panic in verification: nothing from this batch is stored or
            // acknowledged, so JetStream delivers it again.
            tracing::error!("return verification task failed");
            return Checked { acks: Vec::new(), good: Vec::new(), checked_us: 0 };
        };
        let len = part.len();
        for (i, checked) in part {
            match checked {
                Ok(r) => good.push(r),
                Err(why) => count_drop(shared, &inputs[offset + i].0, why),
            }
        }
        offset += len;
    }
    Checked { acks, good, checked_us: t0.elapsed().as_micros() as u64 }
}

/// How many parts to verify a batch of `n` in: one per core, but no part under 32
/// signatures (batch verification pays off with size).
fn verify_parts(n: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    (n / 32).clamp(1, cores)
}

/// The committer: takes every checked batch waiting, stores the group, flushes
/// once, acknowledges every message of the group, then forwards the new returns to
/// the operators following their jobs and hands them to the announcer.
async fn commit_loop(
    shared: Arc<Shared>,
    mut rx: tokio::sync::mpsc::Receiver<Checked>,
    events: tokio::sync::mpsc::Sender<Vec<Return>>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let Some(new_returns) = commit(&shared, group).await else { continue };
        forward(&shared, &new_returns).await;
        if !new_returns.is_empty() && events.send(new_returns).await.is_err() {
            return;
        }
    }
}

/// Makes a group of checked batches durable and acknowledges it; returns the
/// returns stored for the first time, or `None` if the store failed (then nothing
/// is acknowledged and JetStream delivers the group again after `ack_wait`).
async fn commit(shared: &Arc<Shared>, group: Vec<Checked>) -> Option<Vec<Return>> {
    let mut acks = Vec::new();
    let mut good = Vec::new();
    let mut checked_us = 0;
    for c in group {
        acks.extend(c.acks);
        good.extend(c.good);
        checked_us += c.checked_us;
    }
    let work = shared.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let t0 = std::time::Instant::now();
        let mut stored = Vec::with_capacity(good.len());
        for r in good {
            stored.push(if r.schedule.is_some() { adopt_scheduled(&work, r)? } else { r });
        }
        let fresh = work.store.put_returns(&stored)?;
        work.store.flush()?;
        Ok::<_, crate::store::StoreError>((stored, fresh, t0.elapsed().as_micros() as u64))
    })
    .await;
    let (stored, fresh, commit_us) = match outcome {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot store returns; they will be redelivered");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "return store task failed; the returns will be redelivered");
            return None;
        }
    };
    for ack in &acks {
        if let Ack::Direct(_) = ack {
            Stats::bump(&shared.stats.returns_direct);
        }
        let acked = match ack {
            Ack::Stream(m) => m.ack().await.map_err(|e| e.to_string()),
            Ack::Direct(Some(reply)) => shared
                .returns_client
                .publish(reply.clone(), bytes::Bytes::from_static(RETURN_STORED))
                .await
                .map_err(|e| e.to_string()),
            Ack::Direct(None) => Ok(()),
        };
        if let Err(e) = acked {
            tracing::warn!(error = %e, "cannot acknowledge a return");
        }
    }
    // What `scripts/bench-fleet` sums up as the pipeline's throughput: the time spent
    // checking the group's batches (overlapping earlier commits) and committing it.
    tracing::debug!(returns = acks.len(), checked_us, commit_us, "ingested a group");
    let mut new_returns = Vec::with_capacity(stored.len());
    for (r, is_new) in stored.into_iter().zip(fresh) {
        if is_new {
            Stats::bump(&shared.stats.returns_stored);
            new_returns.push(r);
        } else {
            Stats::bump(&shared.stats.returns_duplicate);
        }
    }
    Some(new_returns)
}

/// Fires Salt's `brine/job/<jid>/ret/<id>` event for each new return, behind the
/// operators' own copies (nobody waits on it). A group's events are signed together,
/// as one hash tree ([`Shared::emit_many`]): one signature per event was the
/// master's largest cost per return after verifying it.
async fn announce_loop(shared: Arc<Shared>, mut rx: tokio::sync::mpsc::Receiver<Vec<Return>>) {
    while let Some(returns) = rx.recv().await {
        let stamps = Stamp::random_many(returns.len(), crate::master::EVENT_TTL);
        let events: Vec<Event> = returns
            .into_iter()
            .zip(stamps)
            .map(|(r, stamp)| {
                // `return` can be big, but a return that fit in its own envelope fits
                // in the event's.
                let (jid, id) = (r.jid.to_string(), r.id.to_string());
                let tag = format!("brine/job/{jid}/ret/{id}");
                let mut data = brine_proto::Map::with_capacity(6);
                data.insert("jid".into(), jid.into());
                data.insert("id".into(), id.into());
                data.insert("fun".into(), r.fun.into());
                data.insert("retcode".into(), r.retcode.into());
                data.insert("success".into(), r.success.into());
                data.insert("return".into(), r.ret);
                let mut event = Event::new(stamp, tag, data.into());
                event.depth = shared.events.job_depth(r.jid);
                event
            })
            .collect();
        shared.emit_many(events).await;
    }
}

/// Why a single return was dropped.
enum Drop {
    Malformed(String),
    UnknownMinion,
    Signature(OpenError),
    Stale(OpenError),
    Unexpected,
}

fn drop_for(e: OpenError) -> Drop {
    match e {
        OpenError::Expired(_) | OpenError::FromTheFuture(_) | OpenError::BadStamp(_) => Drop::Stale(e),
        OpenError::WrongSigner(_) | OpenError::BadSignature => Drop::Signature(e),
        // Undecodable, oversized, too deeply nested, wrong version or kind.
        e => Drop::Malformed(e.to_string()),
    }
}

/// Checks messages: the subject must name a minion with an accepted key; the
/// envelopes are then opened together with [`open_many`] (signatures batch-checked;
/// one by one with [`open`] if `BRINE_INGEST_NO_BATCH_VERIFY` is set, to measure the
/// difference), and each signed, in-date return is [`verify`]d.
fn verify_all(shared: &Shared, inputs: &[(String, bytes::Bytes)], now: u64) -> Vec<(usize, Result<Return, Drop>)> {
    static NO_BATCH: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let no_batch = *NO_BATCH.get_or_init(|| std::env::var_os("BRINE_INGEST_NO_BATCH_VERIFY").is_some());
    let mut out = Vec::with_capacity(inputs.len());
    let mut known = Vec::with_capacity(inputs.len());
    for (i, (subject, _)) in inputs.iter().enumerate() {
        let Some((minion, _)) = shared.cfg.subjects.parse_ret(subject) else {
            out.push((i, Err(Drop::Malformed(format!("subject {subject}")))));
            continue;
        };
        match shared.registry.accepted_key(&minion) {
            Some(key) => known.push((i, minion, key)),
            None => out.push((i, Err(Drop::UnknownMinion))),
        }
    }
    let items: Vec<(&[u8], &VerifyingKey)> = known.iter().map(|(i, _, key)| (inputs[*i].1.as_ref(), key)).collect();
    let opened: Vec<Result<Return, OpenError>> = if no_batch {
        items.iter().map(|(bytes, key)| open(bytes, key, now)).collect()
    } else {
        open_many(&items, now)
    };
    for ((i, minion, _), ret) in known.into_iter().zip(opened) {
        out.push((i, ret.map_err(drop_for).and_then(|ret| verify(shared, &inputs[i].0, minion, ret))));
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

/// Checks a return whose signature and stamp are good: it agrees with the subject,
/// and the job targeted that minion.
fn verify(shared: &Shared, subject: &str, minion: MinionId, ret: Return) -> Result<Return, Drop> {
    let (_, jid_token) =
        shared.cfg.subjects.parse_ret(subject).ok_or_else(|| Drop::Malformed(format!("subject {subject}")))?;
    if ret.id != minion || ret.jid.to_string() != jid_token {
        return Err(Drop::Malformed(format!("return for {} / {} on subject {subject}", ret.id, ret.jid)));
    }
    if ret.schedule.is_some() {
        // The minion's own scheduled run: filed by `adopt_scheduled` under a job of its
        // own, never under the (minion-made) JID, so it can touch no other job.
        return Ok(ret);
    }
    let targeted = {
        let active = shared.active.lock().unwrap_or_else(|e| e.into_inner());
        active.get(&ret.jid).map(|j| j.targets.contains(&minion))
    };
    let targeted = match targeted {
        Some(t) => t,
        // Not in memory (an old job, or the master restarted): ask the job cache.
        None => matches!(shared.store.job(ret.jid), Ok(Some(job)) if job.minions.contains(&minion)),
    };
    if !targeted {
        return Err(Drop::Unexpected);
    }
    Ok(ret)
}

/// The index of minions' scheduled runs: minion JID ‖ minion id → the master's JID.
const SCHEDULED: &str = "scheduled_runs";

/// Files a minion's scheduled return under a job the master records for it: user
/// `schedule`, the minion's function and arguments, targeting that minion alone, with
/// a JID the master issues (a minion cannot pick JIDs in the master's sequence, nor
/// reach into another job). The same run delivered again maps to the same job, so it
/// is stored once.
fn adopt_scheduled(shared: &Shared, mut ret: Return) -> Result<Return, crate::store::StoreError> {
    let index = shared.store.tree(SCHEDULED)?;
    let mut key = ret.jid.to_be_bytes().to_vec();
    key.extend_from_slice(ret.id.as_str().as_bytes());
    let err = |source| crate::store::StoreError::Db { path: shared.cfg.db_path(), source };
    if let Some(jid) = index.get(&key).map_err(err)?.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok()) {
        ret.jid = Jid::from_be_bytes(jid);
        return Ok(ret);
    }
    let run = ret.schedule.as_deref().cloned().unwrap_or_else(|| brine_proto::msg::ScheduledRun {
        name: String::new(),
        arg: Vec::new(),
        kwarg: Default::default(),
    });
    let jid = shared.jids.next();
    let record = brine_proto::msg::JobRecord {
        jid,
        target: brine_proto::Target::List(vec![ret.id.to_string()]),
        fun: ret.fun.clone(),
        arg: run.arg,
        kwarg: run.kwarg,
        user: crate::schedule::USER.to_string(),
        minions: vec![ret.id.clone()],
        started_at: ret.started_at,
    };
    shared.store.put_job(&record)?;
    index.insert(key, &jid.to_be_bytes()).map_err(err)?;
    tracing::info!(minion = %ret.id, name = %run.name, %jid, fun = %ret.fun, "stored a scheduled run of a minion");
    ret.jid = jid;
    Ok(ret)
}

/// Forgets scheduled runs older than `before` (by the minion's JID) from the index.
pub fn prune_scheduled(shared: &Shared, before: Jid) -> Result<usize, crate::store::StoreError> {
    let index = shared.store.tree(SCHEDULED)?;
    let err = |source| crate::store::StoreError::Db { path: shared.cfg.db_path(), source };
    let old: Vec<sled::IVec> =
        index.range(..before.to_be_bytes().to_vec()).keys().collect::<Result<_, _>>().map_err(err)?;
    for k in &old {
        index.remove(k).map_err(err)?;
    }
    Ok(old.len())
}

fn count_drop(shared: &Shared, subject: &str, why: Drop) {
    let s = &shared.stats;
    match why {
        Drop::Malformed(m) => {
            Stats::bump(&s.returns_malformed);
            tracing::warn!(subject, reason = %m, "dropped a malformed return");
        }
        Drop::UnknownMinion => {
            Stats::bump(&s.returns_unknown_minion);
            tracing::warn!(subject, "dropped a return from a minion without an accepted key");
        }
        Drop::Signature(e) => {
            Stats::bump(&s.returns_bad_signature);
            tracing::warn!(subject, error = %e, "dropped a return that failed verification");
        }
        Drop::Stale(e) => {
            Stats::bump(&s.returns_stale);
            tracing::warn!(subject, error = %e, "dropped a stale return");
        }
        Drop::Unexpected => {
            Stats::bump(&s.returns_unexpected);
            tracing::warn!(subject, "dropped a return for a job that did not target its minion");
        }
    }
}

/// Sends new returns to the operators following their jobs, one signed message per
/// job and operator per batch.
async fn forward(shared: &Shared, returns: &[Return]) {
    if returns.is_empty() {
        return;
    }
    let mut by_job: HashMap<Jid, Vec<Return>> = HashMap::new();
    for r in returns {
        by_job.entry(r.jid).or_default().push(r.clone());
    }
    for (jid, rets) in by_job {
        let watchers = {
            let mut active = shared.active.lock().unwrap_or_else(|e| e.into_inner());
            let Some(job) = active.get_mut(&jid) else {
                continue;
            };
            job.remaining = job.remaining.saturating_sub(rets.len());
            let w = job.watchers.clone();
            if job.remaining == 0 {
                active.remove(&jid);
            }
            w
        };
        for (subject, request) in watchers {
            let reply = CtlReply {
                stamp: Stamp::random(Duration::from_secs(300)),
                request,
                result: CtlResult::Returns(rets.clone()),
            };
            match seal(&reply, &shared.key) {
                Ok(bytes) => {
                    if let Err(e) = shared.client.publish(subject, bytes.into()).await {
                        tracing::debug!(error = %e, "cannot forward returns");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot seal forwarded returns"),
            }
        }
    }
}
