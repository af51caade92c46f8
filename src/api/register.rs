//! `POST /discovery/register`, `/discovery/cancel` and `/discovery/set`: replicated writes.

use axum::extract::State;
use axum::routing::post;
use axum::Router;

use super::write::submit;
use super::{ApiError, ArgCancel, ArgRegister, ArgSet, Bind, Envelope};
use crate::node::AppState;
use crate::registry::command::Command;

/// Routes of this file.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/discovery/register", post(register))
        .route("/discovery/cancel", post(cancel))
        .route("/discovery/set", post(set))
}

async fn register(State(state): State<AppState>, Bind(arg): Bind<ArgRegister>) -> Result<Envelope, ApiError> {
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
    let outcome = submit(&state, Command::Set(arg.args)).await?;
    ApiError::from_set_outcome(outcome)?;
    Ok(Envelope::ok())
}
