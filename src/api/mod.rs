//! The bilibili/discovery HTTP API: parameter binding, validated arguments, the response envelopes and the
//! error codes (spec §1–§2). Handlers build on these and stay plumbing.
//!
//! # Layout
//! - [`urlencoded`]: Go-compatible decoding of query strings and form bodies.
//! - [`params`]: [`Params`], the `req.Form` multimap, with Go-like scalar/slice/int/bool accessors.
//! - [`extract`]: the axum extractors [`BiliParams`] and [`Bind<T>`]; their rejection is always [`ApiError`].
//! - [`validate`]: field checks and the documented request limits (`MAX_*`).
//! - [`args`]: one validated `Arg*` struct per endpoint, built with [`FromParams`].
//! - [`envelope`]: the standard and map envelopes, HTTP 200 with the kratos headers.
//! - [`error`]: [`ApiError`], the one mapping of failures to bilibili codes.
//!
//! # Invariants
//! - Every business outcome, success or failure, is HTTP 200 with a JSON envelope: no input makes this layer
//!   answer text/plain or panic.
//! - Every -400 message names the offending parameter.
//!
//! Handler shape: `async fn renew(State(service): State<Service>, Bind(arg): Bind<ArgRenew>) ->
//! Result<Envelope<Instance>, ApiError>`. Handlers call the [`Service`](crate::service::Service) and nothing
//! else of the node: they parse, validate and render.

pub(crate) mod args;
pub(crate) mod auth;
pub(crate) mod envelope;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod fetch;
pub(crate) mod fetch_cache;
pub(crate) mod nodes;
pub(crate) mod params;
pub(crate) mod poll;
pub(crate) mod register;
pub(crate) mod renew;
pub(crate) mod urlencoded;
pub(crate) mod validate;

pub(crate) use args::{ArgCancel, ArgFetch, ArgFetchs, ArgPoll, ArgPolls, ArgRegister, ArgRenew, ArgSet};
pub(crate) use envelope::{Envelope, MapEnvelope};
pub(crate) use error::{refusal, ApiError};
pub(crate) use extract::Bind;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;

use crate::service::Service;

/// What the API's handlers hold: the service, and the API's own cache of encoded fetch answers.
#[derive(Clone)]
pub struct ApiState {
    /// Everything a handler may ask of the node.
    pub service: Service,
    /// Encoded fetch answers of unchanged apps.
    pub fetch_cache: Arc<fetch_cache::FetchCache>,
}

impl FromRef<ApiState> for Service {
    fn from_ref(state: &ApiState) -> Service {
        state.service.clone()
    }
}

impl FromRef<ApiState> for Arc<fetch_cache::FetchCache> {
    fn from_ref(state: &ApiState) -> Self {
        Arc::clone(&state.fetch_cache)
    }
}

/// Every route of the bilibili/discovery API over `service`; the writes (register, cancel, set, renew) behind
/// `api_token` when one is set (see [`auth`]).
pub(crate) fn routes(service: Service, api_token: Option<Arc<str>>) -> Router {
    let writes = Router::new().merge(register::routes()).merge(renew::routes());
    Router::new()
        .merge(auth::require_api_token(writes, api_token))
        .merge(fetch::routes())
        .merge(poll::routes())
        .merge(nodes::routes())
        .with_state(ApiState { service, fetch_cache: Arc::default() })
}
