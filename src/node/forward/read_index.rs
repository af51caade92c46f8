//! Read-index requests bound for the leader, shared: every consistent read a follower receives while its
//! previous read-index round trips are on their way joins the next one, and all of them use its answer.
//!
//! Why sharing is linearizable: a read index is valid for every read that arrived *before* the request
//! that obtained it left (the leader confirms, after receiving it, that it still leads and reports its
//! commit index, which covers every write acknowledged before then). [`pipeline`] only
//! hands out items queued before the batch was taken, and the request is sent after that.

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ForwardError, Forwarder};
use crate::node::internal_wire::{ReadIndexReply, READ_INDEX_PATH};
use crate::node::pipeline::{self, Shape};

/// Most reads sharing one round trip (the answer is copied to each; the bound only keeps batches sane).
pub const MAX_READ_BATCH: usize = 4096;
/// Read-index round trips on their way at once.
pub const READS_IN_FLIGHT: usize = 2;
/// Queue length in front of the batcher; a full queue answers overload.
pub const READ_QUEUE: usize = 16_384;

type Answer = Result<ReadIndexReply, ForwardError>;

struct Pending {
    addr: String,
    deadline: Instant,
    reply: oneshot::Sender<Answer>,
}

/// Handle to the batching task. Cheap to clone.
#[derive(Clone)]
pub struct ReadIndexBatcher {
    tx: mpsc::Sender<Pending>,
}

impl ReadIndexBatcher {
    /// Start the batching task.
    pub fn spawn(forwarder: Forwarder, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(READ_QUEUE);
        let shape = Shape { max_batch: MAX_READ_BATCH, in_flight: READS_IN_FLIGHT };
        let task = tokio::spawn(pipeline::run(rx, shape, shutdown, move |batch| {
            let forwarder = forwarder.clone();
            async move { send_batch(&forwarder, batch).await }
        }));
        (Self { tx }, task)
    }

    /// A read index from the leader at `addr`, obtained by a request sent after this call began.
    pub async fn read_index(&self, addr: &str, deadline: Instant) -> Answer {
        let (reply, rx) = oneshot::channel();
        let pending = Pending { addr: addr.to_string(), deadline, reply };
        if self.tx.try_send(pending).is_err() {
            // Nothing was sent; the caller treats this like an unreachable leader and tries again or
            // gives up at its deadline.
            return Err(ForwardError::Unreachable(addr.to_string()));
        }
        rx.await.unwrap_or_else(|_| Err(ForwardError::Unreachable(addr.to_string())))
    }
}

async fn send_batch(forwarder: &Forwarder, batch: Vec<Pending>) {
    let mut batch = batch;
    while let Some(first) = batch.first() {
        let addr = first.addr.clone();
        let (group, rest): (Vec<_>, Vec<_>) = batch.into_iter().partition(|p| p.addr == addr);
        batch = rest;
        let deadline = group.iter().map(|p| p.deadline).min().unwrap_or_else(Instant::now);
        let answer: Answer = forwarder.call(&addr, READ_INDEX_PATH, &(), deadline).await;
        for pending in group {
            let _ = pending.reply.send(answer.clone());
        }
    }
}
