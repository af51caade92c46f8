//! Test support: in-process nodes on ephemeral ports with temp data dirs, HTTP helpers that check the
//! envelope invariants on every answer, bounded waits on observable state, and golden transcripts.
//!
//! Two ways to talk to a node:
//! - the raw wire helpers ([`TestNode::post`], [`TestNode::get`], [`TestNode::raw`], [`Reply::read`],
//!   [`Transcript`]) send exactly the bytes a test gives and keep the whole answer (HTTP status, headers,
//!   body text). They test the wire format itself, so they are deliberately not an API client.
//! - the typed conveniences a test uses to set up or observe state ([`TestNode::register`],
//!   [`TestNode::renew`], [`TestNode::cancel`], [`TestNode::fetch`], [`TestNode::hostnames`],
//!   [`TestNode::cursor`]) go through the library's client, [`TestNode::client`]
//!   (`discovery::client::Client`), the project's one implementation of the API's client side.
//!
//! Every wait here is bounded by a deadline and polls observable state; nothing sleeps for a fixed time to
//! let state settle.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use discovery::client::{Client, InstanceKey};
use discovery::config::Config;
use discovery::node::{AppState, RunningNode};
use serde_json::Value;
use tokio::net::TcpListener;

/// Default deadline for state to become observable.
pub const WAIT: Duration = Duration::from_secs(10);

/// `Content-Type` of every JSON answer.
pub const JSON_CT: &str = "application/json; charset=utf-8";

/// The five instance timestamps plus the app cursor (same key name).
pub const TIMESTAMP_KEYS: &[&str] =
    &["reg_timestamp", "up_timestamp", "renew_timestamp", "dirty_timestamp", "latest_timestamp"];

/// Poll `check` until it returns true; panic naming `what` after `timeout`. Returns the time it took.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Serializes the tests that measure latency or load the machine (the 1,000-waiter test, the fuzzer), so a
/// latency bound is not measured while another test saturates the CPUs. Light tests do not take it.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    GATE.lock().await
}

/// Unix time in nanoseconds.
pub fn now_ns() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(d.as_nanos()).expect("fits i64")
}

/// A node running in this process.
pub struct TestNode {
    node: Option<RunningNode>,
    /// Its configuration (its `addr` is the real bound address).
    pub config: Config,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// HTTP client for the raw wire helpers (pooled, no global timeout: long polls set their own).
    pub http: reqwest::Client,
    /// The library's API client of this node (typed calls and its envelope layer).
    pub client: Client,
    dir: Option<tempfile::TempDir>,
}

impl TestNode {
    /// A node with the test defaults (see [`TestNode::start_with`]).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A node on an ephemeral port with a temp data dir. Test defaults: `poll_timeout` 1 s (a test that
    /// needs a hanging poll sets its own); everything else as `Config::default()`, then `tune`.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config =
            Config { data_dir: dir.path().join("data"), poll_timeout: Duration::from_secs(1), ..Config::default() };
        tune(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
        config.addr = listener.local_addr().expect("local addr").to_string();
        Self::launch(config, listener, Some(dir)).await
    }

    async fn launch(config: Config, listener: TcpListener, dir: Option<tempfile::TempDir>) -> Self {
        config.validate().expect("test config is valid");
        let node = discovery::app::start(config.clone(), listener).await.expect("node starts");
        let http = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5)).build().expect("client");
        let client = Client::new(&config.addr);
        let started = TestNode { addr: config.addr.clone(), node: Some(node), config, http, client, dir };
        started.wait_active_leader().await;
        started
    }

    /// Wait until this node is leader, its lessor is active (renews answered, leases kept) and it lists
    /// itself as serving in `infra.discovery`.
    pub async fn wait_active_leader(&self) {
        let lessor = self.state().lessor.clone();
        wait_until(WAIT, "the node to lead with an active lessor", || {
            let active = lessor.status().active;
            async move { active }
        })
        .await;
        let state = self.state().clone();
        wait_until(WAIT, "the node to list itself as serving", || {
            let listed = !state.served_membership().members().is_empty();
            async move { listed }
        })
        .await;
    }

    /// The node's shared state.
    pub fn state(&self) -> &AppState {
        &self.node.as_ref().expect("node running").state
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stop the node (graceful), keep its data dir, and start a new node on it (same address if it can
    /// be bound again, else a fresh port).
    pub async fn restart(mut self) -> Self {
        let node = self.node.take().expect("running");
        node.stop().await.expect("clean stop");
        let listener = match TcpListener::bind(&self.config.addr).await {
            Ok(listener) => listener,
            Err(_) => TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port"),
        };
        let mut config = self.config.clone();
        config.addr = listener.local_addr().expect("local addr").to_string();
        Self::launch(config, listener, self.dir.take()).await
    }

    /// Stop the node cleanly.
    pub async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await.expect("clean stop");
        }
    }

    /// `POST` a form (`application/x-www-form-urlencoded`, repeated keys allowed).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let resp = self.http.post(self.url(path)).form(form).send().await.expect("POST");
        Reply::read(path, resp).await
    }

    /// `GET` with a query (repeated keys allowed).
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let resp = self.http.get(self.url(path)).query(query).send().await.expect("GET");
        Reply::read(path, resp).await
    }

    /// Any method, raw path-and-query, optional content type and raw body.
    pub async fn raw(&self, method: &str, path_and_query: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, self.url(path_and_query)).body(body.to_vec());
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        let resp = req.send().await.expect("request");
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        Reply::read(path, resp).await
    }

    /// Register `inst` with exactly its form (region, raw metadata text: the fixtures of the golden
    /// transcripts depend on them), through the client's envelope layer; panics unless code 0.
    pub async fn register(&self, inst: &Inst) {
        let form: Vec<(&str, String)> = inst.form().into_iter().map(|(k, v)| (k, v.to_owned())).collect();
        let reply = self.client.post_envelope("/discovery/register", &form, WAIT).await.expect("register");
        assert_eq!(reply.code, 0, "register {} answered {reply:?}", inst.hostname);
    }

    /// Renew; returns the code.
    pub async fn renew(&self, inst: &Inst) -> i64 {
        code_of(self.client.renew(&inst.key()).await)
    }

    /// Cancel; returns the code.
    pub async fn cancel(&self, inst: &Inst) -> i64 {
        code_of(self.client.cancel(&inst.key()).await)
    }

    /// `fetch` with status 3: `None` on -404, else the `data` object as sent (the client's envelope layer:
    /// callers compare raw fields, `null` metadata included).
    pub async fn fetch(&self, env: &str, appid: &str) -> Option<Value> {
        let query = [("appid", appid.to_owned()), ("env", env.to_owned()), ("status", "3".to_owned())];
        let reply = self.client.get_envelope("/discovery/fetch", &query, WAIT).await.expect("fetch");
        match reply.code {
            0 => Some(reply.data.expect("fetch data")),
            -404 => None,
            other => panic!("fetch answered {other}: {reply:?}"),
        }
    }

    /// Hostnames of (env, appid), all zones and statuses, sorted; empty when the app is unknown.
    pub async fn hostnames(&self, env: &str, appid: &str) -> Vec<String> {
        match self.client.fetch(env, appid, None, 3).await {
            Ok(info) => {
                let mut hosts: Vec<String> = info.all().map(|i| i.hostname.clone()).collect();
                hosts.sort();
                hosts
            }
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => panic!("fetch {appid}: {e}"),
        }
    }

    /// The app cursor, `None` when the app is unknown.
    pub async fn cursor(&self, env: &str, appid: &str) -> Option<i64> {
        match self.client.fetch(env, appid, None, 3).await {
            Ok(info) => Some(info.latest_timestamp),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("fetch {appid}: {e}"),
        }
    }

    /// Number of long polls currently waiting on this node.
    pub fn waiters(&self) -> usize {
        self.state().registry.hub().waiters()
    }

    /// Wait until exactly `n` polls wait on this node.
    pub async fn wait_waiters(&self, n: usize) {
        let registry = self.state().registry.clone();
        wait_until(WAIT, &format!("{n} waiting polls"), || {
            let now = registry.hub().waiters();
            async move { now == n }
        })
        .await;
    }

    /// Index of the last log entry.
    pub fn last_log_index(&self) -> Option<u64> {
        self.state().raft.metrics().borrow().last_log_index
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // A test that panicked leaves the node running: cancel it so its tasks end with the runtime.
        if let Some(node) = &self.node {
            node.shutdown_token().cancel();
        }
    }
}

/// One instance to register.
#[derive(Debug, Clone)]
pub struct Inst {
    pub region: String,
    pub zone: String,
    pub env: String,
    pub appid: String,
    pub hostname: String,
    pub addrs: Vec<String>,
    pub status: String,
    pub version: String,
    pub metadata: String,
}

impl Inst {
    /// An up instance in zone `sh001` with one gRPC address.
    pub fn new(env: &str, appid: &str, hostname: &str) -> Self {
        Inst {
            region: "sh".into(),
            zone: "sh001".into(),
            env: env.into(),
            appid: appid.into(),
            hostname: hostname.into(),
            addrs: vec![format!("grpc://{hostname}:9000")],
            status: "1".into(),
            version: "v1".into(),
            metadata: String::new(),
        }
    }

    /// Same, other zone.
    pub fn zone(mut self, zone: &str) -> Self {
        self.zone = zone.into();
        self
    }

    /// Same, other status.
    pub fn status(mut self, status: u32) -> Self {
        self.status = status.to_string();
        self
    }

    /// Same, with metadata JSON text.
    pub fn metadata(mut self, json: &str) -> Self {
        self.metadata = json.into();
        self
    }

    /// The register form, addresses as repeated params.
    pub fn form(&self) -> Vec<(&str, &str)> {
        let mut form = vec![
            ("region", self.region.as_str()),
            ("zone", &self.zone),
            ("env", &self.env),
            ("appid", &self.appid),
            ("hostname", &self.hostname),
            ("status", &self.status),
            ("version", &self.version),
            ("metadata", &self.metadata),
        ];
        form.extend(self.addrs.iter().map(|a| ("addrs", a.as_str())));
        form
    }

    /// zone, env, appid, hostname (renew, cancel).
    pub fn key_form(&self) -> Vec<(&str, &str)> {
        vec![("zone", &self.zone), ("env", &self.env), ("appid", &self.appid), ("hostname", &self.hostname)]
    }

    /// Its key, for the client's typed calls.
    pub fn key(&self) -> InstanceKey {
        InstanceKey::new(&self.env, &self.appid, &self.zone, &self.hostname)
    }
}

/// The business code of a typed write: 0 when it succeeded; panics when no code came back.
pub fn code_of(result: Result<(), discovery::client::ClientError>) -> i64 {
    match result {
        Ok(()) => 0,
        Err(e) => e.code().unwrap_or_else(|| panic!("no business code: {e}")),
    }
}

/// One HTTP answer, read completely, with the envelope invariants already checked.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// `kratos-status-code`, if present.
    pub kratos: Option<String>,
    pub text: String,
    /// When the last body byte arrived.
    pub at: Instant,
}

impl Reply {
    /// Read the whole answer and check the invariants every `/discovery/*` business answer keeps (HTTP 200,
    /// JSON content type, integer code repeated in `kratos-status-code`, never a `scheduler` key, integer
    /// timestamps).
    pub async fn read(path: &str, resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().expect("ascii header").to_owned());
        let content_type = header("content-type").unwrap_or_default();
        let kratos = header("kratos-status-code");
        let bytes = resp.bytes().await.expect("body");
        let reply = Reply {
            status,
            content_type,
            kratos,
            text: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
            at: Instant::now(),
        };
        if path.starts_with("/discovery/") && status == 200 {
            reply.check_envelope();
        }
        reply
    }

    /// The invariants of a business answer (see [`Reply::read`]).
    pub fn check_envelope(&self) {
        assert!(self.status < 500, "never 5xx: {self:?}");
        assert_eq!(self.content_type, JSON_CT, "content type of {}", self.text);
        let json = self.json();
        let code = json["code"].as_i64().unwrap_or_else(|| panic!("integer code in {}", self.text));
        assert_eq!(self.kratos.as_deref(), Some(code.to_string().as_str()), "kratos-status-code of {}", self.text);
        assert!(json["message"].is_string(), "string message in {}", self.text);
        assert_no_scheduler(&json);
        assert_integer_timestamps(&json);
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("JSON body expected ({e}): {:?}", self.text))
    }

    /// The business code.
    pub fn code(&self) -> i64 {
        self.json()["code"].as_i64().unwrap_or_else(|| panic!("integer code in {}", self.text))
    }
}

/// Panics if any object in `v` has a `scheduler` key (the bilibili client cannot decode the object form).
pub fn assert_no_scheduler(v: &Value) {
    match v {
        Value::Object(map) => {
            assert!(!map.contains_key("scheduler"), "a scheduler key was emitted: {v}");
            map.values().for_each(assert_no_scheduler);
        }
        Value::Array(items) => items.iter().for_each(assert_no_scheduler),
        _ => {}
    }
}

/// Panics if a timestamp key holds anything but a JSON integer (Go clients decode them into int64).
pub fn assert_integer_timestamps(v: &Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                if TIMESTAMP_KEYS.contains(&key.as_str()) {
                    assert!(value.is_i64(), "{key} must be an integer, got {value}");
                }
                assert_integer_timestamps(value);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_integer_timestamps),
        _ => {}
    }
}

/// Golden transcripts: a sequence of exchanges with one node, normalized and compared with
/// `tests/api/golden/<name>.txt`. Set `BLESS_GOLDEN=1` to (re)write the files instead.
///
/// Normalization: the node's address becomes `<node>`; every timestamp-like value above 1e18 must lie within
/// an hour of now and becomes `"<tsN>"`, N numbering distinct values in order of first appearance (so the
/// transcript still shows which timestamps are equal); other values (0, explicit small values) stay literal.
pub struct Transcript<'a> {
    name: String,
    node: &'a TestNode,
    text: String,
    seen: Vec<i64>,
}

impl<'a> Transcript<'a> {
    /// A new, empty transcript for `node`.
    pub fn new(name: &str, node: &'a TestNode) -> Self {
        Transcript { name: name.to_owned(), node, text: String::new(), seen: Vec::new() }
    }

    /// `POST` a form and record it.
    pub async fn post(&mut self, title: &str, path: &str, form: &[(&str, &str)]) -> Reply {
        let reply = self.node.post(path, form).await;
        let body = serde_urlencoded_pairs(form);
        self.record(title, &format!("POST {path}\n{body}"), &reply);
        reply
    }

    /// `GET` with a query and record it.
    pub async fn get(&mut self, title: &str, path: &str, query: &[(&str, &str)]) -> Reply {
        let reply = self.node.get(path, query).await;
        let q = serde_urlencoded_pairs(query);
        let line = if q.is_empty() { format!("GET {path}") } else { format!("GET {path}?{q}") };
        self.record(title, &line, &reply);
        reply
    }

    /// Any request, recorded.
    pub async fn raw(&mut self, title: &str, method: &str, path: &str, ct: Option<&str>, body: &str) -> Reply {
        let reply = self.node.raw(method, path, ct, body.as_bytes()).await;
        let ct_line = ct.map(|c| format!("content-type: {c}\n")).unwrap_or_default();
        self.record(title, &format!("{method} {path}\n{ct_line}{body}"), &reply);
        reply
    }

    /// Append one exchange.
    pub fn record(&mut self, title: &str, request: &str, reply: &Reply) {
        let request = self.normalize_request(request.trim_end());
        let headers = match &reply.kratos {
            Some(code) => format!("{} | kratos-status-code: {code}", reply.content_type),
            None => reply.content_type.clone(),
        };
        let body = self.normalize(&reply.text);
        self.text.push_str(&format!("## {title}\n{request}\n=> {} {headers}\n{body}\n\n", reply.status));
    }

    /// Nanosecond timestamps in a request (cursors sent back) get the same tokens as in bodies.
    fn normalize_request(&mut self, request: &str) -> String {
        let mut out = String::new();
        let mut digits = String::new();
        for c in request.chars().chain(std::iter::once('\n')) {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            match digits.parse::<i64>() {
                Ok(ts) if digits.len() == 19 => out.push_str(&format!("<ts{}>", self.token(ts))),
                _ => out.push_str(&digits),
            }
            digits.clear();
            out.push(c);
        }
        out.pop();
        out
    }

    fn token(&mut self, ts: i64) -> usize {
        self.seen.iter().position(|s| *s == ts).unwrap_or_else(|| {
            self.seen.push(ts);
            self.seen.len() - 1
        })
    }

    fn normalize(&mut self, body: &str) -> String {
        let body = body.replace(&self.node.addr, "<node>");
        let Ok(mut json) = serde_json::from_str::<Value>(&body) else { return body };
        self.normalize_value(&mut json);
        serde_json::to_string(&json).expect("re-serialize")
    }

    fn normalize_value(&mut self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if TIMESTAMP_KEYS.contains(&key.as_str()) {
                        let ts = value.as_i64().unwrap_or_else(|| panic!("{key} must be an integer: {value}"));
                        if ts > 1_000_000_000_000_000_000 {
                            let hour = 3_600_000_000_000;
                            assert!((ts - now_ns()).abs() < hour, "{key} {ts} is not a recent Unix time in ns");
                            let n = self.token(ts);
                            *value = Value::String(format!("<ts{n}>"));
                        }
                    } else {
                        self.normalize_value(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.normalize_value(i)),
            _ => {}
        }
    }

    /// Compare with (or, with `BLESS_GOLDEN=1`, write) the golden file.
    pub fn check(self) {
        let path = golden_path(&self.name);
        if std::env::var_os("BLESS_GOLDEN").is_some() {
            std::fs::write(&path, &self.text).expect("write golden file");
            return;
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS_GOLDEN=1 to create it)", path.display()));
        if golden == self.text {
            return;
        }
        let (line, (want, got)) = golden
            .lines()
            .chain(std::iter::repeat("<end of file>"))
            .zip(self.text.lines().chain(std::iter::repeat("<end of file>")))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .expect("texts differ somewhere");
        panic!(
            "{} differs at line {}:\n  golden: {want}\n  actual: {got}\n--- whole actual transcript ---\n{}",
            path.display(),
            line + 1,
            self.text
        );
    }
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/golden").join(format!("{name}.txt"))
}

/// `k=v&k2=v2` as a form encoder writes it (for transcripts).
pub fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Percent-encode everything but unreserved characters (transcripts only; the requests use reqwest's).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
