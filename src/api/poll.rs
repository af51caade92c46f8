//! `GET /discovery/polls` and `/discovery/poll`: long polls on the per-app cursors.
//!
//! Invariants (the fixes of DESIGN.md over spec §4.6):
//! - The poll subscribes to its apps *before* reading the registry, so a change applied in between is
//!   not lost.
//! - Each request has its own waiter; dropping the handler (answer, timeout, client disconnect) frees it.
//! - An app with no up instance never answers a poll (it counts as not modified).
//! - An app unknown when the poll arrives is reported at once (`/poll`: -404; `polls`: the `"-404"` list);
//!   one that vanishes during the wait is not an answer: the wait goes on.
//! - A stopping node answers every waiting poll -304 at once, so graceful shutdown is not held up.
//! - The wait ends at the poll timeout or the client's `x1-bmspy-timeout` deadline (minus 20 ms),
//!   whichever is first, with -304.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{ApiError, ArgPoll, ArgPolls, Bind, Envelope, MapEnvelope};
use crate::node::change_hub::Subscription;
use crate::node::AppState;
use crate::registry::model::AppKey;
use crate::registry::view::{PollDecision, PollsAnswer, View};

/// Most long polls waiting at once on one node; beyond it a poll answers -503.
pub const MAX_WAITING_POLLS: usize = 20_000;

/// Routes of this file.
pub fn routes() -> Router<AppState> {
    Router::new().route("/discovery/polls", get(polls)).route("/discovery/poll", get(poll))
}

async fn polls(State(state): State<AppState>, headers: HeaderMap, Bind(arg): Bind<ArgPolls>) -> Response {
    if state.registry.hub().waiters() >= MAX_WAITING_POLLS {
        return ApiError::Overload("too many long polls waiting on this node".into()).into_response();
    }
    let keys: Vec<AppKey> = arg.apps.iter().map(|a| AppKey { env: arg.env.clone(), appid: a.appid.clone() }).collect();
    let cursors: Vec<(String, i64)> = arg.apps.iter().map(|a| (a.appid.clone(), a.latest_timestamp)).collect();
    let deadline = tokio::time::Instant::now() + wait_limit(&state, &headers);
    let mut subscription = state.registry.hub().subscribe(&keys);
    let mut unknown_at_start = None;
    let mut signalled = None;
    loop {
        let answer = read_polls(&state, &arg.env, &cursors, arg.zone.as_deref());
        let unknown = unknown_at_start.get_or_insert_with(|| answer.unknown.clone());
        if !answer.changed.is_empty() {
            observe_wake(&state, signalled);
            return MapEnvelope::polls(answer.changed, unknown.clone()).into_response();
        }
        signalled = wait_for_change(&state, &mut subscription, deadline).await;
        if signalled.is_none() {
            return ApiError::NotModified.into_response();
        }
    }
}

/// Wait for a change of a watched app: when it was signalled, or `None` at the deadline or when the node
/// is stopping.
async fn wait_for_change(
    state: &AppState,
    subscription: &mut Subscription,
    deadline: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    tokio::select! {
        _ = state.shutdown.cancelled() => None,
        woken = tokio::time::timeout_at(deadline, subscription.changed()) => woken.ok(),
    }
}

/// Record how long a woken poll took from the change to its answer.
fn observe_wake(state: &AppState, signalled: Option<tokio::time::Instant>) {
    if let Some(at) = signalled {
        state.metrics.poll_wake_latency.observe(at.elapsed().as_secs_f64());
    }
}

async fn poll(State(state): State<AppState>, headers: HeaderMap, Bind(arg): Bind<ArgPoll>) -> Response {
    if state.registry.hub().waiters() >= MAX_WAITING_POLLS {
        return ApiError::Overload("too many long polls waiting on this node".into()).into_response();
    }
    let key = AppKey { env: arg.env.clone(), appid: arg.app.appid.clone() };
    let deadline = tokio::time::Instant::now() + wait_limit(&state, &headers);
    let mut subscription = state.registry.hub().subscribe(std::slice::from_ref(&key));
    let mut first = true;
    let mut signalled = None;
    loop {
        let decision = {
            let membership = state.served_membership();
            let registry = state.registry.read();
            View::new(&registry, &membership).poll(
                &arg.env,
                &arg.app.appid,
                arg.app.latest_timestamp,
                arg.zone.as_deref(),
            )
        };
        match decision {
            PollDecision::Changed(info) => {
                observe_wake(&state, signalled);
                return Envelope::ok_data(info).into_response();
            }
            // Unknown when the request came in: -404 at once. An app that vanishes while the poll waits is
            // not modified as far as this client is concerned: it keeps its list and the wait goes on
            // (spec §4.3; `polls` behaves the same).
            PollDecision::Unknown if first => return MapEnvelope::poll_not_found(&arg.app.appid).into_response(),
            PollDecision::Unknown | PollDecision::NotModified => {}
        }
        first = false;
        signalled = wait_for_change(&state, &mut subscription, deadline).await;
        if signalled.is_none() {
            return ApiError::NotModified.into_response();
        }
    }
}

fn read_polls(state: &AppState, env: &str, cursors: &[(String, i64)], zone: Option<&str>) -> PollsAnswer {
    let membership = state.served_membership();
    let registry = state.registry.read();
    View::new(&registry, &membership).polls(env, cursors, zone)
}

/// The poll timeout, shortened to the client's own deadline (kratos `x1-bmspy-timeout`, in ms, minus
/// 20 ms as blademaster does) when the client sends one.
fn wait_limit(state: &AppState, headers: &HeaderMap) -> Duration {
    let configured = state.config.poll_timeout;
    let client = headers
        .get("x1-bmspy-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 20)
        .map(|ms| Duration::from_millis(ms - 20));
    client.map_or(configured, |c| c.min(configured))
}
