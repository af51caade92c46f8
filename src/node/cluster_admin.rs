//! Run-time membership changes over HTTP: `POST /admin/cluster/add`, `/admin/cluster/remove`,
//! `/admin/cluster/promote` and `/admin/cluster/demote` (JSON bodies, behind the cluster token).
//!
//! These routes only parse the body, call the service (`service::membership`, where the sequence and its
//! invariants live) and answer `{ok, message}` with the status a refusal maps to: 400 invalid, 403
//! forbidden, 404 not a member, 409 conflict, 502 the node to add cannot be asked, 503 not the leader, 504
//! did not catch up, 500 Raft failed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::service::membership::{ChangeRefusal, NewMember};
use crate::service::Service;

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
    let new = NewMember { id: req.id, addr: req.addr, zone: req.zone, learner: req.learner };
    answer(Service::new(state).add_member(&new).await)
}

/// `POST /admin/cluster/promote`: a learner that has caught up becomes a voter.
async fn promote(State(state): State<AppState>, Json(req): Json<RemoveMember>) -> Response {
    answer(Service::new(state).promote_member(req.id).await)
}

/// `POST /admin/cluster/demote`: a voter becomes a learner (keeps replicating and serving reads, stops voting).
async fn demote(State(state): State<AppState>, Json(req): Json<RemoveMember>) -> Response {
    answer(Service::new(state).demote_member(req.id).await)
}

async fn remove(State(state): State<AppState>, Json(req): Json<RemoveMember>) -> Response {
    answer(Service::new(state).remove_member(req.id).await)
}

fn answer(outcome: Result<String, ChangeRefusal>) -> Response {
    let (status, message) = match outcome {
        Ok(message) => (StatusCode::OK, message),
        Err(refusal) => (status_of(&refusal), refusal.to_string()),
    };
    (status, Json(ChangeAnswer { ok: status == StatusCode::OK, message })).into_response()
}

fn status_of(refusal: &ChangeRefusal) -> StatusCode {
    match refusal {
        ChangeRefusal::Invalid(_) => StatusCode::BAD_REQUEST,
        ChangeRefusal::Forbidden(_) => StatusCode::FORBIDDEN,
        ChangeRefusal::NotFound(_) => StatusCode::NOT_FOUND,
        ChangeRefusal::Conflict(_) => StatusCode::CONFLICT,
        ChangeRefusal::Unreachable(_) => StatusCode::BAD_GATEWAY,
        ChangeRefusal::NotLeader(_) => StatusCode::SERVICE_UNAVAILABLE,
        ChangeRefusal::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        ChangeRefusal::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
