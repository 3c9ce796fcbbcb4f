//! Enrollment: minions without an accepted key ask on `P.enroll`, the only subject
//! their NATS identity can reach. The request is signed with the key it presents
//! (proof of possession); the answer, signed by the master, tells the minion where its
//! key stands.

use crate::master::{Shared, StartError};
use crate::stats::Stats;
use brine_proto::envelope::{open_self_signed, seal, Stamp};
use brine_proto::keys::Fingerprint;
use brine_proto::msg::{EnrollReply, EnrollRequest, KeyStatus};
use futures::StreamExt;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Subscribes to `P.enroll` and returns the task that answers it.
pub async fn serve(shared: Arc<Shared>) -> Result<impl Future<Output = ()>, StartError> {
    let mut sub = shared
        .client
        .queue_subscribe(shared.cfg.subjects.enroll(), "brine-master".into())
        .await
        .map_err(|e| StartError::Connect { url: "enroll".into(), reason: e.to_string() })?;
    // Requests are handled concurrently (a fleet enrolling at once waits on flushes
    // and user reloads, which batch across requests); the registry decision for an
    // id is taken under one lock, so two requests for the same id cannot both win.
    let decide = Arc::new(std::sync::Mutex::new(()));
    Ok(async move {
        while let Some(msg) = sub.next().await {
            let (shared, decide) = (shared.clone(), decide.clone());
            tokio::spawn(async move { handle(&shared, &decide, msg).await });
        }
    })
}

async fn handle(shared: &Arc<Shared>, decide: &Arc<std::sync::Mutex<()>>, msg: async_nats::Message) {
    let Some(reply) = msg.reply.clone() else {
        Stats::bump(&shared.stats.enroll_refused);
        return;
    };
    let opened = match open_self_signed::<EnrollRequest>(&msg.payload, brine_proto::time::now_ms()) {
        Ok(o) => o,
        Err(e) => {
            Stats::bump(&shared.stats.enroll_refused);
            tracing::debug!(error = %e, "dropping enrollment request");
            return;
        }
    };
    let req = opened.msg;
    if opened.signer.to_bytes() != req.key {
        Stats::bump(&shared.stats.enroll_refused);
        tracing::warn!(id = %req.id, "dropping enrollment request signed by a key other than the one it presents");
        return;
    }
    // The registry and its flush touch the disk: off the async threads.
    let (work, decide, id, key) = (shared.clone(), decide.clone(), req.id.clone(), req.key);
    let recorded = tokio::task::spawn_blocking(move || {
        let enrolled = {
            let _one_at_a_time = decide.lock().unwrap_or_else(|e| e.into_inner());
            work.registry.enroll(&id, key, work.cfg.auto_accept)?
        };
        if enrolled.changed {
            if let Err(e) = work.registry.flush() {
                tracing::error!(error = %e, "cannot flush the key registry");
            }
        }
        Ok::<_, crate::store::StoreError>(enrolled)
    })
    .await;
    let enrolled = match recorded {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            tracing::error!(id = %req.id, error = %e, "cannot record enrollment");
            return;
        }
        Err(e) => {
            tracing::error!(id = %req.id, error = %e, "enrollment task failed");
            return;
        }
    };
    Stats::bump(&shared.stats.enroll_requests);
    let fp = Fingerprint::of_bytes(&req.key).to_string();
    if enrolled.changed {
        let act = match enrolled.status {
            KeyStatus::Pending => "pend",
            KeyStatus::Accepted => "accept",
            KeyStatus::Rejected => "reject",
            KeyStatus::Denied => "denied",
        };
        match enrolled.status {
            KeyStatus::Denied => {
                tracing::warn!(id = %req.id, fingerprint = %fp, "denied a key that differs from the id's known key")
            }
            _ => {
                tracing::info!(id = %req.id, fingerprint = %fp, status = enrolled.status.as_str(), "new minion key")
            }
        }
        if enrolled.status == KeyStatus::Accepted {
            shared.sync_nats_users().await;
        }
        shared
            .emit(
                &format!("brine/key/{act}"),
                json!({"act": act, "id": req.id, "fingerprint": fp, "auto": shared.cfg.auto_accept}),
            )
            .await;
    }
    // Salt's auth event, for every enrollment attempt (a minion knocking while its
    // key waits, too).
    let act = match enrolled.status {
        KeyStatus::Pending => "pend",
        KeyStatus::Accepted => "accept",
        KeyStatus::Rejected => "reject",
        KeyStatus::Denied => "denied",
    };
    shared
        .emit(
            "brine/auth",
            json!({"act": act, "id": req.id, "fingerprint": fp, "result": enrolled.status == KeyStatus::Accepted}),
        )
        .await;
    let answer = EnrollReply {
        stamp: Stamp::random(Duration::from_secs(60)),
        request: req.stamp.id.clone(),
        id: req.id.clone(),
        status: enrolled.status,
        tls_ca: shared.tls_ca.clone(),
    };
    match seal(&answer, &shared.key) {
        Ok(bytes) => {
            if let Err(e) = shared.client.publish(reply, bytes.into()).await {
                tracing::warn!(id = %req.id, error = %e, "cannot answer enrollment");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot seal enrollment answer"),
    }
}
