//! The console: `GET /` is a single page (HTML, CSS and JavaScript embedded in the binary, no CDN, no
//! build step) that reads the JSON routes below; `/ui/plain` and `/ui/app` are the server-rendered page
//! for browsers without JavaScript.
//!
//! JSON routes (documented in the README, kept stable; fields are only ever added):
//! - `GET /ui/api/apps?q=&env=&zone=&status=&offset=&limit=`: apps with up/waiting counts per zone ([`apps`]).
//! - `GET /ui/api/app?env=&appid=`: instances, lease figures from the leader, recent changes ([`app`]).
//! - `GET /ui/api/cluster`: members, leader changes, self-preservation, storage ([`cluster`]).
//! - `GET /ui/api/charts`: this node's last hour, a sample every 10 s.
//! - `GET /ui/api/session`, `POST /ui/api/action`: what the page may do, and the safe actions ([`actions`]).
//! - `GET /ui/api/leases`, `GET /ui/api/guard`: the leader's figures, which other nodes' consoles ask for.
//!
//! Invariants:
//! - Reads are open (like the API's fetch); actions need the cluster token when one is set.
//! - Client-controlled text (every instance field) reaches the page only as JSON and is put in the DOM with
//!   `textContent`, never as markup; the plain page escapes it.

pub(crate) mod actions;
pub(crate) mod app;
pub(crate) mod apps;
mod assets;
pub(crate) mod cluster;
pub(crate) mod error;
mod html;
mod leader;
mod members;
mod plain;

use axum::routing::{get, post};
use axum::Router;

use crate::service::Service;

/// Every route of the console.
pub(crate) fn routes() -> Router<Service> {
    Router::new()
        .merge(assets::routes())
        .merge(plain::routes())
        .route("/ui/api/apps", get(apps::apps))
        .route("/ui/api/app", get(app::app))
        .route("/ui/api/leases", get(app::leases))
        .route("/ui/api/cluster", get(cluster::cluster))
        .route("/ui/api/guard", get(cluster::guard))
        .route("/ui/api/charts", get(cluster::charts))
        .route("/ui/api/session", get(actions::session))
        .route("/ui/api/action", post(actions::action))
}
