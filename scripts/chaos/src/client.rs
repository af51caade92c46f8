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

use serde_json::Value;

use crate::history::{Outcome, Seen};

/// The cluster token header (`discovery_raft::TOKEN_HEADER`).
pub const TOKEN_HEADER: &str = "x-discovery-token";

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
    fn transport(err: &reqwest::Error) -> Self {
        let outcome = if err.is_connect() { Outcome::Fail } else { Outcome::Unknown };
        let kind = if err.is_timeout() {
            "timeout"
        } else if err.is_connect() {
            "connect"
        } else {
            "transport"
        };
        Answer { outcome, code: None, err: Some(format!("{kind}: {}", chain(err))), data: None }
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
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

/// HTTP access to the nodes.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    token: String,
}

impl Api {
    /// A pooled client; `token` goes on admin calls.
    pub fn new(token: String) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(1000))
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self { client, token })
    }

    /// POST a form to a `/discovery/*` route.
    pub async fn post(&self, addr: &str, path: &str, form: &[(&str, String)], call: Call, timeout: Duration) -> Answer {
        let request = self.client.post(format!("http://{addr}{path}")).form(form).timeout(timeout);
        self.send(request, call).await
    }

    /// GET a `/discovery/*` route.
    pub async fn get(&self, addr: &str, path: &str, query: &[(&str, String)], call: Call, timeout: Duration) -> Answer {
        let request = self.client.get(format!("http://{addr}{path}")).query(query).timeout(timeout);
        self.send(request, call).await
    }

    async fn send(&self, request: reqwest::RequestBuilder, call: Call) -> Answer {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Answer::transport(&e),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Answer { outcome: Outcome::Unknown, ..Answer::transport(&e) },
        };
        if !status.is_success() {
            let outcome = if status.is_client_error() { Outcome::Fail } else { Outcome::Unknown };
            let err = Some(format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()));
            return Answer { outcome, code: None, err, data: None };
        }
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            let err = Some(format!("bad body: {}", String::from_utf8_lossy(&body)));
            return Answer { outcome: Outcome::Unknown, code: None, err, data: None };
        };
        let code = json.get("code").and_then(Value::as_i64);
        let Some(code) = code else {
            return Answer { outcome: Outcome::Unknown, code: None, err: Some("no code".into()), data: None };
        };
        let message = json.get("message").and_then(Value::as_str).unwrap_or("");
        let outcome = classify(call, code, message);
        let err = (code != 0).then(|| message.to_string());
        Answer { outcome, code: Some(code), err, data: json.get("data").cloned() }
    }

    /// GET an admin route (JSON, not enveloped); None when unreachable or not 200.
    pub async fn admin(&self, addr: &str, path: &str, timeout: Duration) -> Option<Value> {
        let request = self.client.get(format!("http://{addr}{path}")).header(TOKEN_HEADER, &self.token);
        let response = request.timeout(timeout).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// `/healthz` answered 200.
    pub async fn healthy(&self, addr: &str, timeout: Duration) -> bool {
        let request = self.client.get(format!("http://{addr}/healthz")).timeout(timeout);
        matches!(request.send().await, Ok(r) if r.status().is_success())
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
