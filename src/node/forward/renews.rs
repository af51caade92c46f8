//! Renews: judged by the leader's lessor, never written to the Raft log. A follower forwards the renews it
//! receives to the leader in batches ([`pipeline`]: whatever queued while the previous
//! batches were on their way, no timer) and answers each client with the leader's verdict; with no
//! reachable leader the verdict is "not the leader" (-500), never -404, which would make every client
//! re-register at once.

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{with_leader, Attempt, ForwardError, LeaderHint};
use crate::node::internal_wire::{RenewReply, RenewRequest, RENEW_PATH};
use crate::node::pipeline::{self, Shape};
use crate::node::AppState;
use crate::registry::lessor::Renewal;
use crate::registry::model::InstanceKey;

/// Most renews in one forwarded batch.
pub const MAX_RENEW_BATCH: usize = 512;
/// Forwarded renew batches on their way at once.
pub const RENEWS_IN_FLIGHT: usize = 2;
/// Queue length in front of the renew forwarder.
pub const RENEW_QUEUE: usize = 16_384;

/// The verdict of this node's lessor on one renew (only meaningful on the leader).
pub fn renew_local(state: &AppState, key: &InstanceKey) -> RenewReply {
    match state.lessor.renew(&state.registry, key) {
        Renewal::NotLeader => RenewReply::NotLeader,
        Renewal::Renewed | Renewal::Unknown => {
            let registry = state.registry.read();
            match registry.get(key) {
                Some(stored) => RenewReply::Renewed(Box::new(stored.instance.clone())),
                None => RenewReply::Unknown { zone_known: registry.zone(&key.env, &key.appid, &key.zone).is_some() },
            }
        }
    }
}

type Pending = (InstanceKey, oneshot::Sender<RenewReply>);

/// Handle to the batching renew task. Cheap to clone.
#[derive(Clone)]
pub struct RenewForwarder {
    tx: mpsc::Sender<Pending>,
}

impl RenewForwarder {
    /// A forwarder whose task is started by [`RenewForwarder::run`].
    pub fn channel() -> (Self, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(RENEW_QUEUE);
        (Self { tx }, rx)
    }

    /// Renew through the leader (locally when this node leads).
    pub async fn renew(&self, key: InstanceKey) -> RenewReply {
        let (reply, rx) = oneshot::channel();
        if self.tx.try_send((key, reply)).is_err() {
            return RenewReply::NotLeader;
        }
        rx.await.unwrap_or(RenewReply::NotLeader)
    }

    /// The batching loop: send whatever is queued to the leader as one request, answer each renew.
    pub async fn run(state: AppState, rx: mpsc::Receiver<Pending>, shutdown: CancellationToken) {
        let shape = Shape { max_batch: MAX_RENEW_BATCH, in_flight: RENEWS_IN_FLIGHT };
        pipeline::run(rx, shape, shutdown, move |batch: Vec<Pending>| {
            let state = state.clone();
            async move {
                let (keys, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let verdicts = renew_batch(&state, keys).await;
                for (reply, verdict) in replies.into_iter().zip(verdicts) {
                    let _ = reply.send(verdict);
                }
            }
        })
        .await;
    }
}

async fn renew_batch(state: &AppState, keys: Vec<InstanceKey>) -> Vec<RenewReply> {
    let deadline = Instant::now() + state.leader_budget();
    let not_leader = |n: usize| vec![RenewReply::NotLeader; n];
    let keys = &keys;
    let routed = with_leader(&state.raft, deadline, |hint| async move {
        match hint {
            // A lessor not yet active (leadership not confirmed) says NotLeader: that is the answer.
            LeaderHint::Me => Attempt::Done(Ok(keys.iter().map(|k| renew_local(state, k)).collect())),
            LeaderHint::Other(addr) => {
                let request = RenewRequest { keys: keys.clone() };
                match state.forwarder.call::<_, Vec<RenewReply>>(&addr, RENEW_PATH, &request, deadline).await {
                    Ok(verdicts) if verdicts.len() != keys.len() => Attempt::Done(Ok(not_leader(keys.len()))),
                    Ok(verdicts) if verdicts.iter().all(|v| *v == RenewReply::NotLeader) => Attempt::NextLeader,
                    Ok(verdicts) => Attempt::Done(Ok(verdicts)),
                    Err(ForwardError::Unreachable(_)) => Attempt::NextLeader,
                    Err(err) => Attempt::Done(Err(err)),
                }
            }
        }
    })
    .await;
    routed.unwrap_or_else(|_| not_leader(keys.len()))
}
