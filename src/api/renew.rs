//! `POST /discovery/renew`: judged by the leader's lessor (forwarded in batches from followers); never
//! written to the Raft log. -404 (unknown instance) is only ever the leader's verdict.

use axum::extract::State;
use axum::routing::post;
use axum::Router;

use super::{ApiError, ArgRenew, Bind, Envelope};
use crate::node::forward::renews::renew_local;
use crate::node::internal_wire::RenewReply;
use crate::node::AppState;
use crate::registry::model::Instance;

/// Routes of this file.
pub fn routes() -> Router<AppState> {
    Router::new().route("/discovery/renew", post(renew))
}

async fn renew(State(state): State<AppState>, Bind(arg): Bind<ArgRenew>) -> Result<Envelope<Instance>, ApiError> {
    state.history.activity.renew();
    // The leader judges locally; any other node (or a leader whose lessor is not active yet) asks the leader.
    let verdict = match renew_local(&state, &arg.key) {
        RenewReply::NotLeader => {
            if let Some(why) = state.cut_off() {
                return Err(ApiError::ServerErr(why));
            }
            state.renewals.renew(arg.key).await
        }
        verdict => verdict,
    };
    let instance = match verdict {
        RenewReply::Renewed(instance) => *instance,
        RenewReply::Unknown { zone_known: true } => return Err(ApiError::not_found_with(&zero_instance())),
        RenewReply::Unknown { zone_known: false } => return Err(ApiError::not_found_null()),
        RenewReply::NotLeader => return Err(not_leader(&state)),
    };
    if arg.replication {
        // Peer-replication semantics of the original (spec §2.2): compare dirty timestamps.
        if arg.dirty_timestamp > instance.dirty_timestamp {
            return Err(ApiError::not_found_with(&instance));
        }
        if arg.dirty_timestamp < instance.dirty_timestamp {
            return Err(ApiError::conflict_with(&instance));
        }
    }
    Ok(Envelope::ok_data(instance))
}

fn not_leader(state: &AppState) -> ApiError {
    let leader = state.raft.metrics().borrow().current_leader;
    match leader {
        Some(id) => ApiError::ServerErr(format!("the leader (node {id}) could not judge the renew; retry later")),
        None => ApiError::ServerErr("no reachable leader; retry later".into()),
    }
}

fn zero_instance() -> Instance {
    Instance {
        region: "".into(),
        zone: "".into(),
        env: "".into(),
        appid: "".into(),
        hostname: "".into(),
        addrs: None,
        version: "".into(),
        metadata: None,
        status: 0,
        reg_timestamp: 0,
        up_timestamp: 0,
        renew_timestamp: 0,
        dirty_timestamp: 0,
        latest_timestamp: 0,
    }
}
