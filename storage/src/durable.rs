//! Making sled's writes durable: flush, then `fdatasync`.
//!
//! Why not just `Db::flush`: on Linux sled 0.34 ends a flush with `sync_file_range(WAIT_BEFORE | WRITE |
//! WAIT_AFTER)`. That pushes the dirty pages to the device but neither flushes the device's write cache
//! nor writes the file metadata needed to read them back (the file size when the log grows), so a power
//! loss can still lose data sled reported as flushed. An acknowledged Raft append or vote that is lost
//! breaks Raft's safety (a node could vote twice in a term, or a "replicated" entry could vanish from a
//! majority), so every durable write here is `Db::flush` followed by `File::sync_data` (`fdatasync`)
//! on sled's data file `<dir>/db`. We keep our own read-only handle to that file for this: fsync applies
//! to the file, whichever descriptor is used, and sled's exclusive lock is a `flock` on its own open file
//! description, which our handle neither takes nor releases.
//!
//! Values too large for a log segment (about 128 KiB with the default 512 KiB segments; a leaf node
//! holds up to 16 entries) go to separate files under `<dir>/blobs/`, which sled writes without any
//! sync at all. So a durable sync also `fsync`s each blob file it has not synced before, and the
//! `blobs` directory when it gained files. The listing is one `readdir` of a usually empty directory.
//!
//! Invariant: every flush covers every sled write made before it began, whichever tree it went to, so
//! one `sync` makes durable all earlier writes of both the log store and the snapshot store.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Told the duration of every durable sync (for metrics); implemented by the application.
pub trait SyncObserver: Send + Sync + 'static {
    /// One sync: sled's flush, then the `fdatasync` of the data file (blob fsyncs included).
    fn observe(&self, flush: Duration, fdatasync: Duration);
}

/// Durable-sync handle for one open data dir; shared by the log store and the snapshot store.
#[derive(Debug)]
pub(crate) struct Durable {
    db: sled::Db,
    /// Read-only handle to `<dir>/db`, only ever used for `sync_data`.
    data_file: File,
    dir: PathBuf,
    /// Names of the blob files already fsynced (pruned to what still exists on each sync).
    synced_blobs: Mutex<HashSet<OsString>>,
    /// Where sync durations go, once the application has set it.
    observer: OnceLock<Arc<dyn SyncObserver>>,
}

impl std::fmt::Debug for dyn SyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncObserver")
    }
}

impl Durable {
    /// Wrap an open `db` whose files live in `dir`.
    pub(crate) fn new(db: sled::Db, dir: &Path) -> io::Result<Self> {
        let data_file = File::open(dir.join("db"))?;
        Ok(Self {
            db,
            data_file,
            dir: dir.to_path_buf(),
            synced_blobs: Mutex::new(HashSet::new()),
            observer: OnceLock::new(),
        })
    }

    /// Report every later sync's durations to `observer` (only the first call takes effect).
    pub(crate) fn set_observer(&self, observer: Arc<dyn SyncObserver>) {
        let _ = self.observer.set(observer);
    }

    /// Make every write made so far durable. Blocking: takes one flush and at least one `fdatasync`,
    /// typically milliseconds. Call from a blocking context (tokio's blocking pool).
    pub(crate) fn sync(&self) -> io::Result<()> {
        let started = Instant::now();
        self.db.flush().map_err(io::Error::from)?;
        let flushed = Instant::now();
        self.data_file.sync_data()?;
        self.sync_new_blobs()?;
        if let Some(observer) = self.observer.get() {
            observer.observe(flushed - started, flushed.elapsed());
        }
        Ok(())
    }

    /// Make the data dir's own directory entries durable (sled creates `db`, `conf` and `blobs/`
    /// without syncing the directory, and writes `conf` without an fsync). Called once, when a data
    /// dir is initialized.
    pub(crate) fn sync_dir_entries(&self) -> io::Result<()> {
        File::open(self.dir.join("conf"))?.sync_all()?;
        File::open(self.dir.join("blobs"))?.sync_all()?;
        File::open(&self.dir)?.sync_all()?;
        // The dir itself may just have been created: make its entry in the parent durable too.
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    }

    fn sync_new_blobs(&self) -> io::Result<()> {
        let blobs_dir = self.dir.join("blobs");
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut present = HashSet::new();
        let mut gained = false;
        for entry in std::fs::read_dir(&blobs_dir)? {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(blobs_dir.join(&name)) {
                    Ok(file) => file.sync_all()?,
                    // sled garbage-collected it meanwhile: nothing to make durable.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                gained = true;
            }
            present.insert(name);
        }
        if gained {
            File::open(&blobs_dir)?.sync_all()?;
        }
        *synced = present;
        Ok(())
    }
}
