//! `join`: add a running `--join` node to a cluster with the operator's command (`discovery cluster add`)
//! and time it until the command returns, then until every node shows the same `/admin/digest`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::client::{self};
use crate::stats::{self, parse_duration};
use crate::BoxError;

/// `discovery-bench join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The `discovery` binary (its `cluster add` command is what is timed).
    #[arg(long)]
    pub discovery: PathBuf,
    /// A member of the cluster (HOST:PORT).
    #[arg(long)]
    pub server: String,
    /// The node to add (HOST:PORT), already running with `--join`.
    #[arg(long)]
    pub node: String,
    /// Every node after the join, the new one included (HOST:PORT; repeat or comma-separate).
    #[arg(long = "nodes", required = true)]
    pub nodes: Vec<String>,
    /// Give up after this long.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Instances in the registry (copied into the output).
    #[arg(long, default_value_t = 0)]
    pub instances: u64,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct JoinReport {
    kind: String,
    instances: u64,
    add_ms: f64,
    converged_ms: f64,
    digest: String,
}

/// `discovery-bench join`.
pub async fn run(args: JoinArgs) -> Result<(), BoxError> {
    let nodes = stats::split_list(&args.nodes);
    answering(&args.node, args.timeout).await?;
    let started = Instant::now();
    let add = tokio::process::Command::new(&args.discovery)
        .args(["cluster", "add", "--node", &args.node, "--server", &args.server])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(args.timeout, add).await.map_err(|_| "cluster add did not return in time")??;
    let add_ms = started.elapsed().as_secs_f64() * 1000.0;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(format!("cluster add failed after {add_ms:.0} ms: {why}").into());
    }
    let deadline = started + args.timeout;
    let digest = loop {
        match digests(&nodes).await {
            Ok(seen) if seen.iter().all(|d| *d == seen[0]) => break seen[0].clone(),
            _ if Instant::now() >= deadline => return Err("digests never became equal".into()),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let report = JoinReport {
        kind: "join".into(),
        instances: args.instances,
        add_ms: stats::round3(add_ms),
        converged_ms: stats::round3(started.elapsed().as_secs_f64() * 1000.0),
        digest,
    };
    eprintln!(
        "join with {} instances: cluster add returned after {:.0} ms, equal digests after {:.0} ms",
        args.instances, report.add_ms, report.converged_ms
    );
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    Ok(())
}

/// Wait until `node`, just started, answers `/admin/status`: the timed `cluster add` starts from a node that
/// is listening, not from one still opening its data dir.
async fn answering(node: &str, timeout: Duration) -> Result<(), BoxError> {
    let deadline = Instant::now() + timeout;
    let client = client::discovery_client(node, Duration::from_secs(5))?;
    loop {
        match client.status_of(node).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(format!("{node} never answered: {e}").into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// `digest@last_applied` of every node, in order.
async fn digests(nodes: &[String]) -> Result<Vec<String>, BoxError> {
    let mut out = Vec::new();
    for node in nodes {
        let digest = client::discovery_client(node, Duration::from_secs(5))?.digest_of(node).await?;
        out.push(format!("{}@{}", digest.digest, digest.last_applied.unwrap_or_default()));
    }
    Ok(out)
}
