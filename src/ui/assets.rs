//! The console's files, embedded in the binary at build time (`include_str!`): nothing is fetched from
//! the network at run time and nothing needs building to run it.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::service::Service;

const PAGE: &str = include_str!("assets/console.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    // Revalidated on every load: a node upgraded in place serves its new console at once.
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], body)
}

/// `/`, `/ui/console.js`, `/ui/console.css`.
pub(crate) fn routes() -> Router<Service> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", PAGE) }))
        .route("/ui/console.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/ui/console.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}
