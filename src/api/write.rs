//! The write path shared by register, cancel and set: route the command to the leader (see
//! `node::routing`) and map what can go wrong to bilibili codes.

use super::error::ApiError;
use crate::node::routing::RouteError;
use crate::node::AppState;
use crate::registry::command::{Command, Outcome};

/// Apply `command` through the leader and return apply's outcome for it.
pub async fn submit(state: &AppState, command: Command) -> Result<Outcome, ApiError> {
    let started = std::time::Instant::now();
    let outcome = state.write(command).await.map_err(route_error);
    state.history.activity.write(started.elapsed());
    outcome
}

/// A routing failure as the client sees it: -503 for overload, -500 otherwise (never -404, which would
/// make every SDK re-register at once).
pub fn route_error(err: RouteError) -> ApiError {
    match err {
        RouteError::Overloaded => ApiError::Overload("too many pending writes, retry later".into()),
        RouteError::NoLeader(_) => ApiError::ServerErr("no reachable leader; retry later".into()),
        RouteError::Unknown(_) => {
            ApiError::ServerErr("the write did not complete in time; its outcome is unknown, retry".into())
        }
        RouteError::NotMember => ApiError::ServerErr("this node is not a member of the cluster".into()),
        RouteError::Unavailable(reason) => {
            ApiError::ServerErr(format!("the registry is unavailable ({reason}); retry later"))
        }
        RouteError::DiskLow(reason) | RouteError::CutOff(reason) => ApiError::ServerErr(reason),
    }
}
