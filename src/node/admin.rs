//! Operator routes: `GET /admin/status` (this node's Raft view) and `GET /healthz` (ready to serve).
//!
//! `/healthz` answers 200 only when a leader is known and this node has applied everything it knows to be
//! committed, so a load balancer never sends reads to a node that is still replaying its log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;

/// Routes that need the cluster token (when one is set).
pub fn admin_routes() -> Router<AppState> {
    Router::new().route("/admin/status", get(status)).route("/admin/digest", get(digest))
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
    /// Whether it votes (false for learners).
    pub voter: bool,
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
    /// Members of the effective membership.
    pub membership: Vec<MemberView>,
}

/// Build the status view from openraft's metrics.
pub fn status_view(state: &AppState) -> StatusView {
    let m = state.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    StatusView {
        id: m.id,
        addr: state.config.addr.clone(),
        zone: state.config.zone.clone(),
        role: format!("{:?}", m.state),
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        last_applied: m.last_applied.map(|l| l.index),
        membership: membership
            .nodes()
            .map(|(id, node)| MemberView {
                id: *id,
                addr: node.addr.clone(),
                zone: node.zone.clone(),
                voter: voters.contains(id),
            })
            .collect(),
    }
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
    let metrics = state.raft.metrics().borrow().clone();
    let committed = state.raft.with_raft_state(|s| s.committed.map(|l| l.index)).await.ok().flatten();
    let applied = metrics.last_applied.map(|l| l.index);
    match (metrics.current_leader, committed) {
        (Some(_), c) if applied >= c => (StatusCode::OK, "ok\n").into_response(),
        (None, _) => (StatusCode::SERVICE_UNAVAILABLE, "no leader\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "applying the committed log\n").into_response(),
    }
}
