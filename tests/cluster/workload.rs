//! Bounded background load: writer tasks registering distinct host names through a changeable set of
//! nodes, recording every acknowledged (code 0) register with when it was sent and answered. Each writer
//! registers with the library's typed `Client::register`, through one client per node.
//!
//! Bounds: each writer stops at `max_time`, after `max_writes` attempts in total, or on `stop()`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discovery::client::Client;
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};
use tokio::task::JoinHandle;

use crate::api::{self, Inst};
use crate::harness::poll_until;

/// Node choice of a writer: only needs to be spread, not reproducible.
pub struct Rng(rand::rngs::StdRng);

impl Rng {
    /// Seeded by the OS.
    pub fn new() -> Self {
        Self(rand::SeedableRng::from_os_rng())
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        rand::Rng::random_range(&mut self.0, 0..n)
    }
}

/// How hard the writers push.
#[derive(Debug, Clone, Copy)]
pub struct WriteLoad {
    /// Writer tasks.
    pub writers: usize,
    /// Pause after each request of one writer.
    pub pause: Duration,
    /// Attempts over all writers.
    pub max_writes: usize,
    /// Wall-clock bound of the whole load.
    pub max_time: Duration,
    /// Timeout of one register request.
    pub timeout: Duration,
}

impl Default for WriteLoad {
    fn default() -> Self {
        Self {
            writers: 3,
            pause: Duration::from_millis(15),
            max_writes: 30_000,
            max_time: Duration::from_secs(120),
            timeout: Duration::from_secs(4),
        }
    }
}

/// One acknowledged register.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The registered host name.
    pub hostname: String,
    /// When the request was sent.
    pub sent: Instant,
    /// When code 0 came back.
    pub answered: Instant,
}

struct Shared {
    stop: AtomicBool,
    attempts: AtomicUsize,
    failures: AtomicUsize,
    targets: Mutex<Vec<String>>,
    acks: Mutex<Vec<Ack>>,
    gate: Arc<RwLock<()>>,
}

/// Running writer tasks.
pub struct Writers {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    paused: Option<OwnedRwLockWriteGuard<()>>,
}

/// Lock, ignoring poisoning (a panicking task already fails the test).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writers {
    /// Start `load.writers` tasks registering `<appid>` hosts through `targets` (base URLs).
    pub fn start(appid: &str, targets: Vec<String>, load: WriteLoad) -> Writers {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            attempts: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            targets: Mutex::new(targets),
            acks: Mutex::new(Vec::new()),
            gate: Arc::new(RwLock::new(())),
        });
        let tasks = (0..load.writers)
            .map(|w| tokio::spawn(write_loop(Arc::clone(&shared), appid.to_string(), w, load)))
            .collect();
        Writers { shared, tasks, paused: None }
    }

    /// Send the next requests through these nodes only.
    pub fn set_targets(&self, targets: Vec<String>) {
        *lock(&self.shared.targets) = targets;
    }

    /// Stop sending new requests and wait until the in-flight ones are answered.
    pub async fn pause(&mut self) {
        if self.paused.is_none() {
            self.paused = Some(Arc::clone(&self.shared.gate).write_owned().await);
        }
    }

    /// Undo [`Writers::pause`].
    pub fn resume(&mut self) {
        self.paused = None;
    }

    /// Host names acknowledged so far.
    pub fn acked(&self) -> Vec<String> {
        lock(&self.shared.acks).iter().map(|a| a.hostname.clone()).collect()
    }

    /// Number of acknowledged registers so far.
    pub fn ack_count(&self) -> usize {
        lock(&self.shared.acks).len()
    }

    /// (attempts, failures) so far.
    pub fn counts(&self) -> (usize, usize) {
        (self.shared.attempts.load(Ordering::Relaxed), self.shared.failures.load(Ordering::Relaxed))
    }

    /// Wait until a register *sent* at or after `since` is acknowledged; returns how long after `since` its
    /// answer came, or `None` at the deadline.
    pub async fn first_ack_sent_after(&self, since: Instant, timeout: Duration) -> Option<Duration> {
        let deadline = since + timeout;
        loop {
            let first = lock(&self.shared.acks).iter().filter(|a| a.sent >= since).map(|a| a.answered).min();
            if let Some(answered) = first {
                return Some(answered - since);
            }
            if Instant::now() > deadline || self.shared.stop.load(Ordering::Relaxed) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Wait until `n` more registers than now are acknowledged (panics at the deadline: the load is stuck).
    pub async fn wait_more_acks(&self, n: usize, timeout: Duration) {
        let target = self.ack_count() + n;
        let progressed =
            poll_until(Instant::now() + timeout, async || if self.ack_count() >= target { Ok(()) } else { Err(()) })
                .await;
        assert!(
            progressed.is_ok(),
            "writers made no progress: {} acks, wanted {target} within {timeout:?}; (attempts, failures) {:?}",
            self.ack_count(),
            self.counts()
        );
    }

    /// Stop every writer and wait for them; returns every acknowledged host name.
    pub async fn stop(mut self) -> Vec<String> {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.resume();
        for task in self.tasks.drain(..) {
            task.await.expect("writer task");
        }
        self.acked()
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn write_loop(shared: Arc<Shared>, appid: String, w: usize, load: WriteLoad) {
    let started = Instant::now();
    let mut rng = Rng::new();
    let mut seq = 0usize;
    let mut clients: HashMap<String, Client> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed)
        && started.elapsed() < load.max_time
        && shared.attempts.fetch_add(1, Ordering::Relaxed) < load.max_writes
    {
        let gate = Arc::clone(&shared.gate);
        let _open = gate.read().await;
        let target = {
            let targets = lock(&shared.targets);
            (!targets.is_empty()).then(|| targets[rng.below(targets.len())].clone())
        };
        let Some(base) = target else {
            tokio::time::sleep(load.pause.max(Duration::from_millis(10))).await;
            continue;
        };
        let inst = Inst::new(&appid, format!("w{w}-{seq}"));
        seq += 1;
        let sent = Instant::now();
        let client = clients.entry(base).or_insert_with_key(|base| api::client_with(base, load.timeout));
        match client.register(&inst.registration()).await {
            Ok(()) => lock(&shared.acks).push(Ack { hostname: inst.hostname, sent, answered: Instant::now() }),
            Err(_) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(_open);
        tokio::time::sleep(load.pause).await;
    }
}
