//! `failover`: kill -9 the leader, then time the first successful write through the survivors.
//!
//! The clock starts just before the kill. A new write (a distinct register) is started every `--interval`,
//! round-robin over the surviving nodes, each on its own connection and bounded by `--attempt-timeout`,
//! without waiting for the earlier ones: a write held by a follower until a new leader is known counts
//! when it is acknowledged, as a client would see it. The first acknowledgement stops the clock. The index
//! of the killed node is printed on stdout so that the script restarts it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{self, Expect, Url};
use crate::cluster::{find_leader, Kind};
use crate::load::register_form;
use crate::stats::{self, parse_duration};
use crate::BoxError;

/// `discovery-bench failover`.
#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// Nodes (HOST:PORT); repeat or comma-separate.
    #[arg(long = "nodes", required = true)]
    pub nodes: Vec<String>,
    /// Process ids of the nodes, in the same order.
    #[arg(long = "pids", required = true)]
    pub pids: Vec<String>,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Bound on one write attempt.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub attempt_timeout: Duration,
    /// Time between two write attempts.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Trial number (makes the hostnames distinct between trials).
    #[arg(long, default_value_t = 0)]
    pub trial: u64,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct FailoverReport {
    kind: String,
    trial: u64,
    killed_index: usize,
    killed_node: String,
    first_write_ms: f64,
    attempts: u64,
    acknowledged_by: String,
    errors: BTreeMap<String, u64>,
}

/// `discovery-bench failover`.
pub async fn run(args: FailoverArgs) -> Result<(), BoxError> {
    let nodes = stats::split_list(&args.nodes);
    let pids: Vec<u32> = stats::split_list(&args.pids)
        .iter()
        .map(|p| p.parse::<u32>().map_err(|e| format!("pid {p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    if nodes.len() != pids.len() || nodes.len() < 2 {
        return Err("need as many --pids as --nodes, at least 2".into());
    }
    let leader = find_leader(Kind::Discovery, &nodes).await?;
    let survivors: Vec<Url> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, n)| Url::parse(&format!("http://{n}/discovery/register")))
        .collect::<Result<_, _>>()?;

    let killed_at = Instant::now();
    let status = std::process::Command::new("kill").arg("-9").arg(pids[leader].to_string()).status()?;
    if !status.success() {
        return Err(format!("kill -9 {} failed: {status}", pids[leader]).into());
    }
    let deadline = killed_at + args.timeout;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut attempts = 0u64;
    let mut in_flight = JoinSet::new();
    let mut ticker = tokio::time::interval(args.interval.max(Duration::from_millis(1)));
    let acknowledged_by = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break None,
            _ = ticker.tick(), if attempts < 100_000 => {
                let url = survivors[usize::try_from(attempts).unwrap_or(0) % survivors.len()].clone();
                attempts += 1;
                let body = register_form("bench", "bench.failover", &format!("fo-{}-{attempts}", args.trial));
                let bound = args.attempt_timeout;
                in_flight.spawn(async move {
                    let outcome = client::once(Method::POST, &url, Some(client::FORM), Bytes::from(body), bound)
                        .await
                        .map_err(|e| if e.to_string().contains("timed out") { "timeout".to_string() } else { "io".to_string() })
                        .and_then(|(status, body)| client::classify(Expect::Discovery, status, &body));
                    (url.authority, outcome)
                });
            }
            Some(done) = in_flight.join_next() => match done {
                Ok((node, Ok(()))) => break Some(node),
                Ok((_, Err(class))) => *errors.entry(class).or_default() += 1,
                Err(err) => *errors.entry(format!("task: {err}")).or_default() += 1,
            },
        }
    };
    let elapsed = killed_at.elapsed();
    in_flight.abort_all();
    println!("{leader}");
    let Some(acknowledged_by) = acknowledged_by else {
        return Err(format!("no write acknowledged within {:?} of killing the leader: {errors:?}", args.timeout).into());
    };
    let report = FailoverReport {
        kind: "failover".into(),
        trial: args.trial,
        killed_index: leader,
        killed_node: nodes[leader].clone(),
        first_write_ms: stats::round3(elapsed.as_secs_f64() * 1000.0),
        attempts,
        acknowledged_by,
        errors,
    };
    eprintln!(
        "failover trial {}: killed {} (leader); first write acknowledged by {} after {:.0} ms, {} attempts \
         started, failures {:?}",
        args.trial, report.killed_node, report.acknowledged_by, report.first_write_ms, attempts, report.errors
    );
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    Ok(())
}
