//! `GET /discovery/fetch`, `/discovery/fetchs` and `/discovery/fetch/all`: answered from this node's
//! applied state; `consistent=1` first makes the answer linearizable.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::envelope::encoded_response;
use super::fetch_cache::FetchCache;
use super::{ApiError, ApiState, ArgFetch, ArgFetchs, Bind, Envelope};
use crate::registry::infra::INFRA_APPID;
use crate::registry::model::Instance;
use crate::registry::view::InstanceInfo;
use crate::service::Service;

/// Routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/discovery/fetch", get(fetch))
        .route("/discovery/fetch/all", get(fetch_all))
        .route("/discovery/fetchs", get(fetchs))
}

async fn fetch(
    State(service): State<Service>,
    State(cache): State<std::sync::Arc<FetchCache>>,
    Bind(arg): Bind<ArgFetch>,
) -> Result<Response, ApiError> {
    if arg.consistent {
        service.linearize().await?;
    }
    if arg.appid == INFRA_APPID {
        return service
            .read(|view| view.fetch(&arg.env, &arg.appid, arg.zone.as_deref(), arg.status))
            .map(|info| Envelope::ok_data(info).into_response())
            .ok_or_else(ApiError::not_found_null);
    }
    let encoded =
        service.read_registry(|registry| cache.fetch(registry, &arg.env, &arg.appid, arg.zone.as_deref(), arg.status));
    match encoded {
        Ok(Some(body)) => Ok(encoded_response(0, body)),
        Ok(None) => Err(ApiError::not_found_null()),
        Err(err) => {
            tracing::error!(%err, "fetch answer serialization failed");
            Err(ApiError::ServerErr("response serialization failed".into()))
        }
    }
}

async fn fetchs(
    State(service): State<Service>,
    Bind(arg): Bind<ArgFetchs>,
) -> Result<Envelope<BTreeMap<String, InstanceInfo>>, ApiError> {
    if arg.consistent {
        service.linearize().await?;
    }
    let found = service.read(|view| view.fetchs(&arg.env, &arg.appids, arg.zone.as_deref(), arg.status));
    Ok(Envelope::ok_data(found))
}

async fn fetch_all(State(service): State<Service>) -> Envelope<BTreeMap<String, Vec<Instance>>> {
    Envelope::ok_data(service.read_registry(|registry| registry.fetch_all()))
}
