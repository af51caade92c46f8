//! Long polls (spec §2.8, §2.9, §4.6 and the DESIGN.md fixes): immediate answers, -304 at the poll
//! timeout or the client's deadline, wake-ups on every kind of change and their latency, waiter
//! bookkeeping (disconnects), no empty wake-ups, unknown apps that appear later.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::support::{exclusive, wait_until, Inst, Reply, TestNode, WAIT};

/// Upper bound from a write's acknowledgement to a woken poll's answer.
const WAKE_BOUND: Duration = Duration::from_millis(100);

/// Start `GET /discovery/polls` in the background: env `dev`, one (appid, cursor) per app.
fn spawn_polls(
    node: &TestNode,
    hostname: &str,
    apps: &[(&str, i64)],
    timeout_header: Option<u64>,
) -> JoinHandle<Reply> {
    let mut query: Vec<(String, String)> = vec![("env".into(), "dev".into()), ("hostname".into(), hostname.into())];
    query.extend(apps.iter().map(|(a, _)| ("appid".to_owned(), (*a).to_owned())));
    query.extend(apps.iter().map(|(_, c)| ("latest_timestamp".to_owned(), c.to_string())));
    let mut req = node.http.get(node.url("/discovery/polls")).query(&query);
    if let Some(ms) = timeout_header {
        req = req.header("x1-bmspy-timeout", ms.to_string());
    }
    tokio::spawn(async move {
        let resp = req.send().await.expect("polls request");
        Reply::read("/discovery/polls", resp).await
    })
}

async fn answer(handle: JoinHandle<Reply>) -> Reply {
    tokio::time::timeout(WAIT, handle).await.expect("the poll answers").expect("poll task")
}

fn hosts_of(reply: &Reply, appid: &str) -> Vec<String> {
    let body = reply.json();
    let mut hosts: Vec<String> = body["data"][appid]["instances"]
        .as_object()
        .unwrap_or_else(|| panic!("{appid} in {}", reply.text))
        .values()
        .flat_map(|l| l.as_array().expect("list").iter())
        .map(|i| i["hostname"].as_str().expect("hostname").to_owned())
        .collect();
    hosts.sort();
    hosts
}

fn latency(ack: &Reply, woken: &Reply) -> Duration {
    woken.at.saturating_duration_since(ack.at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_is_answered_at_once() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(20)).await;
    node.register(&Inst::new("dev", "demo.svc", "a")).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    for client_cursor in [0, cursor - 1] {
        let started = Instant::now();
        let reply = answer(spawn_polls(&node, "c1", &[("demo.svc", client_cursor)], None)).await;
        assert!(started.elapsed() < Duration::from_secs(2), "answered at once, took {:?}", started.elapsed());
        assert_eq!(reply.code(), 0);
        assert_eq!(reply.json()["data"]["demo.svc"]["latest_timestamp"], json!(cursor));
        assert_eq!(hosts_of(&reply, "demo.svc"), vec!["a"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_new_ends_with_304_at_the_poll_timeout_or_the_client_deadline() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_millis(300)).await;
    node.register(&Inst::new("dev", "demo.svc", "a")).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    let not_modified = json!({"code": -304, "message": "-304", "ttl": 1});

    let started = Instant::now();
    let reply = answer(spawn_polls(&node, "c1", &[("demo.svc", cursor)], None)).await;
    let took = started.elapsed();
    assert_eq!(reply.json(), not_modified);
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "poll_timeout 300 ms, took {took:?}");
    // A cursor ahead of the server's (another node's cursor space) is "not modified" too.
    let reply = answer(spawn_polls(&node, "c1", &[("demo.svc", cursor + 1_000)], None)).await;
    assert_eq!(reply.json(), not_modified);

    // The client's own deadline (kratos `x1-bmspy-timeout`, minus 20 ms) shortens a long poll timeout.
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(30)).await;
    node.register(&Inst::new("dev", "demo.svc", "a")).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    let started = Instant::now();
    let reply = answer(spawn_polls(&node, "c1", &[("demo.svc", cursor)], Some(400))).await;
    let took = started.elapsed();
    assert_eq!(reply.json(), not_modified);
    assert!(took >= Duration::from_millis(380) && took < Duration::from_secs(3), "deadline 380 ms, took {took:?}");
    // The same for /poll.
    let started = Instant::now();
    let query = [("env", "dev"), ("hostname", "c1"), ("appid", "demo.svc"), ("latest_timestamp", &cursor.to_string())];
    let resp = node.http.get(node.url("/discovery/poll")).query(&query).header("x1-bmspy-timeout", "300").send().await;
    let reply = Reply::read("/discovery/poll", resp.expect("poll")).await;
    assert_eq!(reply.json(), not_modified);
    assert!(started.elapsed() >= Duration::from_millis(280), "took {:?}", started.elapsed());
}

/// Which write wakes the poll in [`wakes_within_100ms`].
#[derive(Debug, Clone, Copy)]
enum Change {
    Register,
    Cancel,
    Set,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_cancel_and_set_wake_a_poll_within_100ms() {
    let _gate = exclusive().await;
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(20)).await;
    let a = Inst::new("dev", "demo.svc", "a");
    let b = Inst::new("dev", "demo.svc", "b");
    node.register(&a).await;
    let mut latencies = Vec::new();
    for change in [Change::Register, Change::Set, Change::Cancel] {
        let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
        let poll = spawn_polls(&node, "c1", &[("demo.svc", cursor)], None);
        node.wait_waiters(1).await;
        let sent = Instant::now();
        let ack = match change {
            Change::Register => node.post("/discovery/register", &b.form()).await,
            Change::Set => {
                let form = [
                    ("zone", "sh001"),
                    ("env", "dev"),
                    ("appid", "demo.svc"),
                    ("hostname", "b"),
                    ("metadata", r#"{"w":"1"}"#),
                ];
                node.post("/discovery/set", &form).await
            }
            Change::Cancel => node.post("/discovery/cancel", &b.key_form()).await,
        };
        assert_eq!(ack.code(), 0, "{change:?}: {}", ack.text);
        let woken = answer(poll).await;
        assert_eq!(woken.code(), 0, "{change:?} wakes the poll: {}", woken.text);
        let new_cursor = woken.json()["data"]["demo.svc"]["latest_timestamp"].as_i64().expect("cursor");
        assert!(new_cursor > cursor, "{change:?} moves the cursor");
        let expected: &[&str] = match change {
            Change::Register | Change::Set => &["a", "b"],
            Change::Cancel => &["a"],
        };
        assert_eq!(hosts_of(&woken, "demo.svc"), expected, "{change:?}");
        if let Change::Set = change {
            let b_now = &woken.json()["data"]["demo.svc"]["instances"]["sh001"][1];
            assert_eq!(b_now["metadata"], json!({"w": "1"}), "the woken poll carries the set's data");
        }
        let took = latency(&ack, &woken);
        let total = woken.at - sent;
        eprintln!(
            "wake-up after {change:?}: {took:?} after the write's ack (0 = before it), {total:?} after it was sent"
        );
        assert!(took < WAKE_BOUND, "{change:?}: woken {took:?} after the acknowledgement");
        latencies.push(total);
        node.wait_waiters(0).await;
    }
    eprintln!("single waiter, write sent → poll answered (register, set, cancel): {latencies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_wakes_a_poll_within_100ms() {
    let _gate = exclusive().await;
    let node = TestNode::start_with(|c| {
        c.poll_timeout = Duration::from_secs(20);
        c.lease = Duration::from_millis(1500);
        c.evict_interval = Duration::from_millis(50);
        c.protect_threshold = 0.0;
    })
    .await;
    let keeper = Inst::new("dev", "demo.svc", "keeper");
    let doomed = Inst::new("dev", "demo.svc", "doomed");
    node.register(&keeper).await;
    node.register(&doomed).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    let poll = spawn_polls(&node, "c1", &[("demo.svc", cursor)], None);
    node.wait_waiters(1).await;

    // Keep `keeper` alive and watch the applied state for the moment `doomed` is gone.
    let registry = node.state().registry.clone();
    let doomed_key = discovery::registry::model::InstanceKey {
        env: "dev".into(),
        appid: "demo.svc".into(),
        zone: "sh001".into(),
        hostname: "doomed".into(),
    };
    let started = Instant::now();
    let mut next_renew = Instant::now();
    let evicted_at = loop {
        if registry.read().get(&doomed_key).is_none() {
            break Instant::now();
        }
        if Instant::now() >= next_renew {
            assert_eq!(node.renew(&keeper).await, 0);
            next_renew = Instant::now() + Duration::from_millis(300);
        }
        assert!(started.elapsed() < WAIT, "doomed was not evicted within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let woken = answer(poll).await;
    assert_eq!(woken.code(), 0, "{}", woken.text);
    assert_eq!(hosts_of(&woken, "demo.svc"), vec!["keeper"]);
    let took = woken.at.saturating_duration_since(evicted_at);
    eprintln!(
        "wake-up after eviction (applied → answered): {took:?}; evicted {:?} after the poll started",
        evicted_at - started
    );
    assert!(took < WAKE_BOUND, "woken {took:?} after the eviction was applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_change_wakes_1000_waiters() {
    const N: usize = 1000;
    let _gate = exclusive().await;
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(30)).await;
    node.register(&Inst::new("dev", "demo.svc", "a")).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    let polls: Vec<_> =
        (0..N).map(|i| spawn_polls(&node, &format!("client-{i}"), &[("demo.svc", cursor)], None)).collect();
    wait_until(Duration::from_secs(30), "1000 waiting polls", || {
        let n = node.waiters();
        async move { n == N }
    })
    .await;

    let sent = Instant::now();
    let ack = node.post("/discovery/register", &Inst::new("dev", "demo.svc", "b").form()).await;
    assert_eq!(ack.code(), 0);
    let mut after_ack = Vec::with_capacity(N);
    let mut after_sent = Vec::with_capacity(N);
    for poll in polls {
        let woken = answer(poll).await;
        assert_eq!(woken.code(), 0, "{}", woken.text);
        assert_eq!(hosts_of(&woken, "demo.svc"), vec!["a", "b"]);
        after_ack.push(latency(&ack, &woken));
        after_sent.push(woken.at - sent);
    }
    let pct = |v: &mut Vec<Duration>| {
        v.sort();
        (v[N / 2], v[N * 99 / 100], v[N - 1])
    };
    let (p50, p99, max) = pct(&mut after_ack);
    let (s50, s99, smax) = pct(&mut after_sent);
    eprintln!(
        "1000 waiters woken by one register, after the ack (0 = before it): p50 {p50:?}, p99 {p99:?}, max {max:?}"
    );
    eprintln!("1000 waiters woken by one register, after the write was sent: p50 {s50:?}, p99 {s99:?}, max {smax:?}");
    assert!(max < Duration::from_millis(1500), "every waiter answered within 1.5 s of the acknowledgement ({max:?})");
    assert!(smax < Duration::from_secs(3), "and within 3 s of sending the write ({smax:?})");
    node.wait_waiters(0).await;
    assert_eq!(node.state().registry.hub().channels(), 0, "no channel left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_frees_its_waiter() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(30)).await;
    node.register(&Inst::new("dev", "demo.svc", "a")).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    for round in 0..3 {
        let poll = spawn_polls(&node, "c1", &[("demo.svc", cursor), ("unknown.svc", 0)], None);
        node.wait_waiters(1).await;
        // Dropping the in-flight reqwest future closes its connection (it is not returned to the pool).
        poll.abort();
        assert!(poll.await.expect_err("aborted").is_cancelled());
        let took = wait_until(Duration::from_secs(5), "the server to drop the waiter of a closed connection", || {
            let n = node.waiters();
            async move { n == 0 }
        })
        .await;
        eprintln!("round {round}: waiter freed {took:?} after the client disconnected");
        assert_eq!(node.state().registry.hub().channels(), 0, "its channels are gone too");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_without_up_instances_does_not_wake_pollers() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_millis(600)).await;
    node.register(&Inst::new("dev", "demo.svc", "w1").status(2)).await;
    // Cursor 0 and a newer server cursor: the original would answer at once with an empty list.
    let started = Instant::now();
    let poll = spawn_polls(&node, "c1", &[("demo.svc", 0)], None);
    node.wait_waiters(1).await;
    node.register(&Inst::new("dev", "demo.svc", "w2").status(2)).await;
    let reply = answer(poll).await;
    assert_eq!(reply.json(), json!({"code": -304, "message": "-304", "ttl": 1}), "no empty wake-up");
    assert!(started.elapsed() >= Duration::from_millis(600), "stayed pending until the timeout");

    // Once an instance is up, the same poll is answered.
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(20)).await;
    node.register(&Inst::new("dev", "demo.svc", "w1").status(2)).await;
    let poll = spawn_polls(&node, "c1", &[("demo.svc", 0)], None);
    node.wait_waiters(1).await;
    let set = [("zone", "sh001"), ("env", "dev"), ("appid", "demo.svc"), ("hostname", "w1"), ("status", "1")];
    let ack = node.post("/discovery/set", &set).await;
    assert_eq!(ack.code(), 0);
    let woken = answer(poll).await;
    assert_eq!(hosts_of(&woken, "demo.svc"), vec!["w1"]);
    assert!(latency(&ack, &woken) < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_keeps_waiting_and_wakes_when_registered() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(20)).await;
    let poll = spawn_polls(&node, "c1", &[("late.svc", 0), ("never.svc", 0)], None);
    node.wait_waiters(1).await;
    assert!(!poll.is_finished(), "unknown apps wait");
    let ack = node.post("/discovery/register", &Inst::new("dev", "late.svc", "x").form()).await;
    assert_eq!(ack.code(), 0);
    let woken = answer(poll).await;
    let body = woken.json();
    assert_eq!(hosts_of(&woken, "late.svc"), vec!["x"]);
    assert_eq!(body["data"].as_object().map(|d| d.len()), Some(1), "only the app that changed");
    assert_eq!(body["error"], json!({"-404": ["late.svc", "never.svc"]}), "unknown at request time");
    assert!(latency(&ack, &woken) < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_moves_the_cursor_for_a_client_between_two_polls() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(20)).await;
    node.register(&Inst::new("dev", "demo.svc", "a")).await;
    let first = answer(spawn_polls(&node, "c1", &[("demo.svc", 0)], None)).await;
    let cursor = first.json()["data"]["demo.svc"]["latest_timestamp"].as_i64().expect("cursor");
    // The set lands while the client is not polling (the original missed it until the next change).
    let set = [
        ("zone", "sh001"),
        ("env", "dev"),
        ("appid", "demo.svc"),
        ("hostname", "a"),
        ("metadata", r#"{"weight":"5"}"#),
    ];
    assert_eq!(node.post("/discovery/set", &set).await.code(), 0);
    let started = Instant::now();
    let next = answer(spawn_polls(&node, "c1", &[("demo.svc", cursor)], None)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "answered at once: the set advanced the cursor");
    assert!(next.json()["data"]["demo.svc"]["latest_timestamp"].as_i64() > Some(cursor));
    assert_eq!(next.json()["data"]["demo.svc"]["instances"]["sh001"][0]["metadata"], json!({"weight": "5"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pollers_sharing_a_hostname_are_all_woken() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(20)).await;
    node.register(&Inst::new("dev", "demo.svc", "a")).await;
    node.register(&Inst::new("dev", "other.svc", "o")).await;
    let demo = node.cursor("dev", "demo.svc").await.expect("cursor");
    let other = node.cursor("dev", "other.svc").await.expect("cursor");
    // Same hostname, different watch sets: the original shared one channel per hostname.
    let p1 = spawn_polls(&node, "same-host", &[("demo.svc", demo)], None);
    let p2 = spawn_polls(&node, "same-host", &[("demo.svc", demo), ("other.svc", other)], None);
    let p3 = spawn_polls(&node, "same-host", &[("other.svc", other)], None);
    node.wait_waiters(3).await;
    node.register(&Inst::new("dev", "demo.svc", "b")).await;
    for poll in [p1, p2] {
        let woken = answer(poll).await;
        let keys: Vec<String> = woken.json()["data"].as_object().expect("data").keys().cloned().collect();
        assert_eq!(keys, vec!["demo.svc"]);
    }
    assert!(!p3.is_finished(), "a poll on other.svc is not woken by demo.svc");
    node.wait_waiters(1).await;
    p3.abort();
}

/// The `data` of a woken poll never holds an empty instance list or a 0 cursor (spec §5.5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woken_answers_never_carry_an_empty_app_or_a_zero_cursor() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_millis(500)).await;
    let a = Inst::new("dev", "demo.svc", "a");
    node.register(&a).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    let poll = spawn_polls(&node, "c1", &[("demo.svc", cursor)], None);
    node.wait_waiters(1).await;
    // The app disappears entirely: nothing to hand out, the poll ends -304.
    assert_eq!(node.cancel(&a).await, 0);
    let reply = answer(poll).await;
    assert_eq!(reply.code(), -304, "{}", reply.text);
    let data: Value = reply.json().get("data").cloned().unwrap_or(Value::Null);
    assert_eq!(data, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_of_an_unknown_app_answers_at_once_and_leaks_no_waiter() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(20)).await;
    let started = Instant::now();
    let query = [("env", "dev"), ("hostname", "c1"), ("appid", "nope"), ("latest_timestamp", "0")];
    let reply = node.get("/discovery/poll", &query).await;
    assert_eq!(reply.json(), json!({"code": -404, "message": "nope not found"}));
    assert!(started.elapsed() < Duration::from_secs(2), "no wait for an unknown app on /poll");
    assert_eq!((node.waiters(), node.state().registry.hub().channels()), (0, 0), "the original leaked a slot here");
}

/// Regression (issue 3): `/poll` answered `-404 "<appid> not found"` as soon as the watched app lost its
/// last instance during the wait; the original (spec §4.3) and `polls` keep waiting and end with -304.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_3_poll_keeps_waiting_when_its_app_vanishes() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_millis(800)).await;
    let a = Inst::new("dev", "demo.svc", "a");
    node.register(&a).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor").to_string();
    let query = [("env", "dev"), ("hostname", "c1"), ("appid", "demo.svc"), ("latest_timestamp", cursor.as_str())];
    let request = node.http.get(node.url("/discovery/poll")).query(&query).send();
    let poll = tokio::spawn(async move { Reply::read("/discovery/poll", request.await.expect("poll")).await });
    node.wait_waiters(1).await;
    assert_eq!(node.cancel(&a).await, 0, "the app's last instance goes");
    let reply = answer(poll).await;
    assert_eq!(reply.json(), json!({"code": -304, "message": "-304", "ttl": 1}));

    // The wait goes on through the vanishing, and the app's return wakes it.
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(20)).await;
    node.register(&a).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor").to_string();
    let query = [("env", "dev"), ("hostname", "c1"), ("appid", "demo.svc"), ("latest_timestamp", cursor.as_str())];
    let request = node.http.get(node.url("/discovery/poll")).query(&query).send();
    let poll = tokio::spawn(async move { Reply::read("/discovery/poll", request.await.expect("poll")).await });
    node.wait_waiters(1).await;
    assert_eq!(node.cancel(&a).await, 0);
    node.register(&a).await;
    let reply = answer(poll).await;
    assert_eq!(reply.code(), 0, "woken by the return, not ended by the vanishing: {}", reply.text);
    assert_eq!(reply.json()["data"]["instances"]["sh001"][0]["hostname"], json!("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_node_answers_waiting_polls_at_once() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_secs(30)).await;
    node.register(&Inst::new("dev", "demo.svc", "a")).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    let polls: Vec<_> = (0..3).map(|i| spawn_polls(&node, &format!("c{i}"), &[("demo.svc", cursor)], None)).collect();
    node.wait_waiters(3).await;
    let started = Instant::now();
    node.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "graceful stop is not held up by 30 s polls (took {took:?})");
    for poll in polls {
        assert_eq!(answer(poll).await.json(), json!({"code": -304, "message": "-304", "ttl": 1}));
    }
}
