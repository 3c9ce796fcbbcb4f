//! Following jobs to completion.
//!
//! Returns stream in as the master forwards them. When a job's timeout passes with
//! minions still silent, the watcher asks them (`saltutil.find_job`) whether they are
//! still running it, as Salt does: those that are get another timeout, up to a
//! maximum wait; the rest are reported as not connected (no recent heartbeat) or not
//! responding.

use super::client::{ClientError, Operator};
use brine_proto::msg::{CtlErrorKind, CtlOp, CtlResult, Return, RunRequest, RunStarted};
use brine_proto::{Jid, Map, Target, Value};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Why a targeted minion has no return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No recent heartbeat: the minion is down or cut off.
    NotConnected,
    /// Up, but answered neither the job nor the question whether it runs it.
    NoResponse,
    /// Still running the job when the watcher gave up.
    StillRunning,
    /// Offline, with the job waiting in its queue.
    Queued,
}

/// What the watcher reports.
#[derive(Debug)]
pub enum Event {
    /// A verified return of a watched job.
    Return(Return),
    /// A job is over: everyone returned, or the rest is accounted for.
    Finished { jid: Jid, missing: Vec<(String, Missing)> },
}

/// What [`Watcher::next`] found.
#[derive(Debug)]
pub enum Step {
    Event(Event),
    /// No job is being watched.
    Idle,
    /// The caller's deadline passed first.
    Timeout,
}

/// A job could not be started.
#[derive(Debug)]
pub enum StartError {
    /// The master refused it.
    Refused { kind: CtlErrorKind, message: String },
    /// The master could not be asked.
    Client(ClientError),
}

struct Probe {
    jid: Jid,
    asked: BTreeSet<String>,
    /// Minion → whether it still runs the job.
    answers: BTreeMap<String, bool>,
    deadline: Instant,
}

struct Tracked {
    jid: Jid,
    targeted: BTreeSet<String>,
    offline: BTreeSet<String>,
    returned: BTreeSet<String>,
    /// Listed ids that have no accepted key.
    unknown: Vec<String>,
    deadline: Instant,
    give_up: Instant,
    probe: Option<Probe>,
    running: BTreeSet<String>,
}

impl Tracked {
    /// Minions that could still answer.
    fn awaited(&self) -> impl Iterator<Item = &String> {
        self.targeted.iter().filter(|m| !self.returned.contains(*m) && !self.offline.contains(*m))
    }
}

/// Follows jobs started through it.
pub struct Watcher<'a> {
    op: &'a Operator,
    sub: async_nats::Subscriber,
    stream_to: String,
    timeout: Duration,
    max_wait: Duration,
    /// Queue jobs for offline minions, valid this long.
    pub queue_ttl: Option<Duration>,
    jobs: Vec<Tracked>,
    pending: VecDeque<Event>,
}

impl<'a> Watcher<'a> {
    /// Subscribes to a fresh stream subject for returns.
    pub async fn new(op: &'a Operator, timeout: Duration, max_wait: Duration) -> Result<Watcher<'a>, ClientError> {
        let stream_to = op.stream_subject();
        let sub = op
            .client
            .subscribe(stream_to.clone())
            .await
            .map_err(|e| ClientError::Connect { url: "stream".into(), reason: e.to_string() })?;
        Ok(Watcher {
            op,
            sub,
            stream_to,
            timeout,
            max_wait,
            queue_ttl: None,
            jobs: Vec::new(),
            pending: VecDeque::new(),
        })
    }

    async fn publish(&self, target: Target, fun: &str, arg: Vec<Value>, kwarg: Map) -> Result<RunStarted, StartError> {
        let req = RunRequest {
            target,
            fun: fun.to_string(),
            arg,
            kwarg,
            stream_to: Some(self.stream_to.clone()),
            queue_ttl_ms: self.queue_ttl.map(|d| d.as_millis() as u64).filter(|_| fun != "saltutil.find_job"),
        };
        match self.op.request(CtlOp::Run(req)).await {
            Ok(CtlResult::RunStarted(s)) => Ok(s),
            Ok(CtlResult::Error(e)) => Err(StartError::Refused { kind: e.kind, message: e.message }),
            Ok(other) => Err(StartError::Refused {
                kind: CtlErrorKind::Internal,
                message: format!("unexpected answer {other:?}"),
            }),
            Err(e) => Err(StartError::Client(e)),
        }
    }

    /// Starts a job and watches it.
    pub async fn start(
        &mut self,
        target: Target,
        fun: &str,
        arg: Vec<Value>,
        kwarg: Map,
    ) -> Result<RunStarted, StartError> {
        let started = self.publish(target, fun, arg, kwarg).await?;
        let now = Instant::now();
        self.jobs.push(Tracked {
            jid: started.jid,
            targeted: started.minions.iter().map(|m| m.to_string()).collect(),
            offline: started.offline.iter().map(|m| m.to_string()).collect(),
            returned: BTreeSet::new(),
            unknown: started.missing.clone(),
            deadline: now + self.timeout,
            give_up: now + self.timeout + self.max_wait,
            probe: None,
            running: BTreeSet::new(),
        });
        // A job whose targets are all offline is over at once.
        self.settle(now).await;
        Ok(started)
    }

    /// Jobs still being watched.
    pub fn in_flight(&self) -> usize {
        self.jobs.len()
    }

    /// Waits for the next event, or until `until`.
    pub async fn next(&mut self, until: Option<Instant>) -> Step {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Step::Event(ev);
            }
            if self.jobs.is_empty() {
                return Step::Idle;
            }
            let wake = self
                .jobs
                .iter()
                .map(|j| j.probe.as_ref().map_or(j.deadline, |p| p.deadline))
                .min()
                .unwrap_or_else(Instant::now);
            let stop = until.map_or(wake, |u| u.min(wake));
            match tokio::time::timeout_at(stop, self.sub.next()).await {
                Ok(Some(msg)) => self.receive(&msg.payload),
                Ok(None) => {
                    // The connection is gone: nothing more will arrive.
                    let now = Instant::now();
                    for j in &mut self.jobs {
                        j.deadline = now;
                        j.give_up = now;
                    }
                }
                Err(_) => {}
            }
            let now = Instant::now();
            self.settle(now).await;
            if until.is_some_and(|u| now >= u) && self.pending.is_empty() {
                return Step::Timeout;
            }
        }
    }

    fn receive(&mut self, payload: &[u8]) {
        let Ok(reply) = self.op.open_reply(payload) else { return };
        let CtlResult::Returns(rets) = reply.result else { return };
        for r in rets {
            let id = r.id.to_string();
            if let Some(job) = self.jobs.iter_mut().find(|j| j.jid == r.jid) {
                if job.targeted.contains(&id) && job.returned.insert(id) {
                    self.pending.push_back(Event::Return(r));
                }
            } else if let Some(probe) = self.jobs.iter_mut().filter_map(|j| j.probe.as_mut()).find(|p| p.jid == r.jid) {
                let running = r.ret.as_object().is_some_and(|m| !m.is_empty());
                probe.answers.insert(id, running);
            }
        }
    }

    /// Moves every job along: finishes complete ones, probes silent ones, judges probes.
    async fn settle(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.jobs.len() {
            let job = &self.jobs[i];
            let all_in = job.awaited().next().is_none();
            if all_in {
                let job = self.jobs.remove(i);
                self.finish(job, Missing::NoResponse);
                continue;
            }
            if let Some(p) = &job.probe {
                let answered = p.asked.iter().all(|m| p.answers.contains_key(m));
                if answered || now >= p.deadline {
                    let running: BTreeSet<String> = p
                        .answers
                        .iter()
                        .filter(|(m, run)| **run && !job.returned.contains(*m))
                        .map(|(m, _)| m.clone())
                        .collect();
                    if !running.is_empty() && now < job.give_up {
                        let job = &mut self.jobs[i];
                        job.running = running;
                        job.probe = None;
                        job.deadline = now + self.timeout;
                    } else {
                        let mut job = self.jobs.remove(i);
                        job.running = running;
                        self.finish(job, Missing::NoResponse);
                        continue;
                    }
                }
            } else if now >= job.deadline {
                let silent: Vec<String> = job.awaited().cloned().collect();
                let (jid, give_up) = (job.jid, job.give_up);
                let probe = if now < give_up {
                    self.publish(
                        Target::List(silent.clone()),
                        "saltutil.find_job",
                        vec![Value::String(jid.to_string())],
                        Map::new(),
                    )
                    .await
                    .ok()
                } else {
                    None
                };
                match probe {
                    Some(started) => {
                        let wait = self.timeout.clamp(Duration::from_secs(1), Duration::from_secs(5));
                        self.jobs[i].probe = Some(Probe {
                            jid: started.jid,
                            asked: started.minions.iter().map(|m| m.to_string()).collect(),
                            answers: BTreeMap::new(),
                            deadline: Instant::now() + wait,
                        });
                    }
                    None => {
                        let job = self.jobs.remove(i);
                        self.finish(job, Missing::NoResponse);
                        continue;
                    }
                }
            }
            i += 1;
        }
    }

    fn finish(&mut self, job: Tracked, default: Missing) {
        let mut missing: Vec<(String, Missing)> = job
            .targeted
            .iter()
            .filter(|m| !job.returned.contains(*m))
            .map(|m| {
                let why = if job.offline.contains(m) && self.queue_ttl.is_some() {
                    Missing::Queued
                } else if job.offline.contains(m) {
                    Missing::NotConnected
                } else if job.running.contains(m) {
                    Missing::StillRunning
                } else {
                    default
                };
                (m.clone(), why)
            })
            .collect();
        missing.extend(job.unknown.iter().map(|m| (m.clone(), Missing::NoResponse)));
        self.pending.push_back(Event::Finished { jid: job.jid, missing });
    }
}
