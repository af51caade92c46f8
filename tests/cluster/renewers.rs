//! Bounded background renews: tasks that renew a fixed set of instances once per interval, each renew
//! through a random node of a changeable set, retried on other nodes when it fails; every -404 is kept.
//! Each renew is the library's typed `Client::renew`, through one client per node.
//!
//! Bounds: each task stops after `max_rounds` rounds, at `max_time`, or on `stop()`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discovery::client::Client;
use tokio::task::JoinHandle;

use crate::api::{self, Inst};
use crate::harness::{poll_until, POLL};
use crate::workload::{lock, Rng};

/// How the renewers renew.
#[derive(Debug, Clone, Copy)]
pub struct RenewLoad {
    /// Renewer tasks (the instances are split between them).
    pub tasks: usize,
    /// Each instance is renewed once per interval.
    pub interval: Duration,
    /// Wall-clock bound.
    pub max_time: Duration,
    /// Bound on the rounds (each renews every instance of a task once).
    pub max_rounds: usize,
    /// Timeout of one renew request; a failed renew is retried on other nodes a few times.
    pub timeout: Duration,
}

#[derive(Default)]
struct RenewShared {
    stop: AtomicBool,
    renewed: AtomicUsize,
    failed: AtomicUsize,
    not_found: Mutex<Vec<String>>,
    targets: Mutex<Vec<String>>,
}

/// Running renewer tasks.
pub struct Renewers {
    shared: Arc<RenewShared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Renewers {
    /// Renew every instance of `insts` once per `load.interval`, each time through a random target.
    pub fn start(insts: Vec<Inst>, targets: Vec<String>, load: RenewLoad) -> Renewers {
        let shared = Arc::new(RenewShared { targets: Mutex::new(targets), ..RenewShared::default() });
        let per_task = insts.len().div_ceil(load.tasks.max(1)).max(1);
        let tasks = insts
            .chunks(per_task)
            .map(|chunk| tokio::spawn(renew_loop(Arc::clone(&shared), chunk.to_vec(), load)))
            .collect();
        Renewers { shared, tasks }
    }

    /// Send the next renews through these nodes only.
    pub fn set_targets(&self, targets: Vec<String>) {
        *lock(&self.shared.targets) = targets;
    }

    /// Successful renews so far.
    pub fn renewed(&self) -> usize {
        self.shared.renewed.load(Ordering::Relaxed)
    }

    /// Renews that failed (transport error, -500, …) so far; each was retried.
    pub fn failed(&self) -> usize {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Every renew answered -404 (`appid/hostname via node: answer`).
    pub fn not_found(&self) -> Vec<String> {
        lock(&self.shared.not_found).clone()
    }

    /// Wait until `n` more renews than now succeeded (panics at the deadline).
    pub async fn wait_more_renewed(&self, n: usize, timeout: Duration) {
        let target = self.renewed() + n;
        let progressed =
            poll_until(Instant::now() + timeout, async || if self.renewed() >= target { Ok(()) } else { Err(()) })
                .await;
        assert!(
            progressed.is_ok(),
            "renews stalled: {} succeeded, wanted {target} within {timeout:?}; {} failed",
            self.renewed(),
            self.failed()
        );
    }

    /// Stop and wait for every renewer.
    pub async fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            task.await.expect("renewer task");
        }
    }
}

impl Drop for Renewers {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn renew_loop(shared: Arc<RenewShared>, insts: Vec<Inst>, load: RenewLoad) {
    let started = Instant::now();
    let mut rng = Rng::new();
    let mut clients: HashMap<String, Client> = HashMap::new();
    let stopped = || shared.stop.load(Ordering::Relaxed) || started.elapsed() > load.max_time;
    for _ in 0..load.max_rounds {
        if stopped() {
            return;
        }
        let round = Instant::now();
        for inst in &insts {
            if stopped() {
                return;
            }
            renew_one(&mut clients, &shared, inst, &mut rng, load.timeout).await;
        }
        let next = round + load.interval;
        while Instant::now() < next && !stopped() {
            tokio::time::sleep(POLL.min(next.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// Renew through a random node; on failure retry on other random nodes, at most 4 attempts.
async fn renew_one(
    clients: &mut HashMap<String, Client>,
    shared: &RenewShared,
    inst: &Inst,
    rng: &mut Rng,
    timeout: Duration,
) {
    for _ in 0..4 {
        let target = {
            let targets = lock(&shared.targets);
            (!targets.is_empty()).then(|| targets[rng.below(targets.len())].clone())
        };
        let Some(base) = target else { return };
        let client = clients.entry(base).or_insert_with_key(|base| api::client_with(base, timeout));
        match client.renew(&inst.key()).await {
            Ok(()) => {
                shared.renewed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) if e.is_not_found() => {
                lock(&shared.not_found).push(format!("{}/{} via {}: {e}", inst.appid, inst.hostname, client.server()));
                return;
            }
            Err(_) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
