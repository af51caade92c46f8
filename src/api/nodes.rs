//! `GET /discovery/nodes`: the discovery servers (the Raft members) with their status.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::Envelope;
use crate::node::membership::current_membership;
use crate::node::AppState;

/// Node status "up" (spec §3.4).
pub const NODE_UP: u8 = 0;
/// Node status "lost".
pub const NODE_LOST: u8 = 1;

/// One server as the original reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// `host:port`.
    pub addr: String,
    /// 0 up, 1 lost.
    pub status: u8,
    /// Zone of the server.
    pub zone: String,
}

/// Routes of this file.
pub fn routes() -> Router<AppState> {
    Router::new().route("/discovery/nodes", get(nodes))
}

async fn nodes(State(state): State<AppState>) -> Envelope<Vec<NodeView>> {
    let membership = current_membership(&state.raft, &state.config, state.registry.infra_cursor());
    let metrics = state.raft.metrics().borrow().clone();
    let view = membership
        .members()
        .iter()
        .map(|m| {
            // On the leader a member is up once it has acknowledged replication; elsewhere the member
            // list itself is all this node knows, and a member is reported up.
            let up = match &metrics.replication {
                Some(progress) => m.id == metrics.id || progress.get(&m.id).is_some_and(|p| p.is_some()),
                None => true,
            };
            NodeView { addr: m.addr.clone(), status: if up { NODE_UP } else { NODE_LOST }, zone: m.zone.clone() }
        })
        .collect();
    Envelope::ok_data(view)
}
