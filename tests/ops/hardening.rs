//! Hardening: the cluster token on internal routes, no token-less non-loopback listener, slow clients cut
//! off, a bounded number of connections, and the optional write-API token.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::node::{wait_until, TestNode, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_routes_need_the_cluster_token() {
    let node = TestNode::start(|c| c.cluster_token = Some("s3cret".into())).await;
    let append = |token: Option<&str>| {
        let mut request = node.http.post(node.url("/raft/append")).body("not bincode");
        if let Some(token) = token {
            request = request.header(discovery_raft::TOKEN_HEADER, token);
        }
        request.send()
    };
    assert_eq!(append(None).await.expect("send").status(), 401);
    assert_eq!(append(Some("wrong")).await.expect("send").status(), 401);
    let reached = append(Some("s3cret")).await.expect("send");
    assert_eq!(reached.status(), 400, "with the token the handler decodes (and refuses) the body");
    assert!(reached.text().await.expect("text").contains("append-entries"));

    let status = |token: Option<&'static str>| {
        let mut request = node.http.get(node.url("/admin/status"));
        if let Some(token) = token {
            request = request.header(discovery_raft::TOKEN_HEADER, token);
        }
        request.send()
    };
    assert_eq!(status(None).await.expect("send").status(), 401);
    assert_eq!(status(Some("s3cret")).await.expect("send").status(), 200);
    // The public API, probes and metrics stay open.
    assert_eq!(node.get_json("/discovery/nodes").await["code"], 0);
    assert_eq!(node.http.get(node.url("/healthz")).send().await.expect("send").status(), 200);
    assert_eq!(node.http.get(node.url("/metrics")).send().await.expect("send").status(), 200);
    node.stop().await;
}

#[test]
fn a_non_loopback_address_without_a_token_refuses_to_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data").to_string_lossy().to_string();
    let (status, stderr) =
        crate::support::run_to_exit(&["--addr", "0.0.0.0:0", "--data-dir", &data], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains("--cluster-token") && stderr.contains("0.0.0.0:0"), "{stderr}");
    assert!(!tmp.path().join("data").exists(), "refused before touching the data dir");
}

/// Write `bytes` one at a time, `every` apart, until the server closes the connection; how long that took
/// from the first byte.
async fn trickle_until_closed(addr: &str, head: &[u8], bytes: &[u8], every: Duration) -> Duration {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let closed = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink).await;
        sink
    });
    writer.write_all(head).await.expect("head");
    for byte in bytes.iter().cycle() {
        if closed.is_finished() || writer.write_all(&[*byte]).await.is_err() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the slow client was never cut off");
        tokio::time::sleep(every).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), closed).await.expect("connection closed");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let node = TestNode::start(|c| c.read_timeout = Duration::from_millis(500)).await;
    // Headers sent one byte every 50 ms, never finished.
    let took =
        trickle_until_closed(&node.addr, b"GET /healthz HTTP/1.1\r\n", b"X-Slow: aaaa\r\n", Duration::from_millis(50))
            .await;
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "headers cut off after {took:?}");
    // A body announced as 1000 bytes, sent one byte every 50 ms.
    let head: &[u8] = b"POST /discovery/register HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n";
    let took = trickle_until_closed(&node.addr, head, b"a", Duration::from_millis(50)).await;
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "body cut off after {took:?}");
    // Meanwhile normal clients are served.
    assert_eq!(node.http.get(node.url("/healthz")).send().await.expect("send").status(), 200);
    node.stop().await;
}

/// Send one keep-alive request on a new connection and read its answer head; the connection stays open.
async fn held_connection(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "served");
    stream
}

/// One request on a new connection; the whole answer (the server closes or it is `Connection: close`).
async fn one_shot(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_answered_503() {
    let node = TestNode::start(|c| c.max_connections = 2).await;
    let first = held_connection(&node.addr).await;
    let _second = held_connection(&node.addr).await;
    let refused = one_shot(&node.addr, "/discovery/nodes").await;
    assert!(refused.contains(r#""code":-503"#), "{refused}");
    assert!(refused.contains("kratos-status-code: -503"), "{refused}");
    let health = one_shot(&node.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 503"), "a health check of a saturated node is not 200: {health}");
    assert_eq!(node.state().metrics.connections_rejected.get(), 2);
    assert_eq!(node.state().metrics.connections.get(), 2);
    drop(first);
    // A slot frees once the server notices the close.
    wait_until(WAIT, "a free connection slot", || async {
        one_shot(&node.addr, "/healthz").await.contains("\r\n\r\nok")
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_token_guards_writes_only() {
    let node = TestNode::start(|c| c.api_token = Some("t0k".into())).await;
    let form =
        [("zone", "z1"), ("env", "dev"), ("appid", "app"), ("hostname", "h"), ("status", "1"), ("addrs", "http://a:1")];
    for path in ["/discovery/register", "/discovery/renew", "/discovery/cancel", "/discovery/set"] {
        let refused = node.http.post(node.url(path)).form(&form).send().await.expect("send");
        assert_eq!(refused.status(), 200);
        assert_eq!(refused.headers()["kratos-status-code"], "-401");
        let body: serde_json::Value = refused.json().await.expect("json");
        assert_eq!(body, serde_json::json!({"code": -401, "message": "-401", "ttl": 1}), "{path}");
        assert_eq!(node.post_with(path, &form, Some("wrong")).await["code"], -401, "{path}");
    }
    assert_eq!(node.post_with("/discovery/register", &form, Some("t0k")).await["code"], 0);
    assert_eq!(node.post_with("/discovery/renew", &form, Some("t0k")).await["code"], 0);
    let fetched = node.get_json("/discovery/fetch?appid=app&env=dev&status=1").await;
    assert_eq!(fetched["code"], 0, "reads need no token: {fetched}");
    node.stop().await;
}
