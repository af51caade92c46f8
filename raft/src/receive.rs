//! The receiving side of a chunked snapshot (`POST /raft/snapshot_chunk`, see [`crate::wire::SnapshotChunk`]):
//! chunks are appended to one file as they arrive; the last one installs the snapshot.
//!
//! Invariants:
//! - At most one transfer is received at a time; chunks are taken only in order. A chunk at offset 0 starts a
//!   transfer over (whatever was received before is dropped); any other chunk that is not the next one of the
//!   transfer under way is refused with 409, and the sender starts over from offset 0. So an interrupted
//!   transfer (sender restarted, receiver restarted, a chunk lost) never mixes two snapshots' bytes.
//! - Memory: one chunk at a time while receiving (written to the file at once); at install the bytes are read
//!   back from the file, a bounded piece at a time, into the state machine's `SnapshotData`: one copy in memory,
//!   never two. Without a directory ([`SnapshotReceiver::in_memory`], for tests and embedders) the chunks are
//!   kept in memory instead, still one copy.
//! - The partial file is `<dir>/snapshot.receiving`; one left by a crash is removed when the receiver is made.
//! - [`ReceiveProgress`] says how far a transfer is (bytes received of total) for status pages and metrics.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::error::RaftError;
use openraft::{Raft, RaftTypeConfig, Snapshot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::node::ClusterNode;
use crate::wire::{ChunkResult, SnapshotChunk};

/// Name of the partial file in the receiver's directory.
pub const PARTIAL_FILE: &str = "snapshot.receiving";
/// Size of the pieces read back from the file into the state machine at install.
const READ_BACK: usize = 1 << 20;

/// How far the snapshot transfer under way is (both zero when none is).
#[derive(Debug, Default)]
pub struct ReceiveProgress {
    received: AtomicU64,
    total: AtomicU64,
}

impl ReceiveProgress {
    /// `(bytes received, total bytes)` of the transfer under way, or `None` when none is.
    pub fn get(&self) -> Option<(u64, u64)> {
        let total = self.total.load(Ordering::Relaxed);
        (total > 0).then(|| (self.received.load(Ordering::Relaxed), total))
    }

    fn set(&self, received: u64, total: u64) {
        self.received.store(received, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }
}

/// Why a chunk was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ChunkRefused {
    /// Not the next chunk of the transfer under way: the sender must start over from offset 0.
    #[error("out of order: expected offset {expected:?} of snapshot {current:?}, got offset {offset} of {id}")]
    OutOfOrder {
        /// The transfer under way, if any.
        current: Option<String>,
        /// The offset it expects next.
        expected: Option<u64>,
        /// The chunk's snapshot id.
        id: String,
        /// The chunk's offset.
        offset: u64,
    },
    /// The chunk does not fit the announced total, or the last chunk does not end at it.
    #[error("bad chunk: {0}")]
    Bad(String),
    /// The partial file could not be written or read.
    #[error("cannot store the snapshot: {0}")]
    Io(#[from] std::io::Error),
}

enum Sink {
    Memory(Vec<u8>),
    File(tokio::fs::File),
}

struct Transfer {
    id: String,
    next: u64,
    total: u64,
    sink: Sink,
}

/// The receiver of one node (shared by the route handlers).
pub struct SnapshotReceiver {
    dir: Option<PathBuf>,
    transfer: tokio::sync::Mutex<Option<Transfer>>,
    progress: Arc<ReceiveProgress>,
}

impl SnapshotReceiver {
    /// A receiver writing to `<dir>/snapshot.receiving`; a partial file left by a crash is removed.
    pub fn in_dir(dir: PathBuf) -> std::io::Result<Self> {
        match std::fs::remove_file(dir.join(PARTIAL_FILE)) {
            Ok(()) => tracing::info!(dir = %dir.display(), "removed a partly received snapshot left by a crash"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self { dir: Some(dir), transfer: tokio::sync::Mutex::default(), progress: Arc::default() })
    }

    /// A receiver keeping the chunks in memory.
    pub fn in_memory() -> Self {
        Self { dir: None, transfer: tokio::sync::Mutex::default(), progress: Arc::default() }
    }

    /// The progress of the transfer under way.
    pub fn progress(&self) -> Arc<ReceiveProgress> {
        Arc::clone(&self.progress)
    }

    /// Take one chunk; the last one installs the snapshot into `raft` and returns its answer.
    pub async fn receive<C: RaftTypeConfig<Node = ClusterNode>>(
        &self,
        raft: &Raft<C>,
        chunk: SnapshotChunk<C::NodeId, ClusterNode>,
    ) -> Result<ChunkResult<C::NodeId>, ChunkRefused> {
        let id = chunk.meta.snapshot_id.clone();
        let mut transfer = self.transfer.lock().await;
        if chunk.offset == 0 {
            if let Some(old) = transfer.take() {
                tracing::info!(old = %old.id, new = %id, "a snapshot transfer starts over");
            }
            tracing::info!(snapshot = %id, total_bytes = chunk.total, "receiving a snapshot");
            *transfer = Some(Transfer { id: id.clone(), next: 0, total: chunk.total, sink: self.new_sink().await? });
        }
        let current = match transfer.as_mut() {
            Some(t) if t.id == id && t.next == chunk.offset && t.total == chunk.total => t,
            other => {
                let (current, expected) = other.as_ref().map_or((None, None), |t| (Some(t.id.clone()), Some(t.next)));
                return Err(ChunkRefused::OutOfOrder { current, expected, id, offset: chunk.offset });
            }
        };
        let end = current.next + chunk.data.len() as u64;
        if end > current.total || (chunk.done && end != current.total) {
            let message = format!("chunk ends at {end} of a {}-byte snapshot (done: {})", current.total, chunk.done);
            *transfer = None;
            self.progress.set(0, 0);
            return Err(ChunkRefused::Bad(message));
        }
        match &mut current.sink {
            Sink::Memory(bytes) => bytes.extend_from_slice(&chunk.data),
            Sink::File(file) => file.write_all(&chunk.data).await?,
        }
        current.next = end;
        self.progress.set(end, current.total);
        if !chunk.done {
            return Ok(Ok(None));
        }
        let finished = transfer.take();
        drop(transfer);
        self.progress.set(0, 0);
        let Some(finished) = finished else { return Err(ChunkRefused::Bad("no transfer".into())) };
        tracing::info!(snapshot = %id, bytes = finished.total, "snapshot received; installing it");
        let answer = self.install(raft, chunk.vote, chunk.meta, finished.sink).await?;
        Ok(answer.map(Some))
    }

    async fn new_sink(&self) -> std::io::Result<Sink> {
        match &self.dir {
            None => Ok(Sink::Memory(Vec::new())),
            Some(dir) => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(dir.join(PARTIAL_FILE))
                    .await?;
                Ok(Sink::File(file))
            }
        }
    }

    /// Moves the received bytes into a fresh `SnapshotData` of the state machine and installs it (openraft
    /// checks the vote: a stale leader's snapshot is not installed and the answer carries the newer vote).
    async fn install<C: RaftTypeConfig<Node = ClusterNode>>(
        &self,
        raft: &Raft<C>,
        vote: openraft::Vote<C::NodeId>,
        meta: openraft::SnapshotMeta<C::NodeId, ClusterNode>,
        sink: Sink,
    ) -> Result<crate::wire::SnapshotResult<C::NodeId>, ChunkRefused> {
        let mut data = match raft.begin_receiving_snapshot().await {
            Ok(data) => data,
            Err(RaftError::Fatal(fatal)) => return Ok(Err(fatal)),
            Err(RaftError::APIError(never)) => match never {},
        };
        match sink {
            Sink::Memory(bytes) => data.write_all(&bytes).await?,
            Sink::File(mut file) => {
                use tokio::io::AsyncSeekExt;
                file.seek(std::io::SeekFrom::Start(0)).await?;
                let mut piece = vec![0u8; READ_BACK];
                loop {
                    let n = file.read(&mut piece).await?;
                    if n == 0 {
                        break;
                    }
                    data.write_all(&piece[..n]).await?;
                }
                drop(file);
                if let Some(dir) = &self.dir {
                    tokio::fs::remove_file(dir.join(PARTIAL_FILE)).await?;
                }
            }
        }
        data.shutdown().await?;
        Ok(raft.install_full_snapshot(vote, Snapshot { meta, snapshot: data }).await)
    }
}
