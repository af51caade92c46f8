//! Three real openraft nodes talking over HTTP on ephemeral ports: election, replication and fail-over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use support::cluster::{by_id, fast_config, start_cluster, TestNode};

async fn write(leader: &TestNode, value: &str) -> u64 {
    let response = leader.raft.client_write(value.to_string()).await.unwrap();
    assert_eq!(response.data, value);
    response.log_id.index
}

async fn check_replication_and_failover(token: Option<Arc<str>>) {
    let mut nodes = start_cluster(3, fast_config(), token).await;

    // Everyone agrees on one leader.
    let leader_id = nodes[0].wait_for_leader(None).await;
    for node in &nodes {
        assert_eq!(node.wait_for_leader(None).await, leader_id);
    }

    // A write on the leader is applied everywhere.
    let index = write(by_id(&nodes, leader_id), "first").await;
    for node in &nodes {
        node.wait_applied(index).await;
        assert_eq!(node.sm.values(), ["first"], "node {}", node.id);
    }

    // The leader goes away (Raft and HTTP): the two others elect a new leader among themselves.
    let old = nodes.iter().position(|node| node.id == leader_id).unwrap();
    let mut old_leader = nodes.remove(old);
    old_leader.stop().await;
    let new_leader = nodes[0].wait_for_leader(Some(leader_id)).await;
    assert_ne!(new_leader, leader_id);
    assert_eq!(nodes[1].wait_for_leader(Some(leader_id)).await, new_leader);
    let new_leader = by_id(&nodes, new_leader);
    new_leader.wait_until_leader().await;

    // The two-node majority still commits.
    let index = write(new_leader, "second").await;
    for node in &nodes {
        node.wait_applied(index).await;
        assert_eq!(node.sm.values(), ["first", "second"], "node {}", node.id);
    }

    for node in &mut nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_and_survive_the_loss_of_the_leader() {
    check_replication_and_failover(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_with_a_token_works_the_same() {
    check_replication_and_failover(Some(Arc::from("cluster-secret"))).await;
}
