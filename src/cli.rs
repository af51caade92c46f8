//! Command line: clap definitions and their conversion into a validated [`Config`].
//!
//! Every flag can also be given as an environment variable `DISCOVERY_<FLAG>`, and as a key of the
//! `--config` file (see `config_file`). Precedence: flags > environment > file > defaults; parse with
//! [`Cli::parse_with_sources`] (or [`Cli::try_parse_with_sources_from`]) so the file can tell which values
//! were given.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::client::commands::{FetchArgs, RegisterArgs, WatchArgs};
use crate::config::{self, Config, ConfigError, LogFormat, Peer};
use crate::config_file::FileConfig;
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
    /// Print an app's instances (JSON).
    Fetch(FetchArgs),
    /// Register an instance, renew it until SIGINT or SIGTERM, then cancel it.
    Register(RegisterArgs),
    /// Long-poll an app and print each change (one JSON line per change).
    Watch(WatchArgs),
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
    /// Add a running node (started with its own --id and --join) as a learner, wait until it has
    /// caught up, then make it a voter (with --learner: keep it a read replica).
    Add {
        /// The node to add (HOST:PORT); its id and zone are read from it.
        #[arg(long)]
        node: String,
        /// Keep it a learner: a read replica that serves reads from its own copy, forwards writes to the
        /// leader and never counts toward a quorum (one per zone for local reads).
        #[arg(long)]
        learner: bool,
    },
    /// Make a learner (read replica) a voter, once it has caught up.
    Promote {
        /// The member to promote (HOST:PORT, as listed by `cluster status`).
        #[arg(long)]
        node: String,
    },
    /// Make a voter a learner (a read replica): it keeps serving reads and stops voting.
    Demote {
        /// The member to demote (HOST:PORT, as listed by `cluster status`).
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

impl Cli {
    /// Parse the process's arguments (exits with clap's message on error), remembering which node settings
    /// were given on the command line or in the environment.
    pub fn parse_with_sources() -> Self {
        Self::try_parse_with_sources_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parse `args` (the first is the program name), remembering which node settings were given.
    pub fn try_parse_with_sources_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = Self::command();
        let mut matches = command.clone().try_get_matches_from(args)?;
        // Before `from_arg_matches_mut`, which takes the values out of `matches`.
        let given = given_ids(&command, &matches);
        let mut cli = Self::from_arg_matches_mut(&mut matches)?;
        cli.server.given = given;
        Ok(cli)
    }
}

/// Ids of the arguments whose value came from the command line or the environment (not a default).
fn given_ids(command: &clap::Command, matches: &ArgMatches) -> BTreeSet<String> {
    command
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .filter(|id| matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)))
        .map(str::to_string)
        .collect()
}

/// Settings of a node (the default command).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A TOML file of node settings: one key per flag (`data_dir = "d1"`, `lease = "90s"`), plus the original
    /// server's `nodes`, `[env] region/zone` and `[httpServer] addr/readTimeout`. Flags and environment
    /// variables win over the file.
    #[arg(long, env = "DISCOVERY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

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

    /// A node without contact with the leader (cut off from the voters) for this long reports `stale` on
    /// /healthz; it keeps answering reads from its last state, with an `X-Discovery-Stale-Ms` header.
    #[arg(long, env = "DISCOVERY_STALE_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub stale_after: Duration,

    /// Largest chunk a snapshot is sent to a catching-up member in (a snapshot of any size goes in chunks of
    /// at most this; the receiver writes them to its data dir as they arrive). E.g. 4MiB, 512KiB.
    #[arg(long, env = "DISCOVERY_SNAPSHOT_CHUNK_SIZE", default_value = "4MiB", value_parser = config::parse_size, value_name = "SIZE")]
    pub snapshot_chunk_size: u64,

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

    /// Log format on stderr: text or json (one object per line). The level comes from RUST_LOG
    /// (default: info).
    #[arg(long, env = "DISCOVERY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// When set, POST /discovery/register, cancel, set and renew require `Authorization: Bearer <T>`
    /// (otherwise they answer code -401). Reads stay open.
    #[arg(long, env = "DISCOVERY_API_TOKEN", value_name = "T", hide_env_values = true)]
    pub api_token: Option<String>,

    /// Most time a client may take to send a request's headers, and separately its body; slower
    /// clients are disconnected.
    #[arg(long, env = "DISCOVERY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Most TCP connections served at once; beyond it a connection is answered -503 and closed.
    #[arg(long, env = "DISCOVERY_MAX_CONNECTIONS", default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Keep this much free on the data dir's disk: below it, writes (register, cancel, set) are refused
    /// with a message naming the disk while renews and reads go on, and they resume by themselves once
    /// space is back. 0 turns the guard off. E.g. 256MiB, 1GiB.
    #[arg(long, env = "DISCOVERY_MIN_FREE_SPACE", default_value = "256MiB", value_parser = config::parse_size, value_name = "SIZE")]
    pub min_free_space: u64,

    /// Threads that run the node's async work (HTTP, Raft, apply). 0 picks for the machine: one thread on
    /// machines with up to 2 CPUs (waking a second worker costs more than it brings there), one per CPU
    /// above. 1 is tokio's single-threaded scheduler. Disk syncs run on separate threads either way.
    #[arg(long, env = "DISCOVERY_WORKER_THREADS", default_value_t = 0, value_name = "N")]
    pub worker_threads: usize,

    /// Ids of the settings given on the command line or in the environment (filled by
    /// [`Cli::try_parse_with_sources_from`]); the config file fills only the others.
    #[arg(skip)]
    pub given: BTreeSet<String>,
}

impl ServerArgs {
    /// The validated configuration, and the config file's keys that were ignored (to log once logging is up).
    pub fn into_config(self) -> Result<(Config, Vec<String>), ConfigError> {
        let (file, ignored) = match &self.config {
            Some(path) => {
                let file = FileConfig::load(path)?;
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let ignored = file.ignored(&text);
                (file, ignored)
            }
            None => (FileConfig::default(), Vec::new()),
        };
        let given = |id: &str| self.given.contains(id);
        macro_rules! pick {
            ($field:ident) => {
                match file.$field {
                    Some(value) if !given(stringify!($field)) => value,
                    _ => self.$field,
                }
            };
        }
        macro_rules! pick_opt {
            ($field:ident) => {
                if given(stringify!($field)) {
                    self.$field
                } else {
                    file.$field.or(self.$field)
                }
            };
        }
        let addr = pick!(addr);
        let id = match (&file.nodes, file.id) {
            // The original's `nodes` carries no ids: this node is the one at its `addr`.
            (Some(nodes), None) if !given("id") => {
                let position = nodes.iter().position(|n| *n == addr).ok_or_else(|| ConfigError::File {
                    path: self.config.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                    message: format!("`nodes` must list this node's address {addr} (or set `id`)"),
                })?;
                position as u64 + 1
            }
            _ => pick!(id),
        };
        let cfg = Config {
            id,
            addr,
            data_dir: pick!(data_dir),
            cluster_token: pick_opt!(cluster_token),
            zone: pick!(zone),
            region: pick!(region),
            lease: pick!(lease),
            evict_interval: pick!(evict_interval),
            poll_timeout: pick!(poll_timeout),
            stale_after: pick!(stale_after),
            snapshot_chunk_size: pick!(snapshot_chunk_size),
            protect_threshold: pick!(protect_threshold),
            peers: pick_opt!(peers).unwrap_or_default(),
            snapshot_logs: pick!(snapshot_logs),
            join: pick!(join),
            log_format: pick!(log_format),
            api_token: pick_opt!(api_token),
            read_timeout: pick!(read_timeout),
            max_connections: pick!(max_connections),
            min_free_space: pick!(min_free_space),
            worker_threads: pick!(worker_threads),
            ..Config::default()
        };
        cfg.validate()?;
        Ok((cfg, ignored))
    }
}

impl TryFrom<ServerArgs> for Config {
    type Error = ConfigError;

    fn try_from(cli: ServerArgs) -> Result<Self, Self::Error> {
        cli.into_config().map(|(config, _)| config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_with_sources_from(std::iter::once("discovery").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::try_from(cli.server).map_err(|e| e.to_string())
    }

    #[test]
    fn no_arguments_is_dev_mode() {
        assert_eq!(parse(&[]), Ok(Config::default()));
    }

    #[test]
    fn flags_override_defaults() {
        let cfg = parse(&[
            "--addr",
            "127.0.0.1:9000",
            "--id",
            "3",
            "--lease",
            "500ms",
            "--protect-threshold",
            "0",
            "--worker-threads",
            "2",
        ])
        .expect("valid flags");
        assert_eq!(cfg.worker_threads, 2);
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
        assert!(matches!(args.action, ClusterAction::Add { node, learner: false } if node == "127.0.0.1:7474"));
        let cli = Cli::try_parse_from(["discovery", "cluster", "add", "--learner", "--node", "h:1", "--server", "h:2"])
            .expect("valid");
        let Some(Commands::Cluster(args)) = cli.command else { panic!("cluster command expected") };
        assert!(matches!(args.action, ClusterAction::Add { learner: true, .. }));
        let cli =
            Cli::try_parse_from(["discovery", "cluster", "demote", "--node", "h:1", "--server", "h:2"]).expect("valid");
        let Some(Commands::Cluster(args)) = cli.command else { panic!("cluster command expected") };
        assert!(matches!(args.action, ClusterAction::Demote { node } if node == "h:1"));
        assert!(Cli::try_parse_from(["discovery", "cluster", "add"]).is_err(), "--node is required");
    }

    fn with_file(text: &str, args: &[&str]) -> Result<Config, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("discovery.toml");
        std::fs::write(&path, text).expect("write");
        let path = path.to_string_lossy().to_string();
        let mut all = vec!["--config", path.as_str()];
        all.extend_from_slice(args);
        parse(&all)
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../discovery.example.toml");
        let cfg = with_file(text, &[]).expect("the example file parses and validates");
        assert_eq!(cfg.zone, "sh001");
        assert_eq!(cfg.region, "sh");
        assert_eq!(cfg.lease, Duration::from_secs(90));
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file = "zone = \"filezone\"\nlease = \"30s\"\napi_token = \"f\"\ncluster_token = \"c\"\njoin = true\n";
        let cfg = with_file(file, &["--zone", "flagzone"]).expect("valid");
        assert_eq!(cfg.zone, "flagzone", "flag over file");
        assert_eq!(cfg.lease, Duration::from_secs(30), "file over default");
        assert_eq!(cfg.api_token.as_deref(), Some("f"));
        assert!(cfg.join);
        assert_eq!(cfg.poll_timeout, config::DEFAULT_POLL_TIMEOUT, "default where neither says");
        // A flag equal to its default still wins: it was given.
        let cfg = with_file(file, &["--lease", "90s"]).expect("valid");
        assert_eq!(cfg.lease, Duration::from_secs(90));
    }

    #[test]
    fn original_nodes_give_peers_and_this_nodes_id() {
        let file = "nodes = [\"127.0.0.1:7171\", \"127.0.0.1:7272\"]\n[httpServer]\naddr = \"127.0.0.1:7272\"\n";
        let cfg = with_file(file, &[]).expect("valid");
        assert_eq!(cfg.id, 2);
        assert_eq!(cfg.addr, "127.0.0.1:7272");
        assert_eq!(cfg.peers.len(), 2);
        let err = with_file(file, &["--addr", "127.0.0.1:7373"]).expect_err("not in nodes");
        assert!(err.contains("nodes"), "{err}");
    }

    #[test]
    fn file_errors_name_the_file_and_the_key() {
        let err = with_file("lease = \"soon\"\n", &[]).expect_err("bad value");
        assert!(err.contains("discovery.toml") && err.contains("lease"), "{err}");
        let err = with_file("colour = \"blue\"\n", &[]).expect_err("unknown key");
        assert!(err.contains("colour"), "{err}");
        let err = parse(&["--config", "/nonexistent/discovery.toml"]).expect_err("missing file");
        assert!(err.contains("/nonexistent/discovery.toml"), "{err}");
        // Values are validated after merging, with the setting named.
        let err = with_file("max_connections = 0\n", &[]).expect_err("zero");
        assert!(err.contains("--max-connections"), "{err}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert!(parse(&["--lease", "ten"]).expect_err("bad").contains("--lease"));
        assert!(parse(&["--id", "0"]).expect_err("bad").contains("--id"));
        assert!(parse(&["--worker-threads", "100000"]).expect_err("bad").contains("--worker-threads"));
        assert!(parse(&["--worker-threads", "-1"]).is_err(), "not a count");
        assert!(parse(&["--addr", "0.0.0.0:7171"]).expect_err("bad").contains("--cluster-token"));
    }
}
