//! Writes: register, cancel and set, applied through the leader (see `node::routing`).

use super::{Refusal, Service};
use crate::registry::command::{Command, Outcome};

impl Service {
    /// Applies `command` through the leader and returns apply's outcome for it; the node that accepted it
    /// has applied it too when this returns (read-your-writes on this node).
    pub async fn write(&self, command: Command) -> Result<Outcome, Refusal> {
        let started = std::time::Instant::now();
        let outcome = self.node.write(command).await.map_err(Refusal::from);
        self.node.history.activity.write(started.elapsed());
        outcome
    }

    /// The clock writes are stamped with (ns since the Unix epoch), for checks a request can fail early.
    pub fn now_ns(&self) -> i64 {
        crate::node::proposer::now_ns()
    }
}
