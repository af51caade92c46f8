//! Reads after writes: a follower forwards a register and reads its own write at once; every node then
//! serves it with the same cursor (set and cancel likewise); `consistent=1` on a follower sees a write
//! acknowledged by another node.

use std::time::{Duration, Instant};

use crate::api::{self, Inst};
use crate::harness::TestCluster;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_through_follower_visible_everywhere() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(T).await;
    let follower = cluster.others(leader)[0];
    let inst = Inst::new("reads.follower", "host-1");

    let answer = api::register(&cluster.api(follower), &inst, T).await.expect("register on a follower");
    assert_eq!(api::code(&answer), 0, "register through follower {follower} answered {answer:?}");

    // Read-your-writes: the follower answered only after applying the entry itself.
    let own = api::fetch(&cluster.api(follower), &inst.appid, false, T).await.expect("fetch on the follower");
    assert_eq!(api::code(&own), 0, "fetch on follower right after its ack: {own:?}");
    assert!(api::hostnames(&own).contains(&inst.hostname), "follower does not read its own write: {own:?}");
    let cursor = api::latest_timestamp(&own).expect("latest_timestamp");

    cluster.wait_converged(T).await;
    for id in cluster.live() {
        let body = api::fetch(&cluster.api(id), &inst.appid, false, T).await.expect("fetch");
        assert_eq!(api::code(&body), 0, "node {id}: {body:?}");
        assert!(api::hostnames(&body).contains(&inst.hostname), "node {id} lacks the instance: {body:?}");
        assert_eq!(api::latest_timestamp(&body), Some(cursor), "node {id} has another cursor: {body:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_cancel_through_follower_read_their_writes() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(T).await;
    let follower = cluster.others(leader)[0];
    let on_follower = cluster.api(follower);
    let (kept, cancelled) = (Inst::new("reads.setcancel", "kept"), Inst::new("reads.setcancel", "cancelled"));
    for inst in [&kept, &cancelled] {
        let answer = api::register(&on_follower, inst, T).await.expect("register");
        assert_eq!(api::code(&answer), 0, "{answer:?}");
    }

    let answer = api::set_status(&on_follower, &kept, 2, T).await.expect("set");
    assert_eq!(api::code(&answer), 0, "set through follower {follower}: {answer:?}");
    let own = api::fetch(&on_follower, &kept.appid, false, T).await.expect("fetch");
    assert_eq!(api::status_of(&own, &kept.hostname), Some(2), "follower does not read its own set: {own:?}");

    let answer = api::cancel(&on_follower, &cancelled, T).await.expect("cancel");
    assert_eq!(api::code(&answer), 0, "cancel through follower {follower}: {answer:?}");
    let own = api::fetch(&on_follower, &kept.appid, false, T).await.expect("fetch");
    assert!(!api::hostnames(&own).contains(&cancelled.hostname), "follower does not read its own cancel: {own:?}");

    cluster.wait_converged(T).await;
    for id in cluster.live() {
        let body = api::fetch(&cluster.api(id), &kept.appid, false, T).await.expect("fetch");
        assert_eq!(api::status_of(&body, &kept.hostname), Some(2), "node {id}: {body:?}");
        assert!(!api::hostnames(&body).contains(&cancelled.hostname), "node {id}: {body:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_read_on_follower_sees_write_acked_elsewhere() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(T).await;
    let others = cluster.others(leader);
    let (reader, other) = (others[0], others[1]);
    let mut latencies = Vec::new();
    for k in 0..20 {
        // Write alternately through the leader and through the other follower; read on `reader`.
        let writer = if k % 2 == 0 { leader } else { other };
        let inst = Inst::new("reads.consistent", format!("host-{k}"));
        let answer = api::register(&cluster.api(writer), &inst, T).await.expect("register");
        assert_eq!(api::code(&answer), 0, "register #{k} on node {writer}: {answer:?}");
        let started = Instant::now();
        let body = api::fetch(&cluster.api(reader), &inst.appid, true, T).await.expect("consistent fetch");
        latencies.push(started.elapsed());
        assert_eq!(api::code(&body), 0, "consistent fetch #{k} on node {reader}: {body:?}");
        assert!(
            api::hostnames(&body).contains(&inst.hostname),
            "consistent fetch #{k} on follower {reader} misses {} acknowledged by node {writer}: {body:?}",
            inst.hostname
        );
    }
    latencies.sort();
    eprintln!("consistent fetch on a follower: median {:?}, max {:?}", latencies[10], latencies[19]);
}

/// Forwarded writes travel in batches (`node::forward::writes`): many concurrent registers through one
/// follower take far fewer Raft entries than writes, each caller still gets its own answer, and the
/// follower reads every acknowledged write at once. Concurrent `consistent=1` reads that share read-index
/// round trips (`node::forward::read_index`) all see every write acknowledged before they started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_a_follower_share_entries_and_read_their_writes() {
    const WRITES: usize = 120;
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(T).await;
    let follower = cluster.others(leader)[0];
    let on_follower = cluster.api(follower);
    let before = cluster.leader_applied(T).await;

    let calls = (0..WRITES).map(|n| {
        let client = on_follower.clone();
        async move {
            let inst = Inst::new("reads.batched", format!("host-{n}"));
            let answer = api::register(&client, &inst, T).await.expect("register through the follower");
            assert_eq!(api::code(&answer), 0, "register {n} through the follower: {answer:?}");
        }
    });
    futures::future::join_all(calls).await;

    let own = api::fetch(&on_follower, "reads.batched", false, T).await.expect("fetch on the follower");
    assert_eq!(api::hostnames(&own).len(), WRITES, "the follower reads every write it acknowledged: {own:?}");
    let used = cluster.leader_applied(T).await - before;
    eprintln!("{WRITES} concurrent writes through a follower used {used} Raft entries");
    assert!(used < WRITES as u64, "forwarded writes must share entries: {used} entries for {WRITES} writes");

    // Consistent reads on the other follower, concurrent, right after more writes acknowledged by the leader.
    let reader = cluster.api(cluster.others(leader)[1]);
    for round in 0..5 {
        let inst = Inst::new("reads.batched", format!("late-{round}"));
        let answer = api::register(&cluster.api(leader), &inst, T).await.expect("register");
        assert_eq!(api::code(&answer), 0, "{answer:?}");
        let reads = (0..32).map(|_| api::fetch(&reader, "reads.batched", true, T));
        for body in futures::future::join_all(reads).await {
            let body = body.expect("consistent fetch");
            assert!(api::hostnames(&body).contains(&inst.hostname), "round {round}: a consistent read missed {inst:?}");
        }
    }
}
