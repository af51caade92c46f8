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

use super::{ApiError, ApiState, ArgCancel, ArgRegister, ArgSet, Bind, Envelope};
use crate::registry::command::{check_client_timestamp, Command};
use crate::service::Service;

/// Routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/discovery/register", post(register))
        .route("/discovery/cancel", post(cancel))
        .route("/discovery/set", post(set))
}

async fn register(State(service): State<Service>, Bind(arg): Bind<ArgRegister>) -> Result<Envelope, ApiError> {
    not_far_ahead(&service, "dirty_timestamp", arg.args.dirty_timestamp)?;
    let outcome = service.write(Command::Register(arg.args)).await?;
    ApiError::from_write_outcome(outcome)?;
    Ok(Envelope::ok())
}

async fn cancel(State(service): State<Service>, Bind(arg): Bind<ArgCancel>) -> Result<Envelope, ApiError> {
    let outcome = service.write(Command::Cancel(arg.key)).await?;
    ApiError::from_write_outcome(outcome)?;
    Ok(Envelope::ok())
}

async fn set(State(service): State<Service>, Bind(arg): Bind<ArgSet>) -> Result<Envelope, ApiError> {
    not_far_ahead(&service, "set_timestamp", arg.args.set_timestamp)?;
    let outcome = service.write(Command::Set(arg.args)).await?;
    ApiError::from_set_outcome(outcome)?;
    Ok(Envelope::ok())
}

/// The early, local-clock version of apply's bound on a stored client timestamp.
fn not_far_ahead(service: &Service, param: &str, value: i64) -> Result<(), ApiError> {
    check_client_timestamp(param, value, service.now_ns()).map_err(ApiError::bad_request)
}
