//! `POST /discovery/register`, `/discovery/cancel` and `/discovery/set`: replicated writes.
//!
//! Client timestamps that are stored (register's `dirty_timestamp`, set's `set_timestamp`) may be at most
//! 10 minutes ahead: apply enforces it against the leader's stamp; the handlers check the local clock first
//! so an obviously bad value costs no Raft round trip. The other client timestamps are not bounded because
//! nothing keeps them: register's and cancel's `latest_timestamp` are parsed and dropped (the cursor is the
//! leader's stamp), renew's `dirty_timestamp` is only compared with the stored one for the answer.

use axum::extract::State;
use axum::routing::post;
use axum::Router;

use super::write::submit;
use super::{ApiError, ArgCancel, ArgRegister, ArgSet, Bind, Envelope};
use crate::node::proposer::now_ns;
use crate::node::AppState;
use crate::registry::command::{check_client_timestamp, Command};

/// Routes of this file.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/discovery/register", post(register))
        .route("/discovery/cancel", post(cancel))
        .route("/discovery/set", post(set))
}

async fn register(State(state): State<AppState>, Bind(arg): Bind<ArgRegister>) -> Result<Envelope, ApiError> {
    not_far_ahead("dirty_timestamp", arg.args.dirty_timestamp)?;
    let outcome = submit(&state, Command::Register(arg.args)).await?;
    ApiError::from_write_outcome(outcome)?;
    Ok(Envelope::ok())
}

async fn cancel(State(state): State<AppState>, Bind(arg): Bind<ArgCancel>) -> Result<Envelope, ApiError> {
    let outcome = submit(&state, Command::Cancel(arg.key)).await?;
    ApiError::from_write_outcome(outcome)?;
    Ok(Envelope::ok())
}

async fn set(State(state): State<AppState>, Bind(arg): Bind<ArgSet>) -> Result<Envelope, ApiError> {
    not_far_ahead("set_timestamp", arg.args.set_timestamp)?;
    let outcome = submit(&state, Command::Set(arg.args)).await?;
    ApiError::from_set_outcome(outcome)?;
    Ok(Envelope::ok())
}

/// The early, local-clock version of apply's bound on a stored client timestamp.
fn not_far_ahead(param: &str, value: i64) -> Result<(), ApiError> {
    check_client_timestamp(param, value, now_ns()).map_err(ApiError::bad_request)
}
