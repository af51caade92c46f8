//! Plumbing for the run script: wait for a healthy cluster, find its leader, pick free ports.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};

use crate::client::{self, Url};
use crate::stats::{self, parse_duration};
use crate::BoxError;

/// Which server a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// discovery: `/healthz`, `/admin/status`.
    Discovery,
    /// etcd: `/health`, `/v3/maintenance/status`.
    Etcd,
}

/// `discovery-bench wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Which server the nodes are.
    #[arg(long, value_enum, default_value = "discovery")]
    pub kind: Kind,
    /// Nodes (HOST:PORT); repeat or comma-separate.
    #[arg(long = "nodes", required = true)]
    pub nodes: Vec<String>,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Also wait until every discovery node has applied the same log index.
    #[arg(long)]
    pub caught_up: bool,
}

/// `discovery-bench leader`.
#[derive(Debug, clap::Args)]
pub struct LeaderArgs {
    /// Which server the nodes are.
    #[arg(long, value_enum, default_value = "discovery")]
    pub kind: Kind,
    /// Nodes (HOST:PORT); repeat or comma-separate.
    #[arg(long = "nodes", required = true)]
    pub nodes: Vec<String>,
}

/// `discovery-bench free-ports`.
#[derive(Debug, clap::Args)]
pub struct FreePortsArgs {
    /// How many ports.
    #[arg(default_value_t = 1)]
    pub count: usize,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Print the leader's index once every node is healthy and agrees on it.
pub async fn wait(args: WaitArgs) -> Result<(), BoxError> {
    let nodes = stats::split_list(&args.nodes);
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        let last = match probe(args.kind, &nodes, args.caught_up).await {
            Ok(leader) => {
                println!("{leader}");
                return Ok(());
            }
            Err(err) => err.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("cluster {} not ready after {:?}: {last}", nodes.join(","), args.timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Print the leader's index (0-based, in --nodes order).
pub async fn leader(args: LeaderArgs) -> Result<(), BoxError> {
    let nodes = stats::split_list(&args.nodes);
    let index = find_leader(args.kind, &nodes).await?;
    println!("{index}");
    Ok(())
}

/// Index of the node that says it leads (unreachable nodes are skipped).
pub async fn find_leader(kind: Kind, nodes: &[String]) -> Result<usize, BoxError> {
    for (index, node) in nodes.iter().enumerate() {
        let leads = match kind {
            Kind::Discovery => discovery_status(node).await.ok().is_some_and(|s| s.role == "Leader"),
            Kind::Etcd => etcd_status(node).await.ok().is_some_and(|(member, leader)| member == leader),
        };
        if leads {
            return Ok(index);
        }
    }
    Err(format!("no node of {} says it is the leader", nodes.join(",")).into())
}

async fn probe(kind: Kind, nodes: &[String], caught_up: bool) -> Result<usize, BoxError> {
    let mut leaders = Vec::new();
    let mut applied = Vec::new();
    for node in nodes {
        match kind {
            Kind::Discovery => {
                client::discovery_client(node, PROBE_TIMEOUT)?.health_of(node).await.map_err(|e| e.to_string())?;
                let s = discovery_status(node).await?;
                leaders.push(s.leader.ok_or_else(|| format!("{node}: no leader known"))?.to_string());
                applied.push(s.last_applied);
            }
            Kind::Etcd => {
                let url = Url::parse(&format!("http://{node}/health"))?;
                let (status, body) = client::once(Method::GET, &url, None, Bytes::new(), PROBE_TIMEOUT).await?;
                if status != StatusCode::OK || !String::from_utf8_lossy(&body).contains("true") {
                    return Err(format!("{node}: /health {status}").into());
                }
                leaders.push(etcd_status(node).await?.1);
            }
        }
    }
    leaders.dedup();
    if leaders.len() != 1 {
        return Err(format!("nodes disagree on the leader: {leaders:?}").into());
    }
    applied.dedup();
    if caught_up && applied.len() > 1 {
        return Err(format!("nodes have applied different indexes: {applied:?}").into());
    }
    find_leader(kind, nodes).await
}

/// The fields of `/admin/status` the tools use.
pub struct DiscoveryStatus {
    /// `Leader`, `Follower`, ...
    pub role: String,
    /// Id of the leader this node knows.
    pub leader: Option<u64>,
    /// Last applied log index.
    pub last_applied: u64,
}

/// `/admin/status` of a discovery node.
pub async fn discovery_status(node: &str) -> Result<DiscoveryStatus, BoxError> {
    let status = client::discovery_client(node, PROBE_TIMEOUT)?.status_of(node).await?;
    Ok(DiscoveryStatus { role: status.role, leader: status.leader, last_applied: status.last_applied.unwrap_or(0) })
}

/// (member id, leader id) of an etcd member, as the gateway prints them (uint64 as strings).
async fn etcd_status(node: &str) -> Result<(String, String), BoxError> {
    let url = Url::parse(&format!("http://{node}/v3/maintenance/status"))?;
    let (status, body) =
        client::once(Method::POST, &url, Some("application/json"), Bytes::from_static(b"{}"), PROBE_TIMEOUT).await?;
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |v: Option<&serde_json::Value>| v.map(|v| v.to_string().trim_matches('"').to_string());
    match (status, text(value.pointer("/header/member_id")), text(value.get("leader"))) {
        (StatusCode::OK, Some(member), Some(leader)) => Ok((member, leader)),
        _ => Err(format!("{node}: /v3/maintenance/status {status}: {value}").into()),
    }
}

/// Print `count` distinct free loopback ports, taken below the kernel's ephemeral range so that the
/// clients' own outgoing connections never hold a port a server is about to bind.
pub fn free_ports(args: FreePortsArgs) -> Result<(), BoxError> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse::<u16>().ok()))
        .unwrap_or(32768);
    let low: u16 = 20_000.min(ephemeral_low.saturating_sub(2_000));
    let span = ephemeral_low.saturating_sub(low).max(1);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    let mut candidate = low + u16::try_from(seed % u32::from(span)).unwrap_or(0);
    let mut held = Vec::new();
    let mut tried = 0u32;
    while held.len() < args.count {
        if tried > u32::from(span) {
            return Err("no free loopback ports below the ephemeral range".into());
        }
        tried += 1;
        candidate = if candidate + 1 >= ephemeral_low { low } else { candidate + 1 };
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", candidate)) {
            held.push((candidate, listener));
        }
    }
    let ports: Vec<String> = held.iter().map(|(port, _)| port.to_string()).collect();
    println!("{}", ports.join(" "));
    Ok(())
}
