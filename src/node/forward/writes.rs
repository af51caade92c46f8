//! Writes bound for the leader, forwarded in batches: every write a follower receives while its previous
//! batch is on the way joins the next one, so the leader handles one request (and usually one Raft entry)
//! per batch instead of one per write.
//!
//! Invariants:
//! - Each caller gets the leader's answer for its own command, or the error of the request that carried
//!   it; `routing` decides what to do with either (retry on "not the leader", report "unknown" on a
//!   timeout), exactly as for a single forwarded write.
//! - A batch goes to one address; writes routed to different addresses (a leader change in between) go
//!   as separate requests. A batch's deadline is the earliest of its writes' deadlines.

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ForwardError, Forwarder};
use crate::node::internal_wire::{WriteReply, WritesRequest, WRITES_PATH};
use crate::node::pipeline::{self, Shape};
use crate::registry::command::Command;

/// Most writes in one forwarded request.
pub const MAX_FORWARD_BATCH: usize = 512;
/// Forwarded requests on their way at once.
pub const FORWARDS_IN_FLIGHT: usize = 8;
/// Queue length in front of the forwarder; a full queue answers overload.
pub const FORWARD_QUEUE: usize = 8192;

struct Pending {
    addr: String,
    command: Command,
    deadline: Instant,
    reply: oneshot::Sender<Result<WriteReply, ForwardError>>,
}

/// Handle to the forwarding task. Cheap to clone.
#[derive(Clone)]
pub struct WriteForwarder {
    tx: mpsc::Sender<Pending>,
}

impl WriteForwarder {
    /// Start the forwarding task; `from` is this node's id (the leader refuses writes from non-members).
    pub fn spawn(forwarder: Forwarder, from: u64, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
        let shape = Shape { max_batch: MAX_FORWARD_BATCH, in_flight: FORWARDS_IN_FLIGHT };
        let task = tokio::spawn(pipeline::run(rx, shape, shutdown, move |batch| {
            let forwarder = forwarder.clone();
            async move { send_batch(&forwarder, from, batch).await }
        }));
        (Self { tx }, task)
    }

    /// Send `command` to the leader at `addr` (with whatever else is queued) and wait for its answer.
    pub async fn forward(&self, addr: &str, command: Command, deadline: Instant) -> Result<WriteReply, ForwardError> {
        let (reply, rx) = oneshot::channel();
        let pending = Pending { addr: addr.to_string(), command, deadline, reply };
        match self.tx.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Ok(WriteReply::Overloaded),
            Err(mpsc::error::TrySendError::Closed(_)) => return Ok(WriteReply::Failed("shutting down".into())),
        }
        // A dropped reply means the task stopped before sending: nothing reached the leader.
        rx.await.unwrap_or_else(|_| Ok(WriteReply::Failed("shutting down".into())))
    }
}

async fn send_batch(forwarder: &Forwarder, from: u64, batch: Vec<Pending>) {
    for (addr, group) in by_address(batch) {
        let deadline = group.iter().map(|p| p.deadline).min().unwrap_or_else(Instant::now);
        let (commands, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|p| (p.command, p.reply)).unzip();
        let expected = commands.len();
        let request = WritesRequest { commands, from };
        let answer = match forwarder.call::<_, Vec<WriteReply>>(&addr, WRITES_PATH, &request, deadline).await {
            Ok(answers) if answers.len() == expected => Ok(answers),
            Ok(answers) => Err(ForwardError::BadReply(format!("{} answers to {expected} writes", answers.len()))),
            Err(err) => Err(err),
        };
        match answer {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Split a batch by destination, keeping each destination's writes in arrival order.
fn by_address(batch: Vec<Pending>) -> Vec<(String, Vec<Pending>)> {
    let mut groups: Vec<(String, Vec<Pending>)> = Vec::new();
    for pending in batch {
        match groups.iter_mut().find(|(addr, _)| *addr == pending.addr) {
            Some((_, group)) => group.push(pending),
            None => groups.push((pending.addr.clone(), vec![pending])),
        }
    }
    groups
}
