//! `discovery fetch|register|watch` (the real binary) against an in-process node, and the library client.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use discovery::client::{Client, InstanceKey, Poll, Registration};
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
    assert!(unreachable.never_sent(), "a refused connection delivered nothing: {unreachable}");

    // The envelope layer: every answer as sent, whatever its code (what the chaos workload classifies).
    let form = [("env", "dev".to_string()), ("appid", "lib.svc".to_string()), ("zone", "z1".to_string())];
    let gone = client.post_envelope("/discovery/renew", &form, Duration::from_secs(5)).await.expect("answered");
    assert_eq!((gone.status, gone.code), (200, -400), "renew without a hostname: {gone:?}");
    let query = [("env", "dev".to_string()), ("appid", "lib.svc".to_string()), ("status", "3".to_string())];
    let read = client.get_envelope("/discovery/fetch", &query, Duration::from_secs(5)).await.expect("answered");
    assert_eq!(read.code, -404, "every instance was cancelled: {read:?}");
    assert_eq!(read.server, node.addr);

    // The `_at` calls go to the node named, and only there: a client whose list holds a dead node first
    // reaches the live one through them without moving its current node.
    let listed = Client::builder(["127.0.0.1:1", node.addr.as_str()]).build();
    let at = listed.get_envelope_at(&node.addr, "/discovery/fetch", &query, Duration::from_secs(5)).await;
    assert_eq!(at.map(|r| (r.server, r.code)), Ok((node.addr.clone(), -404)));
    assert_eq!(listed.server(), "127.0.0.1:1", "a call to a named node leaves the current node alone");
    let dead = listed.post_envelope_at("127.0.0.1:1", "/discovery/renew", &form, Duration::from_secs(5)).await;
    let dead = dead.expect_err("only the named node is tried, and nothing listens there");
    assert!(dead.never_sent(), "{dead}");
    node.stop().await;
}

fn key(host: &str) -> InstanceKey {
    InstanceKey::new("dev", "typed.svc", "z1", host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_covers_every_endpoint() {
    use discovery::client::SetRequest;
    let node = TestNode::start(|c| c.poll_timeout = Duration::from_millis(300)).await;
    let client = Client::new(&node.addr);
    for host in ["a", "b"] {
        client.register(&Registration::new(key(host), ["http://10.0.0.1:1"])).await.expect("register");
    }
    node.register("dev", "other.svc", "c").await;
    // set: drain one host; fetch sees it waiting, status=1 leaves it out.
    let drain = SetRequest {
        env: "dev".into(),
        appid: "typed.svc".into(),
        zone: "z1".into(),
        hostnames: vec!["a".into()],
        status: Some(2),
        metadata: Some([("weight".to_string(), "0".to_string())].into()),
    };
    client.set(&drain).await.expect("set");
    let all = client.fetch("dev", "typed.svc", None, 3).await.expect("fetch");
    let a = all.all().find(|i| i.hostname == "a").expect("a");
    assert_eq!((a.status, a.metadata.as_ref().map(|m| m["weight"].as_str())), (2, Some("0")));
    let up = client.fetch_consistent("dev", "typed.svc", None, 1).await.expect("consistent fetch");
    assert_eq!(up.all().map(|i| i.hostname.as_str()).collect::<Vec<_>>(), ["b"]);
    // fetchs: several apps; an unknown one is simply absent.
    let apps = client.fetchs("dev", &["typed.svc", "other.svc", "nope"], None, 3).await.expect("fetchs");
    assert_eq!(apps.keys().collect::<Vec<_>>(), ["other.svc", "typed.svc"]);
    // polls: changed apps with their cursors, unknown ones listed.
    let polls =
        client.polls("dev", "me", &[("typed.svc".to_string(), 0), ("nope".to_string(), 0)]).await.expect("polls");
    assert!(polls.changed.contains_key("typed.svc"), "{polls:?}");
    assert_eq!(polls.unknown, ["nope"]);
    // nodes and the operator routes.
    let nodes = client.nodes().await.expect("nodes");
    assert_eq!(nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>(), [node.addr.as_str()]);
    let status = client.status_of(&node.addr).await.expect("status");
    assert_eq!((status.role.as_str(), status.leader_addr()), ("Leader", Some(node.addr.as_str())));
    assert_eq!(client.digest_of(&node.addr).await.expect("digest").instances, 3);
    client.health_of(&node.addr).await.expect("healthy");
    client.request_snapshot(&node.addr).await.expect("snapshot requested");
    // A write the server refuses is a typed error with its code.
    let refused = client.cancel(&key("never")).await.expect_err("unknown instance");
    assert!(refused.is_not_found(), "{refused}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_moves_past_a_dead_node() {
    let node = TestNode::start(|_| {}).await;
    let dead = format!("127.0.0.1:{}", crate::support::free_port());
    let client = Client::builder([dead.clone(), node.addr.clone()]).build();
    assert_eq!(client.server(), dead);
    // A write whose connection is refused never reached a node: it goes to the next one.
    client.register(&Registration::new(key("fo"), ["http://10.0.0.1:1"])).await.expect("register past the dead node");
    assert_eq!(client.server(), node.addr, "the node that answered is used next");
    assert!(client.fetch("dev", "typed.svc", None, 3).await.is_ok());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_registration_renews_comes_back_after_an_eviction_and_cancels_on_stop() {
    let node = TestNode::start(|_| {}).await;
    let client = Client::new(&node.addr);
    let registered =
        client.keep_registered(Registration::new(key("kept"), ["http://10.0.0.1:1"]), Duration::from_millis(100)).await;
    let registered = registered.expect("first register");
    wait_until(WAIT, "renews", || async {
        let text = node.http.get(node.url("/metrics")).send().await.expect("scrape").text().await.expect("text");
        sample(&text, r#"discovery_registry_renews_total{result="renewed"}"#).is_some_and(|n| n >= 2.0)
    })
    .await;
    // Gone from the registry (as after an eviction): the next renew answers -404 and the loop registers again.
    client.cancel(&key("kept")).await.expect("cancel behind its back");
    wait_until(WAIT, "the instance to be registered again", || async {
        client.fetch("dev", "typed.svc", None, 3).await.is_ok_and(|i| i.all().any(|i| i.hostname == "kept"))
    })
    .await;
    assert_eq!(registered.last_error(), None);
    registered.stop().await.expect("stop cancels");
    let gone = client.fetch("dev", "typed.svc", None, 3).await.expect_err("cancelled");
    assert!(gone.is_not_found());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reports_each_change_and_follows_the_node_list() {
    use discovery::client::Watcher;
    let node = TestNode::start(|c| c.poll_timeout = Duration::from_millis(500)).await;
    let dead = format!("127.0.0.1:{}", crate::support::free_port());
    // It starts on a node that is not there: the poll moves on to the live node by itself.
    let client = Client::builder([dead.clone(), node.addr.clone()]).build();
    let mut watcher =
        Watcher::new(client.clone(), "dev", "me", ["typed.svc"]).follow_nodes(true).backoff(Duration::from_millis(50));
    client.register(&Registration::new(key("w1"), ["http://10.0.0.1:1"])).await.expect("register");
    let first = loop {
        match tokio::time::timeout(WAIT, watcher.next()).await.expect("a change in time") {
            Ok(change) => break change,
            Err(err) => assert!(err.is_transport(), "only the dead node fails: {err}"),
        }
    };
    assert_eq!(first.appid, "typed.svc");
    assert_eq!(first.info.all().map(|i| i.hostname.as_str()).collect::<Vec<_>>(), ["w1"]);
    assert_eq!((watcher.failures(), client.server()), (0, node.addr.clone()));
    assert_eq!(client.node_list(), std::slice::from_ref(&node.addr), "the node list is what infra.discovery lists");
    client.register(&Registration::new(key("w2"), ["http://10.0.0.1:1"])).await.expect("register");
    let second = tokio::time::timeout(WAIT, watcher.next()).await.expect("in time").expect("change");
    assert_eq!(second.info.all().count(), 2);
    assert!(second.info.latest_timestamp > first.info.latest_timestamp);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_with_no_reachable_node_reports_each_failure_after_its_backoff() {
    use discovery::client::Watcher;
    let dead = format!("127.0.0.1:{}", crate::support::free_port());
    let mut watcher = Watcher::new(Client::new(&dead), "dev", "me", ["x"]).backoff(Duration::from_millis(200));
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let err = watcher.next().await.expect_err("nothing listens");
        assert!(err.is_transport(), "{err}");
    }
    assert_eq!(watcher.failures(), 2);
    assert!(started.elapsed() >= Duration::from_millis(400), "no tight loop: {:?}", started.elapsed());
}
