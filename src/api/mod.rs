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
//! Handler shape: `async fn renew(State(s): State<AppState>, Bind(arg): Bind<ArgRenew>) ->
//! Result<Envelope<Instance>, ApiError>`.

pub mod args;
pub mod auth;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod fetch_cache;
pub mod nodes;
pub mod params;
pub mod poll;
pub mod register;
pub mod renew;
pub mod urlencoded;
pub mod validate;
pub mod write;

pub use args::{
    AppCursor, ArgCancel, ArgFetch, ArgFetchs, ArgPoll, ArgPolls, ArgRegister, ArgRenew, ArgSet, FromParams,
};
pub use envelope::{Data, Envelope, MapEnvelope};
pub use error::ApiError;
pub use extract::{BiliParams, Bind};
pub use params::Params;

/// Every route of the bilibili/discovery API; the writes (register, cancel, set, renew) behind `api_token`
/// when one is set (see [`auth`]).
pub fn routes(api_token: Option<std::sync::Arc<str>>) -> axum::Router<crate::node::AppState> {
    let writes = axum::Router::new().merge(register::routes()).merge(renew::routes());
    axum::Router::new()
        .merge(auth::require_api_token(writes, api_token))
        .merge(fetch::routes())
        .merge(poll::routes())
        .merge(nodes::routes())
}
