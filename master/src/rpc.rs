//! Minion requests on `P.rpc.<minion>.<op>`: signed by the minion's accepted key,
//! answered (signed by the master) on the minion's private inbox.

use crate::master::{Shared, StartError};
use crate::stats::Stats;
use brine_proto::envelope::{open, seal, Stamp};
use brine_proto::msg::{Rpc, RpcCall, RpcReply, RpcResult};
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Subscribes to `P.rpc.>` and returns the task that serves it.
pub async fn serve(shared: Arc<Shared>) -> Result<impl Future<Output = ()>, StartError> {
    let mut sub = shared
        .client
        .queue_subscribe(shared.cfg.subjects.all_rpc(), "brine-master".into())
        .await
        .map_err(|e| StartError::Connect { url: "rpc".into(), reason: e.to_string() })?;
    Ok(async move {
        while let Some(msg) = sub.next().await {
            let shared = shared.clone();
            tokio::spawn(async move { handle(&shared, msg).await });
        }
    })
}

async fn handle(shared: &Shared, msg: async_nats::Message) {
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
    };
    let Some(reply) = msg.reply else { return };
    let answer = RpcReply { stamp: Stamp::random(Duration::from_secs(60)), request: rpc.stamp.id, result };
    if let Ok(bytes) = seal(&answer, &shared.key) {
        let _ = shared.client.publish(reply, bytes.into()).await;
    }
}
