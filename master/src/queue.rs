//! Queued jobs: `brine run --queue` keeps a copy of the job for each targeted minion
//! in a JetStream work queue (`<PREFIX>_QJOBS` on `P.qjob.>`), one durable consumer per
//! minion. A minion drains its own queue whenever it connects, so a job published
//! while it was offline reaches it when it comes back; the job's signed expiry (the
//! `--ttl`) decides whether it may still run. NATS permissions let each minion pull
//! and acknowledge only its own consumer.

use crate::master::StartError;
use async_nats::jetstream::{self, consumer::pull, stream};
use brine_proto::{Jid, MinionId, Subjects};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// The job queue.
pub struct JobQueue {
    js: jetstream::Context,
    stream: stream::Stream,
    subjects: Subjects,
    /// Minions whose consumer is known to exist.
    consumers: Mutex<HashSet<MinionId>>,
}

impl JobQueue {
    /// Creates (or finds) the queue stream.
    pub async fn setup(client: &async_nats::Client, subjects: &Subjects) -> Result<JobQueue, StartError> {
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: subjects.stream_name("QJOBS"),
                subjects: vec![subjects.all_qjobs()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                max_age: brine_proto::envelope::MAX_TTL,
                duplicate_window: Duration::from_secs(120),
                max_message_size: crate::nats::MAX_PAYLOAD as i32,
                ..Default::default()
            })
            .await
            .map_err(|e| StartError::JetStream(e.to_string()))?;
        Ok(JobQueue { js, stream, subjects: subjects.clone(), consumers: Mutex::new(HashSet::new()) })
    }

    async fn ensure_consumer(&self, minion: &MinionId) -> Result<(), String> {
        if self.consumers.lock().unwrap_or_else(|e| e.into_inner()).contains(minion) {
            return Ok(());
        }
        let name = self.subjects.queue_consumer(minion);
        self.stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.subjects.qjobs_of(minion),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        self.consumers.lock().unwrap_or_else(|e| e.into_inner()).insert(minion.clone());
        Ok(())
    }

    /// Puts a sealed job in a minion's queue and waits until JetStream has it.
    pub async fn enqueue(&self, minion: &MinionId, jid: Jid, sealed: bytes::Bytes) -> Result<(), String> {
        self.ensure_consumer(minion).await?;
        let msg_id = format!("{}.{jid}", minion.token());
        let publish = jetstream::message::PublishMessage::build().payload(sealed).message_id(msg_id.as_str());
        let ack = self.js.send_publish(self.subjects.qjob(minion, jid), publish).await.map_err(|e| e.to_string())?;
        ack.await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Removes a minion's queue (its key was deleted or rejected).
    pub async fn forget(&self, minion: &MinionId) {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner()).remove(minion);
        let _ = self.stream.delete_consumer(&self.subjects.queue_consumer(minion)).await;
        let _ = self.stream.purge().filter(self.subjects.qjobs_of(minion)).await;
    }
}
