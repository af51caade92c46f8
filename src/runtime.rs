//! The process's tokio runtime: on how many threads a node's async work (HTTP, Raft, apply) runs.
//!
//! Why this is a setting: on a small machine, waking a worker thread on the other core costs far more
//! than the work it is woken for. Measured on a 2-vCPU VM (BENCHMARKS.md): one thread per node answered
//! 10-25 % more fetches than tokio's default of one worker per core (74,000 vs 81,000-92,000/s), and a
//! 3-node cluster sharing the two cores took 25-40 % more writes (9,000 vs 11,500-12,600/s), because a
//! multi-threaded runtime hands almost every task to the other worker and wakes it. Blocking work (fsync, snapshots, storage open) runs on tokio's blocking pool
//! either way, so one thread never waits on the disk.
//!
//! `--worker-threads 0` (the default) picks for the machine: a single thread on machines with at most
//! [`SINGLE_THREAD_MAX_CPUS`] CPUs, one worker per CPU above that. Any other value is taken as given;
//! 1 means tokio's current-thread scheduler (no hand-offs between workers at all).

use std::io;
use std::num::NonZeroUsize;

/// Up to this many CPUs, the automatic choice is a single-threaded runtime.
pub const SINGLE_THREAD_MAX_CPUS: usize = 2;

/// Most worker threads accepted by `--worker-threads`.
pub const MAX_WORKER_THREADS: usize = 1024;

/// The number of worker threads for `requested` (0 = automatic) on a machine with `cpus` CPUs.
pub fn worker_threads(requested: usize, cpus: usize) -> usize {
    match requested {
        0 if cpus <= SINGLE_THREAD_MAX_CPUS => 1,
        0 => cpus,
        n => n,
    }
}

/// The CPUs this process may run on (1 if that cannot be told).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// A runtime with `threads` workers: the current-thread scheduler for 1, the multi-threaded one above.
pub fn build(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_choice_is_one_thread_on_small_machines_and_one_per_cpu_above() {
        assert_eq!(worker_threads(0, 1), 1);
        assert_eq!(worker_threads(0, 2), 1);
        assert_eq!(worker_threads(0, 3), 3);
        assert_eq!(worker_threads(0, 16), 16);
    }

    #[test]
    fn an_explicit_count_is_taken_as_given() {
        assert_eq!(worker_threads(1, 16), 1);
        assert_eq!(worker_threads(4, 2), 4);
    }

    #[test]
    fn one_thread_is_the_current_thread_scheduler() {
        use tokio::runtime::RuntimeFlavor;
        let one = build(1).expect("runtime");
        assert_eq!(one.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        let two = build(2).expect("runtime");
        assert_eq!(two.handle().runtime_flavor(), RuntimeFlavor::MultiThread);
        assert_eq!(two.metrics().num_workers(), 2);
        // Blocking work still gets its own threads next to the single worker.
        assert_eq!(one.block_on(async { tokio::task::spawn_blocking(|| 7).await.expect("join") }), 7);
    }
}
