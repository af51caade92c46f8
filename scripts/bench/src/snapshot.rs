//! `snapshot`: ask a node to build a snapshot now (`POST /admin/snapshot`) and time it until its
//! `/admin/status` shows a newer snapshot index; the size of its snapshot files on disk after that.
//!
//! Run next to an `http` write load, it measures what a snapshot of the whole registry costs the writes
//! (the load's own report has the worst latency and the errors of that window).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::client::{self};
use crate::stats::{self, parse_duration};
use crate::BoxError;

/// `discovery-bench snapshot`.
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// The node (HOST:PORT).
    #[arg(long)]
    pub node: String,
    /// Wait this long before asking (so that a load started alongside is running).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub after: Duration,
    /// Give up after this long.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The node's data dir: the size of its snapshot data is reported (files whose name has `snap`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Instances in the registry (copied into the output).
    #[arg(long, default_value_t = 0)]
    pub instances: u64,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct SnapshotReport {
    kind: String,
    instances: u64,
    build_ms: f64,
    index_before: Option<u64>,
    index_after: u64,
    snapshot_bytes: Option<u64>,
}

/// The snapshot index in `/admin/status`.
async fn snapshot_index(node: &str) -> Result<Option<u64>, BoxError> {
    let status = client::discovery_client(node, Duration::from_secs(5))?.status_of(node).await?;
    Ok(status.other.get("snapshot_index").and_then(serde_json::Value::as_u64))
}

/// `discovery-bench snapshot`.
pub async fn run(args: SnapshotArgs) -> Result<(), BoxError> {
    tokio::time::sleep(args.after).await;
    let before = snapshot_index(&args.node).await?;
    let api = client::discovery_client(&args.node, Duration::from_secs(10))?;
    let started = Instant::now();
    api.request_snapshot(&args.node).await?;
    let deadline = started + args.timeout;
    let after = loop {
        if let Ok(Some(now)) = snapshot_index(&args.node).await {
            if before.is_none_or(|b| now > b) {
                break now;
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("{}: no new snapshot after {:?}", args.node, args.timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let build_ms = started.elapsed().as_secs_f64() * 1000.0;
    let snapshot_bytes = args.data_dir.as_deref().map(snapshot_files_size);
    let report = SnapshotReport {
        kind: "snapshot".into(),
        instances: args.instances,
        build_ms: stats::round3(build_ms),
        index_before: before,
        index_after: after,
        snapshot_bytes,
    };
    eprintln!(
        "snapshot of {} instances built in {:.0} ms (index {before:?} -> {after}), {} bytes on disk",
        args.instances,
        report.build_ms,
        snapshot_bytes.map_or("?".into(), |b| b.to_string())
    );
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    Ok(())
}

/// Bytes in the files under `dir` whose path names a snapshot (`snapshot` / `snap` in a file or dir name),
/// sled's own `snap.*` files excluded.
fn snapshot_files_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![(dir.to_path_buf(), false)];
    while let Some((next, inside)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let named = inside || (name.contains("snapshot") && !name.starts_with("snap."));
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push((entry.path(), named)),
                Ok(meta) if named => total += meta.len(),
                _ => {}
            }
        }
    }
    total
}
