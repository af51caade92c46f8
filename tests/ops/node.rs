//! In-process nodes for the operability tests: ephemeral port, temp data dir, bounded waits.

use std::future::Future;
use std::time::{Duration, Instant};

use discovery::config::Config;
use discovery::node::{AppState, RunningNode};
use tokio::net::TcpListener;

/// Default deadline for state to become observable.
pub const WAIT: Duration = Duration::from_secs(10);

/// Poll `check` until it returns true; panic naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A node running in this process.
pub struct TestNode {
    node: Option<RunningNode>,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// HTTP client.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestNode {
    /// A dev-mode node on an ephemeral port, configured by `tune`, leading with an active lessor.
    pub async fn start(tune: impl FnOnce(&mut Config)) -> Self {
        Self::start_hooked(tune, std::sync::Arc::new(discovery::node::disk_guard::Statvfs), |store| store).await
    }

    /// As [`TestNode::start`], with free space read from `free_space` and the log store wrapped by `wrap`.
    pub async fn start_hooked<LS, W>(
        tune: impl FnOnce(&mut Config),
        free_space: std::sync::Arc<dyn discovery::node::disk_guard::FreeSpace>,
        wrap: W,
    ) -> Self
    where
        LS: openraft::storage::RaftLogStorage<discovery::raft_types::TypeConfig>,
        W: FnOnce(discovery_storage::SledLogStore<discovery::raft_types::TypeConfig>) -> LS,
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            addr: listener.local_addr().expect("addr").to_string(),
            ..Config::default()
        };
        tune(&mut config);
        config.validate().expect("valid test config");
        let node = discovery::app::start_with(config.clone(), listener, free_space, wrap).await.expect("node starts");
        let started = TestNode { node: Some(node), addr: config.addr, http: reqwest::Client::new(), _dir: dir };
        let lessor = started.state().lessor.clone();
        wait_until(WAIT, "an active leader", || {
            let active = lessor.status().active;
            async move { active }
        })
        .await;
        started
    }

    /// The node's shared state.
    pub fn state(&self) -> &AppState {
        &self.node.as_ref().expect("running").state
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POST a form and return the JSON answer.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
        self.post_with(path, form, None).await
    }

    /// POST a form with an optional `Authorization: Bearer` token.
    pub async fn post_with(&self, path: &str, form: &[(&str, &str)], bearer: Option<&str>) -> serde_json::Value {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request").json().await.expect("json answer")
    }

    /// GET and return the JSON answer.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http.get(self.url(path)).send().await.expect("request").json().await.expect("json answer")
    }

    /// Register `hostname` of `appid` in `env` (zone sh001) and assert success.
    pub async fn register(&self, env: &str, appid: &str, hostname: &str) {
        let form = [
            ("zone", "sh001"),
            ("env", env),
            ("appid", appid),
            ("hostname", hostname),
            ("status", "1"),
            ("addrs", "grpc://10.0.0.1:9000"),
        ];
        let answer = self.post("/discovery/register", &form).await;
        assert_eq!(answer["code"], 0, "register answered {answer}");
    }

    /// The token that stops the node (cancelled by the node itself when its Raft core dies).
    pub fn shutdown_token(&self) -> tokio_util::sync::CancellationToken {
        self.node.as_ref().expect("running").shutdown_token()
    }

    /// Stop the node cleanly.
    pub async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await.expect("clean stop");
        }
    }
}
