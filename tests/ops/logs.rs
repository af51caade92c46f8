//! `--log-format json`: every line is a JSON object, and the events an operator needs are logged once.

use std::time::Duration;

use serde_json::Value;

use crate::proc::{register, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_leader_snapshot_and_self_preservation_events() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // The format from the environment; a snapshot every 5 entries; self-preservation off (so the lessor
    // logs its switch at the first scan instead of after a minute).
    let args = ["--snapshot-logs", "5", "--protect-threshold", "0", "--evict-interval", "100ms"];
    let mut node = Proc::spawn(&data, &args, &[("DISCOVERY_LOG_FORMAT", "json"), ("RUST_LOG", "info")]);
    node.wait_healthy(Duration::from_secs(20)).await;
    let client = node.client();
    for i in 0..8 {
        register(&client, &format!("h{i}")).await;
    }
    node.wait_log("snapshot built", Duration::from_secs(10)).await;
    let text = node.wait_log("self-preservation off", Duration::from_secs(10)).await;

    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(messages.iter().filter(|m| **m == "leader changed").count(), 1, "{messages:?}");
    assert!(messages.contains(&"membership changed"), "{messages:?}");
    let leader = lines.iter().find(|l| l["message"] == "leader changed").expect("leader line");
    assert_eq!(leader["level"], "INFO");
    assert_eq!(leader["leader"], 1, "fields are top-level keys: {leader}");
    assert!(leader["timestamp"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_the_default_and_bad_formats_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut node = Proc::spawn(&data, &[], &[("RUST_LOG", "info")]);
    node.wait_healthy(Duration::from_secs(20)).await;
    let text = node.wait_log("leader changed", Duration::from_secs(10)).await;
    assert!(text.lines().all(|l| !l.starts_with('{')), "{text}");
    let (status, stderr) = crate::support::run_to_exit(&["--log-format", "xml"], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains("--log-format"), "{stderr}");
}
