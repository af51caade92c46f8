//! Leases at node level, in real time with a short lease: eviction after the lease (fetch and pollers see
//! it), renewals keep instances alive and never touch the Raft log, self-preservation on a young leader,
//! and the post-restart grace. The pure lease logic with injected time is unit-tested in
//! `src/registry/{lease,guard,lessor}.rs`.

use std::time::{Duration, Instant};

use discovery::config::Config;
use serde_json::json;

use crate::support::{code_of, wait_until, Inst, Reply, TestNode, WAIT};

/// A short lease with a fast scan and self-preservation off.
fn short_lease(c: &mut Config) {
    c.lease = Duration::from_secs(1);
    c.evict_interval = Duration::from_millis(100);
    c.protect_threshold = 0.0;
    c.poll_timeout = Duration::from_secs(20);
}

/// Renew `inst` every `every` until `until`, asserting each renew succeeds (the sleep is the client's
/// renew period, not a wait for state).
async fn renew_until(node: &TestNode, inst: &Inst, every: Duration, until: Instant) {
    while Instant::now() < until {
        assert_eq!(node.renew(inst).await, 0, "renew of {} must succeed", inst.hostname);
        tokio::time::sleep(every).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_not_renewed_is_evicted_after_the_lease_and_pollers_are_woken() {
    let node = TestNode::start_with(short_lease).await;
    let kept = Inst::new("dev", "demo.svc", "kept");
    let doomed = Inst::new("dev", "demo.svc", "doomed");
    node.register(&kept).await;
    let registered = Instant::now();
    node.register(&doomed).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    let query = [
        ("env", "dev".to_owned()),
        ("hostname", "watcher".to_owned()),
        ("appid", "demo.svc".to_owned()),
        ("latest_timestamp", cursor.to_string()),
    ];
    let poll = node.http.get(node.url("/discovery/polls")).query(&query).send();
    let poll = tokio::spawn(async move { Reply::read("/discovery/polls", poll.await.expect("polls")).await });
    node.wait_waiters(1).await;

    // `kept` renews every 250 ms (a quarter of the lease); `doomed` never does.
    let mut next_renew = Instant::now();
    let evicted_after = loop {
        if Instant::now() >= next_renew {
            assert_eq!(node.renew(&kept).await, 0);
            next_renew += Duration::from_millis(250);
        }
        if node.hostnames("dev", "demo.svc").await == vec!["kept"] {
            break registered.elapsed();
        }
        assert!(registered.elapsed() < WAIT, "doomed still registered after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("an instance with a 1 s lease was evicted {evicted_after:?} after its register");
    assert!(evicted_after >= Duration::from_millis(950), "not before the lease ran out ({evicted_after:?})");

    let woken = tokio::time::timeout(WAIT, poll).await.expect("poll woken by the eviction").expect("task");
    assert_eq!(woken.code(), 0, "{}", woken.text);
    let data = &woken.json()["data"]["demo.svc"];
    assert_eq!(data["instances"]["sh001"].as_array().map(|l| l.len()), Some(1));
    assert_eq!(data["instances"]["sh001"][0]["hostname"], json!("kept"));
    assert!(data["latest_timestamp"].as_i64() > Some(cursor), "eviction moves the cursor");
    assert_eq!(node.renew(&doomed).await, -404, "an evicted instance's renew is -404 (the SDK re-registers)");

    // The renewed instance outlives several leases.
    renew_until(&node, &kept, Duration::from_millis(250), Instant::now() + Duration::from_millis(2500)).await;
    assert_eq!(node.hostnames("dev", "demo.svc").await, vec!["kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_add_no_raft_log_entries() {
    let node = TestNode::start().await;
    let insts: Vec<Inst> = (0..4).map(|i| Inst::new("dev", "demo.svc", &format!("h{i}"))).collect();
    for inst in &insts {
        node.register(inst).await;
    }
    let before = node.last_log_index();
    let renews_before = node.state().lessor.status().guard.expect("active lessor").renews_this_min;
    let mut tasks = Vec::new();
    for (i, inst) in insts.iter().cycle().take(200).enumerate() {
        let (client, key) = (node.client.clone(), inst.key());
        tasks.push(tokio::spawn(async move { (i, code_of(client.renew(&key).await)) }));
    }
    for task in tasks {
        let (i, code) = task.await.expect("task");
        assert_eq!(code, 0, "renew {i}");
    }
    let status = node.state().lessor.status().guard.expect("active lessor");
    assert_eq!(status.renews_this_min - renews_before, 200, "every renew reached the leader's lessor");
    assert_eq!(node.last_log_index(), before, "200 renews, no log entry");
    // A write still appends one (the metric is live).
    node.register(&Inst::new("dev", "demo.svc", "h9")).await;
    assert!(node.last_log_index() > before, "a register appends to the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_leader_is_self_preserving_until_it_has_a_minute_of_renew_history() {
    // Same workload on two nodes: 3 instances renewed once, then silent (renews collapse).
    let protected = TestNode::start_with(|c| {
        short_lease(c);
        c.protect_threshold = 0.85;
    })
    .await;
    let control = TestNode::start_with(short_lease).await;
    let insts: Vec<Inst> = (0..3).map(|i| Inst::new("dev", "demo.svc", &format!("h{i}"))).collect();
    for node in [&protected, &control] {
        for inst in &insts {
            node.register(inst).await;
            assert_eq!(node.renew(inst).await, 0);
        }
    }
    let guard = protected.state().lessor.status().guard.expect("active lessor");
    assert!(guard.protected, "no full minute of renew history yet: {guard:?}");
    assert_eq!(guard.renews_last_min, None);
    assert!(!control.state().lessor.status().guard.expect("active").protected, "threshold 0: never protected");

    // The control node evicts, which proves the lease is over...
    let took = wait_until(WAIT, "the unprotected node to evict", || async {
        control.hostnames("dev", "demo.svc").await.len() < 3
    })
    .await;
    eprintln!("unprotected node evicted after {took:?}; the protected node must not have");
    // ...while the protected node keeps every instance (and stays so for a few more scans).
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        assert_eq!(protected.hostnames("dev", "demo.svc").await, vec!["h0", "h1", "h2"], "nothing evicted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let guard = protected.state().lessor.status().guard.expect("active lessor");
    assert!(guard.protected && guard.evicted_this_min == 0, "{guard:?}");
    // Threshold 0 lifts the per-minute cap too (issue 11): the control loses all three, not 1 of 3 a minute.
    wait_until(WAIT, "the control to evict all three", || async {
        control.hostnames("dev", "demo.svc").await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_every_instance_gets_the_grace_then_expires_if_not_renewed() {
    let node = TestNode::start_with(short_lease).await;
    let renewed = Inst::new("dev", "demo.svc", "renewed");
    let silent = Inst::new("dev", "demo.svc", "silent");
    node.register(&renewed).await;
    node.register(&silent).await;
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");

    let node = node.restart().await;
    let active_at = Instant::now();
    // grace = max(4 × election_max, 4 s); deadlines are spread over [0, grace) on top (src/node/lease_keeper.rs).
    let grace = (node.config.raft.election_max * 4).max(Duration::from_secs(4));
    let earliest = node.config.lease + grace;
    let latest = earliest + grace;
    assert_eq!(node.hostnames("dev", "demo.svc").await, vec!["renewed", "silent"], "all there after the restart");
    assert_eq!(node.cursor("dev", "demo.svc").await, Some(cursor), "same state, same cursor");

    let mut next_renew = Instant::now();
    let expired_after = loop {
        if Instant::now() >= next_renew {
            assert_eq!(node.renew(&renewed).await, 0);
            next_renew += Duration::from_millis(250);
        }
        let hosts = node.hostnames("dev", "demo.svc").await;
        assert!(hosts.contains(&"renewed".to_owned()), "the renewed instance never expires");
        if hosts == vec!["renewed"] {
            break active_at.elapsed();
        }
        assert!(active_at.elapsed() < latest + Duration::from_secs(5), "silent never expired ({hosts:?})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("after the restart the silent instance expired {expired_after:?} after promotion (window {earliest:?}..{latest:?})");
    assert!(expired_after + Duration::from_millis(200) >= earliest, "not before lease + grace ({expired_after:?})");
    assert!(expired_after <= latest + Duration::from_secs(2), "within lease + grace + spread ({expired_after:?})");
    let after = node.cursor("dev", "demo.svc").await.expect("cursor");
    assert!(after > cursor, "the eviction after the restart moves the cursor forward");
    node.stop().await;
}

/// Regression (issue 3): a fresh node's leader was promoted with an empty lease table, so its eviction cap
/// for the first minute was 0 and nothing registered during that minute could expire before it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_3_a_fresh_node_evicts_within_its_first_minute() {
    let node = TestNode::start_with(short_lease).await;
    let inst = Inst::new("dev", "demo.svc", "only");
    node.register(&inst).await;
    let took = wait_until(Duration::from_secs(5), "the only instance to expire (lease 1 s)", || async {
        node.fetch("dev", "demo.svc").await.is_none()
    })
    .await;
    eprintln!("a fresh node evicted its first instance {took:?} after the register");
    assert_eq!(node.renew(&inst).await, -404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_takes_in_registers_as_they_apply_not_at_its_next_scan() {
    // A scan once an hour: only the first, at promotion, happens during the test.
    let node = TestNode::start_with(|c| c.evict_interval = Duration::from_secs(3600)).await;
    let before = node.state().lessor.status().leases;
    for n in 0..20 {
        node.register(&Inst::new("dev", "demo.absorb", &format!("h{n}"))).await;
    }
    let lessor = node.state().lessor.clone();
    wait_until(WAIT, "the lessor to hold a lease for each register", || {
        let leases = lessor.status().leases;
        async move { leases == before + 20 }
    })
    .await;
}

/// Issue 11: with `--protect-threshold 0` the per-minute eviction cap is off too (Eureka ties the cap to the
/// threshold), so a burst of expiries goes at once. With the old 15 % cap, 9 of these 50 instances went
/// after the lease and the other 41 waited for the next minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_threshold_zero_evicts_a_burst_of_expiries_at_once() {
    let node = TestNode::start_with(short_lease).await;
    let kept: Vec<Inst> = (0..10).map(|i| Inst::new("dev", "demo.burst", &format!("kept{i:02}"))).collect();
    let silent: Vec<Inst> = (0..50).map(|i| Inst::new("dev", "demo.burst", &format!("silent{i:02}"))).collect();
    for inst in &kept {
        node.register(inst).await;
    }
    // The kept instances renew every 250 ms from here on (a quarter of the 1 s lease).
    let renewing = async {
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                for inst in &kept {
                    assert_eq!(node.renew(inst).await, 0, "renew of {}", inst.hostname);
                }
                next += Duration::from_millis(250);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let burst = async {
        futures::future::join_all(silent.iter().map(|inst| node.register(inst))).await;
        let registered = Instant::now();
        assert_eq!(node.hostnames("dev", "demo.burst").await.len(), 60, "all 60 registered");
        // The last silent lease ends 1 s after `registered`; then every scan (100 ms) may evict all of them.
        wait_until(WAIT, "the 50 silent instances to be evicted", || async {
            node.hostnames("dev", "demo.burst").await.len() == 10
        })
        .await;
        let took = registered.elapsed();
        let after_lease = took.saturating_sub(node.config.lease);
        eprintln!("50 of 60 instances expired together; all evicted {after_lease:?} after the last lease ended");
        assert!(
            took <= node.config.lease + Duration::from_millis(1500),
            "all 50 evicted within a few 100 ms scans of the lease's end, not rate-limited (took {took:?})"
        );
    };
    tokio::select! {
        () = renewing => unreachable!("the renew loop never ends"),
        () = burst => {}
    }
    let expected: Vec<String> = kept.iter().map(|i| i.hostname.clone()).collect();
    assert_eq!(node.hostnames("dev", "demo.burst").await, expected, "the renewed instances stay");
    let guard = node.state().lessor.status().guard.expect("active lessor");
    assert!(!guard.protected, "threshold 0: never protected: {guard:?}");
    assert_eq!(node.renew(&silent[0]).await, -404);
}
