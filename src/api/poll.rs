//! `GET /discovery/polls` and `/discovery/poll`: long polls on the per-app cursors.
//!
//! Invariants (the fixes of DESIGN.md over spec §4.6):
//! - The poll subscribes to its apps *before* reading the registry, so a change applied in between is
//!   not lost.
//! - Each request has its own waiter; dropping the handler (answer, timeout, client disconnect) frees it.
//!   The loop itself (subscribe, read, wait) is the service's `watch`; this file decides what answers.
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

use super::{ApiError, ApiState, ArgPoll, ArgPolls, Bind, Envelope, MapEnvelope};
use crate::registry::model::AppKey;
use crate::registry::view::PollDecision;
use crate::service::Service;

/// Routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new().route("/discovery/polls", get(polls)).route("/discovery/poll", get(poll))
}

async fn polls(State(service): State<Service>, headers: HeaderMap, Bind(arg): Bind<ArgPolls>) -> Response {
    let keys: Vec<AppKey> = arg.apps.iter().map(|a| AppKey { env: arg.env.clone(), appid: a.appid.clone() }).collect();
    let cursors: Vec<(String, i64)> = arg.apps.iter().map(|a| (a.appid.clone(), a.latest_timestamp)).collect();
    let mut unknown_at_start = None;
    let watched = service
        .watch(&keys, wait_limit(&service, &headers), |view| {
            let answer = view.polls(&arg.env, &cursors, arg.zone.as_deref());
            let unknown = unknown_at_start.get_or_insert_with(|| answer.unknown.clone());
            (!answer.changed.is_empty()).then(|| (answer.changed, unknown.clone()))
        })
        .await;
    // Rendered here, not in the closure: the closure runs under the registry's read lock.
    watched_answer(
        watched.map(|found| found.map(|(changed, unknown)| MapEnvelope::polls(changed, unknown).into_response())),
    )
}

async fn poll(State(service): State<Service>, headers: HeaderMap, Bind(arg): Bind<ArgPoll>) -> Response {
    let key = AppKey { env: arg.env.clone(), appid: arg.app.appid.clone() };
    let mut first = true;
    let watched = service
        .watch(std::slice::from_ref(&key), wait_limit(&service, &headers), |view| {
            let decision = view.poll(&arg.env, &arg.app.appid, arg.app.latest_timestamp, arg.zone.as_deref());
            let was_first = std::mem::replace(&mut first, false);
            match decision {
                PollDecision::Changed(info) => Some(Some(info)),
                // Unknown when the request came in: -404 at once. An app that vanishes while the poll waits is
                // not modified as far as this client is concerned: it keeps its list and the wait goes on
                // (spec §4.3; `polls` behaves the same).
                PollDecision::Unknown if was_first => Some(None),
                PollDecision::Unknown | PollDecision::NotModified => None,
            }
        })
        .await;
    watched_answer(watched.map(|found| {
        found.map(|info| match info {
            Some(info) => Envelope::ok_data(info).into_response(),
            None => MapEnvelope::poll_not_found(&arg.app.appid).into_response(),
        })
    }))
}

/// A watch's end as the client sees it: its answer, -304 when nothing changed in time, -503 when too many wait.
fn watched_answer(watched: Result<Option<Response>, crate::service::Refusal>) -> Response {
    match watched {
        Ok(Some(answer)) => answer,
        Ok(None) => ApiError::NotModified.into_response(),
        Err(refusal) => ApiError::from(refusal).into_response(),
    }
}

/// The poll timeout, shortened to the client's own deadline (kratos `x1-bmspy-timeout`, in ms, minus
/// 20 ms as blademaster does) when the client sends one.
fn wait_limit(service: &Service, headers: &HeaderMap) -> Duration {
    let configured = service.watch_limit();
    let client = headers
        .get("x1-bmspy-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 20)
        .map(|ms| Duration::from_millis(ms - 20));
    client.map_or(configured, |c| c.min(configured))
}
