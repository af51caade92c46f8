//! Cluster tests: real `discovery` processes on ephemeral loopback ports, crashed, paused, restarted,
//! grown and shrunk under a bounded load, with the invariants checked afterwards (nothing acknowledged is
//! lost, every node converges on the same state).
//!
//! # Layout
//! - [`harness`]: `TestCluster` and the waits on observable state; [`process`]: one node's process.
//! - [`api`]: the bilibili calls the tests make.
//! - [`workload`]: bounded writer tasks that record every acknowledged register; [`renewers`]: bounded
//!   renew tasks.
//! - one file per topic: [`reads`], [`failover`], [`leases`], [`membership`], [`minority`], [`snapshots`], [`zones`],
//!   [`console`] (in headless Chromium through [`webdriver`]; screenshots under `target/browser/`).
//!
//! # Running
//! `cargo test --test cluster -- --nocapture` prints the measured figures (failover times, -500 latency on
//! a minority, eviction time of a stale instance). At most two clusters run at once (a semaphore in the
//! harness). Set `CLUSTER_TEST_LOG` (e.g. `warn,discovery=info`) for more node logs; a failing test prints
//! the tail of every node's log, and keeps the cluster's temp dir when `CLUSTER_TEST_KEEP` is set.

mod api;
mod harness;
mod process;
mod renewers;
mod webdriver;
mod workload;

mod console;
mod failover;
mod leases;
mod liveness;
mod membership;
mod minority;
mod reads;
mod snapshots;
mod zones;
