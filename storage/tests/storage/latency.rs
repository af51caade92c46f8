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
