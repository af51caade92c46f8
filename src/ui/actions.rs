//! The console's safe actions: `POST /ui/api/action` sets an instance up or waiting (drain) or cancels it;
//! `GET /ui/api/session` tells the page whether it may offer them.
//!
//! Invariants:
//! - With a cluster token configured (else the API token), an action needs it in `x-discovery-token`,
//!   compared in constant time; without it the console is read-only (401 here, and the page says so).
//!   A node with neither token is as open as its write API (dev mode): the console offers the actions and
//!   says that anyone who can reach the port may use them.
//! - Every action goes through the same write path as `/discovery/set` and `/discovery/cancel` (routed to
//!   the leader, replicated before it is acknowledged), and is logged at info with who did it: the token's
//!   holder and the client address, and the outcome.
//! - A malformed request is a 400 naming the field, never a 500.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::error::ConsoleError;
use crate::api::validate::MAX_IDENT_LEN;
use crate::registry::command::{Command, Outcome, SetArgs};
use crate::registry::model::{InstanceKey, STATUS_UP, STATUS_WAITING};
use crate::service::{Refusal, Service};

/// Who may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// No token is configured: anyone who reaches the port (as with the write API).
    Open,
    /// Holders of this token.
    Token(Arc<str>),
}

impl Access {
    /// The access of a node with these tokens: the cluster token, else the API token, else open.
    pub(crate) fn of(cluster_token: Option<&str>, api_token: Option<&str>) -> Self {
        cluster_token.or(api_token).map_or(Self::Open, |t| Self::Token(Arc::from(t)))
    }

    /// True when `headers` carry what this access needs.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        match self {
            Self::Open => true,
            Self::Token(token) => headers
                .get(discovery_raft::TOKEN_HEADER)
                .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes()))),
        }
    }
}

fn access(state: &Service) -> Access {
    Access::of(state.config().cluster_token.as_deref(), state.config().api_token.as_deref())
}

/// What the page may do.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SessionView {
    /// The node serving the console.
    pub node: u64,
    /// Its address.
    pub addr: String,
    /// Its zone.
    pub zone: String,
    /// Actions need a token.
    pub token_required: bool,
    /// This request may act.
    pub can_act: bool,
    /// One sentence for the page's banner.
    pub note: String,
}

/// The session's handler.
pub(crate) async fn session(State(state): State<Service>, headers: HeaderMap) -> Json<SessionView> {
    let access = access(&state);
    let can_act = access.allows(&headers);
    let note = match (&access, can_act) {
        (Access::Open, _) => "No token is set on this node: anyone who can reach it may change instances here, as \
                              through its write API."
            .to_string(),
        (Access::Token(_), true) => "Actions enabled with the cluster token.".to_string(),
        (Access::Token(_), false) => "Read-only: enter the cluster token to drain or cancel instances.".to_string(),
    };
    Json(SessionView {
        node: state.config().id,
        addr: state.config().addr.clone(),
        zone: state.config().zone.clone(),
        token_required: access != Access::Open,
        can_act,
        note,
    })
}

/// An action on one instance.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ActionRequest {
    /// `up`, `waiting` (drain) or `cancel`.
    pub action: String,
    /// Env.
    pub env: String,
    /// Appid.
    pub appid: String,
    /// Zone.
    pub zone: String,
    /// Hostname.
    pub hostname: String,
}

/// A done action.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ActionDone {
    /// What was done, in words.
    pub message: String,
}

/// The command `request` asks for, or a 400 naming what is wrong.
pub(crate) fn command_of(request: &ActionRequest) -> Result<Command, ConsoleError> {
    for (name, value) in
        [("env", &request.env), ("appid", &request.appid), ("zone", &request.zone), ("hostname", &request.hostname)]
    {
        if value.is_empty() || value.len() > MAX_IDENT_LEN {
            return Err(ConsoleError::bad_request(format!(
                "field {name:?} must be 1 to {MAX_IDENT_LEN} bytes, got {}",
                value.len()
            )));
        }
    }
    let set = |status: u32| {
        Command::Set(SetArgs {
            env: request.env.clone(),
            appid: request.appid.clone(),
            zone: request.zone.clone(),
            hostnames: vec![request.hostname.clone()],
            statuses: vec![status],
            metadata: Vec::new(),
            set_timestamp: 0,
        })
    };
    match request.action.as_str() {
        "up" => Ok(set(STATUS_UP)),
        "waiting" => Ok(set(STATUS_WAITING)),
        "cancel" => Ok(Command::Cancel(InstanceKey {
            env: request.env.clone(),
            appid: request.appid.clone(),
            zone: request.zone.clone(),
            hostname: request.hostname.clone(),
        })),
        other => Err(ConsoleError::bad_request(format!("unknown action {other:?}: use up, waiting or cancel"))),
    }
}

fn who(access: &Access, peer: Option<SocketAddr>) -> String {
    let from = peer.map_or_else(|| "an unknown address".to_string(), |p| p.to_string());
    match access {
        Access::Open => format!("{from} (no token set on this node)"),
        Access::Token(_) => format!("the cluster token's holder at {from}"),
    }
}

fn refused(refusal: Refusal) -> ConsoleError {
    let status = match refusal {
        Refusal::OutcomeUnknown(_) => StatusCode::GATEWAY_TIMEOUT,
        Refusal::Overloaded(_) | Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ConsoleError::new(status, format!("the action was not applied: {refusal}"))
}

/// The action's handler.
pub(crate) async fn action(
    State(state): State<Service>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Result<Json<ActionDone>, ConsoleError> {
    let access = access(&state);
    if !access.allows(&headers) {
        return Err(ConsoleError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong x-discovery-token: the console is read-only without the cluster token",
        ));
    }
    let request: ActionRequest = serde_json::from_slice(&body)
        .map_err(|e| ConsoleError::bad_request(format!("the body must be a JSON action: {e}")))?;
    let command = command_of(&request)?;
    let who = who(&access, peer.map(|Extension(ConnectInfo(addr))| addr));
    let result = state.write(command).await;
    let target = format!("{}/{} {} {}", request.env, request.appid, request.zone, request.hostname);
    let outcome = match result {
        Ok(Outcome::Ok) => Ok(Json(ActionDone { message: format!("{} {target}: done", request.action) })),
        Ok(Outcome::NotFound) => {
            Err(ConsoleError::new(StatusCode::NOT_FOUND, format!("no instance {target} (it may have gone already)")))
        }
        Ok(Outcome::Invalid(why)) => Err(ConsoleError::bad_request(why)),
        Ok(Outcome::Evicted(_)) => Err(ConsoleError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected outcome")),
        Err(refusal) => Err(refused(refusal)),
    };
    let result_text = outcome.as_ref().map_or_else(|e| e.message.clone(), |_| "done".to_string());
    tracing::info!(
        action = %request.action,
        instance = %target,
        by = %who,
        result = %result_text,
        "console action"
    );
    outcome
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn request(action: &str, hostname: &str) -> ActionRequest {
        ActionRequest {
            action: action.into(),
            env: "dev".into(),
            appid: "demo".into(),
            zone: "z1".into(),
            hostname: hostname.into(),
        }
    }

    #[test]
    fn the_cluster_token_guards_actions_else_the_api_token_else_none() {
        let mut with = HeaderMap::new();
        with.insert(discovery_raft::TOKEN_HEADER, HeaderValue::from_static("s3cret"));
        let none = HeaderMap::new();
        let cluster = Access::of(Some("s3cret"), Some("other"));
        assert!(cluster.allows(&with) && !cluster.allows(&none));
        let api = Access::of(None, Some("other"));
        assert!(!api.allows(&with) && !api.allows(&none));
        assert!(Access::of(None, None).allows(&none));
    }

    #[test]
    fn actions_map_to_set_and_cancel_and_bad_ones_name_the_field() {
        match command_of(&request("waiting", "h1")).unwrap() {
            Command::Set(args) => assert_eq!((args.hostnames, args.statuses), (vec!["h1".to_string()], vec![2])),
            other => panic!("{other:?}"),
        }
        assert!(matches!(command_of(&request("cancel", "h1")).unwrap(), Command::Cancel(k) if k.hostname == "h1"));
        let err = command_of(&request("reboot", "h1")).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("\"reboot\""));
        let err = command_of(&request("up", "")).unwrap_err();
        assert!(err.message.contains("\"hostname\""), "{}", err.message);
    }

    #[test]
    fn the_log_names_who_acted() {
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        assert_eq!(who(&Access::Open, Some(peer)), "127.0.0.1:5555 (no token set on this node)");
        assert!(who(&Access::Token(Arc::from("t")), Some(peer)).contains("token's holder at 127.0.0.1:5555"));
    }
}
