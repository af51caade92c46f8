//! `discovery fetch|register|watch` (the real binary) against an in-process node, and the library client.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use discovery::client::{Client, Poll, Registration};
use discovery::registry::model::InstanceKey;
use serde_json::Value;

use crate::metrics::sample;
use crate::node::{wait_until, TestNode, WAIT};

fn cli(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_discovery"));
    command.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

fn hostnames(info: &Value, zone: &str) -> Vec<String> {
    info["instances"][zone]
        .as_array()
        .map(|list| list.iter().filter_map(|i| i["hostname"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_prints_the_instances() {
    let node = TestNode::start(|_| {}).await;
    node.register("dev", "demo.svc", "a").await;
    let output = tokio::task::spawn_blocking({
        let addr = node.addr.clone();
        move || cli(&["fetch", "--appid", "demo.svc", "--env", "dev", "--server", &addr]).output().expect("run")
    })
    .await
    .expect("join");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let info: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(hostnames(&info, "sh001"), ["a"]);
    // An unknown app is an error naming the code.
    let output = cli(&["fetch", "--appid", "nope", "--env", "dev", "--server", &node.addr]).output().expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("-404"));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_renews_until_sigint_then_cancels() {
    let node = TestNode::start(|c| c.api_token = Some("t0k".into())).await;
    let child = cli(&[
        "register",
        "--appid",
        "demo.svc",
        "--env",
        "dev",
        "--zone",
        "z1",
        "--hostname",
        "cli-host",
        "--addrs",
        "grpc://10.0.0.9:9000,http://10.0.0.9:8000",
        "--metadata",
        "weight=10",
        "--renew-interval",
        "100ms",
        "--server",
        &node.addr,
    ])
    .env("DISCOVERY_API_TOKEN", "t0k")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let client = Client::new(&node.addr);
    wait_until(WAIT, "the instance to be registered", || async {
        client.fetch("dev", "demo.svc", None, 3).await.is_ok_and(|info| info.instances.contains_key("z1"))
    })
    .await;
    let info = client.fetch("dev", "demo.svc", None, 3).await.expect("fetch");
    let instance = &info.instances["z1"][0];
    assert_eq!(
        instance.addrs.as_deref(),
        Some(&["grpc://10.0.0.9:9000".to_string(), "http://10.0.0.9:8000".to_string()][..])
    );
    assert_eq!(instance.metadata.as_ref().and_then(|m| m.get("weight")).map(String::as_str), Some("10"));
    // It renews.
    wait_until(WAIT, "two renews", || async {
        let text = node.http.get(node.url("/metrics")).send().await.expect("scrape").text().await.expect("text");
        sample(&text, r#"discovery_registry_renews_total{result="renewed"}"#).is_some_and(|n| n >= 2.0)
    })
    .await;
    let status = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().expect("kill");
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("registered") && stdout.contains("cancelled"), "{stdout}");
    let gone = client.fetch("dev", "demo.svc", None, 3).await.expect_err("cancelled");
    assert_eq!(gone.code(), Some(-404));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_each_change() {
    let node = TestNode::start(|_| {}).await;
    node.register("dev", "demo.svc", "a").await;
    let mut child = cli(&["watch", "--appid", "demo.svc", "--env", "dev", "--count", "2", "--server", &node.addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let first = tokio::time::timeout(WAIT, lines.recv()).await.expect("first line").expect("line");
    let first: Value = serde_json::from_str(&first).expect("JSON line");
    assert_eq!(hostnames(&first, "sh001"), ["a"]);
    // The watcher now waits on the cursor it printed.
    wait_until(WAIT, "the watch to wait", || async { node.state().registry.hub().waiters() == 1 }).await;
    node.register("dev", "demo.svc", "b").await;
    let second = tokio::time::timeout(WAIT, lines.recv()).await.expect("second line").expect("line");
    let second: Value = serde_json::from_str(&second).expect("JSON line");
    assert_eq!(hostnames(&second, "sh001"), ["a", "b"]);
    assert!(second["latest_timestamp"].as_i64() > first["latest_timestamp"].as_i64());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "exits after --count changes");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_client_round_trip() {
    let node = TestNode::start(|c| c.poll_timeout = Duration::from_millis(300)).await;
    let client = Client::new(&node.addr);
    let key = InstanceKey { env: "dev".into(), appid: "lib.svc".into(), zone: "z1".into(), hostname: "h".into() };
    // An app nobody registered: the poll waits out its timeout.
    assert_eq!(client.poll("dev", "lib.svc", "me", 0).await, Ok(Poll::NotModified));
    let registration = Registration {
        key: key.clone(),
        addrs: vec!["http://h:1".into()],
        status: 1,
        version: "v1".into(),
        metadata: Default::default(),
    };
    client.register(&registration).await.expect("register");
    client.renew(&key).await.expect("renew");
    let Ok(Poll::Changed(info)) = client.poll("dev", "lib.svc", "me", 0).await else { panic!("changed") };
    assert_eq!(client.poll("dev", "lib.svc", "me", info.latest_timestamp).await, Ok(Poll::NotModified));
    client.cancel(&key).await.expect("cancel");
    assert_eq!(client.renew(&key).await.map_err(|e| e.code()), Err(Some(-404)));
    let unreachable = Client::new("127.0.0.1:1").fetch("dev", "x", None, 1).await.expect_err("nothing listens");
    assert!(matches!(unreachable, discovery::client::ClientError::Transport { .. }), "{unreachable}");
    node.stop().await;
}
