//! The leader's side of the internal routes (`/internal/*`, behind the cluster token): forwarded writes,
//! forwarded renews and read-index requests. Each is executed locally and never forwarded again, so a
//! request travels at most one hop.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::forward::renews::renew_local;
use super::internal_wire::{
    ReadIndexReply, RenewRequest, WriteReply, WriteRequest, WritesRequest, READ_INDEX_PATH, RENEW_PATH, WRITES_PATH,
    WRITE_PATH,
};
use super::proposer::ProposeError;
use super::AppState;

/// Routes of the internal API.
pub fn internal_routes() -> Router<AppState> {
    Router::new()
        .route(WRITE_PATH, post(write))
        .route(WRITES_PATH, post(writes))
        .route(RENEW_PATH, post(renew))
        .route(READ_INDEX_PATH, post(read_index))
}

fn is_member(state: &AppState, id: u64) -> bool {
    state.raft.metrics().borrow().membership_config.membership().get_node(&id).is_some()
}

fn write_reply(result: Result<super::proposer::Committed, ProposeError>) -> WriteReply {
    match result {
        Ok(committed) => WriteReply::Committed { outcome: committed.outcome, index: committed.index },
        Err(ProposeError::NotLeader { leader }) => WriteReply::NotLeader { leader: leader.map(|(_, addr)| addr) },
        Err(ProposeError::Overloaded) => WriteReply::Overloaded,
        Err(err) => WriteReply::Failed(err.to_string()),
    }
}

async fn write(State(state): State<AppState>, body: Bytes) -> Response {
    let request: WriteRequest = match decode(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    if !is_member(&state, request.from) {
        return encode(&WriteReply::NotMember);
    }
    if let Err(reason) = state.disk.check_write() {
        return encode(&WriteReply::Failed(format!("on the leader: {reason}")));
    }
    encode(&write_reply(state.proposer.propose(request.command).await))
}

async fn writes(State(state): State<AppState>, body: Bytes) -> Response {
    let request: WritesRequest = match decode(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    if !is_member(&state, request.from) {
        return encode(&vec![WriteReply::NotMember; request.commands.len()]);
    }
    if let Err(reason) = state.disk.check_write() {
        return encode(&vec![WriteReply::Failed(format!("on the leader: {reason}")); request.commands.len()]);
    }
    let results = state.proposer.propose_all(request.commands).await;
    encode(&results.into_iter().map(write_reply).collect::<Vec<_>>())
}

async fn renew(State(state): State<AppState>, body: Bytes) -> Response {
    match decode::<RenewRequest>(&body) {
        Ok(request) => encode(&request.keys.iter().map(|key| renew_local(&state, key)).collect::<Vec<_>>()),
        Err(response) => *response,
    }
}

async fn read_index(State(state): State<AppState>) -> Response {
    let reply = match state.raft.ensure_linearizable().await {
        Ok(log_id) => ReadIndexReply::Index(log_id.map_or(0, |id| id.index)),
        Err(_) => ReadIndexReply::NotLeader,
    };
    encode(&reply)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    discovery_raft::codec::decode(body)
        .map_err(|e| Box::new((StatusCode::BAD_REQUEST, format!("bad internal request body: {e}")).into_response()))
}

fn encode<T: Serialize>(reply: &T) -> Response {
    match discovery_raft::codec::encode(reply) {
        Ok(bytes) => bytes.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode reply: {e}")).into_response(),
    }
}
