//! Waiting for a change of some apps: the long-poll loop, once for every kind of poll.

use std::time::Duration;

use tokio::time::Instant;

use super::{Refusal, Service};
use crate::node::change_hub::Subscription;
use crate::registry::model::AppKey;
use crate::registry::view::View;

/// Most watches waiting at once on one node; beyond it a watch is refused as overloaded.
pub(crate) const MAX_WAITING_WATCHES: usize = 20_000;

impl Service {
    /// Reads the view with `answer` until it has an answer (`Some`), waiting for a change of `apps` between
    /// reads, for at most `wait`. `Ok(None)`: nothing changed in time, or the node is stopping.
    ///
    /// `answer` sees the view as it is now; it is called once at the start and once after each change.
    pub async fn watch<T>(
        &self,
        apps: &[AppKey],
        wait: Duration,
        mut answer: impl FnMut(View<'_>) -> Option<T>,
    ) -> Result<Option<T>, Refusal> {
        let hub = self.node.registry.hub();
        if hub.waiters() >= MAX_WAITING_WATCHES {
            return Err(Refusal::Overloaded("too many long polls waiting on this node".into()));
        }
        let deadline = Instant::now() + wait;
        // Subscribed before the first read: a change in between wakes the wait below.
        let mut subscription = hub.subscribe(apps);
        let mut signalled = None;
        loop {
            if let Some(found) = self.read(&mut answer) {
                if let Some(at) = signalled {
                    self.node.metrics.poll_wake_latency.observe(Instant::elapsed(&at).as_secs_f64());
                }
                return Ok(Some(found));
            }
            signalled = self.wait_for_change(&mut subscription, deadline).await;
            if signalled.is_none() {
                return Ok(None);
            }
        }
    }

    /// The wait of a watch: when the change was signalled, or `None` at the deadline or on shutdown.
    async fn wait_for_change(&self, subscription: &mut Subscription, deadline: Instant) -> Option<Instant> {
        tokio::select! {
            _ = self.node.shutdown.cancelled() => None,
            woken = tokio::time::timeout_at(deadline, subscription.changed()) => woken.ok(),
        }
    }

    /// The longest a watch may wait (`--poll-timeout`).
    pub fn watch_limit(&self) -> Duration {
        self.node.config.poll_timeout
    }
}
