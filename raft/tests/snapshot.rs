//! A learner added after the log was purged can only catch up by snapshot: it must arrive over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use openraft::SnapshotPolicy;
use support::cluster::{fast_config, start_cluster, TestNode, WAIT};

const WRITES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_learner_catches_up_by_snapshot() {
    let config = openraft::Config {
        snapshot_policy: SnapshotPolicy::LogsSinceLast(5),
        // Purge everything a snapshot covers, so the first entries exist only in the snapshot.
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..fast_config()
    };
    let mut nodes = start_cluster(1, config.clone(), None).await;
    let leader = &nodes[0];
    leader.wait_until_leader().await;

    let mut expected = Vec::new();
    let mut last = 0;
    for i in 0..WRITES {
        let value = format!("value-{i}");
        last = leader.raft.client_write(value.clone()).await.unwrap().log_id.index;
        expected.push(value);
    }
    leader
        .raft
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= 5), "leader purged its log")
        .await
        .unwrap();

    let learner = TestNode::start(2, config, None).await;
    // Blocking: returns once the learner has caught up, which here needs the snapshot.
    let added = tokio::time::timeout(WAIT, leader.raft.add_learner(learner.id, learner.node(), true));
    added.await.expect("the learner did not catch up").unwrap();
    learner.wait_applied(last).await;

    assert!(learner.sm.snapshots_installed() >= 1, "the learner did not install a snapshot");
    let metrics = learner.raft.metrics().borrow().clone();
    assert!(metrics.snapshot.is_some(), "{metrics:?}");
    assert_eq!(learner.sm.values(), expected);

    nodes.push(learner);
    for node in &mut nodes {
        node.stop().await;
    }
}
