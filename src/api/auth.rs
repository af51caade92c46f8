//! The optional API token (`--api-token`): when set, the write routes (`register`, `cancel`, `set`,
//! `renew`) require `Authorization: Bearer <token>`; reads stay open, as in the original.
//!
//! Invariants:
//! - A request without the exact token is answered before any parameter is read: HTTP 200 with the standard
//!   envelope and code -401 (kratos `Unauthorized`), so SDKs see a business error, not a transport one.
//! - The comparison takes the same time wherever the first differing byte is (`subtle`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use subtle::ConstantTimeEq;

use super::envelope::{Data, Envelope};
use super::ApiState;

/// kratos `Unauthorized`.
pub(crate) const CODE_UNAUTHORIZED: i32 = -401;

/// Require the token on every route `router` has so far (no-op without a token).
pub(crate) fn require_api_token(router: Router<ApiState>, token: Option<Arc<str>>) -> Router<ApiState> {
    match token {
        Some(token) if router.has_routes() => router.route_layer(middleware::from_fn_with_state(token, check)),
        _ => router,
    }
}

async fn check(State(expected): State<Arc<str>>, request: Request, next: Next) -> Response {
    let given = request.headers().get(AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if given.is_some_and(|given| bool::from(given.ct_eq(expected.as_bytes()))) {
        next.run(request).await
    } else {
        Envelope::<()>::with_code(CODE_UNAUTHORIZED, Data::Omitted).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_the_minus_401_envelope() {
        let json = Envelope::<()>::with_code(CODE_UNAUTHORIZED, Data::Omitted).to_json().expect("json");
        assert_eq!(json, br#"{"code":-401,"message":"-401","ttl":1}"#);
    }
}
