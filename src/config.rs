//! Node configuration: one struct with named defaults, validated once before anything starts.
//!
//! `Config::default()` is dev mode: node 1 on 127.0.0.1:7171 with data in `./discovery-data`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::registry::guard::GuardConfig;
use crate::registry::lessor::{LessorConfig, LessorConfigError};

/// Default listen and advertised address (the conventional bilibili/discovery port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:7171";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "discovery-data";
/// Default lease: an instance not renewed for this long is evicted (spec §4.7: 90 s).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(90);
/// Default period of the leader's expiry scan.
pub const DEFAULT_EVICT_INTERVAL: Duration = Duration::from_secs(1);
/// Default long-poll wait before answering -304 (spec §2.9: 30 s, below the SDK's 40 s timeout).
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `--snapshot-chunk-size`: 4 MiB.
pub const DEFAULT_SNAPSHOT_CHUNK_SIZE: u64 = 4 * 1024 * 1024;
/// Largest `--snapshot-chunk-size`: well below the 64 MiB body limit of the Raft routes.
pub const MAX_SNAPSHOT_CHUNK_SIZE: u64 = 32 * 1024 * 1024;
/// Default `--stale-after`: a few election timeouts, well under the SDK's 30 s poll, so a load balancer takes a
/// cut-off replica out before its clients' leases are at risk.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(10);
/// Default self-preservation threshold (spec §4.7).
pub const DEFAULT_PROTECT_THRESHOLD: f64 = 0.85;
/// Default zone, as kratos' `env` package defaults it.
pub const DEFAULT_ZONE: &str = "zone01";
/// Default region, as kratos' `env` package defaults it.
pub const DEFAULT_REGION: &str = "region01";

/// Raft timing. Generous by default: the registry runs on shared, noisy machines, and a spurious election
/// costs more than a slightly slower failover.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftTimings {
    /// Leader heartbeat period.
    pub heartbeat: Duration,
    /// Lower bound of the randomized election timeout.
    pub election_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_max: Duration,
}

impl Default for RaftTimings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(500),
            election_max: Duration::from_millis(1000),
        }
    }
}

/// Default number of log entries between two snapshots (the log is purged up to the snapshot).
pub const DEFAULT_SNAPSHOT_LOGS: u64 = 5000;
/// Default time a client may take to send a request's headers, and separately its body.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default most TCP connections served at once (above the 20,000 long polls one node may hold).
pub const DEFAULT_MAX_CONNECTIONS: usize = 25_000;
/// Default free space below which writes are refused (`--min-free-space`): room for replication and
/// sled's own snapshots to go on while an operator frees space.
pub const DEFAULT_MIN_FREE_SPACE: u64 = 256 << 20;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message` and the event's fields).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (use text or json)")),
        }
    }
}

/// One member of a cluster as given by `--peers`: `ID=HOST:PORT` or `ID=HOST:PORT@ZONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Advertised address.
    pub addr: String,
    /// Zone; `None` means the zone of the node that initializes the cluster.
    pub zone: Option<String>,
}

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Numeric node id, unique in the cluster, never reused for another data dir.
    pub id: u64,
    /// Listen address, also advertised to peers and clients (`host:port`).
    pub addr: String,
    /// Directory of the node's sled database.
    pub data_dir: PathBuf,
    /// Shared secret for `/raft/*`, `/internal/*` and `/admin/*`; required on non-loopback addresses.
    pub cluster_token: Option<String>,
    /// Zone of this node (shown in `infra.discovery` and `/discovery/nodes`).
    pub zone: String,
    /// Region of this node.
    pub region: String,
    /// Instance lease.
    pub lease: Duration,
    /// Period of the leader's expiry scan.
    pub evict_interval: Duration,
    /// Long-poll wait before -304.
    pub poll_timeout: Duration,
    /// Without contact with the leader for this long, `/healthz` reports `stale`.
    pub stale_after: Duration,
    /// Largest chunk a snapshot is sent in (bytes).
    pub snapshot_chunk_size: u64,
    /// Self-preservation threshold in [0, 1); 0 turns self-preservation off.
    pub protect_threshold: f64,
    /// Raft timing.
    pub raft: RaftTimings,
    /// The members of a new cluster (`--peers`), self included; empty means a one-node cluster.
    pub peers: BTreeMap<u64, Peer>,
    /// Log entries between two snapshots.
    pub snapshot_logs: u64,
    /// Never initialize a cluster: wait to be added to an existing one (`discovery cluster add`).
    pub join: bool,
    /// Log line format.
    pub log_format: LogFormat,
    /// When set, `POST /discovery/register|cancel|set|renew` require `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// Most time a client may take to send a request's headers, and separately its body.
    pub read_timeout: Duration,
    /// Most TCP connections served at once; more are answered -503 and closed. The node serves fewer when
    /// the open-file limit leaves less room (see [`crate::fd_limit`]).
    pub max_connections: usize,
    /// Bytes that must stay free on the data dir's disk; below it writes are refused (0: no guard).
    pub min_free_space: u64,
    /// Worker threads of the process's runtime; 0 picks for the machine (see [`crate::runtime`]). Read by the
    /// binary when it builds the runtime; `node::start` runs on whatever runtime it is called on.
    pub worker_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            id: 1,
            addr: DEFAULT_ADDR.to_string(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            cluster_token: None,
            zone: DEFAULT_ZONE.to_string(),
            region: DEFAULT_REGION.to_string(),
            lease: DEFAULT_LEASE,
            evict_interval: DEFAULT_EVICT_INTERVAL,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            stale_after: DEFAULT_STALE_AFTER,
            snapshot_chunk_size: DEFAULT_SNAPSHOT_CHUNK_SIZE,
            protect_threshold: DEFAULT_PROTECT_THRESHOLD,
            raft: RaftTimings::default(),
            peers: BTreeMap::new(),
            snapshot_logs: DEFAULT_SNAPSHOT_LOGS,
            join: false,
            log_format: LogFormat::Text,
            api_token: None,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            min_free_space: DEFAULT_MIN_FREE_SPACE,
            worker_threads: 0,
        }
    }
}

/// Parse `--peers`: `1=host:port,2=host:port@zone,...`.
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, Peer>, String> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, rest) = item.split_once('=').ok_or_else(|| format!("peer {item:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("peer {item:?}: {id:?} is not a positive integer id"))?;
        if id == 0 {
            return Err(format!("peer {item:?}: ids start at 1"));
        }
        let (addr, zone) = match rest.split_once('@') {
            Some((addr, zone)) => (addr.trim(), Some(zone.trim().to_string())),
            None => (rest.trim(), None),
        };
        resolve_addr(addr).map_err(|e| format!("peer {item:?}: {e}"))?;
        if peers.insert(id, Peer { addr: addr.to_string(), zone }).is_some() {
            return Err(format!("peer id {id} is listed twice"));
        }
    }
    Ok(peers)
}

/// Parse a size: `256MiB`, `1 GiB`, `500MB`, `4096` (bytes), `0`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if let Ok(bytes) = trimmed.parse::<u64>() {
        return Ok(bytes);
    }
    trimmed
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| format!("{text:?} is not a size (write e.g. 256MiB, 1GiB, 500MB, or a number of bytes)"))
}

/// A configuration that cannot be started, with the setting named.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// `--id` must be positive.
    #[error("--id must be a positive integer, got {0}")]
    ZeroId(u64),
    /// `--addr` is not `host:port`.
    #[error("--addr {addr:?} is not a valid HOST:PORT address: {reason}")]
    BadAddr {
        /// The value given.
        addr: String,
        /// Why it is not an address.
        reason: String,
    },
    /// A non-loopback listener would expose the internal routes to anyone.
    #[error("--addr {0} is not a loopback address: set --cluster-token so that /raft, /internal and /admin are not open to anyone who can reach the port")]
    TokenRequired(String),
    /// An empty cluster token would match nothing useful.
    #[error("--cluster-token must not be empty")]
    EmptyToken,
    /// An empty API token would protect nothing.
    #[error("--api-token must not be empty")]
    EmptyApiToken,
    /// A cluster member with an API token but no cluster token: its peer routes would bypass the API token.
    #[error("--api-token without --cluster-token on a cluster ({0}): /raft and /internal would let anyone who can reach the port write without the API token; set the same --cluster-token on every member")]
    ApiTokenWithoutClusterToken(&'static str),
    /// `--max-connections` must be positive.
    #[error("--max-connections must be greater than zero")]
    ZeroMaxConnections,
    /// `--snapshot-chunk-size` outside 1 B ..= 32 MiB.
    #[error("--snapshot-chunk-size must be between 1 byte and 32MiB, got {0} bytes")]
    BadSnapshotChunk(u64),
    /// `--worker-threads` beyond any sensible machine.
    #[error("--worker-threads must be at most {max} (0 picks for the machine), got {got}")]
    TooManyWorkerThreads {
        /// The value given.
        got: usize,
        /// The largest accepted.
        max: usize,
    },
    /// The config file cannot be used; the message names the file and the key.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// `--peers` does not list this node as `--id`=`--addr`.
    #[error("--peers must list this node as {id}={addr} (got {found})")]
    NotInPeers {
        /// `--id`.
        id: u64,
        /// `--addr`.
        addr: String,
        /// What `--peers` says for that id, or that it lists none.
        found: String,
    },
    /// `--snapshot-logs` must be positive.
    #[error("--snapshot-logs must be greater than zero")]
    ZeroSnapshotLogs,
    /// The lease settings the lessor derives from the flags do not hold together.
    #[error("--lease {lease:?}: {error}")]
    Lease {
        /// The lease asked for.
        lease: Duration,
        /// What is wrong with it.
        error: LessorConfigError,
    },
    /// `--protect-threshold` out of range.
    #[error("--protect-threshold must be in [0, 1), got {0}")]
    BadThreshold(f64),
    /// Zone or region unusable as an identifier.
    #[error("{0} must be 1 to 128 characters of letters, digits, '.', '_' or '-', got {1:?}")]
    BadIdent(&'static str, String),
}

impl Config {
    /// Check every setting; the node starts only from a validated config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId(self.id));
        }
        let socket = resolve_addr(&self.addr)?;
        match &self.cluster_token {
            Some(token) if token.is_empty() => return Err(ConfigError::EmptyToken),
            None if !socket.ip().is_loopback() => return Err(ConfigError::TokenRequired(self.addr.clone())),
            _ => {}
        }
        if self.api_token.as_deref() == Some("") {
            return Err(ConfigError::EmptyApiToken);
        }
        if self.api_token.is_some() && self.cluster_token.is_none() {
            if self.join {
                return Err(ConfigError::ApiTokenWithoutClusterToken("--join"));
            }
            if self.peers.len() > 1 {
                return Err(ConfigError::ApiTokenWithoutClusterToken("--peers lists several members"));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroMaxConnections);
        }
        if !(1..=MAX_SNAPSHOT_CHUNK_SIZE).contains(&self.snapshot_chunk_size) {
            return Err(ConfigError::BadSnapshotChunk(self.snapshot_chunk_size));
        }
        if self.worker_threads > crate::runtime::MAX_WORKER_THREADS {
            let max = crate::runtime::MAX_WORKER_THREADS;
            return Err(ConfigError::TooManyWorkerThreads { got: self.worker_threads, max });
        }
        for (name, value) in [
            ("--lease", self.lease),
            ("--evict-interval", self.evict_interval),
            ("--poll-timeout", self.poll_timeout),
            ("--stale-after", self.stale_after),
            ("--read-timeout", self.read_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if !(0.0..1.0).contains(&self.protect_threshold) {
            return Err(ConfigError::BadThreshold(self.protect_threshold));
        }
        check_ident("--zone", &self.zone)?;
        check_ident("--region", &self.region)?;
        if !self.peers.is_empty() {
            let me = self.peers.get(&self.id).map(|p| p.addr.as_str());
            if me != Some(self.addr.as_str()) {
                return Err(ConfigError::NotInPeers {
                    id: self.id,
                    addr: self.addr.clone(),
                    found: me.map_or_else(|| "no such id".to_string(), |a| format!("{}={a}", self.id)),
                });
            }
            for peer in self.peers.values() {
                if let Some(zone) = &peer.zone {
                    check_ident("--peers zone", zone)?;
                }
            }
        }
        if self.snapshot_logs == 0 {
            return Err(ConfigError::ZeroSnapshotLogs);
        }
        self.lessor_config().validate().map_err(|error| ConfigError::Lease { lease: self.lease, error })?;
        Ok(())
    }

    /// The listen address as a socket address (resolving a host name if one was given).
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        resolve_addr(&self.addr)
    }

    /// The election timeout the lessor's post-election grace must exceed.
    pub fn election_timeout(&self) -> Duration {
        self.raft.election_max
    }

    /// The lessor's settings derived from ours.
    pub fn lessor_config(&self) -> LessorConfig {
        // Grace covers the election plus the time clients need to find the new leader; at least 2 × the
        // election timeout (DESIGN.md), and never less than a few seconds on a noisy machine.
        let grace = (self.election_timeout() * 4).max(Duration::from_secs(4));
        LessorConfig {
            lease: self.lease,
            grace,
            spread: grace,
            guard: GuardConfig { ratio: self.protect_threshold, ..GuardConfig::default() },
            ..LessorConfig::default()
        }
    }

    /// openraft's configuration derived from ours.
    #[allow(clippy::result_large_err)] // openraft's own error type, only on the start-up path
    pub fn openraft_config(&self) -> Result<openraft::Config, openraft::ConfigError> {
        openraft::Config {
            cluster_name: "discovery".to_string(),
            heartbeat_interval: millis(self.raft.heartbeat),
            election_timeout_min: millis(self.raft.election_min),
            election_timeout_max: millis(self.raft.election_max),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs),
            // Keep a little log after each snapshot so a briefly lagging follower catches up by log.
            max_in_snapshot_log_to_keep: self.snapshot_logs.min(1000),
            ..Default::default()
        }
        .validate()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn resolve_addr(addr: &str) -> Result<SocketAddr, ConfigError> {
    let bad = |reason: String| ConfigError::BadAddr { addr: addr.to_string(), reason };
    let mut resolved = addr.to_socket_addrs().map_err(|e| bad(e.to_string()))?;
    resolved.next().ok_or_else(|| bad("resolves to no address".to_string()))
}

fn check_ident(name: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadIdent(name, value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_dev_mode() {
        let cfg = Config::default();
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.addr, "127.0.0.1:7171");
        assert_eq!(cfg.id, 1);
    }

    #[test]
    fn non_loopback_needs_token() {
        let cfg = Config { addr: "0.0.0.0:7171".into(), ..Config::default() };
        assert!(matches!(cfg.validate(), Err(ConfigError::TokenRequired(_))));
        let cfg = Config { cluster_token: Some("s3cret".into()), ..cfg };
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = |cfg: Config| cfg.validate().expect_err("must be rejected");
        assert!(matches!(bad(Config { id: 0, ..Config::default() }), ConfigError::ZeroId(0)));
        assert!(matches!(bad(Config { addr: "nope".into(), ..Config::default() }), ConfigError::BadAddr { .. }));
        assert!(matches!(
            bad(Config { lease: Duration::ZERO, ..Config::default() }),
            ConfigError::ZeroDuration("--lease")
        ));
        assert!(matches!(bad(Config { protect_threshold: 1.5, ..Config::default() }), ConfigError::BadThreshold(_)));
        assert!(matches!(bad(Config { zone: "a b".into(), ..Config::default() }), ConfigError::BadIdent("--zone", _)));
        assert!(matches!(
            bad(Config { cluster_token: Some(String::new()), ..Config::default() }),
            ConfigError::EmptyToken
        ));
        // A lease longer than the lessor's eviction ceiling (an hour) would never be honoured.
        let two_hours = Duration::from_secs(7200);
        assert!(matches!(
            bad(Config { lease: two_hours, ..Config::default() }),
            ConfigError::Lease { error: LessorConfigError::CeilingBelowLease(_), .. }
        ));
        assert_eq!(Config { lease: Duration::from_secs(3600), ..Config::default() }.validate(), Ok(()));
    }

    #[test]
    fn an_api_token_on_a_cluster_needs_a_cluster_token() {
        let peers = parse_peers("1=127.0.0.1:7171,2=127.0.0.1:7272").expect("valid");
        let api = Config { api_token: Some("t0k".into()), ..Config::default() };
        assert_eq!(
            api.validate(),
            Ok(()),
            "a one-node cluster with an API token is fine (its peer routes stay closed)"
        );
        let clustered = Config { peers: peers.clone(), ..api.clone() };
        let err = clustered.validate().expect_err("refused");
        assert!(matches!(err, ConfigError::ApiTokenWithoutClusterToken(_)));
        assert!(err.to_string().contains("--api-token") && err.to_string().contains("--cluster-token"), "{err}");
        let joining = Config { join: true, ..api.clone() };
        assert_eq!(joining.validate(), Err(ConfigError::ApiTokenWithoutClusterToken("--join")));
        for cfg in [clustered, joining] {
            assert_eq!(Config { cluster_token: Some("s3cret".into()), ..cfg }.validate(), Ok(()));
        }
        let self_only = parse_peers("1=127.0.0.1:7171").expect("valid");
        assert_eq!(
            Config { peers: self_only, ..api }.validate(),
            Ok(()),
            "--peers of one member is a one-node cluster"
        );
    }

    #[test]
    fn peers_parse_and_must_include_self() {
        let peers = parse_peers("1=127.0.0.1:7171, 2=127.0.0.1:7272@sh002,3=127.0.0.1:7373").expect("valid");
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[&2].zone.as_deref(), Some("sh002"));
        assert_eq!(peers[&1].zone, None);
        assert!(parse_peers("1=127.0.0.1:7171,1=127.0.0.1:7272").is_err());
        assert!(parse_peers("x=127.0.0.1:7171").is_err());
        assert!(parse_peers("0=127.0.0.1:7171").is_err());
        assert!(parse_peers("1").is_err());
        let cfg = Config { id: 2, addr: "127.0.0.1:7272".into(), peers: peers.clone(), ..Config::default() };
        assert_eq!(cfg.validate(), Ok(()));
        let cfg = Config { id: 4, addr: "127.0.0.1:7474".into(), peers, ..Config::default() };
        assert!(matches!(cfg.validate(), Err(ConfigError::NotInPeers { .. })));
    }

    #[test]
    fn openraft_config_is_valid() {
        assert!(Config::default().openraft_config().is_ok());
    }
}
