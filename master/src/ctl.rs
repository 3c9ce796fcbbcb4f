//! Operator requests on `P.ctl.<op>`: signed by an operator key, checked against the
//! operator's rights ([`crate::acl`]), carried out, answered with a reply signed by
//! the master, and recorded in the audit log ([`crate::audit`]).

use crate::acl::{capped_list, Rights, ADMIN};
use crate::audit;
use crate::master::{Shared, StartError};
use crate::stats::Stats;
use crate::store::JobCache;
use brine_proto::envelope::{open_self_signed, seal, Stamp};
use brine_proto::keys::Fingerprint;
use brine_proto::msg::{
    ActiveJob, Ctl, CtlError, CtlErrorKind, CtlOp, CtlReply, CtlResult, Job, JobAction, JobRecord, JobReport,
    JobSummary, KeyEntry, KeySelection, MinionInfo, OrchestrateRequest, RunRequest, RunStarted,
};
use brine_proto::target::Facts;
use brine_proto::{Jid, Map, MinionId, Value};
use brine_proto::{Target, TargetMatcher};
use futures::StreamExt;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Subscribes to `P.ctl.>` and returns the task that serves it.
pub async fn serve(shared: Arc<Shared>) -> Result<impl Future<Output = ()>, StartError> {
    let mut sub = shared
        .client
        .queue_subscribe(shared.cfg.subjects.all_ctl(), "brine-master".into())
        .await
        .map_err(|e| StartError::Connect { url: "ctl".into(), reason: e.to_string() })?;
    Ok(async move {
        while let Some(msg) = sub.next().await {
            let shared = shared.clone();
            tokio::spawn(async move { handle(&shared, msg).await });
        }
    })
}

fn error(kind: CtlErrorKind, message: impl Into<String>) -> CtlResult {
    CtlResult::Error(CtlError { kind, message: message.into() })
}

async fn handle(shared: &Arc<Shared>, msg: async_nats::Message) {
    let Some(reply) = msg.reply.clone() else {
        return;
    };
    let now = brine_proto::time::now_ms();
    let opened = match open_self_signed::<Ctl>(&msg.payload, now) {
        Ok(o) => o,
        Err(e) => {
            Stats::bump(&shared.stats.ctl_refused);
            tracing::warn!(subject = %msg.subject, error = %e, "refused an operator request");
            let prefix = format!("{}.ctl.", shared.cfg.subjects.prefix());
            let op = msg.subject.strip_prefix(prefix.as_str()).unwrap_or(&msg.subject);
            let reason: String = format!("unreadable: {e}").chars().take(200).collect();
            shared.audit.record(&audit::Entry::unreadable(op, &reason));
            return;
        }
    };
    let signer = Fingerprint::of(&opened.signer);
    let rights =
        shared.operators.get(opened.signer.as_bytes()).and_then(|name| rights_of(shared, name).map(|r| (name, r)));
    let Some((operator, rights)) = rights else {
        Stats::bump(&shared.stats.ctl_refused);
        tracing::warn!(signer = %signer.short(), op = opened.msg.op.name(), "refused a request from an unknown operator key");
        let e = CtlError {
            kind: CtlErrorKind::Denied,
            message: format!("key {} is not an operator of this master", signer.short()),
        };
        shared.audit.record(&audit::Entry::new("unknown", Some(signer), &opened.msg.op).failed(&e));
        answer(shared, &reply, &opened.msg.stamp.id, CtlResult::Error(e)).await;
        return;
    };
    let entry = audit::Entry::new(operator, Some(signer), &opened.msg.op);
    let stamp = &opened.msg.stamp;
    let fresh =
        shared.ctl_replay.lock().unwrap_or_else(|e| e.into_inner()).check_and_insert(&stamp.id, stamp.expires_at, now);
    if let Err(e) = fresh {
        Stats::bump(&shared.stats.ctl_refused);
        tracing::warn!(operator, error = %e, "refused a replayed operator request");
        shared.audit.record(&entry.refused(&format!("replayed: {e}")));
        return;
    }
    Stats::bump(&shared.stats.ctl_requests);
    let request = stamp.id.clone();
    match opened.msg.op {
        CtlOp::Run(run) => match prepare_job(shared, operator, rights, run) {
            Ok(job) => {
                // Recorded before anything runs: no job without its audit line.
                let entry = entry.accepted(Some(job.job.jid), Some(job.minions.len()));
                shared.audit.record(&entry);
                publish_job(shared, operator, Some(&reply), &request, job).await;
                audit::alert_on_request(shared, &entry).await;
            }
            Err((e, minions)) => {
                if e.kind == CtlErrorKind::Denied {
                    Stats::bump(&shared.stats.ctl_refused);
                    tracing::warn!(operator, reason = %e.message, "refused a job");
                }
                let mut entry = entry.failed(&e);
                entry.minions = minions;
                shared.audit.record(&entry);
                answer(shared, &reply, &request, CtlResult::Error(e)).await;
                audit::alert_on_request(shared, &entry).await;
            }
        },
        op => {
            let (result, minions) = match permitted(shared, operator, rights, &op) {
                Ok(()) => serve_op(shared, operator, rights, op).await,
                Err(e) => {
                    Stats::bump(&shared.stats.ctl_refused);
                    tracing::warn!(operator, reason = %e.message, "refused an operator request");
                    (CtlResult::Error(e), None)
                }
            };
            shared.audit.record(&match &result {
                CtlResult::Error(e) => entry.failed(e),
                _ => entry.accepted(None, minions),
            });
            answer(shared, &reply, &request, result).await;
        }
    }
}

/// What the operator called `name` may do; `None` if the name is not configured.
fn rights_of<'a>(shared: &'a Shared, name: &str) -> Option<Rights<'a>> {
    if name == ADMIN {
        Some(Rights::Admin)
    } else {
        shared.cfg.operators.get(name).map(Rights::Named)
    }
}

fn denied(message: String) -> CtlError {
    CtlError { kind: CtlErrorKind::Denied, message }
}

/// Whether the operator may make a request other than `run` (those are checked
/// minion by minion in [`prepare_job`], `resolve` also in [`serve_op`]).
fn permitted(shared: &Shared, operator: &str, rights: Rights<'_>, op: &CtlOp) -> Result<(), CtlError> {
    match op {
        CtlOp::KeyList | CtlOp::KeyAccept(_) | CtlOp::KeyReject(_) | CtlOp::KeyDelete(_) | CtlOp::KeyFinger(_)
            if !rights.keys() =>
        {
            Err(denied(format!(
                "operator {operator} may not list or change minion keys (operators.{operator}.keys is not set in the \
                 master's config)"
            )))
        }
        // An operator may always read back its own jobs (`brine job kill` does).
        CtlOp::JobShow { jid }
            if !rights.jobs() && shared.store.job(*jid).ok().flatten().is_some_and(|j| j.user == operator) =>
        {
            Ok(())
        }
        CtlOp::Orchestrate(o) => match rights {
            Rights::Admin => Ok(()),
            // An orchestration runs with the master's authority, like Salt's runners:
            // named operators need an ACL entry for it, and only the master's own
            // files (their text is rendered on the master).
            Rights::Named(acl) if !acl.acl.iter().any(|e| e.allows(crate::orchestrate::FUN)) => Err(denied(format!(
                "operator {operator} may not run orchestrations (no entry of operators.{operator}.acl in the master's \
                 config allows state.orchestrate)"
            ))),
            Rights::Named(_) if o.text.is_some() => Err(denied(format!(
                "operator {operator} may run only orchestrations from the master's file_roots, not a file of its own"
            ))),
            Rights::Named(_) => Ok(()),
        },
        CtlOp::EventSend { .. } if !rights.send_events() => Err(denied(format!(
            "operator {operator} may not send events (no entry of operators.{operator}.acl in the master's config \
             allows event.send)"
        ))),
        CtlOp::EventSend { tag, .. } if tag.starts_with("brine/") && !matches!(rights, Rights::Admin) => {
            Err(denied(format!(
                "operator {operator} may not send {tag}: tags under brine/ are the master's own (only the admin may \
                 send them, to try reactions)"
            )))
        }
        CtlOp::AuditQuery(_) if !rights.jobs() => Err(denied(format!(
            "operator {operator} may not read the audit log (operators.{operator}.jobs is not set in the master's \
             config)"
        ))),
        CtlOp::JobShow { .. }
        | CtlOp::JobList(_)
        | CtlOp::JobActive
        | CtlOp::MinionList
        | CtlOp::Inventory { .. }
        | CtlOp::ReactorHistory { .. }
            if !rights.jobs() =>
        {
            Err(denied(format!(
                "operator {operator} may not read the job cache, the minion list or the inventory \
                 (operators.{operator}.jobs is not set in the master's config)"
            )))
        }
        _ => Ok(()),
    }
}

/// Carries out a permitted request other than `run`; returns the answer and, for the
/// audit log, how many minions it reached.
async fn serve_op(shared: &Arc<Shared>, operator: &str, rights: Rights<'_>, op: CtlOp) -> (CtlResult, Option<usize>) {
    let result = match op {
        CtlOp::Run(_) => error(CtlErrorKind::Internal, "a run reached the wrong handler"),
        CtlOp::KeyList => shared
            .registry
            .listing(shared.key.verifying_key().to_bytes())
            .map(CtlResult::Keys)
            .unwrap_or_else(|e| error(CtlErrorKind::Internal, e.to_string())),
        CtlOp::KeyAccept(sel) => change_keys(shared, operator, "accept", &sel).await,
        CtlOp::KeyReject(sel) => change_keys(shared, operator, "reject", &sel).await,
        CtlOp::KeyDelete(sel) => change_keys(shared, operator, "delete", &sel).await,
        CtlOp::KeyFinger(_) => shared
            .registry
            .listing(shared.key.verifying_key().to_bytes())
            .map(CtlResult::Keys)
            .unwrap_or_else(|e| error(CtlErrorKind::Internal, e.to_string())),
        CtlOp::JobShow { jid } => {
            let t0 = Instant::now();
            let read = (shared.store.job(jid), shared.store.counts(jid), shared.store.returns(jid));
            log_cache_read("job.show", t0, read.2.as_ref().map_or(0, Vec::len));
            match read {
                (Ok(Some(job)), Ok(counts), Ok(returns)) => {
                    CtlResult::Job(Box::new(JobReport { job, counts: counts.unwrap_or_default(), returns }))
                }
                (Ok(None), _, _) => error(CtlErrorKind::NotFound, format!("no job {jid} in the job cache")),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => error(CtlErrorKind::Internal, e.to_string()),
            }
        }
        CtlOp::JobList(mut filter) => {
            filter.limit = filter.limit.clamp(1, 100_000);
            let t0 = Instant::now();
            let read = shared.store.list(&filter);
            log_cache_read("job.list", t0, read.as_ref().map_or(0, Vec::len));
            read.map(CtlResult::Jobs).unwrap_or_else(|e| error(CtlErrorKind::Internal, e.to_string()))
        }
        CtlOp::JobActive => active_jobs(shared),
        CtlOp::Resolve { target } => match resolve(shared, &target) {
            // Without `jobs`, an operator may resolve only targets its ACL reaches
            // (what `brine run --batch` needs).
            Ok((_, minions)) => match (rights, rights.jobs()) {
                (Rights::Named(op), false) => {
                    let outside: Vec<&MinionId> =
                        minions.iter().filter(|m| !with_facts(shared, m, |f| op.reaches(f))).collect();
                    if outside.is_empty() {
                        CtlResult::Minions(minions)
                    } else {
                        CtlResult::Error(denied(format!(
                            "operator {operator} may not target {} (outside operators.{operator}.acl in the master's \
                             config)",
                            capped_list(&outside)
                        )))
                    }
                }
                _ => CtlResult::Minions(minions),
            },
            Err(e) => CtlResult::Error(e),
        },
        CtlOp::MinionList => minion_list(shared),
        CtlOp::EventSend { tag, data } => match crate::events::valid_tag(&tag) {
            Ok(()) => {
                let mut data = data;
                if let Value::Object(m) = &mut data {
                    m.insert("__operator__".into(), operator.into());
                }
                shared.emit(&tag, data).await;
                CtlResult::EventSent { tag }
            }
            Err(e) => error(CtlErrorKind::BadRequest, e),
        },
        CtlOp::Orchestrate(req) => orchestrate(shared, operator, req).await,
        CtlOp::JobControl { jid, action } => {
            let action = match action {
                JobAction::Pause => crate::orchestrate::Action::Pause,
                JobAction::Resume => crate::orchestrate::Action::Resume,
                JobAction::Kill => crate::orchestrate::Action::Abort,
            };
            match crate::orchestrate::control(shared, operator, jid, action) {
                Ok(words) => CtlResult::JobControlled(words),
                Err(e) => CtlResult::Error(e),
            }
        }
        CtlOp::AuditQuery(filter) => {
            // The whole log is read: off the async threads.
            let sh = shared.clone();
            let read = tokio::task::spawn_blocking(move || {
                let job_minions =
                    |jid| sh.store.job(jid).ok().flatten().map(|j| j.minions.iter().map(|m| m.to_string()).collect());
                audit::query(sh.audit.path(), &filter, job_minions)
            });
            match read.await {
                Ok(Ok(lines)) => CtlResult::Audit(lines),
                Ok(Err(e)) => error(CtlErrorKind::BadRequest, e),
                Err(e) => error(CtlErrorKind::Internal, e.to_string()),
            }
        }
        CtlOp::ReactorHistory { limit } => match crate::reactor::history(shared, limit.clamp(1, 100_000)) {
            Ok(records) => CtlResult::Reactions(records),
            Err(e) => error(CtlErrorKind::Internal, e.to_string()),
        },
        CtlOp::Inventory { target, grains } => match resolve(shared, &target) {
            Ok((_, minions)) => CtlResult::Inventory(
                minions
                    .into_iter()
                    .map(|id| {
                        let all = shared.grains.get(&id).unwrap_or_default();
                        let picked: Map = if grains.is_empty() {
                            (*all).clone()
                        } else {
                            grains
                                .iter()
                                .map(|g| {
                                    let v = grain_or_empty(&all, g);
                                    (g.clone(), v)
                                })
                                .collect()
                        };
                        (id, picked)
                    })
                    .collect(),
            ),
            Err(e) => CtlResult::Error(e),
        },
    };
    let minions = match &result {
        CtlResult::Minions(m) => Some(m.len()),
        CtlResult::Inventory(m) => Some(m.len()),
        CtlResult::KeysChanged(k) => Some(k.len()),
        _ => None,
    };
    (result, minions)
}

/// Starts an operator's orchestration; its return goes to the operator's `stream_to`
/// subject when it ends.
async fn orchestrate(shared: &Arc<Shared>, operator: &str, req: OrchestrateRequest) -> CtlResult {
    let inbox = format!("{}.", shared.cfg.subjects.operator_inbox(operator));
    if req.stream_to.as_ref().is_some_and(|s| !s.starts_with(&inbox)) {
        return error(
            CtlErrorKind::BadRequest,
            format!("results can only be sent to the operator's own inbox ({inbox}…)"),
        );
    }
    let source = match (req.text, req.sls.is_empty()) {
        (_, true) => return error(CtlErrorKind::BadRequest, "name the orchestration: an SLS name or a file"),
        (Some(text), false) => crate::orchestrate::Source::Text { name: req.sls.join(","), text },
        (None, false) => crate::orchestrate::Source::Sls(req.sls),
    };
    let spec = crate::orchestrate::Orchestration {
        source,
        saltenv: req.saltenv.unwrap_or_else(|| "base".into()),
        pillar: req.pillar,
        test: req.test,
        user: operator.to_string(),
        depth: 0,
    };
    match crate::orchestrate::start(shared, spec).await {
        Ok(started) => {
            let jid = started.jid;
            if let Some(subject) = req.stream_to {
                let to = shared.clone();
                tokio::spawn(async move {
                    if let Ok(ret) = started.finished.await {
                        answer(&to, &subject, &jid.to_string(), CtlResult::Returns(vec![ret])).await;
                    }
                });
            }
            let id = brine_proto::MinionId::new(crate::orchestrate::master_id()).ok();
            CtlResult::RunStarted(RunStarted {
                jid,
                minions: id.into_iter().collect(),
                offline: Vec::new(),
                missing: Vec::new(),
            })
        }
        Err(crate::orchestrate::OrchestrateError::Compile(errors)) => error(
            CtlErrorKind::BadRequest,
            format!("the orchestration did not compile; nothing ran:\n{}", errors.join("\n")),
        ),
        Err(e) => error(CtlErrorKind::Internal, e.to_string()),
    }
}

/// Logs how long a request spent reading the job cache (`rows`: returns or jobs read).
/// `scripts/bench-fleet jobcache` reports it next to the CLI's wall time, which also
/// holds process start, TLS, signatures, encoding and printing.
fn log_cache_read(op: &'static str, t0: Instant, rows: usize) {
    tracing::debug!(op, rows, took_us = t0.elapsed().as_micros() as u64, "read the job cache");
}

/// Calls `f` with what the master knows of a minion for targeting (as [`resolve`] does).
fn with_facts<T>(shared: &Shared, id: &MinionId, f: impl FnOnce(&Facts<'_>) -> T) -> T {
    let (grains, pillar) = (shared.grains.get(id), shared.pillar.get(id));
    f(&Facts { id: id.as_str(), grains: grains.as_deref(), pillar: pillar.as_deref() })
}

async fn answer(shared: &Shared, subject: &str, request: &str, result: CtlResult) {
    let reply = CtlReply { stamp: Stamp::random(Duration::from_secs(300)), request: request.to_string(), result };
    match seal(&reply, &shared.key) {
        Ok(bytes) => {
            if let Err(e) = shared.client.publish(subject.to_string(), bytes.into()).await {
                tracing::warn!(error = %e, "cannot answer an operator request");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot seal an operator reply"),
    }
}

async fn change_keys(shared: &Shared, operator: &str, act: &str, sel: &KeySelection) -> CtlResult {
    let outcome = match act {
        "accept" => shared.registry.accept(sel),
        "reject" => shared.registry.reject(sel),
        _ => shared.registry.delete(sel),
    };
    let changed: Vec<KeyEntry> = match outcome {
        Ok(c) => c,
        Err(crate::keys::SelectError::Pattern { pattern, reason }) => {
            return error(CtlErrorKind::BadRequest, format!("bad key pattern {pattern:?}: {reason}"))
        }
        Err(e) => return error(CtlErrorKind::Internal, e.to_string()),
    };
    if changed.is_empty() {
        return CtlResult::KeysChanged(changed);
    }
    if let Err(e) = shared.registry.flush() {
        return error(CtlErrorKind::Internal, e.to_string());
    }
    for entry in &changed {
        if act != "accept" {
            shared.presence.forget(&entry.id);
        }
        if act == "delete" {
            shared.grains.remove(&entry.id);
            shared.pillar.remove(&entry.id);
        }
        if act != "accept" {
            shared.queue.forget(&entry.id).await;
        }
        tracing::info!(operator, id = %entry.id, "key {}", crate::cli::past(act));
    }
    // Accepted minions gain a NATS user; rejected and deleted ones lose theirs and are
    // disconnected by the server's reload.
    shared.sync_nats_users().await;
    for entry in &changed {
        let fp = Fingerprint::of_bytes(&entry.key).to_string();
        shared
            .emit(
                &format!("brine/key/{act}"),
                json!({"act": act, "id": entry.id, "fingerprint": fp, "operator": operator}),
            )
            .await;
    }
    CtlResult::KeysChanged(changed)
}

/// A grain by `:` path, or an empty string when missing (like `grains.item`).
fn grain_or_empty(grains: &Map, path: &str) -> Value {
    let mut parts = path.split(':');
    let Some(first) = parts.next() else { return Value::String(String::new()) };
    let mut cur = match grains.get(first) {
        Some(v) => v,
        None => return Value::String(String::new()),
    };
    for p in parts {
        let next = match cur {
            Value::Object(m) => m.get(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return Value::String(String::new()),
        }
    }
    cur.clone()
}

/// Expands nodegroups and finds the accepted minions a target names. Returns the
/// target as sent to minions and the sorted ids.
fn resolve(shared: &Shared, target: &Target) -> Result<(Target, Vec<MinionId>), CtlError> {
    let bad = |e: brine_proto::TargetError| CtlError { kind: CtlErrorKind::BadRequest, message: e.to_string() };
    let sent = target.expand_nodegroups(&shared.cfg.nodegroups).map_err(bad)?;
    let matcher = TargetMatcher::compile(&sent).map_err(bad)?;
    let minions = shared.registry.accepted_matching(|id| {
        let (grains, pillar) = (shared.grains.get(id), shared.pillar.get(id));
        matcher.matches(&Facts { id: id.as_str(), grains: grains.as_deref(), pillar: pillar.as_deref() })
    });
    Ok((sent, minions))
}

fn minion_list(shared: &Shared) -> CtlResult {
    let now = Instant::now();
    let infos = shared
        .registry
        .accepted()
        .into_iter()
        .map(|(id, _)| {
            let seen = shared.presence.get(&id);
            let os = shared.grains.get(&id).map(|g| {
                let word = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                format!("{} {}", word("os"), word("osrelease")).trim().to_string()
            });
            MinionInfo {
                up: shared.presence.is_up(&id, shared.cfg.presence_timeout),
                last_seen_ms: seen.as_ref().map(|s| now.duration_since(s.at).as_millis() as u64),
                version: seen.map(|s| s.version),
                os,
                id,
            }
        })
        .collect();
    CtlResult::MinionStatus(infos)
}

fn active_jobs(shared: &Shared) -> CtlResult {
    // Jobs waiting for returns, and jobs minions say (in their heartbeats) they run.
    let mut running: std::collections::BTreeMap<Jid, Vec<MinionId>> = std::collections::BTreeMap::new();
    for (id, seen) in shared.presence.all() {
        if seen.at.elapsed() <= shared.cfg.presence_timeout {
            for jid in seen.running {
                running.entry(jid).or_default().push(id.clone());
            }
        }
    }
    {
        let active = shared.active.lock().unwrap_or_else(|e| e.into_inner());
        for (jid, job) in active.iter() {
            if job.remaining > 0 {
                running.entry(*jid).or_default();
            }
        }
    }
    // Orchestrations, however long they have been running.
    for jid in shared.orchestrations.jids() {
        running.entry(jid).or_default();
    }
    let mut out = Vec::new();
    for (jid, mut minions) in running.into_iter().rev() {
        let (Ok(Some(job)), Ok(counts)) = (shared.store.job(jid), shared.store.counts(jid)) else { continue };
        let counts = counts.unwrap_or_default();
        if counts.missing() == 0 && minions.is_empty() {
            continue;
        }
        minions.sort();
        out.push(ActiveJob {
            summary: JobSummary {
                jid,
                target: job.target,
                fun: job.fun,
                user: job.user,
                started_at: job.started_at,
                counts,
            },
            running: minions,
        });
    }
    CtlResult::Active(out)
}

fn valid_function_name(fun: &str) -> bool {
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    fun.split_once('.').is_some_and(|(m, f)| ok(m) && ok(f))
}

/// A job that passed every check, stored in the job cache and sealed, ready to publish.
struct PreparedJob {
    job: Job,
    bytes: bytes::Bytes,
    minions: Vec<MinionId>,
    started: RunStarted,
    stream_to: Option<String>,
}

/// Resolves, checks and stores a job. A refusal comes with the number of minions the
/// target matched, when it got that far.
fn prepare_job(
    shared: &Shared,
    operator: &str,
    rights: Rights<'_>,
    run: RunRequest,
) -> Result<PreparedJob, (CtlError, Option<usize>)> {
    let bad = |message: String| (CtlError { kind: CtlErrorKind::BadRequest, message }, None);
    // Returns go only to the operator's own inbox, where only it may listen.
    let inbox = format!("{}.", shared.cfg.subjects.operator_inbox(operator));
    if run.stream_to.as_ref().is_some_and(|s| !s.starts_with(&inbox)) {
        return Err(bad(format!("returns can only be streamed to the operator's own inbox ({inbox}…)")));
    }
    // Nodegroups are expanded here, so minions can check the target without the
    // master's config.
    let (sent_target, minions) = resolve(shared, &run.target).map_err(|e| (e, None))?;
    if !valid_function_name(&run.fun) {
        return Err(bad(format!("{:?} is not a function name; use module.function, e.g. test.ping", run.fun)));
    }
    // Listed ids without an accepted key are reported as not returning, as Salt does.
    let missing: Vec<String> = match &run.target {
        Target::List(ids) => {
            ids.iter().filter(|id| !minions.iter().any(|m| m.as_str() == id.as_str())).cloned().collect()
        }
        _ => Vec::new(),
    };
    if minions.is_empty() {
        let msg = "No minions matched the target. No command was sent, no jid was assigned.";
        return Err((error_of(CtlErrorKind::NoMatch, msg), Some(0)));
    }
    if let Rights::Named(acl) = rights {
        if !asks_about_own_job(shared, operator, &run, &minions) {
            let outside: Vec<&MinionId> =
                minions.iter().filter(|m| !with_facts(shared, m, |f| acl.may_run(&run.fun, f))).collect();
            if !outside.is_empty() {
                let message = format!(
                    "operator {operator} may not run {} on {}: no entry of operators.{operator}.acl in the master's \
                     config allows it. Nothing was run.",
                    run.fun,
                    capped_list(&outside)
                );
                return Err((denied(message), Some(minions.len())));
            }
        }
    }
    let jid = shared.jids.next();
    let record = JobRecord {
        jid,
        target: run.target.clone(),
        fun: run.fun.clone(),
        arg: run.arg.clone(),
        kwarg: run.kwarg.clone(),
        user: operator.to_string(),
        minions: minions.clone(),
        started_at: brine_proto::time::now_ms(),
    };
    let internal = |e: String| (error_of(CtlErrorKind::Internal, e), Some(minions.len()));
    if let Err(e) = shared.store.put_job(&record).and_then(|()| shared.store.flush()) {
        tracing::error!(error = %e, "cannot store a new job");
        return Err(internal(e.to_string()));
    }
    let ttl = match run.queue_ttl_ms {
        Some(ms) => Duration::from_millis(ms).clamp(Duration::from_secs(1), brine_proto::envelope::MAX_TTL),
        None => shared.cfg.job_ttl,
    };
    let job = Job {
        queued: run.queue_ttl_ms.is_some(),
        stamp: Stamp::new(jid.to_string(), ttl),
        jid,
        target: sent_target,
        fun: run.fun,
        arg: run.arg,
        kwarg: run.kwarg,
        user: operator.to_string(),
    };
    let bytes: bytes::Bytes = seal(&job, &shared.key).map_err(|e| internal(e.to_string()))?.into();
    let offline = minions.iter().filter(|m| !shared.presence.is_up(m, shared.cfg.presence_timeout)).cloned().collect();
    Ok(PreparedJob {
        started: RunStarted { jid, minions: minions.clone(), offline, missing },
        job,
        bytes,
        minions,
        stream_to: run.stream_to,
    })
}

/// `saltutil.find_job` about one of the operator's own jobs, on minions that job
/// targeted: what `brine run` asks at the timeout. It is allowed without an ACL
/// entry, as it reveals nothing the operator could not already see.
fn asks_about_own_job(shared: &Shared, operator: &str, run: &RunRequest, minions: &[MinionId]) -> bool {
    if run.fun != "saltutil.find_job" || !run.kwarg.is_empty() || run.arg.len() != 1 {
        return false;
    }
    let Some(jid) = run.arg[0].as_str().and_then(|s| s.parse::<Jid>().ok()) else { return false };
    shared
        .store
        .job(jid)
        .ok()
        .flatten()
        .is_some_and(|job| job.user == operator && minions.iter().all(|m| job.minions.contains(m)))
}

fn error_of(kind: CtlErrorKind, message: impl Into<String>) -> CtlError {
    CtlError { kind, message: message.into() }
}

/// Starts a job on the master's own behalf (the reactor, as user `reactor`; an
/// orchestration): the same checks, job cache record, audit line, events and publish
/// as an admin's `brine run`, with nobody to answer. `depth` is the reaction depth
/// its events carry (0 outside reactions).
pub async fn start_job(shared: &Arc<Shared>, user: &str, run: RunRequest, depth: u32) -> Result<RunStarted, CtlError> {
    let entry = audit::Entry::new(user, None, &CtlOp::Run(run.clone()));
    match prepare_job(shared, user, Rights::Admin, run) {
        Ok(job) => {
            shared.audit.record(&entry.accepted(Some(job.job.jid), Some(job.minions.len())));
            if depth > 0 {
                shared.events.set_job_depth(job.job.jid, depth);
            }
            let started = job.started.clone();
            publish_job(shared, user, None, "", job).await;
            Ok(started)
        }
        Err((e, minions)) => {
            let mut entry = entry.failed(&e);
            entry.minions = minions;
            shared.audit.record(&entry);
            Err(e)
        }
    }
}

/// Answers the operator (if anyone asked), then publishes the job to each minion
/// (and its queue).
async fn publish_job(shared: &Arc<Shared>, operator: &str, reply: Option<&str>, request: &str, prepared: PreparedJob) {
    let PreparedJob { job, bytes, minions, started, stream_to } = prepared;
    let jid = job.jid;
    shared.active.lock().unwrap_or_else(|e| e.into_inner()).insert(
        jid,
        crate::master::ActiveJob {
            targets: minions.iter().cloned().collect(),
            watchers: stream_to.iter().map(|s| (s.clone(), request.to_string())).collect(),
            remaining: minions.len(),
            since: Instant::now(),
        },
    );
    // A queued job is in JetStream before the operator hears it started: if NATS dies
    // right after the answer, the queue still holds it for every minion.
    if job.queued {
        queue_job(shared, jid, job.stamp.expires_at, &minions, &bytes).await;
    }
    // Answer first: the operator's returns stream follows on the same connection, so
    // it can never overtake this reply.
    if let Some(reply) = reply {
        answer(shared, reply, request, CtlResult::RunStarted(started)).await;
    }
    let t0 = Instant::now();
    for minion in &minions {
        if let Err(e) = shared.client.publish(shared.cfg.subjects.job(minion, jid), bytes.clone()).await {
            tracing::error!(%jid, minion = %minion, error = %e, "cannot publish job");
        }
    }
    Stats::bump(&shared.stats.jobs_published);
    // The arguments stay out of the log: they may hold secrets.
    let publish_us = t0.elapsed().as_micros() as u64;
    tracing::info!(%jid, operator, fun = %job.fun, target = %job.target, minions = minions.len(), publish_us, "published job");
    // Salt's `new` event; the arguments are masked like in the audit log: the bus is
    // read by every operator with the `jobs` right, not only by this job's owner.
    let (tgt, tgt_type) = crate::events::salt_target(&job.target);
    let arg: Vec<Value> = job.arg.iter().map(audit::mask_in_maps).collect();
    let mut data = json!({
        "jid": jid, "fun": job.fun, "arg": arg, "tgt": tgt, "tgt_type": tgt_type, "minions": minions,
        "user": operator,
    });
    if !job.kwarg.is_empty() {
        data["kwarg"] = Value::Object(audit::mask_map(&job.kwarg));
    }
    shared.emit_for_job(jid, &format!("brine/job/{jid}/new"), data).await;
}

/// Puts a job in each minion's queue. Copies JetStream did not take (NATS went away
/// meanwhile) are tried again in the background until the job expires; the queue
/// drops a copy it already has (same message id), and a minion runs a JID once.
async fn queue_job(shared: &Arc<Shared>, jid: Jid, expires_at: u64, minions: &[MinionId], bytes: &bytes::Bytes) {
    let failed = enqueue_all(shared, jid, minions, bytes).await;
    if failed.is_empty() {
        return;
    }
    // Held weakly: a master that stops ends the retries.
    let weak = Arc::downgrade(shared);
    let bytes = bytes.clone();
    tokio::spawn(async move {
        let mut failed = failed;
        let mut pause = Duration::from_millis(500);
        while !failed.is_empty() && brine_proto::time::now_ms() < expires_at {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
            let Some(shared) = weak.upgrade() else { return };
            failed = enqueue_all(&shared, jid, &failed, &bytes).await;
        }
        if failed.is_empty() {
            tracing::info!(%jid, "queued the job after retrying");
        } else {
            tracing::error!(%jid, minions = failed.len(), "the job expired before it could be queued");
        }
    });
}

/// Queues a job for `minions` at once; returns those whose copy JetStream did not take.
async fn enqueue_all(shared: &Shared, jid: Jid, minions: &[MinionId], bytes: &bytes::Bytes) -> Vec<MinionId> {
    let pending: Vec<_> = minions.iter().map(|m| shared.queue.enqueue(m, jid, bytes.clone())).collect();
    let mut failed = Vec::new();
    for (m, r) in minions.iter().zip(futures::future::join_all(pending).await) {
        if let Err(e) = r {
            tracing::warn!(%jid, minion = %m, error = %e, "cannot queue the job yet");
            failed.push(m.clone());
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_are_module_dot_function() {
        assert!(valid_function_name("test.ping"));
        assert!(valid_function_name("cmd.run_all"));
        for bad in ["", "ping", "test.", ".ping", "a.b.c", "test.ping;rm", "test ping"] {
            assert!(!valid_function_name(bad), "{bad}");
        }
    }
}
