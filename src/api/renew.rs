//! `POST /discovery/renew`: judged by the leader's lessor (the service decides where); never written to the
//! Raft log. -404 (unknown instance) is only ever the leader's verdict.

use axum::extract::State;
use axum::routing::post;
use axum::Router;

use super::{ApiError, ApiState, ArgRenew, Bind, Envelope};
use crate::registry::model::Instance;
use crate::service::{RenewVerdict, Service};

/// Routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route("/discovery/renew", post(renew))
}

async fn renew(State(service): State<Service>, Bind(arg): Bind<ArgRenew>) -> Result<Envelope<Instance>, ApiError> {
    let instance = match service.renew(arg.key).await? {
        RenewVerdict::Renewed(instance) => instance,
        RenewVerdict::Unknown { zone_known: true } => return Err(ApiError::not_found_with(&zero_instance())),
        RenewVerdict::Unknown { zone_known: false } => return Err(ApiError::not_found_null()),
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
