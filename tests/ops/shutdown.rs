//! SIGTERM: waiting long polls answer -304 at once, the process exits 0 promptly, and a restart on the
//! same data dir has every acknowledged write.

use std::time::{Duration, Instant};

use discovery::client::Poll;

use crate::proc::{hosts, register, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_polls_exits_zero_and_keeps_acknowledged_writes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // A poll would otherwise wait its full 30 s.
    let mut node = Proc::spawn(&data, &["--poll-timeout", "30s"], &[("RUST_LOG", "info")]);
    node.wait_healthy(Duration::from_secs(20)).await;
    let client = node.client();
    let mut expected: Vec<String> = (0..20).map(|i| format!("h{i:02}")).collect();
    for host in &expected {
        register(&client, host).await;
    }
    let cursor = client.fetch("dev", "app", None, 3).await.expect("fetch").latest_timestamp;

    let poll = tokio::spawn({
        let client = client.clone();
        async move {
            let answer = client.poll("dev", "app", "poller", cursor).await;
            (answer, Instant::now())
        }
    });
    // The poll is waiting once the node counts it.
    let metrics = node.url("/metrics");
    crate::node::wait_until(Duration::from_secs(10), "the poll to wait", || async {
        let text = reqwest::get(&metrics).await.expect("scrape").text().await.expect("text");
        crate::metrics::sample(&text, "discovery_longpoll_waiters") == Some(1.0)
    })
    .await;

    let signalled = Instant::now();
    node.signal("TERM");
    let (answer, answered) =
        tokio::time::timeout(Duration::from_secs(5), poll).await.expect("poll answered").expect("task");
    assert_eq!(answer, Ok(Poll::NotModified), "a stopping node answers waiting polls -304");
    let answered_after = answered - signalled;
    assert!(answered_after < Duration::from_secs(2), "poll answered {answered_after:?} after SIGTERM");
    let status =
        node.wait_exit(Duration::from_secs(15)).await.unwrap_or_else(|| panic!("no exit:\n{}", node.log_text()));
    assert!(status.success(), "exit status {status}:\n{}", node.log_text());
    let log = node.log_text();
    assert!(log.contains("shutdown signal received"), "{log}");

    let mut again = Proc::spawn_at(&node.addr, &data, &[], &[("RUST_LOG", "info")]);
    again.wait_healthy(Duration::from_secs(20)).await;
    expected.sort();
    assert_eq!(
        hosts(&again.client()).await.expect("fetch"),
        expected,
        "every acknowledged register survives a clean stop"
    );
}
