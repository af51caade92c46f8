//! The cluster token: internal routes (`/raft/*`, `/internal/*`, `/admin/*`) answer only to cluster members.
//!
//! Invariants:
//! - With a token configured, a request reaches the wrapped routes only if its `x-discovery-token` header equals
//!   the token byte for byte; anything else (missing, wrong, not valid text) is answered 401 before any handler
//!   or body extraction runs.
//! - The comparison takes the same time wherever the first differing byte is (`subtle`), so the token cannot be
//!   guessed byte by byte from response times. (Its length is not secret.)
//! - With no token configured the routes are left exactly as they were. Whether running without a token is
//!   allowed (only on loopback) is the node's configuration decision, not this module's. An empty token is a
//!   token like any other; configuration should refuse it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use subtle::ConstantTimeEq;

/// Header carrying the cluster token on internal requests.
pub const TOKEN_HEADER: &str = "x-discovery-token";

/// Requires the cluster token on every route `router` has so far (add the routes first).
///
/// Unmatched paths are left to the fallback (404), so this router can be merged with public ones.
pub fn require_token<S>(router: Router<S>, token: Option<Arc<str>>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    match token {
        // axum refuses `route_layer` on a router without routes; there is nothing to protect then.
        Some(token) if router.has_routes() => router.route_layer(middleware::from_fn_with_state(token, check_token)),
        _ => router,
    }
}

/// The middleware itself, for use with `axum::middleware::from_fn_with_state(token, check_token)`.
pub async fn check_token(State(expected): State<Arc<str>>, request: Request, next: Next) -> Response {
    if token_matches(request.headers().get(TOKEN_HEADER), &expected) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "missing or wrong x-discovery-token").into_response()
    }
}

fn token_matches(given: Option<&HeaderValue>, expected: &str) -> bool {
    given.is_some_and(|given| given.as_bytes().ct_eq(expected.as_bytes()).into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches(Some(&header("s3cret")), "s3cret"));
        assert!(!token_matches(None, "s3cret"));
        assert!(!token_matches(Some(&header("s3cre")), "s3cret"));
        assert!(!token_matches(Some(&header("s3cret!")), "s3cret"));
        assert!(!token_matches(Some(&header("S3CRET")), "s3cret"));
        assert!(!token_matches(Some(&header("")), "s3cret"));
    }
}
