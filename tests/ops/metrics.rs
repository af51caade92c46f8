//! `GET /metrics`: the values move with the traffic.

use crate::node::{wait_until, TestNode, WAIT};

/// The value of the sample `series` (name plus labels, exactly as rendered), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(node: &TestNode) -> String {
    let response = node.http.get(node.url("/metrics")).send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    response.text().await.expect("text")
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic() {
    let node = TestNode::start(|_| {}).await;
    let before = scrape(&node).await;
    assert_eq!(value(&before, "discovery_raft_is_leader"), 1.0);
    assert_eq!(value(&before, r#"discovery_raft_role{role="Leader"}"#), 1.0);
    assert_eq!(value(&before, "discovery_raft_leader_id"), 1.0);
    assert_eq!(value(&before, "discovery_registry_registers_total"), 0.0);
    assert_eq!(value(&before, "discovery_lessor_active"), 1.0);
    assert!(value(&before, "discovery_raft_leader_changes_total") >= 1.0);
    let applied_before = value(&before, "discovery_raft_last_applied_index");

    for host in ["a", "b", "c"] {
        node.register("dev", "demo.svc", host).await;
    }
    node.register("prod", "demo.svc", "p").await;
    let renew = [("zone", "sh001"), ("env", "dev"), ("appid", "demo.svc"), ("hostname", "a")];
    assert_eq!(node.post("/discovery/renew", &renew).await["code"], 0);
    assert_eq!(node.post("/discovery/cancel", &renew).await["code"], 0);
    let missing = node.get_json("/discovery/fetch?appid=nope&env=dev&status=1").await;
    assert_eq!(missing["code"], -404);

    let after = scrape(&node).await;
    assert_eq!(value(&after, "discovery_registry_registers_total"), 4.0);
    assert_eq!(value(&after, "discovery_registry_cancels_total"), 1.0);
    assert_eq!(value(&after, r#"discovery_registry_renews_total{result="renewed"}"#), 1.0);
    assert_eq!(value(&after, r#"discovery_registry_instances{env="dev"}"#), 2.0);
    assert_eq!(value(&after, r#"discovery_registry_instances{env="prod"}"#), 1.0);
    assert_eq!(value(&after, r#"discovery_registry_apps{env="dev"}"#), 1.0);
    // The lease table follows apply at the lessor's next scan.
    wait_until(WAIT, "3 leases", || async { value(&scrape(&node).await, "discovery_lessor_leases") == 3.0 }).await;
    assert!(value(&after, "discovery_raft_last_applied_index") >= applied_before + 5.0, "{after}");
    assert!(value(&after, "discovery_raft_last_log_index") >= value(&after, "discovery_raft_last_applied_index"));
    assert!(value(&after, r#"discovery_raft_proposals_total{result="committed"}"#) >= 1.0);
    assert!(value(&after, "discovery_raft_proposal_batch_size_count") >= 1.0);
    assert!(value(&after, "discovery_raft_commit_latency_seconds_count") >= 1.0);
    assert!(value(&after, "discovery_storage_data_dir_bytes") > 0.0);
    assert!(value(&after, "discovery_storage_fdatasync_seconds_count") >= 5.0, "one sync per committed entry");
    assert!(value(&after, "discovery_storage_flush_seconds_count") >= 5.0);
    assert_eq!(value(&after, "discovery_longpoll_waiters"), 0.0);
    assert_eq!(value(&after, "discovery_selfpreservation_protected"), 1.0, "protected during the first minute");
    assert_eq!(value(&after, "discovery_selfpreservation_renews_last_minute"), -1.0);
    assert_eq!(
        value(
            &after,
            r#"discovery_http_requests_total{route="/discovery/register",method="POST",status="200",code="0"}"#
        ),
        4.0
    );
    assert_eq!(
        value(
            &after,
            r#"discovery_http_requests_total{route="/discovery/fetch",method="GET",status="200",code="-404"}"#
        ),
        1.0
    );
    assert_eq!(value(&after, r#"discovery_http_request_duration_seconds_count{route="/discovery/register"}"#), 4.0);
    assert!(
        value(&after, r#"discovery_http_requests_total{route="/metrics",method="GET",status="200",code=""}"#) >= 1.0
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process_have_separate_registries() {
    let a = TestNode::start(|_| {}).await;
    let b = TestNode::start(|_| {}).await;
    a.register("dev", "only.on.a", "h").await;
    assert_eq!(value(&scrape(&a).await, "discovery_registry_registers_total"), 1.0);
    assert_eq!(value(&scrape(&b).await, "discovery_registry_registers_total"), 0.0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_long_poll_records_its_wake_latency() {
    let node = TestNode::start(|_| {}).await;
    let series = "discovery_longpoll_wake_latency_seconds_count";
    assert_eq!(value(&scrape(&node).await, series), 0.0);
    let poll_url = node.url("/discovery/polls?env=dev&hostname=c1&appid=wake.svc&latest_timestamp=0");
    let http = node.http.clone();
    let poll = tokio::spawn(async move { http.get(poll_url).send().await.expect("poll").text().await.expect("body") });
    wait_until(WAIT, "the poll waits", || async { value(&scrape(&node).await, "discovery_longpoll_waiters") == 1.0 })
        .await;
    node.register("dev", "wake.svc", "h1").await;
    let answer = poll.await.expect("poll task");
    assert!(answer.contains("\"code\":0") && answer.contains("wake.svc"), "{answer}");
    let after = scrape(&node).await;
    assert_eq!(value(&after, series), 1.0, "one woken poll observed");
    let sum = value(&after, "discovery_longpoll_wake_latency_seconds_sum");
    assert!(sum > 0.0 && sum < 5.0, "a plausible wake latency: {sum}");
    node.stop().await;
}
