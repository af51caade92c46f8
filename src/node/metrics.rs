//! `GET /metrics`: this node's Prometheus metrics (text format 0.0.4).
//!
//! Invariants:
//! - One [`prometheus_client::registry::Registry`] per node, owned by [`NodeMetrics`] in `AppState`: no global
//!   registry, so any number of nodes can run in one process (the cluster tests do).
//! - Counters and histograms are updated where the event happens (HTTP middleware, proposer, apply, the lessor's
//!   renew verdicts, the Raft event watcher). Gauges that mirror existing state (Raft metrics, registry size,
//!   self-preservation, long-poll waiters, data-dir size) are filled at scrape time from that state, so they
//!   cannot drift from it and cost nothing between scrapes.
//! - A scrape never blocks an async worker on the file system: the data dir is measured on the blocking pool.
//!
//! Metric names are listed in README.md ("Metrics").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use openraft::ServerState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::lease_keeper::LeaseKeeper;
use super::registry_state::{ApplyCounters, RegistryState};
use super::AppState;
use crate::raft_types::Raft;
use crate::service::headers::STATUS_CODE_HEADER;

/// A label set of one string label, `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// What happened (e.g. `committed`, `renewed`).
    pub result: String,
}

impl ResultLabel {
    /// The label set `{result="<result>"}`.
    pub fn new(result: &str) -> Self {
        Self { result: result.to_string() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvLabel {
    env: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~75 s: covers a renew on loopback as well as a 30 s long poll.
    Histogram::new(exponential_buckets(0.0005, 2.5, 14))
}

/// Instruments of the write proposer (`node::proposer`).
#[derive(Clone, Debug)]
pub struct ProposalMetrics {
    /// Commands per proposed Raft entry.
    pub batch_size: Histogram,
    /// Seconds from `client_write` to its answer, for committed batches.
    pub commit_latency: Histogram,
    /// Proposed batches by result (`committed`, `not_leader`, `timeout`, `failed`).
    pub batches: Family<ResultLabel, Counter>,
}

impl Default for ProposalMetrics {
    fn default() -> Self {
        Self {
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            commit_latency: Histogram::new(exponential_buckets(0.0002, 2.0, 16)),
            batches: Family::default(),
        }
    }
}

/// Durations of the storage's durable syncs (every acknowledged append, vote, purge and snapshot waits
/// for one): sled's flush, then the `fdatasync` of the data file.
#[derive(Clone, Debug)]
pub struct StorageMetrics {
    /// Seconds in sled's flush.
    pub flush: Histogram,
    /// Seconds in `fdatasync` (data file and new blob files).
    pub fdatasync: Histogram,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self {
            flush: Histogram::new(exponential_buckets(0.00002, 2.0, 18)),
            fdatasync: Histogram::new(exponential_buckets(0.00002, 2.0, 18)),
        }
    }
}

impl discovery_storage::SyncObserver for StorageMetrics {
    fn observe(&self, flush: Duration, fdatasync: Duration) {
        self.flush.observe(flush.as_secs_f64());
        self.fdatasync.observe(fdatasync.as_secs_f64());
    }
}

/// Gauges filled at scrape time.
#[derive(Default)]
struct ScrapeGauges {
    term: Gauge,
    is_leader: Gauge,
    role: Family<RoleLabel, Gauge>,
    leader: Gauge,
    last_log: Gauge,
    last_applied: Gauge,
    snapshot: Gauge,
    purged: Gauge,
    voters: Gauge,
    learners: Gauge,
    matched: Family<PeerLabel, Gauge>,
    data_dir_bytes: Gauge,
    free_bytes: Gauge,
    low_space: Gauge,
    snapshot_received: Gauge,
    snapshot_receive_total: Gauge,
    instances: Family<EnvLabel, Gauge>,
    apps: Family<EnvLabel, Gauge>,
    lessor_active: Gauge,
    leases: Gauge,
    protected: Gauge,
    expected_renews: Gauge,
    renew_threshold: Gauge,
    renews_last_min: Gauge,
    evicted_this_min: Gauge,
    evict_cap: Gauge,
    poll_waiters: Gauge,
    poll_channels: Gauge,
}

/// The metrics of one node.
pub struct NodeMetrics {
    registry: Registry,
    gauges: ScrapeGauges,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: HistogramFamily<RouteLabel>,
    /// Leader changes seen by this node (a different leader id, or a new term with a leader).
    pub leader_changes: Counter,
    /// Snapshots by kind (`built` here, `installed` from the leader).
    pub snapshots: Family<ResultLabel, Counter>,
    /// Seconds from a change being applied to a waiting long poll answering it.
    pub poll_wake_latency: Histogram,
    /// TCP connections currently served.
    pub connections: Gauge,
    /// TCP connections turned away because `--max-connections` were open.
    pub connections_rejected: Counter,
    /// Serializes scrapes: refreshing the gauges and encoding them is one step.
    scrape: Mutex<()>,
}

impl NodeMetrics {
    /// A registry with every family registered; `apply`, `renews` and `proposals` are instruments owned by
    /// the registry state, the lessor and the proposer, registered here so one scrape shows them all.
    pub fn new(
        apply: &ApplyCounters,
        renews: &Family<ResultLabel, Counter>,
        proposals: &ProposalMetrics,
        storage: &StorageMetrics,
    ) -> Self {
        let mut registry = Registry::with_prefix("discovery");
        let gauges = ScrapeGauges::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_latency: HistogramFamily<RouteLabel> = Family::new_with_constructor(latency_histogram);
        let metrics = Self {
            gauges,
            http_requests,
            http_latency,
            leader_changes: Counter::default(),
            snapshots: Family::default(),
            poll_wake_latency: Histogram::new(exponential_buckets(0.0001, 2.5, 14)),
            connections: Gauge::default(),
            connections_rejected: Counter::default(),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        metrics.register_raft(&mut registry, proposals);
        registry.register("storage_flush_seconds", "Seconds in sled's flush per durable sync", storage.flush.clone());
        registry.register(
            "storage_fdatasync_seconds",
            "Seconds in fdatasync per durable sync (every acknowledged append waits for one)",
            storage.fdatasync.clone(),
        );
        metrics.register_registry(&mut registry, apply, renews);
        metrics.register_http(&mut registry);
        Self { registry, ..metrics }
    }

    fn register_raft(&self, r: &mut Registry, proposals: &ProposalMetrics) {
        let g = &self.gauges;
        r.register("raft_term", "Current Raft term", g.term.clone());
        r.register("raft_is_leader", "1 if this node is the Raft leader", g.is_leader.clone());
        r.register("raft_role", "1 for this node's current Raft role", g.role.clone());
        r.register("raft_leader_id", "Id of the current leader (0: none known)", g.leader.clone());
        r.register("raft_last_log_index", "Index of the last log entry", g.last_log.clone());
        r.register("raft_last_applied_index", "Index of the last applied entry", g.last_applied.clone());
        r.register("raft_snapshot_index", "Last log index included in the latest snapshot", g.snapshot.clone());
        r.register("raft_purged_index", "Last purged log index", g.purged.clone());
        r.register("raft_voters", "Voters in the effective membership", g.voters.clone());
        r.register("raft_learners", "Learners in the effective membership", g.learners.clone());
        r.register("raft_peer_matched_index", "Leader only: last index known replicated per peer", g.matched.clone());
        r.register("raft_leader_changes", "Leader changes seen by this node", self.leader_changes.clone());
        r.register("raft_snapshots", "Snapshots built or installed by this node", self.snapshots.clone());
        r.register("raft_proposal_batch_size", "Commands per proposed Raft entry", proposals.batch_size.clone());
        r.register(
            "raft_commit_latency_seconds",
            "Seconds from proposing an entry to its commit and apply (committed proposals)",
            proposals.commit_latency.clone(),
        );
        r.register("raft_proposals", "Proposed entries by result", proposals.batches.clone());
        r.register("storage_data_dir_bytes", "Bytes in the data dir (measured at scrape)", g.data_dir_bytes.clone());
        r.register(
            "storage_free_bytes",
            "Bytes free on the data dir's disk, as the free-space guard last read them (-1: unknown)",
            g.free_bytes.clone(),
        );
        r.register(
            "storage_low_space_alarm",
            "1 while free space is below --min-free-space and writes are refused",
            g.low_space.clone(),
        );
        r.register(
            "raft_snapshot_receive_bytes",
            "Bytes received of the snapshot being received from the leader (0: none)",
            g.snapshot_received.clone(),
        );
        r.register(
            "raft_snapshot_receive_total_bytes",
            "Size of the snapshot being received from the leader (0: none)",
            g.snapshot_receive_total.clone(),
        );
    }

    fn register_registry(&self, r: &mut Registry, apply: &ApplyCounters, renews: &Family<ResultLabel, Counter>) {
        let g = &self.gauges;
        r.register("registry_instances", "Registered instances per env", g.instances.clone());
        r.register("registry_apps", "Apps with at least one instance per env", g.apps.clone());
        r.register("registry_registers", "Register commands applied", apply.registers.clone());
        r.register("registry_cancels", "Cancel commands applied (instance removed)", apply.cancels.clone());
        r.register("registry_sets", "Set commands applied", apply.sets.clone());
        r.register("registry_evictions", "Instances removed by lease expiry", apply.evictions.clone());
        r.register("registry_renews", "Renews judged by this node as leader, by result", renews.clone());
        r.register("lessor_active", "1 while this node keeps the leases (confirmed leader)", g.lessor_active.clone());
        r.register("lessor_leases", "Leases held by the lessor", g.leases.clone());
        r.register("selfpreservation_protected", "1 while self-preservation stops evictions", g.protected.clone());
        r.register(
            "selfpreservation_expected_renews_per_minute",
            "Renews expected per minute for the current leases",
            g.expected_renews.clone(),
        );
        r.register(
            "selfpreservation_threshold_renews_per_minute",
            "Self-preservation starts below this many renews in the last minute",
            g.renew_threshold.clone(),
        );
        r.register(
            "selfpreservation_renews_last_minute",
            "Renews counted in the last full minute (-1 before the first full minute)",
            g.renews_last_min.clone(),
        );
        r.register(
            "lessor_evicted_this_minute",
            "Evictions proposed in the current minute",
            g.evicted_this_min.clone(),
        );
        r.register("lessor_evict_cap_per_minute", "Most evictions allowed in the current minute", g.evict_cap.clone());
        r.register("longpoll_waiters", "Long polls waiting for a change", g.poll_waiters.clone());
        r.register("longpoll_channels", "Apps with at least one waiting long poll", g.poll_channels.clone());
        r.register(
            "longpoll_wake_latency_seconds",
            "Seconds from a change being applied to a waiting long poll answering it",
            self.poll_wake_latency.clone(),
        );
    }

    fn register_http(&self, r: &mut Registry) {
        r.register(
            "http_requests",
            "HTTP requests by route, method, status and business code",
            self.http_requests.clone(),
        );
        r.register("http_request_duration_seconds", "HTTP request latency by route", self.http_latency.clone());
        r.register("http_connections", "Open TCP connections", self.connections.clone());
        r.register(
            "http_connections_rejected",
            "Connections turned away because --max-connections were open",
            self.connections_rejected.clone(),
        );
    }

    /// Count one answered request.
    fn observe_http(&self, route: &str, method: &str, status: u16, code: &str, took: Duration) {
        let labels =
            HttpLabels { route: route.to_string(), method: method.to_string(), status, code: code.to_string() };
        self.http_requests.get_or_create(&labels).inc();
        self.http_latency.get_or_create(&RouteLabel { route: route.to_string() }).observe(took.as_secs_f64());
    }

    /// Refresh the scrape-time gauges from the node's state and encode everything.
    pub fn render(&self, sources: &Sources<'_>, data_dir_bytes: u64) -> Result<String, std::fmt::Error> {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh_raft(sources.raft);
        self.refresh_registry(sources.registry, sources.lessor);
        self.gauges.data_dir_bytes.set(clamp(data_dir_bytes));
        let disk = sources.disk.status();
        self.gauges.free_bytes.set(disk.free_bytes.map_or(-1, clamp));
        self.gauges.low_space.set(i64::from(disk.low));
        let (received, total) = sources.snapshot_receive.get().unwrap_or((0, 0));
        self.gauges.snapshot_received.set(clamp(received));
        self.gauges.snapshot_receive_total.set(clamp(total));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    fn refresh_raft(&self, raft: &Raft) {
        let m = raft.metrics().borrow().clone();
        let g = &self.gauges;
        g.term.set(clamp(m.current_term));
        g.is_leader.set(i64::from(m.state == ServerState::Leader));
        g.role.clear();
        g.role.get_or_create(&RoleLabel { role: format!("{:?}", m.state) }).set(1);
        g.leader.set(m.current_leader.map_or(0, clamp));
        g.last_log.set(index(m.last_log_index));
        g.last_applied.set(index(m.last_applied.map(|l| l.index)));
        g.snapshot.set(index(m.snapshot.map(|l| l.index)));
        g.purged.set(index(m.purged.map(|l| l.index)));
        let membership = m.membership_config.membership();
        let voters = membership.voter_ids().count();
        g.voters.set(clamp(voters));
        g.learners.set(clamp(membership.nodes().count().saturating_sub(voters)));
        g.matched.clear();
        for (peer, matched) in m.replication.iter().flatten() {
            g.matched.get_or_create(&PeerLabel { peer: peer.to_string() }).set(index(matched.map(|l| l.index)));
        }
    }

    fn refresh_registry(&self, registry: &RegistryState, lessor: &LeaseKeeper) {
        let g = &self.gauges;
        let mut per_env: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        {
            let applied = registry.read();
            for (key, app) in applied.apps() {
                let entry = per_env.entry(key.env.clone()).or_default();
                entry.0 += 1;
                entry.1 += app.instances().count();
            }
        }
        g.apps.clear();
        g.instances.clear();
        for (env, (apps, instances)) in per_env {
            let label = EnvLabel { env };
            g.apps.get_or_create(&label).set(clamp(apps));
            g.instances.get_or_create(&label).set(clamp(instances));
        }
        let status = lessor.status();
        g.lessor_active.set(i64::from(status.active));
        g.leases.set(clamp(status.leases));
        let guard = status.guard;
        g.protected.set(i64::from(guard.is_some_and(|s| s.protected)));
        g.expected_renews.set(guard.map_or(0, |s| clamp(s.expected_per_min)));
        g.renew_threshold.set(guard.map_or(0, |s| clamp(s.threshold)));
        g.renews_last_min.set(guard.and_then(|s| s.renews_last_min).map_or(-1, clamp));
        g.evicted_this_min.set(guard.map_or(0, |s| clamp(s.evicted_this_min)));
        g.evict_cap.set(guard.map_or(0, |s| clamp(s.evict_cap)));
        g.poll_waiters.set(clamp(registry.hub().waiters()));
        g.poll_channels.set(clamp(registry.hub().channels()));
    }
}

/// What a scrape reads.
pub struct Sources<'a> {
    /// The Raft node.
    pub raft: &'a Raft,
    /// The applied registry.
    pub registry: &'a RegistryState,
    /// The lessor.
    pub lessor: &'a LeaseKeeper,
    /// The free-space guard.
    pub disk: &'a super::disk_guard::DiskGuard,
    /// The snapshot transfer under way, if any.
    pub snapshot_receive: &'a discovery_raft::ReceiveProgress,
}

fn clamp<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// An optional log index as a gauge value: -1 for none.
fn index(value: Option<u64>) -> i64 {
    value.map_or(-1, clamp)
}

/// The public `/metrics` route.
pub fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// `text/plain; version=0.0.4` as Prometheus expects.
const CONTENT_TYPE_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

async fn scrape(State(state): State<AppState>) -> Response {
    let dir = state.config.data_dir.clone();
    let bytes = tokio::task::spawn_blocking(move || dir_size(&dir)).await.unwrap_or(0);
    let sources = Sources {
        raft: &state.raft,
        registry: &state.registry,
        lessor: &state.lessor,
        disk: &state.disk,
        snapshot_receive: &state.snapshot_receive,
    };
    match state.metrics.render(&sources, bytes) {
        Ok(text) => ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], text).into_response(),
        Err(_) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response(),
    }
}

/// Total size of the regular files under `dir` (0 for what cannot be read: a metric, not a check).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else { continue };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Middleware counting every answered request by route (axum's `MatchedPath`, `unmatched` for 404s), method,
/// HTTP status and business code (the `kratos-status-code` header; empty when the route has none).
pub async fn track_http(State(metrics): State<Arc<NodeMetrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.headers().get(STATUS_CODE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    metrics.observe_http(&route, &method, response.status().as_u16(), code, started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_size_counts_nested_files_and_tolerates_missing_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("a"), [0u8; 10]).expect("write");
        std::fs::create_dir(tmp.path().join("sub")).expect("mkdir");
        std::fs::write(tmp.path().join("sub").join("b"), [0u8; 5]).expect("write");
        assert_eq!(dir_size(tmp.path()), 15);
        assert_eq!(dir_size(&tmp.path().join("missing")), 0);
    }

    #[test]
    fn http_counters_are_per_route_and_code() {
        let metrics = NodeMetrics::new(
            &ApplyCounters::default(),
            &Family::default(),
            &ProposalMetrics::default(),
            &StorageMetrics::default(),
        );
        metrics.observe_http("/discovery/fetch", "GET", 200, "-404", Duration::from_millis(1));
        metrics.observe_http("/discovery/fetch", "GET", 200, "-404", Duration::from_millis(1));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &metrics.registry).expect("encode");
        assert!(
            text.contains(
                r#"discovery_http_requests_total{route="/discovery/fetch",method="GET",status="200",code="-404"} 2"#
            ),
            "{text}"
        );
    }
}
