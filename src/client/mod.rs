//! The typed client of the HTTP API (bilibili/discovery's, this server's operator routes included): what a
//! Rust service uses to register itself and watch others, and what this project's CLI and tools use.
//!
//! ```no_run
//! use std::time::Duration;
//! use discovery::client::{Client, InstanceKey, Registration, Watcher};
//!
//! # async fn demo() -> Result<(), discovery::client::ClientError> {
//! // Any members of the cluster; the client moves to another one when a node cannot be reached.
//! let client = Client::builder(["10.0.0.2:7171", "10.0.0.3:7171"]).build();
//! let me = Registration::new(InstanceKey::new("prod", "demo.svc", "sh001", "host-a"), ["grpc://10.0.0.5:9000"]);
//! // Register, then renew every 30 s (registering again if the registry forgot the instance).
//! let registered = client.keep_registered(me, Duration::from_secs(30)).await?;
//! // Watch another app: every change, from any node that can serve.
//! let mut watcher = Watcher::new(client.clone(), "prod", "host-a", ["account.svc"]).follow_nodes(true);
//! while let Ok(change) = watcher.next().await {
//!     println!("{} now has {} instances", change.appid, change.info.all().count());
//! #   break;
//! }
//! registered.stop().await?; // cancels the instance
//! # Ok(()) }
//! ```
//!
//! Invariants:
//! - Every call has a deadline ([`ClientBuilder::call_timeout`]; polls: the poll wait plus a margin) and
//!   ends in a typed answer or a [`ClientError`]: the server's business code as [`ClientError::Code`]
//!   (-304 of a poll is [`Poll::NotModified`]), an operator refusal as [`ClientError::Refused`], transport
//!   failures as [`ClientError::Transport`]. Nothing panics on a bad answer.
//! - Node failover: a call goes to the node that answered last; when a node cannot be reached the next one
//!   is tried, once around the list. A read is retried elsewhere after any transport failure; a write only
//!   when the connection could not even be made (a write that was sent may have taken effect: it is
//!   reported, not repeated behind the caller's back).
//!
//! # Layout
//! - [`wire`]: the request and answer types; [`error`]: [`ClientError`].
//! - this file: [`Client`], its builder, and the API calls (register, renew, cancel, set, fetch, fetchs,
//!   poll, polls, nodes).
//! - `admin`: the operator routes (status, digest, health, snapshot, membership changes).
//! - [`keep`]: [`Registered`], a registration kept alive by a renew loop.
//! - [`watch`]: [`Watcher`], changes of a set of apps through long polls, across nodes.
//! - [`commands`]: the `discovery fetch|register|watch` commands.

mod admin;
pub mod commands;
pub mod error;
pub mod keep;
pub mod watch;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

pub use error::ClientError;
pub use keep::Registered;
pub use watch::{Change, Watcher};
pub use wire::{Digest, Instance, InstanceInfo, InstanceKey, NodeInfo, NodeStatus, Registration, SetRequest};

/// Default deadline of a call other than a poll.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may hold a poll (its `--poll-timeout`, 30 s by default) before the client gives up.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(40);
/// Header of the cluster token on operator routes.
const TOKEN_HEADER: &str = "x-discovery-token";

/// The outcome of one long poll of one app.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// The app changed: its instances and new cursor.
    Changed(InstanceInfo),
    /// Nothing changed before the server's poll timeout (-304).
    NotModified,
    /// The server does not know the app.
    Unknown,
}

/// The outcome of one long poll of several apps (`/discovery/polls`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Polls {
    /// The apps that changed, with their instances and new cursors.
    pub changed: BTreeMap<String, InstanceInfo>,
    /// The apps the server does not know.
    pub unknown: Vec<String>,
    /// True when nothing changed before the server's poll timeout (-304).
    pub not_modified: bool,
}

/// One answer of an API route as the server sent it ([`Client::get_envelope`], [`Client::post_envelope`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The node that answered.
    pub server: String,
    /// The HTTP status.
    pub status: u16,
    /// The envelope's business code (0 ok, -304 not modified, -400, -404, -500, -503...).
    pub code: i64,
    /// The envelope's message.
    pub message: String,
    /// The envelope's `data`.
    pub data: Option<Value>,
    /// The envelope's `error` (`polls`: `{"-404": [unknown appids]}`).
    pub error: Option<Value>,
    /// How stale a read is, from the `x-discovery-stale-ms` header: set by a node cut off from its leader
    /// that still answers from the last state it applied (a read replica in a partitioned zone).
    pub stale_ms: Option<u64>,
}

impl Reply {
    fn new(server: String, status: u16, answer: Envelope<Value>) -> Self {
        Reply {
            server,
            status,
            code: answer.code,
            message: answer.message,
            data: answer.data,
            error: answer.error,
            stale_ms: answer.stale_ms,
        }
    }
}

/// The header a node cut off from its leader puts on the reads it still answers.
const STALE_HEADER: &str = "x-discovery-stale-ms";

/// A client of a discovery cluster (any members of it). Cheap to clone: clones share the node list.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    nodes: Arc<RwLock<Vec<String>>>,
    current: Arc<AtomicUsize>,
    api_token: Option<String>,
    cluster_token: Option<String>,
    call_timeout: Duration,
    poll_timeout: Duration,
}

/// How to build a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    nodes: Vec<String>,
    api_token: Option<String>,
    cluster_token: Option<String>,
    call_timeout: Duration,
    poll_timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// Send `Authorization: Bearer <token>` on writes (for servers started with `--api-token`).
    pub fn api_token(mut self, token: Option<String>) -> Self {
        self.api_token = token;
        self
    }

    /// Send the cluster token on operator routes (`/admin/*`).
    pub fn cluster_token(mut self, token: Option<String>) -> Self {
        self.cluster_token = token;
        self
    }

    /// Deadline of every call but polls (default [`CALL_TIMEOUT`]).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Deadline of a poll: longer than the server's poll timeout (default [`POLL_TIMEOUT`]).
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Deadline to open a connection (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The client.
    pub fn build(self) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            http,
            nodes: Arc::new(RwLock::new(self.nodes)),
            current: Arc::default(),
            api_token: self.api_token,
            cluster_token: self.cluster_token,
            call_timeout: self.call_timeout,
            poll_timeout: self.poll_timeout,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    code: i64,
    #[serde(default)]
    message: String,
    data: Option<T>,
    /// `polls` only: `{"-404": [unknown appids] or null}`.
    #[serde(default)]
    error: Option<Value>,
    /// [`STALE_HEADER`], not part of the body.
    #[serde(skip)]
    stale_ms: Option<u64>,
}

/// Whether a call may be tried on another node after a transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// A read: after any transport failure.
    Read,
    /// A write: only when no connection could be made (nothing was sent).
    Write,
}

impl Client {
    /// A client of one server (`HOST:PORT`).
    pub fn new(server: &str) -> Self {
        Self::builder([server]).build()
    }

    /// A builder for a client of `nodes` (`HOST:PORT`, any members of the cluster).
    pub fn builder(nodes: impl IntoIterator<Item = impl Into<String>>) -> ClientBuilder {
        ClientBuilder {
            nodes: nodes.into_iter().map(Into::into).collect(),
            api_token: None,
            cluster_token: None,
            call_timeout: CALL_TIMEOUT,
            poll_timeout: POLL_TIMEOUT,
            connect_timeout: Duration::from_secs(3),
        }
    }

    /// Send `Authorization: Bearer <token>` on writes (for a server started with `--api-token`).
    pub fn with_api_token(mut self, token: Option<String>) -> Self {
        self.api_token = token;
        self
    }

    /// The same client (sharing its connections and node list) with another deadline for calls but polls.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The node calls go to first (the one that answered last).
    pub fn server(&self) -> String {
        let nodes = self.node_list();
        nodes.get(self.current.load(Ordering::Relaxed) % nodes.len().max(1)).cloned().unwrap_or_default()
    }

    /// The nodes, in order.
    pub fn node_list(&self) -> Vec<String> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the node list (e.g. with what `infra.discovery` lists); the current node is kept if still there.
    pub fn set_nodes(&self, nodes: Vec<String>) {
        if nodes.is_empty() {
            return;
        }
        let current = self.server();
        let at = nodes.iter().position(|n| *n == current).unwrap_or(0);
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = nodes;
        self.current.store(at, Ordering::Relaxed);
    }

    /// Move on to the next node (after a failure the caller noticed itself, e.g. a -500 answer).
    pub fn next_node(&self) {
        self.current.fetch_add(1, Ordering::Relaxed);
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
        self.write("/discovery/register", form).await
    }

    /// `POST /discovery/renew`; -404 ([`ClientError::is_not_found`]) means the server does not know the
    /// instance: register again.
    pub async fn renew(&self, key: &InstanceKey) -> Result<(), ClientError> {
        self.write("/discovery/renew", key_form(key)).await
    }

    /// `POST /discovery/cancel`.
    pub async fn cancel(&self, key: &InstanceKey) -> Result<(), ClientError> {
        self.write("/discovery/cancel", key_form(key)).await
    }

    /// `POST /discovery/set`: change the status and/or metadata of some hosts (all or nothing).
    pub async fn set(&self, request: &SetRequest) -> Result<(), ClientError> {
        let mut form =
            vec![("env", request.env.clone()), ("appid", request.appid.clone()), ("zone", request.zone.clone())];
        form.extend(request.hostnames.iter().map(|h| ("hostname", h.clone())));
        if let Some(status) = request.status {
            form.extend(request.hostnames.iter().map(|_| ("status", status.to_string())));
        }
        if let Some(metadata) = &request.metadata {
            let json = serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_string());
            form.extend(request.hostnames.iter().map(|_| ("metadata", json.clone())));
        }
        self.write("/discovery/set", form).await
    }

    /// `GET /discovery/fetch`: the app's instances (`status`: 1 up, 2 waiting, 3 both).
    pub async fn fetch(
        &self,
        env: &str,
        appid: &str,
        zone: Option<&str>,
        status: u32,
    ) -> Result<InstanceInfo, ClientError> {
        self.fetch_with(env, appid, zone, status, false).await
    }

    /// [`Client::fetch`] with `consistent=1`: linearizable (it reflects every write acknowledged before).
    pub async fn fetch_consistent(
        &self,
        env: &str,
        appid: &str,
        zone: Option<&str>,
        status: u32,
    ) -> Result<InstanceInfo, ClientError> {
        self.fetch_with(env, appid, zone, status, true).await
    }

    async fn fetch_with(
        &self,
        env: &str,
        appid: &str,
        zone: Option<&str>,
        status: u32,
        consistent: bool,
    ) -> Result<InstanceInfo, ClientError> {
        let mut query = vec![("env", env.to_string()), ("appid", appid.to_string()), ("status", status.to_string())];
        if let Some(zone) = zone {
            query.push(("zone", zone.to_string()));
        }
        if consistent {
            query.push(("consistent", "1".to_string()));
        }
        let (server, _, answer) = self.get::<InstanceInfo>("/discovery/fetch", &query, self.call_timeout).await?;
        data(&server, answer)
    }

    /// `GET /discovery/fetchs`: several apps at once.
    pub async fn fetchs(
        &self,
        env: &str,
        appids: &[&str],
        zone: Option<&str>,
        status: u32,
    ) -> Result<BTreeMap<String, InstanceInfo>, ClientError> {
        let mut query = vec![("env", env.to_string()), ("status", status.to_string())];
        query.extend(appids.iter().map(|a| ("appid", (*a).to_string())));
        if let Some(zone) = zone {
            query.push(("zone", zone.to_string()));
        }
        let (server, _, answer) =
            self.get::<BTreeMap<String, Option<InstanceInfo>>>("/discovery/fetchs", &query, self.call_timeout).await?;
        let apps = data(&server, answer)?;
        Ok(apps.into_iter().filter_map(|(appid, info)| info.map(|info| (appid, info))).collect())
    }

    /// `GET /discovery/polls` for one app: wait until its cursor passes `latest_timestamp`.
    pub async fn poll(
        &self,
        env: &str,
        appid: &str,
        hostname: &str,
        latest_timestamp: i64,
    ) -> Result<Poll, ClientError> {
        let answer = self.polls(env, hostname, &[(appid.to_string(), latest_timestamp)]).await?;
        Ok(match answer.changed.into_iter().find(|(a, _)| a == appid) {
            Some((_, info)) => Poll::Changed(info),
            None if answer.not_modified => Poll::NotModified,
            None => Poll::Unknown,
        })
    }

    /// `GET /discovery/polls`: wait until one of the apps' cursors passes the one given with it.
    pub async fn polls(&self, env: &str, hostname: &str, apps: &[(String, i64)]) -> Result<Polls, ClientError> {
        let mut query = vec![("env", env.to_string()), ("hostname", hostname.to_string())];
        query.extend(apps.iter().map(|(appid, _)| ("appid", appid.clone())));
        query.extend(apps.iter().map(|(_, cursor)| ("latest_timestamp", cursor.to_string())));
        let (server, _, answer) =
            self.get::<BTreeMap<String, InstanceInfo>>("/discovery/polls", &query, self.poll_timeout).await?;
        let unknown = answer
            .error
            .as_ref()
            .and_then(|e| e.get("-404"))
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|a| a.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        match answer.code {
            -304 => Ok(Polls { not_modified: true, ..Polls::default() }),
            0 => Ok(Polls { changed: answer.data.unwrap_or_default(), unknown, not_modified: false }),
            code => Err(ClientError::Code { server, code, message: answer.message }),
        }
    }

    /// `GET /discovery/nodes`: the servers that can serve.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClientError> {
        let (server, _, answer) = self.get::<Vec<NodeInfo>>("/discovery/nodes", &[], self.call_timeout).await?;
        data(&server, answer)
    }

    /// `GET` an API route from the current node on (reads fail over after any transport failure) and
    /// return the envelope as the server sent it, whatever its code: for tools that judge every answer
    /// themselves (the chaos workload classifies each one). The typed calls above are built on it.
    pub async fn get_envelope(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let (server, status, answer) = self.get::<Value>(path, query, timeout).await?;
        Ok(Reply::new(server, status, answer))
    }

    /// `POST` a form to an API route (with the API token) and return the envelope as sent, whatever its
    /// code. Like every write it moves to another node only when no connection could be made.
    pub async fn post_envelope(
        &self,
        path: &str,
        form: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let (server, status, answer) = self.post::<Value>(path, form, timeout).await?;
        Ok(Reply::new(server, status, answer))
    }

    /// [`Client::get_envelope`] of `node` only, whatever the node list: for tools that choose the node
    /// of every call themselves (the chaos workload spreads its calls over the members).
    pub async fn get_envelope_at(
        &self,
        node: &str,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let nodes = [node.to_string()];
        let (server, status, answer) = self
            .send_to::<Value>(&nodes, None, Retry::Read, |http, server| {
                http.get(format!("http://{server}{path}")).query(query).timeout(timeout)
            })
            .await?;
        Ok(Reply::new(server, status, answer))
    }

    /// [`Client::post_envelope`] to `node` only, whatever the node list.
    pub async fn post_envelope_at(
        &self,
        node: &str,
        path: &str,
        form: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let nodes = [node.to_string()];
        let (server, status, answer) = self
            .send_to::<Value>(&nodes, None, Retry::Write, |http, server| {
                self.post_request(http, server, path, form, timeout)
            })
            .await?;
        Ok(Reply::new(server, status, answer))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<(String, u16, Envelope<T>), ClientError> {
        self.with_failover(Retry::Read, |http, server| {
            http.get(format!("http://{server}{path}")).query(query).timeout(timeout)
        })
        .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, String)],
        timeout: Duration,
    ) -> Result<(String, u16, Envelope<T>), ClientError> {
        self.with_failover::<T>(Retry::Write, |http, server| self.post_request(http, server, path, form, timeout)).await
    }

    fn post_request(
        &self,
        http: &reqwest::Client,
        server: &str,
        path: &str,
        form: &[(&str, String)],
        timeout: Duration,
    ) -> reqwest::RequestBuilder {
        let request = http.post(format!("http://{server}{path}")).form(form).timeout(timeout);
        match &self.api_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn write(&self, path: &str, form: Vec<(&str, String)>) -> Result<(), ClientError> {
        let (server, _, answer) = self.post::<Value>(path, &form, self.call_timeout).await?;
        match answer.code {
            0 => Ok(()),
            code => Err(ClientError::Code { server, code, message: answer.message }),
        }
    }

    /// Send the request `build` makes for a node, from the current node on, moving on after a transport
    /// failure as `retry` allows; the node that answered, the HTTP status and the envelope.
    async fn with_failover<T: DeserializeOwned>(
        &self,
        retry: Retry,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<(String, u16, Envelope<T>), ClientError> {
        let nodes = self.node_list();
        let start = self.current.load(Ordering::Relaxed);
        self.send_to(&nodes, Some(start), retry, build).await
    }

    /// Send to `nodes` from `start` on, moving on after a transport failure as `retry` allows. With a
    /// `start` the nodes are the client's list, and the one that answers becomes the current node; without,
    /// they are a list of the caller's (the `_at` calls), tried from the first, and the current node stays.
    async fn send_to<T: DeserializeOwned>(
        &self,
        nodes: &[String],
        start: Option<usize>,
        retry: Retry,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<(String, u16, Envelope<T>), ClientError> {
        if nodes.is_empty() {
            return Err(ClientError::Transport { server: "-".into(), reason: "no node to call".into(), sent: false });
        }
        let mut last = None;
        for offset in 0..nodes.len() {
            let at = (start.unwrap_or(0) + offset) % nodes.len();
            let server = &nodes[at];
            match build(&self.http, server).send().await {
                Ok(response) => {
                    if start.is_some() {
                        self.current.store(at, Ordering::Relaxed);
                    }
                    let status = response.status().as_u16();
                    return decode(server, response).await.map(|answer| (server.clone(), status, answer));
                }
                Err(err) => {
                    let failure = transport_error(server, &err);
                    let may_retry = retry == Retry::Read || failure.never_sent();
                    last = Some(failure);
                    if !may_retry {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Transport {
            server: "-".into(),
            reason: "no node answered".into(),
            sent: false,
        }))
    }

    fn admin_request(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cluster_token {
            Some(token) => request.header(TOKEN_HEADER, token),
            None => request,
        }
    }
}

/// Read the answer as a bilibili envelope (with the staleness its headers declare).
async fn decode<T: DeserializeOwned>(server: &str, response: reqwest::Response) -> Result<Envelope<T>, ClientError> {
    let status = response.status();
    let stale_ms = response.headers().get(STALE_HEADER).and_then(|v| v.to_str().ok()?.parse().ok());
    let body = response.bytes().await.map_err(|e| transport_error(server, &e))?;
    let envelope: Envelope<T> = serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer {
        server: server.to_string(),
        status: status.as_u16(),
        reason: format!("{e}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
    })?;
    Ok(Envelope { stale_ms, ..envelope })
}

/// A transport failure: `sent` unless the connection could not even be made.
pub(crate) fn transport_error(server: &str, err: &reqwest::Error) -> ClientError {
    ClientError::Transport { server: server.to_string(), reason: transport_reason(err), sent: !err.is_connect() }
}

fn transport_reason(err: &reqwest::Error) -> String {
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}

fn data<T>(server: &str, answer: Envelope<T>) -> Result<T, ClientError> {
    if answer.code != 0 {
        return Err(ClientError::Code { server: server.to_string(), code: answer.code, message: answer.message });
    }
    answer.data.ok_or_else(|| ClientError::BadAnswer {
        server: server.to_string(),
        status: 200,
        reason: "no data".into(),
    })
}

fn key_form(key: &InstanceKey) -> Vec<(&'static str, String)> {
    vec![
        ("env", key.env.clone()),
        ("appid", key.appid.clone()),
        ("zone", key.zone.clone()),
        ("hostname", key.hostname.clone()),
    ]
}
