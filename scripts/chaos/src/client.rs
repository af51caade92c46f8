//! The workload's HTTP client: the bilibili/discovery calls and the admin routes, each answer classified
//! as ok (a definite business code), fail (certainly no effect) or unknown (may take effect, now or later).
//!
//! Classification (the checker relies on it):
//! - connection refused / not established: fail (nothing was delivered);
//! - HTTP 4xx (e.g. a token problem): fail (refused before any handler ran);
//! - any other transport error or timeout after sending, HTTP 5xx, an unparseable body: unknown;
//! - writes: code 0 ok; -404 ok (apply found nothing: no effect); -400 fail; anything else (-500, -503) unknown;
//! - except a -500 whose message says the node is cut off from the leader (issue 14): fail, for every call. The
//!   node refuses those before forwarding anything (`RouteError::CutOff`), so the call certainly had no effect;
//! - renew: 0 and -404 ok; -400 fail; else unknown; reads: 0 and -404 (and -304 for polls) ok.

use std::time::Duration;

use discovery::client::wire::{Digest, NodeStatus};
use discovery::client::{Client, ClientError, Reply};
use serde_json::Value;

use crate::history::{Outcome, Seen};

/// A classified answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Ok / fail / unknown.
    pub outcome: Outcome,
    /// Business code (when the body had one).
    pub code: Option<i64>,
    /// Error text (transport error or the body's message).
    pub err: Option<String>,
    /// The envelope's `data`.
    pub data: Option<Value>,
}

impl Answer {
    /// A call that got no envelope: nothing reached the node (fail), or it may have (unknown).
    fn failed(err: &ClientError) -> Self {
        let outcome = match err {
            ClientError::Transport { sent: false, .. } => Outcome::Fail,
            _ if err.http_status().is_some_and(|s| (400..500).contains(&s)) => Outcome::Fail,
            _ => Outcome::Unknown,
        };
        let kind = match err {
            ClientError::Transport { sent: false, .. } => "connect",
            ClientError::Transport { reason, .. } if reason.contains("timed out") => "timeout",
            ClientError::Transport { .. } => "transport",
            _ => "answer",
        };
        Answer { outcome, code: None, err: Some(format!("{kind}: {err}")), data: None }
    }

    /// An envelope: classified by its code, unless the HTTP status already says (4xx fail, 5xx unknown).
    fn of(reply: Reply, call: Call) -> Self {
        if !(200..300).contains(&reply.status) {
            let outcome = if (400..500).contains(&reply.status) { Outcome::Fail } else { Outcome::Unknown };
            let err = Some(format!("HTTP {}: {}", reply.status, reply.message));
            return Answer { outcome, code: None, err, data: None };
        }
        let outcome = classify(call, reply.code, &reply.message);
        let err = (reply.code != 0).then_some(reply.message);
        Answer { outcome, code: Some(reply.code), err, data: reply.data }
    }
}

/// Which codes are definite answers for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Register, set, cancel.
    Write,
    /// Renew.
    Renew,
    /// Fetch.
    Read,
    /// Polls.
    Poll,
}

/// The words of a cut-off replica's -500 (`node::routing::AppState::cut_off`).
const CUT_OFF: &str = "has been cut off from the leader";

fn classify(call: Call, code: i64, message: &str) -> Outcome {
    if code == -500 && message.contains(CUT_OFF) {
        return Outcome::Fail;
    }
    classify_code(call, code)
}

fn classify_code(call: Call, code: i64) -> Outcome {
    match (call, code) {
        (_, 0) | (_, -404) => Outcome::Ok,
        (Call::Poll, -304) => Outcome::Ok,
        (_, -400) => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// HTTP access to the nodes, through the library's client: every call names its node (the workload
/// spreads its calls itself and must know which node answered what).
#[derive(Debug, Clone)]
pub struct Api {
    client: Client,
}

impl Api {
    /// A client of `nodes`; `token` goes on admin calls.
    pub fn new(nodes: Vec<String>, token: String) -> Self {
        let token = (!token.is_empty()).then_some(token);
        let client = Client::builder(nodes).cluster_token(token).connect_timeout(Duration::from_millis(1000)).build();
        Self { client }
    }

    /// POST a form to a `/discovery/*` route.
    pub async fn post(&self, addr: &str, path: &str, form: &[(&str, String)], call: Call, timeout: Duration) -> Answer {
        match self.client.post_envelope_at(addr, path, form, timeout).await {
            Ok(reply) => Answer::of(reply, call),
            Err(err) => Answer::failed(&err),
        }
    }

    /// GET a `/discovery/*` route.
    pub async fn get(&self, addr: &str, path: &str, query: &[(&str, String)], call: Call, timeout: Duration) -> Answer {
        match self.client.get_envelope_at(addr, path, query, timeout).await {
            Ok(reply) => Answer::of(reply, call),
            Err(err) => Answer::failed(&err),
        }
    }

    /// `/admin/status` of `addr`; None when unreachable or refused.
    pub async fn status(&self, addr: &str, timeout: Duration) -> Option<NodeStatus> {
        self.client.clone().with_call_timeout(timeout).status_of(addr).await.ok()
    }

    /// `/admin/digest` of `addr`; None when unreachable or refused.
    pub async fn digest(&self, addr: &str, timeout: Duration) -> Option<Digest> {
        self.client.clone().with_call_timeout(timeout).digest_of(addr).await.ok()
    }

    /// `/healthz` answered 200.
    pub async fn healthy(&self, addr: &str, timeout: Duration) -> bool {
        self.client.clone().with_call_timeout(timeout).health_of(addr).await.is_ok()
    }
}

/// The instances of one app in a fetch or poll answer (`{"instances":{zone:[..]},"latest_timestamp":n}`),
/// sorted by hostname, and the cursor.
pub fn instances_of(info: &Value) -> (Vec<Seen>, Option<i64>) {
    let mut seen = Vec::new();
    if let Some(zones) = info.get("instances").and_then(Value::as_object) {
        for list in zones.values().filter_map(Value::as_array) {
            seen.extend(list.iter().filter_map(seen_of));
        }
    }
    seen.sort_by(|a, b| a.h.cmp(&b.h));
    (seen, info.get("latest_timestamp").and_then(Value::as_i64))
}

/// One instance as the checker records it: hostname, the `w` metadata value, status.
pub fn seen_of(instance: &Value) -> Option<Seen> {
    let h = instance.get("hostname")?.as_str()?.to_string();
    let w = instance.get("metadata").and_then(|m| m.get("w")).and_then(Value::as_str).and_then(|w| w.parse().ok());
    let s = instance.get("status").and_then(Value::as_u64).and_then(|s| u32::try_from(s).ok()).unwrap_or(0);
    Some(Seen { h, w, s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_answers_become_sorted_observations() {
        let info = serde_json::json!({
            "instances": {"z1": [
                {"hostname": "b", "metadata": {"w": "12"}, "status": 2},
                {"hostname": "a", "metadata": {"x": "1"}, "status": 1}
            ]},
            "latest_timestamp": 99
        });
        let (seen, ts) = instances_of(&info);
        assert_eq!(ts, Some(99));
        assert_eq!(seen, vec![Seen { h: "a".into(), w: None, s: 1 }, Seen { h: "b".into(), w: Some(12), s: 2 }]);
    }

    #[test]
    fn codes_are_classified_per_call() {
        assert_eq!(classify_code(Call::Write, 0), Outcome::Ok);
        assert_eq!(classify_code(Call::Write, -404), Outcome::Ok);
        assert_eq!(classify_code(Call::Write, -500), Outcome::Unknown);
        let cut = "node 4 (zone zb) has been cut off from the leader for 2.1 s (it cannot reach a majority";
        assert_eq!(classify(Call::Write, -500, cut), Outcome::Fail);
        assert_eq!(classify(Call::Renew, -500, cut), Outcome::Fail);
        assert_eq!(classify(Call::Write, -500, "the write did not commit in time"), Outcome::Unknown);
        assert_eq!(classify(Call::Write, -503, cut), Outcome::Unknown);
        assert_eq!(classify_code(Call::Write, -503), Outcome::Unknown);
        assert_eq!(classify_code(Call::Write, -400), Outcome::Fail);
        assert_eq!(classify_code(Call::Poll, -304), Outcome::Ok);
        assert_eq!(classify_code(Call::Read, -304), Outcome::Unknown);
    }
}
