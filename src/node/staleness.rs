//! How stale this node's answers may be: the `X-Discovery-Stale-Ms` header on registry reads while the node is
//! out of contact with the leader (see [`super::liveness::Liveness::out_of_contact_for`]).
//!
//! Invariants:
//! - The header is present exactly when the last liveness round found this node out of contact with the
//!   leader; its value is the milliseconds since it was last in contact (the registry may miss every change
//!   committed since then). Absent on a node in contact: its reads are as fresh as any follower's.
//! - Only `/discovery/*` answers carry it (the registry's reads; writes there fail at once when cut off).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::liveness::Liveness;

/// The header's name.
pub const STALE_HEADER: &str = "x-discovery-stale-ms";

/// Middleware: add [`STALE_HEADER`] to `/discovery/*` answers while out of contact.
pub async fn mark_stale(State(liveness): State<Arc<Liveness>>, request: Request, next: Next) -> Response {
    let registry_call = request.uri().path().starts_with("/discovery/");
    let mut response = next.run(request).await;
    if registry_call {
        if let Some(away) = liveness.out_of_contact_for() {
            let ms = u64::try_from(away.as_millis()).unwrap_or(u64::MAX);
            response.headers_mut().insert(STALE_HEADER, HeaderValue::from(ms));
        }
    }
    response
}
