//! Run-time membership changes: `POST /admin/cluster/add`, `/admin/cluster/remove`, `/admin/cluster/promote`
//! and `/admin/cluster/demote` (JSON bodies, behind the cluster token), executed on the leader.
//!
//! Invariants:
//! - An add is refused before anything changes unless the id and the address are free and the node at the address
//!   is the id claimed (see [`super::member_checks`]), and on a node with `--api-token` but no cluster token (its
//!   peer routes stay closed, see [`super::route_gate`], so a peer could never reach it).
//! - One change at a time per node: a second change while one runs gets 409 at once (openraft would
//!   also refuse overlapping joint configurations; this gives the operator a clear message).
//! - Add = learner first, then wait until the leader has replicated to it the entry that added it (by log
//!   or snapshot), then promotion to voter: a new member never weakens the quorum while it is empty or
//!   unreachable. A learner that does not catch up within `CATCH_UP_TIMEOUT` is removed again.
//! - An add with `learner: true` stops after the catch-up: the node stays a read replica (an openraft learner:
//!   it receives the log and serves reads, and never counts toward a quorum).
//! - Promote makes a learner a voter only once it has caught up (same wait as an add); demote makes a voter a
//!   learner (openraft `RemoveVoters` keeps it as a learner) and is refused for the last voter.
//! - Remove drops the node from the membership entirely (voter and node), so it stops receiving the log.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use discovery_raft::ClusterNode;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::admin::status_view;
use super::member_checks;
use super::AppState;

/// Body of `/admin/cluster/add`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMember {
    /// Id of the node to add (as started with `--id`).
    pub id: u64,
    /// Its advertised address.
    pub addr: String,
    /// Its zone.
    pub zone: String,
    /// Stop once it caught up: keep it as a learner (a read replica) instead of making it a voter.
    #[serde(default)]
    pub learner: bool,
}

/// Body of `/admin/cluster/remove`, `/admin/cluster/promote` and `/admin/cluster/demote`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveMember {
    /// Id of the node to remove.
    pub id: u64,
}

/// Answer of both routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeAnswer {
    /// Whether the change was committed.
    pub ok: bool,
    /// What happened, for the operator.
    pub message: String,
}

/// Routes of this file.
pub fn cluster_routes() -> Router<AppState> {
    Router::new()
        .route("/admin/cluster/add", post(add))
        .route("/admin/cluster/remove", post(remove))
        .route("/admin/cluster/promote", post(promote))
        .route("/admin/cluster/demote", post(demote))
}

async fn add(State(state): State<AppState>, Json(req): Json<AddMember>) -> Response {
    if req.id == 0 || req.addr.trim().is_empty() {
        return answer(StatusCode::BAD_REQUEST, "id must be positive and addr non-empty".into());
    }
    if state.config.api_token.is_some() && state.config.cluster_token.is_none() {
        return answer(
            StatusCode::FORBIDDEN,
            format!(
                "node {} has --api-token but no --cluster-token: it cannot have peers (its /raft and /internal routes \
                 would let anyone write without the API token); restart every member with the same --cluster-token, \
                 then add node {}",
                state.config.id, req.id
            ),
        );
    }
    let Ok(_change) = state.membership_change.try_lock() else {
        return answer(StatusCode::CONFLICT, "another membership change is in progress; retry when it is done".into());
    };
    if let Err((status, message)) = member_checks::not_taken(&status_view(&state).membership, &req) {
        return answer(status, message);
    }
    let token = state.config.cluster_token.as_deref();
    if let Err((status, message)) =
        member_checks::is_who_it_claims(&req, token, state.config.id, &state.config.addr).await
    {
        return answer(status, message);
    }
    let node = ClusterNode { addr: req.addr.clone(), zone: req.zone.clone() };
    // Not openraft's blocking add: it deems a learner caught up while its lag is under
    // `replication_lag_threshold` (5000 entries), i.e. at once in a young cluster, even if unreachable.
    let added = match state.raft.add_learner(req.id, node, false).await {
        Ok(resp) => resp.log_id.index,
        Err(err) => return change_failed(&state, "add learner", err),
    };
    if !learner_caught_up(&state, req.id, added).await {
        // Take the learner out again so a typo does not leave a node the leader keeps replicating to.
        let ids = BTreeSet::from([req.id]);
        if let Err(err) = state.raft.change_membership(ChangeMembers::RemoveNodes(ids), false).await {
            tracing::warn!(id = req.id, error = %err, "could not remove the learner that did not catch up");
        }
        return answer(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "node {} at {} did not catch up within {CATCH_UP_TIMEOUT:?} (is it running with --join and reachable?); it was not added",
                req.id, req.addr
            ),
        );
    }
    if req.learner {
        tracing::info!(id = req.id, addr = %req.addr, zone = %req.zone, "membership change: node added as a learner (read replica)");
        return answer(StatusCode::OK, format!("node {} at {} is a learner (read replica)", req.id, req.addr));
    }
    tracing::info!(id = req.id, addr = %req.addr, "learner caught up; promoting to voter");
    make_voter(&state, req.id, &req.addr).await
}

async fn make_voter(state: &AppState, id: u64, addr: &str) -> Response {
    match state.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false).await {
        Ok(resp) => {
            tracing::info!(id, index = resp.log_id.index, "membership change: node made a voter");
            answer(StatusCode::OK, format!("node {id} at {addr} is a voter"))
        }
        Err(err) => change_failed(state, "promote to voter", err),
    }
}

/// `POST /admin/cluster/promote`: a learner that has caught up becomes a voter.
async fn promote(State(state): State<AppState>, Json(req): Json<RemoveMember>) -> Response {
    let Ok(_change) = state.membership_change.try_lock() else {
        return answer(StatusCode::CONFLICT, "another membership change is in progress; retry when it is done".into());
    };
    let view = status_view(&state);
    let Some(member) = view.membership.iter().find(|m| m.id == req.id) else {
        return answer(StatusCode::NOT_FOUND, format!("node {} is not a member", req.id));
    };
    if member.voter {
        return answer(StatusCode::OK, format!("node {} at {} is already a voter", req.id, member.addr));
    }
    let target = state.raft.metrics().borrow().last_log_index.unwrap_or(0);
    if !learner_caught_up(&state, req.id, target).await {
        return answer(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "node {} at {} did not catch up to index {target} within {CATCH_UP_TIMEOUT:?}; it stays a learner",
                req.id, member.addr
            ),
        );
    }
    make_voter(&state, req.id, &member.addr).await
}

/// `POST /admin/cluster/demote`: a voter becomes a learner (keeps replicating and serving reads, stops voting).
async fn demote(State(state): State<AppState>, Json(req): Json<RemoveMember>) -> Response {
    let Ok(_change) = state.membership_change.try_lock() else {
        return answer(StatusCode::CONFLICT, "another membership change is in progress; retry when it is done".into());
    };
    let view = status_view(&state);
    let Some(member) = view.membership.iter().find(|m| m.id == req.id) else {
        return answer(StatusCode::NOT_FOUND, format!("node {} is not a member", req.id));
    };
    if !member.voter {
        return answer(StatusCode::OK, format!("node {} at {} is already a learner", req.id, member.addr));
    }
    if view.membership.iter().filter(|m| m.voter).count() == 1 {
        return answer(
            StatusCode::CONFLICT,
            format!("node {} is the last voter; promote another member first", req.id),
        );
    }
    // openraft's RemoveVoters keeps the removed voters as learners (`retain`).
    match state.raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([req.id])), true).await {
        Ok(resp) => {
            tracing::info!(id = req.id, index = resp.log_id.index, "membership change: node demoted to learner");
            answer(StatusCode::OK, format!("node {} at {} is a learner (read replica)", req.id, member.addr))
        }
        Err(err) => change_failed(&state, "demote", err),
    }
}

async fn remove(State(state): State<AppState>, Json(req): Json<RemoveMember>) -> Response {
    let Ok(_change) = state.membership_change.try_lock() else {
        return answer(StatusCode::CONFLICT, "another membership change is in progress; retry when it is done".into());
    };
    let view = status_view(&state);
    let Some(member) = view.membership.iter().find(|m| m.id == req.id) else {
        return answer(StatusCode::NOT_FOUND, format!("node {} is not a member", req.id));
    };
    let ids = BTreeSet::from([req.id]);
    let change = if member.voter { ChangeMembers::RemoveVoters(ids) } else { ChangeMembers::RemoveNodes(ids) };
    match state.raft.change_membership(change, false).await {
        Ok(resp) => {
            tracing::info!(id = req.id, index = resp.log_id.index, "membership change: node removed");
            answer(StatusCode::OK, format!("node {} removed", req.id))
        }
        Err(err) => change_failed(&state, "remove", err),
    }
}

/// How long a new learner may take to replicate the log (or install a snapshot) before the add gives up.
pub const CATCH_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Wait until the leader has replicated to `id` at least up to `index` (the entry that added it).
async fn learner_caught_up(state: &AppState, id: u64, index: u64) -> bool {
    state
        .raft
        .wait(Some(CATCH_UP_TIMEOUT))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id))
                    .is_some_and(|matched| matched.is_some_and(|log_id| log_id.index >= index))
            },
            "learner caught up",
        )
        .await
        .is_ok()
}

fn change_failed(state: &AppState, what: &str, err: RaftError<u64, ClientWriteError<u64, ClusterNode>>) -> Response {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(fwd)) => {
            let leader = fwd.leader_node.map_or_else(|| "unknown".to_string(), |n| n.addr);
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not the leader; send the change to the leader at {leader}"),
            )
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            answer(StatusCode::CONFLICT, format!("{what} refused: {e}"))
        }
        other => {
            tracing::warn!(node = state.config.id, error = %other, "{what} failed");
            answer(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} failed: {other}"))
        }
    }
}

fn answer(status: StatusCode, message: String) -> Response {
    (status, Json(ChangeAnswer { ok: status == StatusCode::OK, message })).into_response()
}
