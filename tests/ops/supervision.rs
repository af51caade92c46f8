//! A node never dies silently: a Raft core that stops (here: a log store that starts failing, as on a
//! full disk) makes the node stop claiming to serve within a second, and the free-space guard refuses
//! writes before the disk is full and lifts itself once space is back. In-process nodes with injected
//! faults; the same faults on the real binary are in `limits_proc.rs`.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discovery::node::disk_guard::FreeSpace;
use discovery::raft_types::TypeConfig;
use discovery_storage::SledLogStore;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};

use crate::metrics::sample;
use crate::node::{wait_until, TestNode, WAIT};

type Result<T> = std::result::Result<T, StorageError<u64>>;

/// The node's sled log store, failing every append once `fail` is set (as ENOSPC would).
struct FailingLogStore {
    inner: SledLogStore<TypeConfig>,
    fail: Arc<AtomicBool>,
}

impl RaftLogReader<TypeConfig> for FailingLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<openraft::Entry<TypeConfig>>> {
        self.inner.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for FailingLogStore {
    type LogReader = SledLogStore<TypeConfig>;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        self.inner.get_log_state().await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.inner.get_log_reader().await
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<()> {
        self.inner.save_vote(vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>> {
        self.inner.read_vote().await
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<()> {
        self.inner.save_committed(committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>> {
        self.inner.read_committed().await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        if self.fail.load(Ordering::SeqCst) {
            return Err(
                StorageIOError::write_logs(AnyError::error("injected: No space left on device (os error 28)")).into()
            );
        }
        self.inner.append(entries, callback).await
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.inner.truncate(log_id).await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.inner.purge(log_id).await
    }
}

/// Free space the test sets.
struct FakeDisk(AtomicU64);

impl FreeSpace for FakeDisk {
    fn available(&self, _dir: &std::path::Path) -> std::io::Result<u64> {
        Ok(self.0.load(Ordering::SeqCst))
    }
}

fn plenty() -> Arc<FakeDisk> {
    Arc::new(FakeDisk(AtomicU64::new(10 << 30)))
}

async fn healthz(node: &TestNode) -> (u16, String) {
    let response = node.http.get(node.url("/healthz")).send().await.expect("healthz");
    (response.status().as_u16(), response.text().await.expect("text"))
}

/// GET `path` from the node's router directly (its listener closes as soon as the node stops itself).
async fn routed(node: &TestNode, path: &str) -> (u16, String) {
    use tower::ServiceExt;
    let request = axum::http::Request::get(path).body(axum::body::Body::empty()).expect("request");
    let response = discovery::app::router(node.state().clone()).oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

const REGISTER: [(&str, &str); 6] = [
    ("zone", "sh001"),
    ("env", "dev"),
    ("appid", "app"),
    ("hostname", "h-late"),
    ("status", "1"),
    ("addrs", "grpc://10.0.0.1:9000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_raft_core_stops_the_node_within_a_second_and_serves_no_state() {
    let fail = Arc::new(AtomicBool::new(false));
    let node = TestNode::start_hooked(|_| {}, plenty(), {
        let fail = Arc::clone(&fail);
        move |inner| FailingLogStore { inner, fail }
    })
    .await;
    node.register("dev", "app", "h1").await;
    assert_eq!(healthz(&node).await, (200, "ok\n".to_string()));

    fail.store(true, Ordering::SeqCst);
    let write = node.post("/discovery/register", &REGISTER).await;
    let failed_at = Instant::now();
    assert_eq!(write["code"], -500, "a write whose append fails is not acknowledged: {write}");

    // Within a second: unhealthy with the cause, the node cancelled itself, no registry state served.
    let token = node.shutdown_token();
    wait_until(Duration::from_secs(1), "the node to stop itself", || {
        let cancelled = token.is_cancelled();
        async move { cancelled }
    })
    .await;
    assert!(failed_at.elapsed() < Duration::from_secs(1), "took {:?}", failed_at.elapsed());
    assert_eq!(node.state().health.fatal().map(|c| c.contains("No space left")), Some(true));
    // Until the process is gone, every route says why instead of serving state that can no longer change.
    let (status, body) = routed(&node, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Raft core stopped") && body.contains("injected: No space left"), "{body}");
    let (status, body) = routed(&node, "/discovery/fetch?appid=app&env=dev&status=3").await;
    let fetch: serde_json::Value = serde_json::from_str(&body).expect("envelope");
    assert_eq!((status, fetch["code"].as_i64()), (200, Some(-500)), "a dead core serves no registry state: {fetch}");
    assert!(fetch["message"].as_str().unwrap_or_default().contains("Raft core stopped"), "{fetch}");
    // What describes the failure keeps answering.
    let (status, body) = routed(&node, "/admin/status").await;
    assert_eq!(status, 200);
    assert!(body.contains("Raft core stopped"), "{body}");
    assert_eq!(routed(&node, "/metrics").await.0, 200);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_disk_refuses_writes_keeps_renews_and_reads_and_lifts_itself() {
    let disk = plenty();
    let node = TestNode::start_hooked(|c| c.min_free_space = 256 << 20, disk.clone(), |store| store).await;
    node.register("dev", "app", "h1").await;

    disk.0.store(100 << 20, Ordering::SeqCst);
    let data_dir = node.state().config.data_dir.display().to_string();
    wait_until(WAIT, "the guard to trip", || {
        let low = node.state().disk.status().low;
        async move { low }
    })
    .await;
    let refused = node.post("/discovery/register", &REGISTER).await;
    assert_eq!(refused["code"], -500, "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains(&data_dir) && message.contains("100.0 MiB") && message.contains("256.0 MiB"), "{message}");
    let cancel = [("zone", "sh001"), ("env", "dev"), ("appid", "app"), ("hostname", "h1")];
    assert_eq!(node.post("/discovery/cancel", &cancel).await["code"], -500, "cancel is a write too");
    // Renews (never logged) and reads go on.
    assert_eq!(node.post("/discovery/renew", &cancel).await["code"], 0);
    let fetch = node.get_json("/discovery/fetch?appid=app&env=dev&status=3").await;
    assert_eq!(fetch["code"], 0, "{fetch}");
    // Health, status and metrics say so.
    let (status, body) = healthz(&node).await;
    assert_eq!(status, 503);
    assert!(body.contains("--min-free-space"), "{body}");
    let view = node.get_json("/admin/status").await;
    assert_eq!(view["disk"]["low"], true, "{view}");
    assert!(view["problem"].as_str().unwrap_or_default().contains(&data_dir), "{view}");
    let text = node.http.get(node.url("/metrics")).send().await.expect("scrape").text().await.expect("text");
    assert_eq!(sample(&text, "discovery_storage_low_space_alarm"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "discovery_storage_free_bytes"), Some((100u64 << 20) as f64));

    // Space back: writes resume by themselves within seconds.
    disk.0.store(1 << 30, Ordering::SeqCst);
    let freed = Instant::now();
    wait_until(Duration::from_secs(5), "writes to resume", || async {
        node.post("/discovery/register", &REGISTER).await["code"] == 0
    })
    .await;
    assert!(freed.elapsed() < Duration::from_secs(3), "resumed after {:?}", freed.elapsed());
    assert_eq!(healthz(&node).await.0, 200);
    node.stop().await;
}
