//! Operator routes: `GET /admin/status` (this node's Raft view) and `GET /healthz` (ready to serve).
//!
//! `/healthz` answers 200 only when the Raft core runs, the node is not stopping, its disk has the free
//! space writes need, a leader is known and reached (not `stale`: out of contact for `--stale-after`) and this
//! node has applied everything it knows to be committed, so
//! a load balancer never sends clients to a node that is dead, full or still replaying its log. Every 503
//! says why in its body (one line).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;

/// Routes that need the cluster token (when one is set).
pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/admin/status", get(status))
        .route("/admin/digest", get(digest))
        .route("/admin/snapshot", axum::routing::post(snapshot))
}

/// `POST /admin/snapshot`: build a snapshot now (operators before a maintenance; the scale benchmark to time
/// one). Answers at once with the snapshot index before the request; `/admin/status` and the metrics show
/// the new one when it is built. The snapshot covers at least what was applied when the request came: if a
/// build was already running (openraft 0.9 then drops the trigger silently), another follows it.
async fn snapshot(State(state): State<AppState>) -> Response {
    let (before, applied) = {
        let m = state.raft.metrics().borrow().clone();
        (m.snapshot.map(|l| l.index), m.last_applied.map(|l| l.index))
    };
    match state.raft.trigger().snapshot().await {
        Ok(()) => {
            if let Some(applied) = applied {
                tokio::spawn(snapshot_covering(state.raft.clone(), applied));
            }
            tracing::info!(snapshot_index_before = ?before, "snapshot requested by an operator");
            (StatusCode::ACCEPTED, Json(serde_json::json!({ "requested": true, "snapshot_index_before": before })))
                .into_response()
        }
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("cannot request a snapshot: {err}\n")).into_response(),
    }
}

/// Most builds [`snapshot_covering`] waits through before it gives up, and how long it waits for each.
const COVERING_ATTEMPTS: usize = 4;
const COVERING_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Trigger snapshots until one covers `applied`: each time the snapshot index moves and is still short
/// (the build that ran when the operator asked), trigger again. Ends when covered, after
/// [`COVERING_ATTEMPTS`] builds, on a wait of [`COVERING_WAIT`] without a new snapshot, or at shutdown.
async fn snapshot_covering(raft: crate::raft_types::Raft, applied: u64) {
    for _ in 0..COVERING_ATTEMPTS {
        let seen = raft.metrics().borrow().snapshot.map(|l| l.index);
        if seen.is_some_and(|index| index >= applied) {
            return;
        }
        let moved =
            raft.wait(Some(COVERING_WAIT)).metrics(|m| m.snapshot.map(|l| l.index) != seen, "a new snapshot").await;
        let Ok(m) = moved else { return };
        if m.snapshot.is_some_and(|l| l.index >= applied) {
            return;
        }
        tracing::info!(snapshot_index = ?m.snapshot.map(|l| l.index), applied, "the snapshot built does not cover the request yet; building another");
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
    }
}

/// Routes open to anyone (probes).
pub fn health_routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// One member of the current membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    /// Node id.
    pub id: u64,
    /// Advertised address.
    pub addr: String,
    /// Zone.
    pub zone: String,
    /// Whether it votes (false for learners: read replicas).
    pub voter: bool,
    /// `leader`, `voter` or `learner`.
    #[serde(default)]
    pub role: String,
    /// Listed to clients in `infra.discovery` and `/discovery/nodes` (it can serve), as this node judges.
    #[serde(default)]
    pub serving: bool,
    /// It answered this node's liveness probes within the window (always true for this node itself).
    #[serde(default)]
    pub reachable: bool,
    /// Its last applied log index, as it last reported it (`None`: not known here).
    #[serde(default)]
    pub applied: Option<u64>,
    /// Entries it is behind what this node has applied (`None`: not known).
    #[serde(default)]
    pub lag_entries: Option<u64>,
    /// How long ago this node applied the oldest entry it is missing, in milliseconds (0: it has all).
    #[serde(default)]
    pub lag_ms: Option<u64>,
}

/// The body of `/admin/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    /// This node's id.
    pub id: u64,
    /// This node's advertised address.
    pub addr: String,
    /// This node's zone.
    pub zone: String,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub role: String,
    /// Current leader's id, if known.
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last applied entry.
    pub last_applied: Option<u64>,
    /// Last log index in this node's latest snapshot.
    #[serde(default)]
    pub snapshot_index: Option<u64>,
    /// Members of the effective membership.
    pub membership: Vec<MemberView>,
    /// Why this node cannot serve, if it cannot (`None`: healthy).
    #[serde(default)]
    pub problem: Option<String>,
    /// The free-space guard's last reading.
    #[serde(default)]
    pub disk: Option<super::disk_guard::DiskStatus>,
    /// A snapshot being received from the leader (this node is catching up by snapshot), if any.
    #[serde(default)]
    pub snapshot_receive: Option<SnapshotReceiveView>,
}

/// Progress of a snapshot transfer from the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotReceiveView {
    /// Bytes received so far.
    pub received_bytes: u64,
    /// Size of the snapshot.
    pub total_bytes: u64,
}

/// Build the status view from openraft's metrics.
pub fn status_view(state: &AppState) -> StatusView {
    let m = state.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let problem = local_problem(state)
        .or_else(|| m.running_state.as_ref().err().map(|fatal| format!("the Raft core stopped: {fatal}")));
    StatusView {
        id: m.id,
        addr: state.config.addr.clone(),
        zone: state.config.zone.clone(),
        role: format!("{:?}", m.state),
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        last_applied: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        membership: membership
            .nodes()
            .map(|(id, node)| member_view(state, &m, *id, node, voters.contains(id)))
            .collect(),
        problem,
        disk: Some(state.disk.status()),
        snapshot_receive: state
            .snapshot_receive
            .get()
            .map(|(received_bytes, total_bytes)| SnapshotReceiveView { received_bytes, total_bytes }),
    }
}

/// One member as this node sees it: its role, whether it serves, and how far it lags (from its last liveness
/// report, or this node's own figures for itself; on the leader, openraft's replication progress when newer).
fn member_view(
    state: &AppState,
    m: &openraft::RaftMetrics<u64, discovery_raft::ClusterNode>,
    id: u64,
    node: &discovery_raft::ClusterNode,
    voter: bool,
) -> MemberView {
    let role = match (m.current_leader == Some(id), voter) {
        (true, _) => "leader",
        (false, true) => "voter",
        (false, false) => "learner",
    };
    let me = id == m.id;
    let (reachable, reported) = if me {
        (true, m.last_applied.map(|l| l.index))
    } else {
        state
            .liveness
            .observation(id)
            .map_or((false, None), |(reachable, report)| (reachable, report.and_then(|r| r.applied)))
    };
    // On the leader, what it has replicated to the member is fresher than the member's last report.
    let replicated = m.replication.as_ref().and_then(|r| r.get(&id)).and_then(|l| l.map(|l| l.index));
    let applied = reported.max(replicated).or(reported);
    let committed = m.last_applied.map(|l| l.index);
    let lag_entries = applied.map(|a| committed.unwrap_or(0).saturating_sub(a));
    let lag_ms = lag_entries.map(|_| {
        let lag = state.applied_timeline.lag_behind(applied, tokio::time::Instant::now());
        u64::try_from(lag.as_millis()).unwrap_or(u64::MAX)
    });
    MemberView {
        id,
        addr: node.addr.clone(),
        zone: node.zone.clone(),
        voter,
        role: role.to_string(),
        serving: state.liveness.is_listed(id),
        reachable,
        applied,
        lag_entries,
        lag_ms,
    }
}

/// What stops this node from serving that it knows without asking Raft: a dead core, a stop in
/// progress, a disk below the free-space minimum.
pub(crate) fn local_problem(state: &AppState) -> Option<String> {
    if let Some(cause) = state.health.fatal() {
        return Some(format!("the Raft core stopped: {cause}"));
    }
    if state.health.is_stopping() {
        return Some("shutting down".to_string());
    }
    state.disk.check_write().err()
}

async fn status(State(state): State<AppState>) -> Json<StatusView> {
    Json(status_view(&state))
}

/// The body of `/admin/digest`: enough to prove two replicas hold the same registry.
#[derive(Debug, Serialize)]
pub struct DigestView {
    /// Index of the last applied entry (read after the digest; equal on quiet, converged replicas).
    pub last_applied: Option<u64>,
    /// Hex FNV-1a digest of every app, cursor, instance and revision.
    pub digest: String,
    /// Number of instances.
    pub instances: usize,
}

async fn digest(State(state): State<AppState>) -> Json<DigestView> {
    let (digest, instances) = {
        let registry = state.registry.read();
        (registry.digest(), registry.len())
    };
    let last_applied = state.raft.metrics().borrow().last_applied.map(|l| l.index);
    Json(DigestView { last_applied, digest: format!("{digest:016x}"), instances })
}

async fn healthz(State(state): State<AppState>) -> Response {
    let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
    if let Some(problem) = local_problem(&state) {
        return unavailable(problem);
    }
    let metrics = state.raft.metrics().borrow().clone();
    if let Err(fatal) = &metrics.running_state {
        return unavailable(format!("the Raft core stopped: {fatal}"));
    }
    // A core that does not answer is not running (or is stuck on its storage), whatever its last metrics said.
    let committed = match committed_index(&state).await {
        Ok(committed) => committed,
        Err(why) => return unavailable(why),
    };
    if let Some(away) = state.liveness.out_of_contact_for().filter(|away| *away >= state.config.stale_after) {
        return unavailable(format!(
            "stale: no contact with the leader for {:.1} s (cut off from the voters?); reads answer from the last \
             state, writes are refused",
            away.as_secs_f64()
        ));
    }
    match metrics.current_leader {
        None => unavailable("no leader".to_string()),
        Some(_) if !applies_within(&state, committed, APPLY_LAG).await => {
            unavailable("applying the committed log".to_string())
        }
        Some(_) => (StatusCode::OK, "ok\n").into_response(),
    }
}

/// Longest the Raft core may take to answer a state lookup before it counts as not answering.
pub const CORE_ANSWER: std::time::Duration = std::time::Duration::from_secs(1);

/// What this node knows to be committed, asked of the Raft core; `Err` says why it could not answer.
pub async fn committed_index(state: &AppState) -> Result<Option<u64>, String> {
    match tokio::time::timeout(CORE_ANSWER, state.raft.with_raft_state(|s| s.committed.map(|l| l.index))).await {
        Ok(Ok(committed)) => Ok(committed),
        Ok(Err(err)) => Err(format!("the Raft core is not running: {err}")),
        Err(_) => Err(format!("the Raft core does not answer within {CORE_ANSWER:?} (stuck on its storage?)")),
    }
}

/// How far behind its own commit index a node may apply and still count as current: a node under a steady
/// write load is always a few entries behind for a moment, one replaying its log is behind for seconds.
pub const APPLY_LAG: std::time::Duration = std::time::Duration::from_millis(200);

/// True if this node has applied `committed` (what it knew committed a moment ago) or does so within `lag`.
pub async fn applies_within(state: &AppState, committed: Option<u64>, lag: std::time::Duration) -> bool {
    let Some(committed) = committed else { return true };
    let mut applied = state.registry.applied_index();
    let reached = tokio::time::timeout(lag, applied.wait_for(|at| *at >= committed)).await;
    matches!(reached, Ok(Ok(_)))
}
