//! Node wiring: open storage, start Raft, the proposer and the lessor, and serve every route on one
//! listener. Thin plumbing around the registry domain.
//!
//! # Tasks (each tracked, each stops on the node's cancellation token)
//! | task | owns | stops |
//! |---|---|---|
//! | HTTP server (`server`) | the listener, a task per connection | cancel: graceful, dropped after `SHUTDOWN_GRACE` |
//! | proposer | the write queue | cancel, or all handles dropped |
//! | lessor | the leader's lease table | cancel; idles while not leader |
//! | renew forwarder | the queue of renews bound for the leader | cancel |
//! | write forwarder | the queue of writes bound for the leader | cancel |
//! | read-index batcher | the queue of consistent reads waiting for a read index | cancel |
//! | membership watch | nothing (wakes `infra.discovery` polls) | cancel |
//! | raft events watch | nothing (logs and counts leader changes and snapshots) | cancel |
//! | core supervisor (`health`) | nothing (stops the node if the Raft core dies) | cancel |
//! | liveness prober | which members can serve (`infra.discovery`'s list and cursor) | cancel |
//! | applied timeline | when this node applied what (members' lag in time) | cancel |
//! | disk guard | the free-space verdict of the write path | cancel |
//! | chart sampler (`charts`) | the console's last hour of samples | cancel |
//! | openraft core | log store, state machine | `raft.shutdown()` after the server stopped |
//! | log flushes (`SledLogStore::flushes`) | one durable sync of appended entries each | end with their sync; waited for (`FLUSH_GRACE`) after the core stopped |
//!
//! Stopping is bounded: whatever a task waits on (an eviction a cut-off leader can never commit, a client
//! that keeps a request open), [`RunningNode::stop`] returns within [`SHUTDOWN_GRACE`] + 5 s.

pub mod admin;
pub mod applied_timeline;
pub mod change_hub;
pub mod charts;
pub mod cluster_admin;
pub mod disk_guard;
pub mod events;
pub mod forward;
pub mod health;
pub mod internal;
pub mod internal_wire;
pub mod lease_keeper;
pub mod liveness;
pub mod long_uri;
pub mod membership;
pub mod metrics;
pub mod pipeline;
pub mod proposer;
pub mod registry_state;
pub mod route_gate;
pub mod routing;
pub mod server;
pub mod serving_view;
pub mod staleness;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use discovery_raft::ClusterNode;
use discovery_storage::SledLogStore;
use openraft::storage::RaftLogStorage;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::raft_types::{Raft, TypeConfig};
use disk_guard::{DiskGuard, FreeSpace, Statvfs};
use forward::read_index::ReadIndexBatcher;
use forward::renews::RenewForwarder;
use forward::writes::WriteForwarder;
use forward::Forwarder;
use health::NodeHealth;
use lease_keeper::LeaseKeeper;
use metrics::{NodeMetrics, ProposalMetrics, StorageMetrics};
use proposer::Proposer;
use registry_state::RegistryState;

/// How long in-flight requests may take to finish once the node is stopping.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the background tasks, then the Raft core, may take to stop after the server did.
const TASKS_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
const CORE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the log's last flushes may take once the core stopped: a sync of a few entries takes
/// milliseconds; a disk that takes longer is logged, and the entries were never acknowledged anyway.
const FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Shared state of every handler: one `Arc`, so the clone axum makes for every request and middleware is a
/// single reference count (cloning the fields one by one was 5 % of a node's CPU under register load).
#[derive(Clone)]
pub struct AppState(Arc<NodeState>);

impl AppState {
    /// Share `state` with the handlers.
    pub fn new(state: NodeState) -> Self {
        Self(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = NodeState;

    fn deref(&self) -> &NodeState {
        &self.0
    }
}

/// What every handler of a node shares (through [`AppState`]).
pub struct NodeState {
    /// The Raft node.
    pub raft: Raft,
    /// The applied registry and its change notifications.
    pub registry: Arc<RegistryState>,
    /// The write batcher.
    pub proposer: Proposer,
    /// The leader's lease table (inactive on followers).
    pub lessor: Arc<LeaseKeeper>,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Client for other members' internal routes.
    pub forwarder: Forwarder,
    /// Batches renews to the leader.
    pub renewals: RenewForwarder,
    /// Batches writes to the leader (when this node is not the leader).
    pub writes: WriteForwarder,
    /// Shares read-index round trips to the leader among consistent reads.
    pub read_indexes: ReadIndexBatcher,
    /// Held while a membership change runs (one at a time).
    pub membership_change: Arc<tokio::sync::Mutex<()>>,
    /// Cancelled when the node stops: long polls answer -304 at once.
    pub shutdown: CancellationToken,
    /// This node's Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<NodeMetrics>,
    /// Whether the Raft core is alive and the node is not stopping.
    pub health: Arc<NodeHealth>,
    /// The free-space guard of the write path.
    pub disk: Arc<DiskGuard>,
    /// Which members can serve clients (what `infra.discovery` lists).
    pub liveness: Arc<liveness::Liveness>,
    /// When this node applied what (`/admin/status` members' lag in milliseconds).
    pub applied_timeline: Arc<applied_timeline::AppliedTimeline>,
    /// Takes snapshot chunks from the leader (the Raft routes).
    pub snapshot_receiver: Arc<discovery_raft::SnapshotReceiver>,
    /// How far a snapshot transfer from the leader is (status, metrics).
    pub snapshot_receive: Arc<discovery_raft::ReceiveProgress>,
    /// The console's charts and leader changes (see `charts`).
    pub history: Arc<charts::History>,
}

impl NodeState {
    /// The members that can serve clients, with the `infra.discovery` cursor (`membership`, `liveness`).
    pub fn served_membership(&self) -> crate::registry::infra::Membership {
        membership::current_membership(&self.raft, &self.config, self.registry.infra_cursor(), &self.liveness)
    }
}

/// Why a node could not start or stopped abnormally.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The data dir could not be opened (wrong node, newer schema, corrupt, in use).
    #[error(transparent)]
    Storage(#[from] discovery_storage::OpenError),
    /// openraft refused the configuration or failed.
    #[error("raft: {0}")]
    Raft(String),
    /// The data dir holds the state of a different cluster, or of this id at another address.
    #[error("data dir {dir} belongs to another cluster: {reason}")]
    WrongCluster {
        /// The data dir.
        dir: String,
        /// What does not match.
        reason: String,
    },
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(#[from] std::io::Error),
    /// The Raft core stopped while the node was serving (a storage error, such as a full disk).
    #[error("the Raft core stopped: {0}")]
    CoreStopped(String),
    /// The node refuses to start as configured (an open-file limit too low to serve anyone, an API token
    /// without a cluster token on a cluster); the message says why and what to change.
    #[error("{0}")]
    Refused(String),
}

/// A started node: its state, and the handle to stop it.
pub struct RunningNode {
    /// Shared state (for tests: raft, registry).
    pub state: AppState,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The log store's append flushes (they outlive the core's append calls).
    flushes: TaskTracker,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    hard_stop: CancellationToken,
}

impl RunningNode {
    /// Stop accepting, finish in-flight requests (long polls answer -304 at once), stop the background
    /// tasks, shut Raft down (which closes the stores; every acknowledged write is already durable).
    pub async fn stop(mut self) -> Result<(), NodeError> {
        self.state.health.set_stopping();
        self.shutdown.cancel();
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(joined) => joined.map_err(|e| NodeError::Raft(format!("server task: {e}")))?,
            Err(_) => {
                tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; closing them");
                self.hard_stop.cancel();
                match tokio::time::timeout(std::time::Duration::from_secs(1), &mut self.server).await {
                    Ok(joined) => joined.map_err(|e| NodeError::Raft(format!("server task: {e}")))?,
                    Err(_) => {
                        self.server.abort();
                        Ok(())
                    }
                }
            }
        };
        self.tasks.close();
        // A task may wait on Raft for good (an eviction a leader cut off from its majority can never
        // commit): shutting the core down below ends such waits, and the tasks are dropped with the runtime.
        if tokio::time::timeout(TASKS_GRACE, self.tasks.wait()).await.is_err() {
            tracing::warn!("background tasks did not stop within {TASKS_GRACE:?}; stopping Raft under them");
        }
        match tokio::time::timeout(CORE_GRACE, self.state.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the Raft core did not stop cleanly"),
            Err(_) => tracing::warn!("the Raft core did not stop within {CORE_GRACE:?}; exiting anyway"),
        }
        self.flushes.close();
        if tokio::time::timeout(FLUSH_GRACE, self.flushes.wait()).await.is_err() {
            tracing::warn!("a log flush did not finish within {FLUSH_GRACE:?} (a slow disk?); exiting anyway");
        }
        served.map_err(NodeError::Serve)
    }

    /// A token that stops the node when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// What a node serves to clients, supplied by the application (`crate::app`): the node builds and runs
/// the registry's machinery and its own routes (health, metrics, admin, peers), and never imports the API.
#[derive(Clone, Copy)]
pub struct Frontend {
    /// The client-facing routes (the API over the service layer, the console), given the node's state.
    pub routes: fn(&AppState) -> Router,
    /// The answer to a request refused before any handler runs: `(path, message, overloaded)` (too many
    /// connections: overloaded; a stopped Raft core: not).
    pub refusal: fn(&str, String, bool) -> axum::response::Response,
}

/// Start a node serving `frontend` on an already bound listener (tests pass `127.0.0.1:0`).
pub async fn start(config: Config, listener: TcpListener, frontend: Frontend) -> Result<RunningNode, NodeError> {
    start_with(config, listener, Arc::new(Statvfs), |store| store, frontend).await
}

/// [`start`] with the free space read from `free_space` and the log store wrapped by `wrap_log_store`:
/// what fault-injection tests use to fake a filling disk or a failing log store.
pub async fn start_with<LS, W>(
    config: Config,
    listener: TcpListener,
    free_space: Arc<dyn FreeSpace>,
    wrap_log_store: W,
    frontend: Frontend,
) -> Result<RunningNode, NodeError>
where
    LS: RaftLogStorage<TypeConfig>,
    W: FnOnce(SledLogStore<TypeConfig>) -> LS,
{
    let max_connections = connection_cap(&config)?;
    let config = Arc::new(config);
    let registry = Arc::new(RegistryState::default());
    let dir = config.data_dir.clone();
    let (log_store, sm_store) = {
        let registry = Arc::clone(&registry);
        let id = config.id;
        tokio::task::spawn_blocking(move || discovery_storage::open_storage::<TypeConfig, _>(&dir, id, registry))
            .await
            .map_err(|e| NodeError::Raft(format!("storage open task: {e}")))??
    };
    let storage_metrics = StorageMetrics::default();
    log_store.set_sync_observer(Arc::new(storage_metrics.clone()));
    let flushes = log_store.flushes();
    let raft_config = config.openraft_config().map_err(|e| NodeError::Raft(e.to_string()))?;
    let network = discovery_raft::HttpNetworkFactory::new(discovery_raft::NetworkConfig {
        token: config.cluster_token.as_deref().map(Arc::from),
        snapshot_chunk_bytes: usize::try_from(config.snapshot_chunk_size).unwrap_or(usize::MAX),
        ..discovery_raft::NetworkConfig::default()
    });
    // Snapshots from the leader arrive in chunks into a file of the data dir (a crash's leftover is removed).
    let snapshot_receiver = Arc::new(
        discovery_raft::SnapshotReceiver::in_dir(config.data_dir.clone())
            .map_err(|e| NodeError::Raft(format!("snapshot receiver in {}: {e}", config.data_dir.display())))?,
    );
    let raft = Raft::new(config.id, Arc::new(raft_config), network, wrap_log_store(log_store), sm_store)
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    initialize_once(&raft, &config).await?;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let health = Arc::new(NodeHealth::default());
    tasks.spawn(health::supervise_core(raft.clone(), Arc::clone(&health), shutdown.clone()));
    let disk = Arc::new(DiskGuard::new(&config.data_dir, config.min_free_space, free_space));
    disk.refresh();
    tasks.spawn(disk_guard::run(Arc::clone(&disk), shutdown.clone()));
    let proposals = ProposalMetrics::default();
    let (proposer, proposer_task) =
        Proposer::spawn(raft.clone(), config.election_timeout() * 2, shutdown.clone(), proposals.clone());
    tasks.spawn(async move {
        let _ = proposer_task.await;
    });
    let lessor = Arc::new(LeaseKeeper::new(&config));
    let metrics = Arc::new(NodeMetrics::new(registry.counters(), lessor.renew_counter(), &proposals, &storage_metrics));
    let liveness = Arc::new(liveness::Liveness::default());
    tasks.spawn(lease_keeper::run(
        Arc::clone(&lessor),
        raft.clone(),
        Arc::clone(&registry),
        Arc::clone(&liveness),
        shutdown.clone(),
    ));
    tasks.spawn(membership::watch_membership(
        raft.clone(),
        Arc::clone(&registry),
        Arc::clone(&liveness),
        shutdown.clone(),
    ));
    let history = Arc::new(charts::History::default());
    tasks.spawn(events::watch_raft_events(
        raft.clone(),
        Arc::clone(&registry),
        Arc::clone(&metrics),
        Arc::clone(&history),
        shutdown.clone(),
    ));
    tasks.spawn(charts::run(Arc::clone(&history), Arc::clone(&registry), shutdown.clone()));

    let forwarder = Forwarder::new(config.cluster_token.clone());
    let (renewals, renew_queue) = RenewForwarder::channel();
    let (writes, writes_task) = WriteForwarder::spawn(forwarder.clone(), config.id, shutdown.clone());
    tasks.spawn(async move {
        let _ = writes_task.await;
    });
    let (read_indexes, reads_task) = ReadIndexBatcher::spawn(forwarder.clone(), shutdown.clone());
    tasks.spawn(async move {
        let _ = reads_task.await;
    });
    let applied_timeline = Arc::new(applied_timeline::AppliedTimeline::default());
    tasks.spawn(applied_timeline::run(Arc::clone(&applied_timeline), registry.applied_index(), shutdown.clone()));
    let membership_change = Arc::default();
    let state = AppState::new(NodeState {
        raft,
        registry,
        proposer,
        lessor,
        config,
        forwarder,
        renewals,
        writes,
        read_indexes,
        membership_change,
        shutdown: shutdown.clone(),
        metrics,
        health,
        disk,
        liveness,
        applied_timeline,
        snapshot_receive: snapshot_receiver.progress(),
        snapshot_receiver,
        history,
    });
    tasks.spawn(RenewForwarder::run(state.clone(), renew_queue, shutdown.clone()));
    tasks.spawn(liveness::run(state.clone(), shutdown.clone()));
    let app = router(state.clone(), frontend);
    let limits =
        server::ServeLimits { max_connections, read_timeout: state.config.read_timeout, refusal: frontend.refusal };
    let hard_stop = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        app,
        limits,
        Arc::clone(&state.metrics),
        shutdown.clone(),
        hard_stop.clone(),
    ));
    Ok(RunningNode { state, shutdown, tasks, flushes, server, hard_stop })
}

/// Start a node and run it until `signal` resolves, then stop it cleanly.
pub async fn run(
    config: Config,
    listener: TcpListener,
    signal: impl Future<Output = ()>,
    frontend: Frontend,
) -> Result<(), NodeError> {
    let node = start(config, listener, frontend).await?;
    let token = node.shutdown_token();
    tokio::select! {
        _ = signal => {}
        _ = token.cancelled() => {}
    }
    let health = Arc::clone(&node.state.health);
    let stopped = node.stop().await;
    match health.fatal() {
        Some(cause) => Err(NodeError::CoreStopped(cause.to_string())),
        None => stopped,
    }
}

/// The connections this node serves: `--max-connections`, or fewer if the open-file limit leaves less
/// room (see [`crate::fd_limit`]); both figures are logged.
fn connection_cap(config: &Config) -> Result<usize, NodeError> {
    let limit = crate::fd_limit::current_soft_limit()
        .map_err(|e| NodeError::Refused(format!("cannot read the open-file limit: {e}")))?;
    let cap = crate::fd_limit::connection_cap(config.max_connections, limit).map_err(NodeError::Refused)?;
    if cap < config.max_connections {
        tracing::info!(
            connections = cap,
            max_connections = config.max_connections,
            open_file_limit = limit,
            reserved = crate::fd_limit::RESERVED_FDS,
            "serving fewer connections than --max-connections: the open-file limit leaves room for this many"
        );
    } else {
        tracing::info!(connections = cap, open_file_limit = limit, "connection limit");
    }
    Ok(cap)
}

/// Every route of a node on one router: the node's own and `frontend`'s.
pub fn router(state: AppState, frontend: Frontend) -> Router {
    let token = state.config.cluster_token.clone().map(Arc::<str>::from);
    // Peer routes are also closed on a lone node without a token (see `route_gate`); the token check runs first.
    let peer = route_gate::gate(
        internal::internal_routes()
            .merge(liveness::liveness_routes())
            .with_state(state.clone())
            .merge(discovery_raft::raft_routes_with(state.raft.clone(), Arc::clone(&state.snapshot_receiver))),
        state.clone(),
    );
    let internal = discovery_raft::require_token(
        admin::admin_routes().merge(cluster_admin::cluster_routes()).with_state(state.clone()).merge(peer),
        token,
    );
    let metrics = Arc::clone(&state.metrics);
    let health = Arc::clone(&state.health);
    let read_timeout = state.config.read_timeout;
    let liveness = Arc::clone(&state.liveness);
    let clients = (frontend.routes)(&state);
    Router::new()
        .merge(admin::health_routes())
        .merge(metrics::metrics_routes())
        .with_state(state)
        .merge(clients)
        .merge(internal)
        // The original's framework answers these in plain text (spec §1.1).
        .method_not_allowed_fallback(|| async { (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
        // A client gets `read_timeout` to send a body (the headers are timed by the server loop).
        .layer(axum::middleware::from_fn_with_state(read_timeout, server::body_deadline))
        // Reads of a node cut off from the leader say how stale they may be (issue 14).
        .layer(axum::middleware::from_fn_with_state(liveness, staleness::mark_stale))
        // A dead Raft core serves no registry state (see `health`).
        .layer(axum::middleware::from_fn_with_state((health, frontend.refusal), health::refuse_when_dead))
        // Outermost, so every answer is counted (401s of the token check and 404s included).
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track_http))
}

/// A restarted node must be the member its data says it is: same address for its id, and (with
/// `--peers`) a cluster that shares at least one member with the list it was given.
fn check_same_cluster(raft: &Raft, config: &Config) -> Result<(), NodeError> {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let wrong = |reason: String| NodeError::WrongCluster { dir: config.data_dir.display().to_string(), reason };
    if let Some(me) = membership.get_node(&config.id) {
        if me.addr != config.addr {
            return Err(wrong(format!("node {} is a member at {}, not at --addr {}", config.id, me.addr, config.addr)));
        }
    }
    let known: Vec<String> = membership.nodes().map(|(id, n)| format!("{id}={}", n.addr)).collect();
    let shares_a_member = config.peers.iter().any(|(id, p)| membership.get_node(id).is_some_and(|n| n.addr == p.addr));
    if !config.peers.is_empty() && !known.is_empty() && !shares_a_member {
        return Err(wrong(format!("its members are {} but --peers lists none of them", known.join(","))));
    }
    // The same rule as `Config::validate` for `--peers`/`--join`, for a restart without either.
    if known.len() > 1 && config.api_token.is_some() && config.cluster_token.is_none() {
        return Err(NodeError::Refused(format!(
            "--api-token without --cluster-token on a cluster (data dir {} has members {}): /raft and /internal \
             would let anyone who can reach the port write without the API token; set the same --cluster-token \
             on every member",
            config.data_dir.display(),
            known.join(",")
        )));
    }
    Ok(())
}

/// First start: without `--peers` the node initializes a one-node cluster (dev mode); with `--peers` the
/// lowest id initializes the cluster with every peer and the others wait to be contacted. Only a node that
/// has never been part of a cluster initializes: a restart finds its vote and log and simply rejoins.
async fn initialize_once(raft: &Raft, config: &Config) -> Result<(), NodeError> {
    if raft.is_initialized().await.map_err(|e| NodeError::Raft(e.to_string()))? {
        check_same_cluster(raft, config)?;
        // A lone voter need not wait out an election timeout to become leader again after a restart.
        let sole_voter = {
            let metrics = raft.metrics().borrow().clone();
            let voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
            voters == [config.id]
        };
        if sole_voter {
            raft.trigger().elect().await.map_err(|e| NodeError::Raft(e.to_string()))?;
        }
        return Ok(());
    }
    if config.join {
        tracing::info!(addr = %config.addr, "waiting to be added to a cluster (discovery cluster add --node {})", config.addr);
        return Ok(());
    }
    let members: BTreeMap<u64, ClusterNode> = if config.peers.is_empty() {
        BTreeMap::from([(config.id, ClusterNode { addr: config.addr.clone(), zone: config.zone.clone() })])
    } else {
        if config.peers.keys().next() != Some(&config.id) {
            tracing::info!(
                "waiting to be contacted by the cluster (node {:?} initializes it)",
                config.peers.keys().next()
            );
            return Ok(());
        }
        config
            .peers
            .iter()
            .map(|(id, p)| {
                let zone = p.zone.clone().unwrap_or_else(|| config.zone.clone());
                (*id, ClusterNode { addr: p.addr.clone(), zone })
            })
            .collect()
    };
    tracing::info!(members = members.len(), "initializing a new cluster");
    raft.initialize(members).await.map_err(|e| NodeError::Raft(e.to_string()))
}
