//! Leases across leader changes: instances that keep renewing through any node survive repeated leader
//! crashes (the new leader grants a post-election grace and learns the renews), while an instance that
//! stopped renewing is still evicted, within lease + grace + spread of the last crash.

use std::time::{Duration, Instant};

use crate::api::{self, Inst};
use crate::harness::TestCluster;
use crate::renewers::{RenewLoad, Renewers};

const T: Duration = Duration::from_secs(10);
const LEASE: Duration = Duration::from_secs(6);
/// The lessor's post-election grace: max(4 × election timeout max (1 s), 4 s); the spread is as long.
const GRACE: Duration = Duration::from_secs(4);
const SPREAD: Duration = GRACE;
/// Election, leadership confirmation, one scan (200 ms) and apply on every node.
const SLACK: Duration = Duration::from_secs(3);
const APPS: usize = 10;
const HOSTS: usize = 100;

fn bases(cluster: &TestCluster, ids: &[u64]) -> Vec<String> {
    ids.iter().map(|&id| cluster.base(id)).collect()
}

/// Register through the leader, retrying across an election; panics unless code 0 comes back.
async fn register(cluster: &TestCluster, inst: &Inst) {
    let deadline = Instant::now() + T;
    loop {
        let leader = cluster.wait_for_leader(T).await;
        let answer = api::register(&cluster.api(leader), inst, T).await;
        match answer {
            Ok(body) if api::code(&body) == 0 => return,
            other if Instant::now() > deadline => panic!("register {inst:?}: {other:?}"),
            _ => {}
        }
    }
}

/// Register every instance, 100 at a time so that the proposer batches them: the first ones must not
/// expire (6 s lease) before the renewers start, even on a busy machine.
async fn register_all(cluster: &TestCluster, insts: &[Inst]) {
    use futures::StreamExt;
    futures::stream::iter(insts).for_each_concurrent(100, |inst| register(cluster, inst)).await;
}

/// Whether `inst` is absent from every live node.
async fn gone_everywhere(cluster: &TestCluster, inst: &Inst) -> bool {
    for id in cluster.live() {
        match api::fetch(&cluster.api(id), &inst.appid, false, T).await {
            Ok(body) if api::code(&body) == -404 => {}
            Ok(body) if api::code(&body) == 0 && !api::hostnames(&body).contains(&inst.hostname) => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_instances_survive_leader_kills() {
    let args = ["--lease", "6s", "--evict-interval", "200ms", "--protect-threshold", "0"];
    let mut cluster = TestCluster::start(3, &args).await;
    let insts: Vec<Inst> = (0..APPS)
        .flat_map(|a| (0..HOSTS).map(move |h| Inst::new(&format!("lease.app{a}"), format!("host-{h}"))))
        .collect();
    register_all(&cluster, &insts).await;
    let load = RenewLoad {
        tasks: 8,
        interval: Duration::from_secs(2),
        max_time: Duration::from_secs(150),
        max_rounds: 75,
        timeout: Duration::from_secs(3),
    };
    let renewers = Renewers::start(insts.clone(), bases(&cluster, &cluster.live()), load);
    renewers.wait_more_renewed(insts.len(), Duration::from_secs(20)).await;

    // The stale instance: registered and renewed once, then never again.
    let stale = Inst::new("lease.stale", "stale-host");
    register(&cluster, &stale).await;
    let leader = cluster.wait_for_leader(T).await;
    let renewed = api::renew(&cluster.api(leader), &stale, T).await.expect("renew stale");
    assert_eq!(api::code(&renewed), 0, "renew of the stale instance on the leader: {renewed:?}");
    assert!(!gone_everywhere(&cluster, &stale).await, "the stale instance must exist before the first kill");
    let before = cluster.wait_converged(T).await;
    assert_eq!(before.instances, insts.len() + 1, "evictions before the first kill (setup too slow?)");

    let mut last_kill = Instant::now();
    let mut last_elected = Duration::ZERO;
    let mut stale_before_last_kill = false;
    for round in 1..=5 {
        let leader = cluster.wait_for_leader(T).await;
        renewers.set_targets(bases(&cluster, &cluster.others(leader)));
        if round == 5 {
            stale_before_last_kill = !gone_everywhere(&cluster, &stale).await;
        }
        cluster.kill9(leader);
        last_kill = Instant::now();
        let new_leader = cluster.wait_for_leader(T).await;
        last_elected = last_kill.elapsed();
        // Renews reach the new leader (forwarded by the followers) before the next crash.
        renewers.wait_more_renewed(insts.len(), Duration::from_secs(20)).await;
        cluster.restart(leader).await;
        cluster.wait_converged(Duration::from_secs(30)).await;
        renewers.set_targets(bases(&cluster, &cluster.live()));
        eprintln!("lease round {round}: killed leader {leader}, node {new_leader} leads after {last_elected:?}");
    }

    // The stale instance goes within lease + grace + spread of the last crash (plus election and scan)…
    let bound = LEASE + GRACE + SPREAD + SLACK;
    while !gone_everywhere(&cluster, &stale).await {
        assert!(last_kill.elapsed() < bound, "stale instance still present {bound:?} after the last leader kill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = last_kill.elapsed();
    eprintln!("stale instance evicted {gone:?} after the last leader kill (leader agreed after {last_elected:?})");
    // …but not before the last leader's grace: it was promoted no earlier than it was elected, and every
    // lease it found got at least lease + grace from then (the slack covers our polling of the election).
    if stale_before_last_kill {
        let earliest = last_elected + LEASE + GRACE;
        assert!(
            gone + Duration::from_millis(500) >= earliest,
            "stale instance evicted {gone:?} after the last kill, before the post-election grace ({earliest:?})"
        );
    } else {
        eprintln!("the stale instance was already gone before the last kill (slow rounds): grace not checked");
    }

    // Keep renewing past every deadline the last promotion granted (waiting for time itself to pass,
    // not for state): an instance whose renews the new leader did not learn would be gone by then.
    tokio::time::sleep_until((last_kill + bound).into()).await;
    renewers.wait_more_renewed(insts.len(), T).await;
    let digest = cluster.wait_converged(Duration::from_secs(30)).await;
    let mut lost = Vec::new();
    for id in cluster.live() {
        for app in 0..APPS {
            let appid = format!("lease.app{app}");
            let hosts = api::hosts_on(&cluster.api(id), &appid).await;
            let missing: Vec<String> = (0..HOSTS).map(|h| format!("host-{h}")).filter(|h| !hosts.contains(h)).collect();
            if !missing.is_empty() {
                lost.push(format!("node {id} {appid}: {} missing {missing:?}", missing.len()));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "renewing instances were evicted ({} renews ok, {} failed, -404: {:?}):\n{}",
        renewers.renewed(),
        renewers.failed(),
        renewers.not_found(),
        lost.join("\n")
    );
    assert_eq!(digest.instances, insts.len(), "digest counts the renewing instances only: {digest:?}");
    let not_found = renewers.not_found();
    eprintln!(
        "renews: {} succeeded, {} failed and retried, {} answered -404",
        renewers.renewed(),
        renewers.failed(),
        not_found.len()
    );
    assert!(not_found.is_empty(), "renews answered -404 (clients would re-register): {not_found:?}");
    renewers.stop().await;
}
