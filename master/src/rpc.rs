//! Minion requests on `P.rpc.<minion>.<op>`: signed by the minion's accepted key,
//! answered (signed by the master) on the minion's private inbox. NATS permissions let
//! a minion publish only on its own `P.rpc.<minion>.>` and the subject must match the
//! signed body, so a minion asks — and gets pillar — only as itself.

use crate::fileserver::FileServer;
use crate::master::{Shared, StartError};
use crate::stats::Stats;
use brine_proto::envelope::{open, seal, Stamp};
use brine_proto::msg::{Rpc, RpcCall, RpcReply, RpcResult};
use brine_proto::Map;
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Subscribes to `P.rpc.>` and returns the task that serves it.
pub async fn serve(shared: Arc<Shared>) -> Result<impl Future<Output = ()>, StartError> {
    let files = Arc::new(FileServer::new(shared.cfg.file_roots.clone(), shared.cfg.pillar_roots.clone()));
    let mut sub = shared
        .client
        .queue_subscribe(shared.cfg.subjects.all_rpc(), "brine-master".into())
        .await
        .map_err(|e| StartError::Connect { url: "rpc".into(), reason: e.to_string() })?;
    Ok(async move {
        while let Some(msg) = sub.next().await {
            let (shared, files) = (shared.clone(), files.clone());
            tokio::spawn(async move { handle(&shared, &files, msg).await });
        }
    })
}

async fn handle(shared: &Shared, files: &Arc<FileServer>, msg: async_nats::Message) {
    let refuse = |why: &str| {
        Stats::bump(&shared.stats.rpc_refused);
        tracing::warn!(subject = %msg.subject, "refused a minion request: {why}");
    };
    let Some((id, op)) = shared.cfg.subjects.parse_rpc(&msg.subject) else { return refuse("malformed subject") };
    let Some(key) = shared.registry.accepted_key(&id) else { return refuse("no accepted key") };
    let rpc: Rpc = match open(&msg.payload, &key, brine_proto::time::now_ms()) {
        Ok(r) => r,
        Err(e) => return refuse(&e.to_string()),
    };
    if rpc.id != id || rpc.call.op() != op {
        return refuse("its body does not match its subject");
    }
    Stats::bump(&shared.stats.rpc_requests);
    let result = match rpc.call {
        RpcCall::PutGrains { grains } => match shared.grains.put(&id, grains) {
            Ok(()) => {
                tracing::debug!(minion = %id, "cached grains");
                RpcResult::Ok
            }
            Err(e) => RpcResult::Error(e.to_string()),
        },
        RpcCall::FileList { env, prefix } => files.list(&env, &prefix),
        RpcCall::FileHash { env, path } => files.hash(&env, &path),
        RpcCall::FileRead { env, path, offset } => {
            let files = files.clone();
            tokio::task::spawn_blocking(move || files.read(&env, &path, offset))
                .await
                .unwrap_or_else(|e| RpcResult::Error(e.to_string()))
        }
        RpcCall::Pillar { grains } => {
            let (files, who) = (files.clone(), id.clone());
            let (pillar, errors) = tokio::task::spawn_blocking(move || files.pillar(&who, grains))
                .await
                .unwrap_or_else(|e| (Map::new(), vec![e.to_string()]));
            if errors.is_empty() {
                tracing::debug!(minion = %id, keys = pillar.len(), "rendered pillar");
                if let Err(e) = shared.pillar.put(&id, pillar.clone()) {
                    tracing::warn!(minion = %id, error = %e, "cannot cache the pillar for targeting");
                }
            } else {
                tracing::warn!(minion = %id, errors = ?errors, "pillar failed to render");
            }
            RpcResult::Pillar { pillar, errors }
        }
    };
    let Some(reply) = msg.reply else { return };
    let answer = RpcReply { stamp: Stamp::random(Duration::from_secs(60)), request: rpc.stamp.id, result };
    if let Ok(bytes) = seal(&answer, &shared.key) {
        let _ = shared.client.publish(reply, bytes.into()).await;
    }
}
