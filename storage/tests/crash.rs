//! Acknowledged appends survive SIGKILL at random points.
//!
//! The test re-executes its own binary in "child mode" (`crash_child`, selected by an env var): the
//! child appends entries to one data dir for ever, printing `ack <index>` only after the append's
//! `LogFlushed` callback fired, and now and then purges the log (`purged <index>` after it returns).
//! The parent kills it with SIGKILL after a random delay, reads every line the child managed to print,
//! reopens the dir and checks that every acknowledged entry is there, the log has no hole, and no
//! acknowledged purge was undone. The same dir is reused for every round, so recovery is also tested
//! on top of earlier recoveries.

#![allow(clippy::unwrap_used)]

mod common;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{log_id, normal, open};
use discovery_storage::{open_storage, OpenError};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::RaftLogReader;

const CHILD_DIR_ENV: &str = "DISCOVERY_STORAGE_CRASH_CHILD_DIR";
const ROUNDS: usize = 24;
const INIT_ROUNDS: usize = 8;
const MAX_KILL_DELAY_US: u64 = 150_000;
/// The child purges everything but the last this-many entries, every `PURGE_EVERY` entries.
const KEEP_AFTER_PURGE: u64 = 20;
const PURGE_EVERY: u64 = 50;

#[test]
#[ignore = "child process of crash_never_loses_an_acknowledged_append, which runs it"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(append_until_killed(PathBuf::from(dir)));
}

async fn append_until_killed(dir: PathBuf) {
    let (mut log, _sm, _app) = open(&dir);
    let mut next = log.get_log_state().await.unwrap().last_log_id.map_or(1, |id| id.index + 1);
    let mut out = std::io::stdout();
    // Own line: libtest has already printed "test crash_child ... " without a newline.
    writeln!(out, "\nready {next}").unwrap();
    out.flush().unwrap();
    let mut rng = StdRng::seed_from_u64(next);
    loop {
        let batch = 1 + rng.random_range(0..4);
        let entries = (next..next + batch).map(|i| normal(1, i, &format!("k{i}"), &format!("v{i}")));
        log.blocking_append(entries).await.unwrap();
        next += batch;
        writeln!(out, "ack {}", next - 1).unwrap();
        out.flush().unwrap();
        if (next - 1) / PURGE_EVERY != (next - 1 - batch) / PURGE_EVERY {
            let upto = next - 1 - KEEP_AFTER_PURGE;
            log.purge(log_id(1, upto)).await.unwrap();
            writeln!(out, "purged {upto}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn crash_never_loses_an_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let (mut acked, mut purged, mut rounds_with_acks) = (0u64, 0u64, 0);

    for round in 0..ROUNDS {
        let mut child = spawn_child(&exe, dir.path());
        let lines = read_lines(child.stdout.take().unwrap());
        // Some rounds kill the child while it opens the dir (sled recovery, leftover cleanup).
        let during_open = round > 0 && rng.random_range(0..6) == 0;
        if during_open {
            eprintln!("round {round}: killing the child while it opens the dir");
        } else {
            let ready = lines.wait_for("ready ", Duration::from_secs(20));
            eprintln!("round {round}: child {ready}");
        }
        if round == 0 {
            // A second process on the same dir is refused while the child holds it.
            let err = open_storage::<common::TestConfig, common::KvApp>(dir.path(), 1, Default::default()).err();
            assert!(matches!(err, Some(OpenError::InUse { .. })), "{err:?}");
        }
        // Mostly anywhere in the first 150 ms, sometimes right at the start (open, first append).
        let delay = if during_open || rng.random_range(0..4) == 0 {
            rng.random_range(0..20_000)
        } else {
            rng.random_range(0..MAX_KILL_DELAY_US)
        };
        std::thread::sleep(Duration::from_micros(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let before = acked;
        for line in lines.rest() {
            if let Some(index) = line.strip_prefix("ack ") {
                acked = acked.max(index.parse().unwrap());
            } else if let Some(index) = line.strip_prefix("purged ") {
                purged = purged.max(index.parse().unwrap());
            }
        }
        rounds_with_acks += usize::from(acked > before);
        let last = verify(dir.path(), acked, purged);
        eprintln!("round {round}: killed after {delay} us; acked {acked}, purged {purged}, log ends at {last}");
    }
    assert!(rounds_with_acks >= ROUNDS / 2, "only {rounds_with_acks} rounds acknowledged anything");
    eprintln!("crash test: {ROUNDS} rounds in {:?}", started.elapsed());
}

/// A crash while a brand-new dir is being initialized must leave a dir that opens (as fresh or not),
/// never one refused as corrupt.
#[test]
fn crash_during_initialization_leaves_an_openable_dir() {
    let exe = std::env::current_exe().unwrap();
    let mut rng = StdRng::from_os_rng();
    for round in 0..INIT_ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut child = spawn_child(&exe, &data_dir);
        // A fresh dir takes the child roughly 50-120 ms to create and initialize (debug build).
        let delay = rng.random_range(0..120_000);
        std::thread::sleep(Duration::from_micros(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let phase = match (data_dir.join("db").exists(), data_dir.join("DISCOVERY_STORAGE").exists()) {
            (false, _) => "before sled created its files",
            (true, false) => "while initializing",
            (true, true) => "after initialization",
        };
        let acked = read_lines(child.stdout.take().unwrap())
            .rest()
            .filter_map(|line| line.strip_prefix("ack ").map(|i| i.parse::<u64>().unwrap()))
            .max()
            .unwrap_or(0);
        let last = verify(&data_dir, acked, 0);
        eprintln!("init round {round}: killed after {delay} us, {phase}; acked {acked}, log ends at {last}");
    }
}

fn spawn_child(exe: &Path, dir: &Path) -> std::process::Child {
    Command::new(exe)
        .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reopen the dir and check the log against what the child acknowledged. Returns the last index.
fn verify(dir: &Path, acked: u64, purged: u64) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (mut log, _sm, _app) = open(dir);
        let state = log.get_log_state().await.unwrap();
        let last = state.last_log_id.map_or(0, |id| id.index);
        let last_purged = state.last_purged_log_id.map_or(0, |id| id.index);
        assert!(last >= acked, "entry {acked} was acknowledged but the log ends at {last}");
        assert!(last_purged >= purged, "purge up to {purged} was acknowledged but last_purged is {last_purged}");
        let entries = log.try_get_log_entries(last_purged + 1..=last).await.unwrap();
        assert_eq!(entries.len() as u64, last - last_purged, "the log has a hole in {}..={last}", last_purged + 1);
        for (index, entry) in (last_purged + 1..).zip(entries) {
            assert_eq!(entry, normal(1, index, &format!("k{index}"), &format!("v{index}")));
        }
        last
    })
}

/// The child's stdout, line by line, read on a thread so waits can be bounded.
fn read_lines(stdout: std::process::ChildStdout) -> Lines {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Lines { rx }
}

struct Lines {
    rx: mpsc::Receiver<String>,
}

impl Lines {
    /// Skip lines until one starts with `prefix` and return it; panics (fails the test) if none comes
    /// within `limit`, so a broken child cannot hang the test.
    fn wait_for(&self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("child printed no line starting with {prefix:?}: {e}"),
            }
        }
    }

    /// The remaining lines, until the child's end of the pipe closes.
    fn rest(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::from_fn(move || self.rx.recv_timeout(Duration::from_secs(20)).ok())
    }
}
