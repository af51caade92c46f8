//! Snapshots of any size (issue 12): a snapshot travels in bounded chunks into a file on the receiver and
//! installs from there. With a tiny chunk size (4 KiB, 1 KiB) a registry of a few thousand instances makes a
//! snapshot hundreds of chunks long:
//! - a node added after the leader purged its log catches up by that snapshot and converges;
//! - a receiver killed in mid-transfer and restarted starts over cleanly (its partial file removed) and
//!   converges; its `/admin/status` said how far the transfer was while it lasted.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{self, Inst};
use crate::harness::{poll_until, TestCluster};

const T: Duration = Duration::from_secs(30);

/// Register `n` instances of `appid` through the leader, 32 at a time; their host names.
async fn populate(cluster: &TestCluster, appid: &str, n: usize) -> Vec<String> {
    let leader = cluster.wait_for_leader(T).await;
    let on_leader = cluster.api(leader);
    let mut hosts = Vec::new();
    for start in (0..n).step_by(32) {
        let batch: Vec<Inst> = (start..(start + 32).min(n)).map(|k| Inst::new(appid, format!("host-{k:05}"))).collect();
        let answers = futures::future::join_all(batch.iter().map(|i| api::register(&on_leader, i, T))).await;
        for (inst, answer) in batch.iter().zip(answers) {
            let answer = answer.expect("register");
            assert_eq!(api::code(&answer), 0, "register {}: {answer:?}", inst.hostname);
            hosts.push(inst.hostname.clone());
        }
    }
    hosts
}

/// Build a snapshot on the leader now and wait until it is stored (its log is then purged behind it).
async fn snapshot_now(cluster: &TestCluster) {
    let leader = cluster.wait_for_leader(T).await;
    let applied = cluster.status(leader).await.and_then(|s| s.last_applied).unwrap_or(0);
    let (status, answer) = cluster.admin_post(leader, "/admin/snapshot", &json!({}), T).await.expect("snapshot");
    assert_eq!(status, 202, "{answer}");
    let built = poll_until(Instant::now() + T, async || {
        let status = cluster.api(leader).status_json_of(&cluster.addr(leader)).await.map_err(|e| e.to_string())?;
        match status["snapshot_index"].as_u64() {
            Some(index) if index >= applied => Ok(index),
            other => Err(format!("snapshot index {other:?}, want {applied}")),
        }
    })
    .await;
    built.unwrap_or_else(|e| panic!("no snapshot: {e}\n{}", cluster.logs()));
}

/// The size of the snapshot node `id` logged it was receiving (the first transfer).
fn received_total(cluster: &TestCluster, id: u64) -> Option<u64> {
    let log = cluster.log_of(id);
    let line = log.lines().find(|l| l.contains("receiving a snapshot"))?;
    let at = line.find("total_bytes=")? + "total_bytes=".len();
    line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_after_the_purge_catches_up_by_a_snapshot_of_many_chunks() {
    let mut cluster =
        TestCluster::start(3, &["--lease", "10m", "--snapshot-logs", "50", "--snapshot-chunk-size", "4KiB"]).await;
    let hosts = populate(&cluster, "snap.chunks", 1500).await;
    snapshot_now(&cluster).await;
    let id = cluster.add_node().await;
    let digest = cluster.wait_converged(T).await;
    assert_eq!(digest.instances, hosts.len());
    let total =
        received_total(&cluster, id).unwrap_or_else(|| panic!("node {id} got no snapshot:\n{}", cluster.logs()));
    assert!(total > 20 * 4096, "a snapshot of {total} bytes is not several 4 KiB chunks");
    let on_new = api::hosts_on(&cluster.api(id), "snap.chunks").await;
    assert_eq!(on_new.len(), hosts.len(), "the new node answers every instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_in_mid_transfer_starts_over_and_converges() {
    let mut cluster =
        TestCluster::start(3, &["--lease", "10m", "--snapshot-logs", "50", "--snapshot-chunk-size", "1KiB"]).await;
    let hosts = populate(&cluster, "snap.killed", 2500).await;
    snapshot_now(&cluster).await;
    let id = cluster.spawn_joining().await;
    let leader = cluster.wait_for_leader(T).await;
    let add = json!({ "id": id, "addr": cluster.addr(id), "zone": "zone01" });
    let (client, url) = (cluster.client.clone(), cluster.url(leader, "/admin/cluster/add"));
    let adding = tokio::spawn(async move {
        let resp =
            client.post(url).json(&add).timeout(Duration::from_secs(60)).send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        Ok::<_, String>((status, resp.text().await.unwrap_or_default()))
    });
    // Wait until the transfer is under way, as the receiver's /admin/status says, then kill it.
    let progress = poll_until(Instant::now() + T, async || {
        let status = cluster.api(id).status_json_of(&cluster.addr(id)).await.map_err(|e| e.to_string())?;
        let receive = &status["snapshot_receive"];
        match (receive["received_bytes"].as_u64(), receive["total_bytes"].as_u64()) {
            (Some(received), Some(total)) if received > 0 && received < total => Ok((received, total)),
            other => Err(format!("no transfer under way: {other:?}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    cluster.kill9(id);
    assert!(
        cluster.data_dir(id).join("snapshot.receiving").exists(),
        "the partial snapshot is on disk while it arrives ({progress:?})"
    );
    cluster.restart(id).await;
    let (status, text) = adding.await.expect("add task").expect("add answered");
    assert_eq!(status, 200, "the add completes once the restarted node caught up: {text}\n{}", cluster.logs());
    cluster.mark_member(id);
    let digest = cluster.wait_converged(T).await;
    assert_eq!(digest.instances, hosts.len());
    assert!(cluster.log_of(id).contains("removed a partly received snapshot"), "the crash's leftover was removed");
    assert!(!cluster.data_dir(id).join("snapshot.receiving").exists(), "no partial file after the install");
}
