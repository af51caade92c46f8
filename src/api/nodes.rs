//! `GET /discovery/nodes`: the discovery servers that can serve (see `node::liveness`), each with status up.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::{ApiState, Envelope};
use crate::service::Service;

/// Node status "up" (spec §3.4). The original's "lost" (1) is never sent: members that cannot serve are
/// left out of the list.
pub(crate) const NODE_UP: u8 = 0;

/// One server as the original reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct NodeView {
    /// `host:port`.
    pub addr: String,
    /// 0 up, 1 lost.
    pub status: u8,
    /// Zone of the server.
    pub zone: String,
}

/// Routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route("/discovery/nodes", get(nodes))
}

/// The members that can serve (the same list as `infra.discovery`), each up: a member that cannot serve is
/// left out rather than reported lost, so a client that takes this list never picks a dead node.
async fn nodes(State(service): State<Service>) -> Envelope<Vec<NodeView>> {
    let membership = service.members();
    let view = membership
        .members()
        .iter()
        .map(|m| NodeView { addr: m.addr.clone(), status: NODE_UP, zone: m.zone.clone() })
        .collect();
    Envelope::ok_data(view)
}
