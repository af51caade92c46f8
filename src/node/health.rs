//! Supervision of the Raft core, and what the node tells the world about its own health.
//!
//! Invariants:
//! - If openraft's core stops for any reason other than our own shutdown (a storage error such as
//!   `ENOSPC` or `EMFILE`, a panic), [`supervise_core`] records the cause in [`NodeHealth`] and cancels
//!   the node within milliseconds of the core's last metrics update: the process then exits non-zero
//!   with the cause logged (DESIGN.md: storage errors are fatal; a process manager restarts the node).
//! - From the moment the cause is recorded, no route serves registry state ([`refuse_when_dead`]): the
//!   API answers the -500 envelope naming the cause, `/healthz` answers 503 with it. `/metrics` and
//!   `/admin/status` keep answering: they describe the failure, not the registry.
//! - Stopping is visible too: once the node is stopping, `/healthz` answers 503 so load balancers move
//!   clients away before the listener closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

use crate::raft_types::Raft;

/// Paths that keep answering after the core stopped: they report the failure rather than registry state.
const ALWAYS_SERVED: [&str; 3] = ["/healthz", "/metrics", "/admin/status"];

/// What this node knows about its own ability to serve.
#[derive(Debug, Default)]
pub struct NodeHealth {
    /// Why the Raft core stopped, once it did (set once, never cleared: the process is exiting).
    fatal: OnceLock<String>,
    /// The node is shutting down (our own decision).
    stopping: AtomicBool,
}

impl NodeHealth {
    /// Why the Raft core stopped, if it did.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.get().map(String::as_str)
    }

    /// Record that the core stopped because of `cause` (only the first cause is kept).
    pub fn set_fatal(&self, cause: String) {
        let _ = self.fatal.set(cause);
    }

    /// True once the node started stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The node is stopping: health checks fail from now on.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }
}

/// Watch the Raft core until `shutdown`; if it stops first, record why and stop the node.
pub async fn supervise_core(raft: Raft, health: Arc<NodeHealth>, shutdown: CancellationToken) {
    let mut metrics = raft.metrics();
    let cause = loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            break fatal.to_string();
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() {
                // The metrics sender lives as long as the core task: it ended without saying why (a panic).
                break "the Raft core task ended unexpectedly".to_string();
            },
        }
    };
    if shutdown.is_cancelled() || health.is_stopping() {
        return;
    }
    tracing::error!(cause = %cause, "the Raft core stopped; this node cannot serve and is exiting");
    health.set_fatal(cause);
    shutdown.cancel();
}

/// Middleware: once the core stopped, answer every route but `ALWAYS_SERVED` with the cause instead of
/// serving state that can no longer change.
pub async fn refuse_when_dead(
    State((health, refusal)): State<(Arc<NodeHealth>, Refusal)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(cause) = health.fatal() else { return next.run(request).await };
    let path = request.uri().path();
    if ALWAYS_SERVED.contains(&path) {
        return next.run(request).await;
    }
    refusal(path, format!("this node's Raft core stopped ({cause}); it is exiting, use another node"), false)
}

/// How the application answers a refused request (`Frontend::refusal`).
pub type Refusal = fn(&str, String, bool) -> Response;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_is_kept() {
        let health = NodeHealth::default();
        assert_eq!(health.fatal(), None);
        health.set_fatal("disk full".into());
        health.set_fatal("later".into());
        assert_eq!(health.fatal(), Some("disk full"));
    }
}
