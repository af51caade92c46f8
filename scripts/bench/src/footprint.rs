//! `footprint`: resident memory of processes (/proc/PID/status) and the size of their data directories.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::stats;
use crate::BoxError;

/// `discovery-bench footprint`.
#[derive(Debug, clap::Args)]
pub struct FootprintArgs {
    /// NAME=PID=DATA_DIR of each node (repeatable).
    #[arg(long = "node", required = true)]
    pub nodes: Vec<String>,
    /// Instances stored (copied into the output).
    #[arg(long)]
    pub instances: u64,
    /// Name of the measurement.
    #[arg(long, default_value = "footprint")]
    pub name: String,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct NodeFootprint {
    node: String,
    pid: u32,
    rss_mb: f64,
    peak_rss_mb: f64,
    data_dir_mb: f64,
    data_dir_allocated_mb: f64,
}

#[derive(Debug, Serialize)]
struct FootprintReport {
    kind: String,
    name: String,
    instances: u64,
    nodes: Vec<NodeFootprint>,
}

/// `discovery-bench footprint`.
pub async fn run(args: FootprintArgs) -> Result<(), BoxError> {
    let mut nodes = Vec::new();
    for spec in &args.nodes {
        let mut parts = spec.splitn(3, '=');
        let (Some(node), Some(pid), Some(dir)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("--node {spec:?}: expected NAME=PID=DATA_DIR").into());
        };
        let pid: u32 = pid.parse().map_err(|e| format!("--node {spec:?}: pid: {e}"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("pid {pid}: {e}"))?;
        let (bytes, allocated) = dir_size(Path::new(dir))?;
        let mb = |x: u64| stats::round3(x as f64 / 1_048_576.0);
        nodes.push(NodeFootprint {
            node: node.to_string(),
            pid,
            rss_mb: mb(status_kb(&status, "VmRSS:") * 1024),
            peak_rss_mb: mb(status_kb(&status, "VmHWM:") * 1024),
            data_dir_mb: mb(bytes),
            data_dir_allocated_mb: mb(allocated),
        });
    }
    for n in &nodes {
        println!(
            "{} with {} instances: {} RSS {:.1} MB (peak {:.1}), data dir {:.1} MB ({:.1} MB allocated)",
            args.name, args.instances, n.node, n.rss_mb, n.peak_rss_mb, n.data_dir_mb, n.data_dir_allocated_mb
        );
    }
    let report = FootprintReport { kind: "footprint".into(), name: args.name, instances: args.instances, nodes };
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    Ok(())
}

fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Apparent and allocated bytes of the files under `dir`.
fn dir_size(dir: &Path) -> Result<(u64, u64), BoxError> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![dir.to_path_buf()];
    let (mut bytes, mut allocated) = (0, 0);
    // Bounded: data directories hold a handful of files.
    let mut visited = 0;
    while let Some(path) = stack.pop() {
        visited += 1;
        if visited > 100_000 {
            return Err(format!("{}: too many files", dir.display()).into());
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        } else {
            bytes += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((bytes, allocated))
}
