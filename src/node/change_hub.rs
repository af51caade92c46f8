//! Change notification for long polls: one `watch` channel per (env, appid), set by apply to the instant
//! of the change (so a woken poll can report its wake-up latency).
//!
//! Invariants:
//! - No lost wake-ups: a poller subscribes to every app it watches *before* it reads the registry, and a
//!   subscription only reports changes made after it was taken. A change applied between the read and
//!   the wait is therefore seen by the wait.
//! - Per-request waiters: every poll owns its receivers; nothing is shared between requests, so two
//!   clients with the same hostname cannot steal each other's wake-ups (a bug of the original, spec §4.6).
//! - A dropped [`Subscription`] (poll answered, timed out, or client disconnected so axum dropped the
//!   handler future) removes channels nobody listens to any more, so the map stays bounded.
//! - Installing a snapshot wakes every waiter (`notify_all`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::select_all;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::registry::model::AppKey;

/// The per-app change channels of one node.
#[derive(Debug, Default)]
pub struct ChangeHub {
    apps: Mutex<HashMap<AppKey, watch::Sender<Instant>>>,
    waiters: AtomicUsize,
}

impl ChangeHub {
    /// Wake the waiters of these apps.
    pub fn notify<'a>(&self, keys: impl IntoIterator<Item = &'a AppKey>) {
        let apps = self.lock();
        let now = Instant::now();
        for key in keys {
            if let Some(tx) = apps.get(key) {
                tx.send_replace(now);
            }
        }
    }

    /// Wake the waiters of one appid in every env (used for `infra.discovery` when the membership changes).
    pub fn notify_appid(&self, appid: &str) {
        let now = Instant::now();
        for (key, tx) in self.lock().iter() {
            if key.appid == appid {
                tx.send_replace(now);
            }
        }
    }

    /// Wake every waiter (the whole state was replaced by a snapshot).
    pub fn notify_all(&self) {
        let now = Instant::now();
        for tx in self.lock().values() {
            tx.send_replace(now);
        }
    }

    /// Start watching these apps. Changes applied after this call wake the subscription.
    pub fn subscribe(self: &Arc<Self>, keys: &[AppKey]) -> Subscription {
        let mut apps = self.lock();
        let receivers = keys
            .iter()
            .map(|key| apps.entry(key.clone()).or_insert_with(|| watch::channel(Instant::now()).0).subscribe())
            .collect();
        drop(apps);
        self.waiters.fetch_add(1, Ordering::Relaxed);
        Subscription { hub: Arc::clone(self), keys: keys.to_vec(), receivers }
    }

    /// Number of polls currently waiting.
    pub fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Relaxed)
    }

    /// Number of apps with at least one channel (for tests and metrics).
    pub fn channels(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AppKey, watch::Sender<Instant>>> {
        // A poisoned lock only means a panic elsewhere while holding it; the map itself stays valid.
        self.apps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn release(&self, keys: &[AppKey]) {
        let mut apps = self.lock();
        for key in keys {
            if apps.get(key).is_some_and(|tx| tx.receiver_count() == 0) {
                apps.remove(key);
            }
        }
        drop(apps);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One poll's interest in a set of apps.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<ChangeHub>,
    keys: Vec<AppKey>,
    receivers: Vec<watch::Receiver<Instant>>,
}

impl Subscription {
    /// Wait until any watched app changes (returns at once if one changed since the subscription or the
    /// last `changed`); returns when that change was signalled (for the wake-latency metric).
    pub async fn changed(&mut self) -> Instant {
        if self.receivers.is_empty() {
            return std::future::pending().await;
        }
        let fired = {
            let waits = self.receivers.iter_mut().map(|rx| Box::pin(rx.changed()));
            // A closed channel cannot happen while the hub holds the sender; treat it like a change.
            select_all(waits).await.1
        };
        self.receivers.get_mut(fired).map_or_else(Instant::now, |rx| *rx.borrow_and_update())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Receivers must go before the count check in `release`.
        self.receivers.clear();
        self.hub.release(&self.keys);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn app(name: &str) -> AppKey {
        AppKey { env: "dev".into(), appid: name.into() }
    }

    #[tokio::test]
    async fn change_after_subscribe_is_not_lost() {
        let hub = Arc::new(ChangeHub::default());
        let mut sub = hub.subscribe(&[app("a"), app("b")]);
        // The change lands before the wait starts: the wait must still return.
        hub.notify([&app("b")]);
        tokio::time::timeout(Duration::from_secs(1), sub.changed()).await.expect("woken");
    }

    #[tokio::test(start_paused = true)]
    async fn other_apps_do_not_wake() {
        let hub = Arc::new(ChangeHub::default());
        let mut sub = hub.subscribe(&[app("a")]);
        hub.notify([&app("z")]);
        assert!(tokio::time::timeout(Duration::from_secs(5), sub.changed()).await.is_err());
    }

    #[tokio::test]
    async fn notify_all_wakes_everyone_and_drop_frees_channels() {
        let hub = Arc::new(ChangeHub::default());
        let mut subs: Vec<_> = (0..100).map(|i| hub.subscribe(&[app(&format!("app{}", i % 7))])).collect();
        assert_eq!(hub.waiters(), 100);
        assert_eq!(hub.channels(), 7);
        hub.notify_all();
        for sub in &mut subs {
            tokio::time::timeout(Duration::from_secs(1), sub.changed()).await.expect("woken");
        }
        drop(subs);
        assert_eq!(hub.waiters(), 0);
        assert_eq!(hub.channels(), 0);
    }
}
