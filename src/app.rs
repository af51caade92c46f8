//! The application: a node (`node`) serving the bilibili API (`api`, over the `service` layer) and the
//! console (`ui`). The one place that knows all of them: the node never imports the API, the API sees only
//! the service.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use discovery_storage::SledLogStore;
use openraft::storage::RaftLogStorage;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::node::disk_guard::FreeSpace;
use crate::node::{AppState, Frontend, NodeError, RunningNode};
use crate::raft_types::TypeConfig;
use crate::service::Service;

/// What every node of this application serves to clients.
pub const FRONTEND: Frontend = Frontend { routes: client_routes, refusal: crate::api::refusal };

/// The API (behind `--api-token` for writes, when set) and the console.
fn client_routes(state: &AppState) -> Router {
    let api_token = state.config.api_token.clone().map(Arc::<str>::from);
    let service = Service::new(state.clone());
    crate::api::routes(service.clone(), api_token).merge(crate::ui::routes().with_state(service))
}

/// Starts a node on an already bound listener (tests pass `127.0.0.1:0`).
pub async fn start(config: Config, listener: TcpListener) -> Result<RunningNode, NodeError> {
    crate::node::start(config, listener, FRONTEND).await
}

/// [`start`] with fault injection (see [`crate::node::start_with`]).
pub async fn start_with<LS, W>(
    config: Config,
    listener: TcpListener,
    free_space: Arc<dyn FreeSpace>,
    wrap_log_store: W,
) -> Result<RunningNode, NodeError>
where
    LS: RaftLogStorage<TypeConfig>,
    W: FnOnce(SledLogStore<TypeConfig>) -> LS,
{
    crate::node::start_with(config, listener, free_space, wrap_log_store, FRONTEND).await
}

/// Starts a node and runs it until `signal` resolves, then stops it cleanly.
pub async fn run(config: Config, listener: TcpListener, signal: impl Future<Output = ()>) -> Result<(), NodeError> {
    crate::node::run(config, listener, signal, FRONTEND).await
}

/// Every route of a node, as served (for tests that call the router directly).
pub fn router(state: AppState) -> Router {
    crate::node::router(state, FRONTEND)
}
