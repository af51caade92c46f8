//! `GET /discovery/fetch`, `/discovery/fetchs` and `/discovery/fetch/all`: answered from this node's
//! applied state; `consistent=1` first makes the answer linearizable.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::envelope::encoded_response;
use super::{ApiError, ArgFetch, ArgFetchs, Bind, Envelope};
use crate::node::AppState;
use crate::registry::infra::INFRA_APPID;
use crate::registry::model::Instance;
use crate::registry::view::{InstanceInfo, View};

/// Routes of this file.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/discovery/fetch", get(fetch))
        .route("/discovery/fetchs", get(fetchs))
        .route("/discovery/fetch/all", get(fetch_all))
}

async fn fetch(State(state): State<AppState>, Bind(arg): Bind<ArgFetch>) -> Result<Response, ApiError> {
    if arg.consistent {
        linearize(&state).await?;
    }
    if arg.appid == INFRA_APPID {
        let membership = state.served_membership();
        let registry = state.registry.read();
        return View::new(&registry, &membership)
            .fetch(&arg.env, &arg.appid, arg.zone.as_deref(), arg.status)
            .map(|info| Envelope::ok_data(info).into_response())
            .ok_or_else(ApiError::not_found_null);
    }
    let registry = state.registry.read();
    match state.fetch_cache.fetch(&registry, &arg.env, &arg.appid, arg.zone.as_deref(), arg.status) {
        Ok(Some(body)) => Ok(encoded_response(0, body)),
        Ok(None) => Err(ApiError::not_found_null()),
        Err(err) => {
            tracing::error!(%err, "fetch answer serialization failed");
            Err(ApiError::ServerErr("response serialization failed".into()))
        }
    }
}

async fn fetchs(
    State(state): State<AppState>,
    Bind(arg): Bind<ArgFetchs>,
) -> Result<Envelope<BTreeMap<String, InstanceInfo>>, ApiError> {
    if arg.consistent {
        linearize(&state).await?;
    }
    let membership = state.served_membership();
    let registry = state.registry.read();
    let found = View::new(&registry, &membership).fetchs(&arg.env, &arg.appids, arg.zone.as_deref(), arg.status);
    Ok(Envelope::ok_data(found))
}

async fn fetch_all(State(state): State<AppState>) -> Envelope<BTreeMap<String, Vec<Instance>>> {
    Envelope::ok_data(state.registry.read().fetch_all())
}

/// Wait until this node's state reflects every write acknowledged before the call (read index).
async fn linearize(state: &AppState) -> Result<(), ApiError> {
    state.linearize().await.map_err(super::write::route_error)
}
