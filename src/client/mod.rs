//! A small client of the bilibili/discovery HTTP API (any server that speaks it, this one included), for the
//! `discovery fetch|register|watch` commands and for other tools.
//!
//! Invariants:
//! - Every call returns the server's business code as [`ClientError::Code`] when it is not 0 (or -304 for a
//!   poll, which is [`Poll::NotModified`]), and transport failures as [`ClientError::Transport`]; nothing
//!   panics on a bad answer.
//! - Calls have their own deadline: [`CALL_TIMEOUT`] for plain calls, the poll wait plus a margin for polls.

pub mod commands;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::registry::model::InstanceKey;
use crate::registry::view::InstanceInfo;

/// Deadline of a call other than a poll.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may hold a poll (its `--poll-timeout`, 30 s by default) before the client gives up.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(40);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or did not answer in time.
    #[error("cannot reach {server}: {reason}")]
    Transport {
        /// The server.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered a business error code.
    #[error("{server} answered code {code}: {message}")]
    Code {
        /// The server.
        server: String,
        /// The code (-400, -404, -500...).
        code: i64,
        /// The envelope's message.
        message: String,
    },
    /// The answer was not the expected JSON.
    #[error("bad answer from {server}: {reason}")]
    BadAnswer {
        /// The server.
        server: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl ClientError {
    /// The business code, if the server answered one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ClientError::Code { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// An instance to register.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// Identity (env, appid, zone, hostname).
    pub key: InstanceKey,
    /// Addresses, e.g. `grpc://10.0.0.5:9000`.
    pub addrs: Vec<String>,
    /// 1 (up) or 2 (waiting).
    pub status: u32,
    /// Free text.
    pub version: String,
    /// Metadata, sent as a JSON object.
    pub metadata: BTreeMap<String, String>,
}

/// The outcome of one long poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// The app changed: its instances and new cursor.
    Changed(InstanceInfo),
    /// Nothing changed before the server's poll timeout (-304).
    NotModified,
    /// The server does not know the app.
    Unknown,
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    api_token: Option<String>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    code: i64,
    #[serde(default)]
    message: String,
    data: Option<T>,
}

impl Client {
    /// A client of `server` (`HOST:PORT`).
    pub fn new(server: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http, server: server.to_string(), api_token: None }
    }

    /// Send `Authorization: Bearer <token>` on writes (for a server started with `--api-token`).
    pub fn with_api_token(mut self, token: Option<String>) -> Self {
        self.api_token = token;
        self
    }

    /// The server this client talks to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `GET /discovery/fetch`: the app's instances (`status`: 1 up, 2 waiting, 3 both).
    pub async fn fetch(
        &self,
        env: &str,
        appid: &str,
        zone: Option<&str>,
        status: u32,
    ) -> Result<InstanceInfo, ClientError> {
        let mut query = vec![("env", env.to_string()), ("appid", appid.to_string()), ("status", status.to_string())];
        if let Some(zone) = zone {
            query.push(("zone", zone.to_string()));
        }
        let request = self.http.get(self.url("/discovery/fetch")).query(&query).timeout(CALL_TIMEOUT);
        let answer: Envelope<InstanceInfo> = self.send(request).await?;
        self.data(answer)
    }

    /// `POST /discovery/register`.
    pub async fn register(&self, registration: &Registration) -> Result<(), ClientError> {
        let key = &registration.key;
        let metadata = serde_json::to_string(&registration.metadata).unwrap_or_else(|_| "{}".to_string());
        let mut form = key_form(key);
        form.extend([
            ("status", registration.status.to_string()),
            ("version", registration.version.clone()),
            ("metadata", metadata),
        ]);
        form.extend(registration.addrs.iter().map(|a| ("addrs", a.clone())));
        self.write("/discovery/register", &form).await
    }

    /// `POST /discovery/renew`; -404 means the server does not know the instance (register again).
    pub async fn renew(&self, key: &InstanceKey) -> Result<(), ClientError> {
        self.write("/discovery/renew", &key_form(key)).await
    }

    /// `POST /discovery/cancel`.
    pub async fn cancel(&self, key: &InstanceKey) -> Result<(), ClientError> {
        self.write("/discovery/cancel", &key_form(key)).await
    }

    /// `GET /discovery/polls` for one app: wait until its cursor passes `latest_timestamp`.
    pub async fn poll(
        &self,
        env: &str,
        appid: &str,
        hostname: &str,
        latest_timestamp: i64,
    ) -> Result<Poll, ClientError> {
        let query = [
            ("env", env.to_string()),
            ("appid", appid.to_string()),
            ("hostname", hostname.to_string()),
            ("latest_timestamp", latest_timestamp.to_string()),
        ];
        let request = self.http.get(self.url("/discovery/polls")).query(&query).timeout(POLL_TIMEOUT);
        let answer: Envelope<BTreeMap<String, InstanceInfo>> = self.send(request).await?;
        match answer.code {
            -304 => Ok(Poll::NotModified),
            0 => Ok(answer.data.and_then(|mut apps| apps.remove(appid)).map_or(Poll::Unknown, Poll::Changed)),
            code => Err(ClientError::Code { server: self.server.clone(), code, message: answer.message }),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server)
    }

    async fn write(&self, path: &str, form: &[(&str, String)]) -> Result<(), ClientError> {
        let mut request = self.http.post(self.url(path)).form(form).timeout(CALL_TIMEOUT);
        if let Some(token) = &self.api_token {
            request = request.bearer_auth(token);
        }
        let answer: Envelope<Value> = self.send(request).await?;
        match answer.code {
            0 => Ok(()),
            code => Err(ClientError::Code { server: self.server.clone(), code, message: answer.message }),
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<Envelope<T>, ClientError> {
        let transport =
            |e: reqwest::Error| ClientError::Transport { server: self.server.clone(), reason: e.to_string() };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer {
            server: self.server.clone(),
            reason: format!("HTTP {status}: {e}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
        })
    }

    fn data<T>(&self, answer: Envelope<T>) -> Result<T, ClientError> {
        if answer.code != 0 {
            return Err(ClientError::Code { server: self.server.clone(), code: answer.code, message: answer.message });
        }
        answer.data.ok_or_else(|| ClientError::BadAnswer { server: self.server.clone(), reason: "no data".into() })
    }
}

fn key_form(key: &InstanceKey) -> Vec<(&'static str, String)> {
    vec![
        ("env", key.env.clone()),
        ("appid", key.appid.clone()),
        ("zone", key.zone.clone()),
        ("hostname", key.hostname.clone()),
    ]
}
