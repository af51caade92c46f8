//! [`Registered`]: a registration kept alive, as the Go SDK keeps one: register, renew every interval,
//! register again when the registry answers -404 (it forgot the instance: evicted, or a fresh node), and
//! cancel on [`Registered::stop`].
//!
//! Invariants: the renew loop is one task owned by the handle (stopped by `stop`, or aborted when the
//! handle is dropped); a failed renew is retried at the next tick, never in a tight loop; the last error is
//! kept for the owner to look at.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::ClientError;
use super::wire::Registration;
use super::Client;

/// A registration kept alive by a background renew loop.
#[derive(Debug)]
pub struct Registered {
    client: Client,
    registration: Registration,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    last_error: Arc<Mutex<Option<ClientError>>>,
}

impl Client {
    /// Register `registration`, then renew it every `every` until [`Registered::stop`] (which cancels it).
    /// Fails if the first register fails (as the Go SDK's `Register` does), so a caller knows at start.
    pub async fn keep_registered(
        &self,
        registration: Registration,
        every: Duration,
    ) -> Result<Registered, ClientError> {
        self.register(&registration).await?;
        let stop = CancellationToken::new();
        let last_error = Arc::new(Mutex::new(None));
        let task =
            tokio::spawn(renew_loop(self.clone(), registration.clone(), every, stop.clone(), Arc::clone(&last_error)));
        Ok(Registered { client: self.clone(), registration, stop, task: Some(task), last_error })
    }
}

async fn renew_loop(
    client: Client,
    registration: Registration,
    every: Duration,
    stop: CancellationToken,
    last_error: Arc<Mutex<Option<ClientError>>>,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let outcome = match client.renew(&registration.key).await {
            Err(err) if err.is_not_found() => client.register(&registration).await,
            other => other,
        };
        *last_error.lock().unwrap_or_else(|p| p.into_inner()) = outcome.err();
    }
}

impl Registered {
    /// What was registered.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The error of the last renew (or re-register), if it failed.
    pub fn last_error(&self) -> Option<ClientError> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stop renewing and cancel the instance.
    pub async fn stop(mut self) -> Result<(), ClientError> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.client.cancel(&self.registration.key).await
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
