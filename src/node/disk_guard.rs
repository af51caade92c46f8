//! The free-space guard in front of the write path.
//!
//! A full disk is fatal for storage (sled and openraft cannot continue after a failed append), so the node
//! stops taking writes *before* the disk is full: below `--min-free-space` on the data dir's file system,
//! register, cancel and set answer -500 with a message naming the disk and the figures, while renews
//! (never logged), reads and long polls go on, and replication from the leader keeps the headroom.
//!
//! Invariants:
//! - The guard only ever refuses new client writes; it never touches what Raft replicates or applies.
//! - It lifts itself: [`run`] re-reads the free space every [`CHECK_EVERY`], so once space is back writes
//!   resume within about a second, with no operator action.
//! - A free-space reading that fails never blocks writes (the guard is a precaution, not a new way to be
//!   unavailable); the failure is logged once per streak.
//! - `--min-free-space 0` turns the guard off.
//! - Where free space is read from is a [`FreeSpace`] source, so tests can fake a filling disk.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the free space is read.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where the free space of a directory's file system comes from.
pub trait FreeSpace: Send + Sync + 'static {
    /// Bytes available to this process on the file system holding `dir`.
    fn available(&self, dir: &Path) -> io::Result<u64>;
}

/// The real source: `statvfs(2)` (available blocks × fragment size, i.e. what an unprivileged writer gets).
#[derive(Debug, Default, Clone, Copy)]
pub struct Statvfs;

impl FreeSpace for Statvfs {
    fn available(&self, dir: &Path) -> io::Result<u64> {
        fs2::available_space(dir)
    }
}

/// What the guard last read, for health checks, status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskStatus {
    /// Bytes available on the data dir's file system (`None` until read, or when it cannot be read).
    pub free_bytes: Option<u64>,
    /// The configured minimum (`--min-free-space`; 0 = guard off).
    pub min_free_bytes: u64,
    /// True while writes are refused for lack of space.
    pub low: bool,
}

/// The guard of one node's data dir.
pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
    source: Arc<dyn FreeSpace>,
    state: Mutex<GuardState>,
}

#[derive(Debug, Default)]
struct GuardState {
    free: Option<u64>,
    low: bool,
    read_failing: bool,
}

impl std::fmt::Debug for DiskGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskGuard").field("dir", &self.dir).field("min_free", &self.min_free).finish()
    }
}

impl DiskGuard {
    /// A guard for `dir` refusing writes below `min_free` bytes, reading free space from `source`.
    pub fn new(dir: &Path, min_free: u64, source: Arc<dyn FreeSpace>) -> Self {
        Self { dir: dir.to_path_buf(), min_free, source, state: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read the free space now and update the verdict; logs when writes stop or resume.
    pub fn refresh(&self) {
        if self.min_free == 0 {
            return;
        }
        let reading = self.source.available(&self.dir);
        let mut state = self.lock();
        match reading {
            Ok(free) => {
                state.read_failing = false;
                state.free = Some(free);
                let low = free < self.min_free;
                if low != state.low {
                    state.low = low;
                    if low {
                        tracing::error!(
                            dir = %self.dir.display(), free_bytes = free, min_free_bytes = self.min_free,
                            "disk space low: refusing writes until space is freed (renews and reads go on)"
                        );
                    } else {
                        tracing::info!(
                            dir = %self.dir.display(), free_bytes = free, min_free_bytes = self.min_free,
                            "disk space back above the minimum: writes resume"
                        );
                    }
                }
            }
            Err(err) => {
                if !state.read_failing {
                    tracing::warn!(dir = %self.dir.display(), error = %err, "cannot read free disk space; not guarding writes");
                }
                state.read_failing = true;
                state.free = None;
                state.low = false;
            }
        }
    }

    /// `Err` with the reason while writes must be refused.
    pub fn check_write(&self) -> Result<(), String> {
        let state = self.lock();
        match state.free {
            Some(free) if state.low => Err(format!(
                "writes are refused: the disk holding the data dir {} has {} free, below --min-free-space {}; \
                 free some space and writes resume by themselves",
                self.dir.display(),
                human(free),
                human(self.min_free)
            )),
            _ => Ok(()),
        }
    }

    /// What the guard last read.
    pub fn status(&self) -> DiskStatus {
        let state = self.lock();
        DiskStatus { free_bytes: state.free, min_free_bytes: self.min_free, low: state.low }
    }
}

/// Re-read the free space every [`CHECK_EVERY`] until `shutdown` (on the blocking pool: a statvfs on a
/// hung network file system must not stall the node).
pub async fn run(guard: Arc<DiskGuard>, shutdown: CancellationToken) {
    if guard.min_free == 0 {
        return;
    }
    let mut ticker = tokio::time::interval(CHECK_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let guard = Arc::clone(&guard);
        let _ = tokio::task::spawn_blocking(move || guard.refresh()).await;
    }
}

/// `bytes` for people: `12.3 MiB`.
pub fn human(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    struct Fake(AtomicU64);

    impl FreeSpace for Fake {
        fn available(&self, _dir: &Path) -> io::Result<u64> {
            match self.0.load(Ordering::SeqCst) {
                u64::MAX => Err(io::Error::other("statvfs failed")),
                free => Ok(free),
            }
        }
    }

    fn guard(min_free: u64) -> (DiskGuard, Arc<Fake>) {
        let fake = Arc::new(Fake(AtomicU64::new(1 << 30)));
        (DiskGuard::new(Path::new("/data/d1"), min_free, fake.clone()), fake)
    }

    #[test]
    fn writes_stop_below_the_minimum_and_resume_above_it() {
        let (guard, fake) = guard(256 << 20);
        guard.refresh();
        assert_eq!(guard.check_write(), Ok(()));
        fake.0.store(10 << 20, Ordering::SeqCst);
        guard.refresh();
        let refused = guard.check_write().expect_err("below the minimum");
        assert!(
            refused.contains("/data/d1") && refused.contains("10.0 MiB") && refused.contains("256.0 MiB"),
            "{refused}"
        );
        assert_eq!(guard.status(), DiskStatus { free_bytes: Some(10 << 20), min_free_bytes: 256 << 20, low: true });
        fake.0.store(300 << 20, Ordering::SeqCst);
        guard.refresh();
        assert_eq!(guard.check_write(), Ok(()));
        assert!(!guard.status().low);
    }

    #[test]
    fn an_unreadable_free_space_never_blocks_writes() {
        let (guard, fake) = guard(256 << 20);
        fake.0.store(1, Ordering::SeqCst);
        guard.refresh();
        assert!(guard.check_write().is_err());
        fake.0.store(u64::MAX, Ordering::SeqCst);
        guard.refresh();
        assert_eq!(guard.check_write(), Ok(()));
        assert_eq!(guard.status().free_bytes, None);
    }

    #[test]
    fn zero_turns_the_guard_off() {
        let (guard, fake) = guard(0);
        fake.0.store(0, Ordering::SeqCst);
        guard.refresh();
        assert_eq!(guard.check_write(), Ok(()));
    }

    #[test]
    fn the_real_source_reads_a_temp_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(Statvfs.available(tmp.path()).expect("statvfs") > 0);
    }
}
