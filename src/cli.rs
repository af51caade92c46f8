//! Command line: clap definitions and their conversion into a validated [`Config`].
//!
//! Every flag can also be given as an environment variable `DISCOVERY_<FLAG>` (flags win).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use std::collections::BTreeMap;

use crate::config::{self, Config, ConfigError, Peer};
use crate::duration::parse_duration;

/// A Raft-replicated service registry that speaks the bilibili/discovery HTTP API.
///
/// With no arguments it runs a single-node registry for development: node 1 on 127.0.0.1:7171 with its
/// data in ./discovery-data, initialized on first start and simply restarted afterwards.
#[derive(Debug, Parser)]
#[command(name = "discovery", version, about, long_about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A client command; without one, `discovery` runs a node.
    #[command(subcommand)]
    pub command: Option<Commands>,

    /// Node settings.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Client commands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Inspect and change the cluster membership at run time.
    Cluster(ClusterArgs),
}

/// `discovery cluster ...`
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ClusterAction,

    /// Any member of the cluster (HOST:PORT); the change is sent to the leader it names.
    #[arg(long, global = true, env = "DISCOVERY_SERVER", default_value = config::DEFAULT_ADDR)]
    pub server: String,

    /// The cluster token, if the cluster has one.
    #[arg(long, global = true, env = "DISCOVERY_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
}

/// Membership actions.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Show each member, its role and the leader.
    Status,
    /// Add a running node (started with its own --id and no --peers) as a learner, wait until it has
    /// caught up, then make it a voter.
    Add {
        /// The node to add (HOST:PORT); its id and zone are read from it.
        #[arg(long)]
        node: String,
    },
    /// Remove a member from the cluster.
    Remove {
        /// The member to remove (HOST:PORT, as listed by `cluster status`).
        #[arg(long)]
        node: String,
    },
}

/// Settings of a node (the default command).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on and to advertise to peers and clients (HOST:PORT).
    #[arg(long, env = "DISCOVERY_ADDR", default_value = config::DEFAULT_ADDR, value_name = "HOST:PORT")]
    pub addr: String,

    /// Directory of this node's data (created if missing; never shared between nodes).
    #[arg(long, env = "DISCOVERY_DATA_DIR", default_value = config::DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Numeric id of this node (positive, unique in the cluster, fixed for its data dir).
    #[arg(long, env = "DISCOVERY_ID", default_value_t = 1, value_name = "N")]
    pub id: u64,

    /// Shared secret required on /raft, /internal and /admin routes; mandatory on non-loopback addresses.
    #[arg(long, env = "DISCOVERY_CLUSTER_TOKEN", value_name = "T", hide_env_values = true)]
    pub cluster_token: Option<String>,

    /// Zone of this node, as shown to clients in infra.discovery.
    #[arg(long, env = "DISCOVERY_ZONE", default_value = config::DEFAULT_ZONE)]
    pub zone: String,

    /// Region of this node.
    #[arg(long, env = "DISCOVERY_REGION", default_value = config::DEFAULT_REGION)]
    pub region: String,

    /// Instance lease: an instance not renewed for this long is evicted (e.g. 90s, 500ms, 2m).
    #[arg(long, env = "DISCOVERY_LEASE", default_value = "90s", value_parser = parse_duration)]
    pub lease: Duration,

    /// How often the leader scans for expired leases.
    #[arg(long, env = "DISCOVERY_EVICT_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub evict_interval: Duration,

    /// How long a long poll waits for a change before answering -304.
    #[arg(long, env = "DISCOVERY_POLL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub poll_timeout: Duration,

    /// Members of a new cluster, self included: ID=HOST:PORT[@ZONE],... Start every node with the same
    /// list; the lowest id initializes the cluster once, restarts never re-initialize.
    #[arg(long, env = "DISCOVERY_PEERS", value_parser = config::parse_peers, value_name = "ID=HOST:PORT,...")]
    pub peers: Option<BTreeMap<u64, Peer>>,

    /// Start without initializing anything and wait to be added to a running cluster with
    /// `discovery cluster add --node <this node's --addr>`.
    #[arg(long, env = "DISCOVERY_JOIN", conflicts_with = "peers")]
    pub join: bool,

    /// Log entries between two snapshots (the log is purged up to each snapshot).
    #[arg(long, env = "DISCOVERY_SNAPSHOT_LOGS", default_value_t = config::DEFAULT_SNAPSHOT_LOGS)]
    pub snapshot_logs: u64,

    /// Self-preservation: stop evicting when the renews of the last minute fall below this fraction of the
    /// expected renews (0 turns self-preservation off).
    #[arg(long, env = "DISCOVERY_PROTECT_THRESHOLD", default_value_t = config::DEFAULT_PROTECT_THRESHOLD)]
    pub protect_threshold: f64,
}

impl TryFrom<ServerArgs> for Config {
    type Error = ConfigError;

    fn try_from(cli: ServerArgs) -> Result<Self, Self::Error> {
        let cfg = Config {
            id: cli.id,
            addr: cli.addr,
            data_dir: cli.data_dir,
            cluster_token: cli.cluster_token,
            zone: cli.zone,
            region: cli.region,
            lease: cli.lease,
            evict_interval: cli.evict_interval,
            poll_timeout: cli.poll_timeout,
            protect_threshold: cli.protect_threshold,
            peers: cli.peers.unwrap_or_default(),
            snapshot_logs: cli.snapshot_logs,
            join: cli.join,
            ..Config::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("discovery").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        Config::try_from(cli.server).map_err(|e| e.to_string())
    }

    #[test]
    fn no_arguments_is_dev_mode() {
        assert_eq!(parse(&[]), Ok(Config::default()));
    }

    #[test]
    fn flags_override_defaults() {
        let cfg = parse(&["--addr", "127.0.0.1:9000", "--id", "3", "--lease", "500ms", "--protect-threshold", "0"])
            .expect("valid flags");
        assert_eq!(cfg.addr, "127.0.0.1:9000");
        assert_eq!(cfg.id, 3);
        assert_eq!(cfg.lease, Duration::from_millis(500));
        assert_eq!(cfg.protect_threshold, 0.0);
    }

    #[test]
    fn cluster_subcommands_parse() {
        let cli = Cli::try_parse_from([
            "discovery",
            "cluster",
            "add",
            "--node",
            "127.0.0.1:7474",
            "--server",
            "127.0.0.1:7171",
        ])
        .expect("valid");
        let Some(Commands::Cluster(args)) = cli.command else { panic!("cluster command expected") };
        assert_eq!(args.server, "127.0.0.1:7171");
        assert!(matches!(args.action, ClusterAction::Add { node } if node == "127.0.0.1:7474"));
        assert!(Cli::try_parse_from(["discovery", "cluster", "add"]).is_err(), "--node is required");
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert!(parse(&["--lease", "ten"]).expect_err("bad").contains("--lease"));
        assert!(parse(&["--id", "0"]).expect_err("bad").contains("--id"));
        assert!(parse(&["--addr", "0.0.0.0:7171"]).expect_err("bad").contains("--cluster-token"));
    }
}
