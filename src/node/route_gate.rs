//! Whether a node without a cluster token serves the peer routes (`/raft/*`, `/internal/*`) at all.
//!
//! Without a cluster token those routes answer anyone who can reach the port. A node may need that only to talk
//! to its peers on loopback, so:
//! - a one-node cluster (its membership is itself alone) serves neither: nobody has a reason to send it a Raft RPC
//!   or an internal request, and a forged one (a vote at an absurd term, a write without the API token) would be
//!   obeyed. They open as soon as it has a peer (`discovery cluster add`) and stay open with a cluster token;
//! - a node with `--api-token` and no cluster token never serves them: through `/internal/write` or a forged
//!   Raft append anyone could write without the API token. (Configuration refuses such a node in a cluster:
//!   `--peers` with several members or `--join`, see [`crate::config::Config::validate`].)
//! - a node in no cluster yet (empty membership: `--join`, or a `--peers` member waiting to be contacted) serves
//!   them, so that the leader can add it. Without a token it listens on loopback only (configuration again).
//!
//! With a cluster token this gate lets everything through; the token check ([`discovery_raft::require_token`])
//! guards the routes. The decision is taken per request from the current membership, so a node opens the routes
//! the moment its first peer is added, and closes them again if it is shrunk back to itself.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::AppState;
use crate::config::Config;

/// Puts the gate on every route `routes` has so far (add the routes first).
pub fn gate(routes: Router, state: AppState) -> Router {
    routes.route_layer(middleware::from_fn_with_state(state, check))
}

async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let refusal = {
        let metrics = state.raft.metrics();
        let metrics = metrics.borrow();
        refusal(&state.config, metrics.membership_config.membership().nodes().map(|(id, _)| *id))
    };
    match refusal {
        None => next.run(request).await,
        Some(reason) => (StatusCode::FORBIDDEN, reason).into_response(),
    }
}

/// Why the peer routes are closed on a node configured as `config` whose membership is `members`, or `None`
/// when they are served.
pub fn refusal(config: &Config, members: impl IntoIterator<Item = u64>) -> Option<String> {
    if config.cluster_token.is_some() {
        return None;
    }
    if config.api_token.is_some() {
        return Some(format!(
            "node {} has --api-token but no --cluster-token: /raft and /internal are closed, because they would let \
             anyone write without the API token; set the same --cluster-token on every member",
            config.id
        ));
    }
    let mut members = members.into_iter().peekable();
    let alone = members.peek().is_some() && members.all(|id| id == config.id);
    alone.then(|| {
        format!(
            "node {} is a one-node cluster without --cluster-token: /raft and /internal are closed until it has a \
             peer (discovery cluster add) or a cluster token (--cluster-token)",
            config.id
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cluster_token: Option<&str>, api_token: Option<&str>) -> Config {
        Config {
            id: 1,
            cluster_token: cluster_token.map(str::to_string),
            api_token: api_token.map(str::to_string),
            ..Config::default()
        }
    }

    #[test]
    fn a_one_node_cluster_without_a_token_is_closed_until_it_has_a_peer() {
        let dev = config(None, None);
        assert!(refusal(&dev, [1]).is_some_and(|r| r.contains("one-node cluster") && r.contains("--cluster-token")));
        assert_eq!(refusal(&dev, [1, 2]), None, "a peer opens the routes");
        assert_eq!(refusal(&dev, [2, 3]), None, "a node removed from its cluster still hears from it");
        assert_eq!(refusal(&dev, []), None, "a node waiting to be added is open");
    }

    #[test]
    fn a_cluster_token_opens_the_routes_to_its_holders() {
        assert_eq!(refusal(&config(Some("s3cret"), None), [1]), None);
        assert_eq!(refusal(&config(Some("s3cret"), Some("t0k")), [1]), None);
    }

    #[test]
    fn an_api_token_without_a_cluster_token_never_opens_them() {
        let node = config(None, Some("t0k"));
        for members in [vec![], vec![1], vec![1, 2]] {
            let reason = refusal(&node, members.clone()).unwrap_or_default();
            assert!(reason.contains("--api-token") && reason.contains("--cluster-token"), "{members:?}: {reason}");
        }
    }
}
