//! Asking the leader for what only it knows (lease figures, the self-preservation guard), from the console
//! routes of any node.
//!
//! The leader's console routes are public and read-only, like this node's, so no token is sent. A short
//! timeout keeps a dead leader from stalling a page: the page then says the figures are unavailable.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// How long a page waits for the leader.
const LEADER_TIMEOUT: Duration = Duration::from_millis(800);

/// `GET path_and_query` on the leader's console routes, decoded; `Err` says why not, for the page.
pub(crate) async fn ask<T: DeserializeOwned>(addr: &str, path_and_query: &str) -> Result<T, String> {
    let client = reqwest::Client::builder()
        .timeout(LEADER_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(format!("http://{addr}{path_and_query}"))
        .send()
        .await
        .map_err(|e| format!("the leader at {addr} did not answer: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the leader at {addr} answered {}", response.status()));
    }
    response.json().await.map_err(|e| format!("the leader at {addr} answered something unreadable: {e}"))
}
