//! The cluster token guard, on a stub route and on the real Raft routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::Router;
use discovery_raft::{raft_routes, require_token, APPEND_PATH, TOKEN_HEADER};
use http_body_util::BodyExt;
use support::cluster::{fast_config, TestNode};
use tower::ServiceExt;

const TOKEN: &str = "cluster-secret";

fn stub() -> Router {
    Router::new().route(APPEND_PATH, post(|| async { "reached the handler" }))
}

fn append(token: Option<&str>) -> Request<Body> {
    let mut request = Request::post(APPEND_PATH);
    if let Some(token) = token {
        request = request.header(TOKEN_HEADER, token);
    }
    request.body(Body::from("not bincode")).unwrap()
}

async fn call(router: Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn guarded(router: Router) -> Router {
    require_token(router, Some(Arc::from(TOKEN)))
}

#[tokio::test]
async fn with_a_token_a_request_without_it_is_unauthorized() {
    let (status, body) = call(guarded(stub()), append(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains(TOKEN_HEADER), "{body}");
}

#[tokio::test]
async fn with_a_token_a_wrong_token_is_unauthorized() {
    for wrong in ["", "cluster-secre", "cluster-secret2", "CLUSTER-SECRET", "x"] {
        let (status, _) = call(guarded(stub()), append(Some(wrong))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {wrong:?}");
    }
}

#[tokio::test]
async fn with_a_token_the_right_token_reaches_the_handler() {
    let (status, body) = call(guarded(stub()), append(Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "reached the handler");
}

#[tokio::test]
async fn without_a_token_configured_requests_pass() {
    let (status, body) = call(require_token(stub(), None), append(None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "reached the handler");
}

#[tokio::test]
async fn unknown_paths_are_not_found_rather_than_unauthorized() {
    let request = Request::get("/discovery/fetch").body(Body::empty()).unwrap();
    let (status, _) = call(guarded(stub()), request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn on_the_raft_routes_the_token_decides_who_reaches_the_decoder() {
    let mut node = TestNode::start(1, fast_config(), None).await;
    let routes = || guarded(raft_routes(node.raft.clone()));

    let (status, _) = call(routes(), append(Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // With the right token the (bad) body reaches the handler, which refuses it as a bad request.
    let (status, body) = call(routes(), append(Some(TOKEN))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("bad append-entries request body"), "{body}");

    node.stop().await;
}
