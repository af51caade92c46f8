//! Talking to the leader from any node: find it, and send it writes, renews and read-index requests over
//! the internal routes.
//!
//! Invariants:
//! - Every call has a deadline; with no reachable leader the caller gets an error before it, never a hang
//!   (the budget is 2 × the election timeout, DESIGN.md "Data flow").
//! - A request is retried (against the newest leader) only when it certainly did not reach a leader that
//!   executed it: connection refused, or the receiver answered "not the leader". A timeout after sending
//!   leaves the outcome unknown and is reported as such.

pub mod read_index;
pub mod renews;
pub mod writes;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;
use tokio::time::Instant;

use crate::raft_types::Raft;

/// Why the leader could not be used.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ForwardError {
    /// No leader became known before the deadline.
    #[error("no leader is known")]
    NoLeader,
    /// The leader could not be reached (nothing was delivered).
    #[error("the leader at {0} is unreachable")]
    Unreachable(String),
    /// The request was sent but no answer came in time: the outcome is unknown.
    #[error("the leader at {0} did not answer in time")]
    Timeout(String),
    /// The leader answered something that is not a valid reply.
    #[error("bad reply from the leader: {0}")]
    BadReply(String),
}

/// Where the leader is, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderHint {
    /// This node is the leader.
    Me,
    /// Another node, at this address.
    Other(String),
}

/// What one try against the leader a hint names gave.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// The answer, final (success or an error worth reporting).
    Done(Result<T, E>),
    /// That node is not (or no longer) the leader, or could not be reached before it got the request: try
    /// the next leader this node learns of.
    NextLeader,
}

/// The one leader-routing loop of the node: try `attempt` with the current leader (this node, or another
/// at an address), and while it answers [`Attempt::NextLeader`], wait for a different leader and try again,
/// until `deadline`. With no leader in time the caller gets the [`ForwardError`] converted into its `E`.
/// Writes, renews and read indexes all go through it.
pub async fn with_leader<T, E, F, Fut>(raft: &Raft, deadline: Instant, mut attempt: F) -> Result<T, E>
where
    E: From<ForwardError>,
    F: FnMut(LeaderHint) -> Fut,
    Fut: std::future::Future<Output = Attempt<T, E>>,
{
    let mut hint = leader(raft, deadline).await?;
    loop {
        match attempt(hint.clone()).await {
            Attempt::Done(answer) => return answer,
            Attempt::NextLeader => hint = next_leader(raft, &hint, deadline).await?,
        }
    }
}

/// Wait until a leader is known (or the deadline passes).
pub async fn leader(raft: &Raft, deadline: Instant) -> Result<LeaderHint, ForwardError> {
    let mut metrics = raft.metrics();
    loop {
        let hint = {
            let m = metrics.borrow_and_update();
            m.current_leader.and_then(|id| {
                if id == m.id {
                    return Some(LeaderHint::Me);
                }
                m.membership_config.membership().get_node(&id).map(|n| LeaderHint::Other(n.addr.clone()))
            })
        };
        if let Some(hint) = hint {
            return Ok(hint);
        }
        match tokio::time::timeout_at(deadline, metrics.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Err(ForwardError::NoLeader),
        }
    }
}

/// Wait for the leader to change away from `stale` (after it said "not the leader" or was unreachable).
pub async fn next_leader(raft: &Raft, stale: &LeaderHint, deadline: Instant) -> Result<LeaderHint, ForwardError> {
    let mut metrics = raft.metrics();
    loop {
        match leader(raft, deadline).await? {
            hint if &hint != stale => return Ok(hint),
            _ => {}
        }
        // Same leader as before: give the cluster a moment (an election, or the leader's own step-down),
        // but do not spin.
        let pause = Instant::now() + Duration::from_millis(50);
        let _ = tokio::time::timeout_at(pause.min(deadline), metrics.changed()).await;
        if Instant::now() >= deadline {
            return Err(ForwardError::NoLeader);
        }
    }
}

/// HTTP client for the internal routes of other members.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: reqwest::Client,
    token: Option<String>,
}

impl Forwarder {
    /// A pooled client; `token` is sent as the cluster token.
    pub fn new(token: Option<String>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { client, token }
    }

    /// POST a bincode body to `http://{addr}{path}` and decode the bincode reply, by `deadline`.
    pub async fn call<Req: Serialize, Rep: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        deadline: Instant,
    ) -> Result<Rep, ForwardError> {
        let bytes = discovery_raft::codec::encode(body).map_err(|e| ForwardError::BadReply(e.to_string()))?;
        let timeout = deadline.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return Err(ForwardError::Timeout(addr.to_string()));
        }
        let mut request = self.client.post(format!("http://{addr}{path}")).timeout(timeout).body(bytes);
        if let Some(token) = &self.token {
            request = request.header(discovery_raft::TOKEN_HEADER, token);
        }
        let response = request.send().await.map_err(|e| classify(addr, &e))?;
        if !response.status().is_success() {
            return Err(ForwardError::BadReply(format!("HTTP {} from {addr}{path}", response.status())));
        }
        let body = response.bytes().await.map_err(|e| classify(addr, &e))?;
        discovery_raft::codec::decode(&body).map_err(|e| ForwardError::BadReply(e.to_string()))
    }
}

fn classify(addr: &str, err: &reqwest::Error) -> ForwardError {
    if err.is_connect() {
        ForwardError::Unreachable(addr.to_string())
    } else {
        ForwardError::Timeout(addr.to_string())
    }
}
