//! The cost of one durable append (sled flush + fdatasync), the floor of every write's latency.
//! Run for the figure: `cargo test -p discovery-storage --release -- --nocapture append_latency`.

use std::time::{Duration, Instant};

use openraft::storage::RaftLogStorageExt;

use crate::common::{normal, open};

const APPENDS: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _sm, _app) = open(dir.path());
    let value = "x".repeat(200); // about the size of one registry command
    let mut samples: Vec<Duration> = Vec::with_capacity(APPENDS as usize);
    for index in 1..=APPENDS {
        let entry = normal(1, index, &format!("key-{index}"), &value);
        let started = Instant::now();
        log.blocking_append([entry]).await.unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    eprintln!(
        "append_latency: {APPENDS} durable single-entry appends in {}: median {:?}, p90 {:?}, p99 {:?}, max {:?}",
        dir.path().display(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    assert!(at(0.5) > Duration::ZERO);
}

/// The sync observer sees one flush + fdatasync per durable append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_observer_sees_every_durable_append() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Count(AtomicU64);
    impl discovery_storage::SyncObserver for Count {
        fn observe(&self, _flush: Duration, _fdatasync: Duration) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _sm, _app) = open(dir.path());
    let seen = Arc::new(Count::default());
    log.set_sync_observer(seen.clone());
    for index in 1..=5 {
        log.blocking_append([normal(1, index, "k", "v")]).await.expect("append");
    }
    assert!(seen.0.load(Ordering::SeqCst) >= 5, "one sync per acknowledged append");
}
