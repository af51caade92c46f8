//! Crashes under load: the time a leader crash costs the writers, and that no acknowledged register is
//! lost when every node in turn is killed with SIGKILL and restarted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::api;
use crate::harness::TestCluster;
use crate::workload::{WriteLoad, Writers};

const T: Duration = Duration::from_secs(10);
/// Longest acceptable time from a leader crash to the first write acknowledged by a survivor.
const FAILOVER_BUDGET: Duration = Duration::from_secs(5);
/// Instances must not expire while these tests run (they never renew).
const NO_EXPIRY: [&str; 2] = ["--lease", "10m"];

fn bases(cluster: &TestCluster, ids: &[u64]) -> Vec<String> {
    ids.iter().map(|&id| cluster.base(id)).collect()
}

/// Every acknowledged host is served by every live node, and the nodes converged.
async fn assert_nothing_lost(cluster: &TestCluster, appid: &str, acked: &[String]) {
    let digest = cluster.wait_converged(Duration::from_secs(30)).await;
    for id in cluster.live() {
        let hosts = api::hosts_on(&cluster.api(id), appid).await;
        let missing: BTreeSet<&String> = acked.iter().filter(|h| !hosts.contains(*h)).collect();
        assert!(missing.is_empty(), "node {id} lost {} acknowledged registers: {missing:?}", missing.len());
    }
    assert!(digest.instances >= acked.len(), "digest counts {} instances, {} acked", digest.instances, acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_under_load_recovers() {
    let mut cluster = TestCluster::start(3, &NO_EXPIRY).await;
    let appid = "failover.leader";
    let first = cluster.wait_for_leader(T).await;
    let mut writers = Writers::start(appid, bases(&cluster, &cluster.others(first)), WriteLoad::default());
    let mut figures = Vec::new();
    for round in 1..=5 {
        let leader = cluster.wait_for_leader(T).await;
        // Only the survivors take writes, so every write after the crash goes through a follower.
        writers.set_targets(bases(&cluster, &cluster.others(leader)));
        writers.wait_more_acks(10, T).await;
        cluster.kill9(leader);
        let killed = Instant::now();
        let took = writers.first_ack_sent_after(killed, Duration::from_secs(20)).await;
        let took = took.unwrap_or_else(|| {
            panic!("round {round}: no write acknowledged within 20 s of killing leader {leader}\n{}", cluster.logs())
        });
        eprintln!(
            "failover round {round}: killed leader {leader}; first write acknowledged by a survivor after {took:?}"
        );
        figures.push(took);
        cluster.restart(leader).await;
        writers.pause().await;
        cluster.wait_converged(Duration::from_secs(30)).await;
        writers.resume();
    }
    let acked = writers.stop().await;
    let mut sorted = figures.clone();
    sorted.sort();
    eprintln!("failover: kill -9 of the leader to first acknowledged write: {figures:?}, median {:?}", sorted[2]);
    assert_nothing_lost(&cluster, appid, &acked).await;
    for (round, took) in figures.iter().enumerate() {
        assert!(*took <= FAILOVER_BUDGET, "round {}: failover took {took:?} > {FAILOVER_BUDGET:?}", round + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_each_node_under_load_loses_nothing() {
    let mut cluster = TestCluster::start(3, &NO_EXPIRY).await;
    let appid = "failover.each";
    cluster.wait_for_leader(T).await;
    let writers = Writers::start(appid, bases(&cluster, &cluster.live()), WriteLoad::default());
    writers.wait_more_acks(20, T).await;
    for id in cluster.ids() {
        let was_leader = cluster.leader().await == Some(id);
        writers.set_targets(bases(&cluster, &cluster.others(id)));
        cluster.kill9(id);
        // Writes keep being acknowledged while the node is down…
        writers.wait_more_acks(100, Duration::from_secs(20)).await;
        cluster.restart(id).await;
        // …and once it is back and has caught up, through it as well.
        let index = cluster.leader_applied(T).await;
        cluster.wait_applied(index, Duration::from_secs(30)).await;
        writers.set_targets(bases(&cluster, &cluster.live()));
        writers.wait_more_acks(100, Duration::from_secs(20)).await;
        eprintln!("node {id} (leader: {was_leader}) killed and restarted; {} acks so far", writers.ack_count());
    }
    let (attempts, failures) = writers.counts();
    let acked = writers.stop().await;
    eprintln!("kill each node: {} acknowledged of {attempts} attempts ({failures} failed)", acked.len());
    assert_nothing_lost(&cluster, appid, &acked).await;
}
