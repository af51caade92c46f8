//! A node left alone (the two others, leader included, paused with SIGSTOP) refuses writes quickly with
//! -500, keeps serving reads from its applied state, and the cluster recovers once the others resume.

use std::time::{Duration, Instant};

use discovery::client::{ClientError, Reply};

use crate::api::{self, Inst};
use crate::harness::TestCluster;

const T: Duration = Duration::from_secs(10);
/// 2 × the election timeout (1 s max) is the contract; allow a little scheduling noise on top.
const WRITE_REFUSAL_BUDGET: Duration = Duration::from_secs(3);
const APPID: &str = "minority.app";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_after_sigstop_two_of_three() {
    let mut cluster = TestCluster::start(3, &["--lease", "10m"]).await;
    let leader = cluster.wait_for_leader(T).await;
    let before: Vec<String> = (0..5).map(|k| format!("before-{k}")).collect();
    for host in &before {
        let answer = api::register(&cluster.api(leader), &Inst::new(APPID, host.as_str()), T).await.expect("register");
        assert_eq!(api::code(&answer), 0, "{answer:?}");
    }
    cluster.wait_converged(T).await;

    let others = cluster.others(leader);
    let (alone, paused) = (others[0], others[1]);
    cluster.sigstop(leader);
    cluster.sigstop(paused);
    let on_alone = cluster.api(alone);

    let mut latencies = Vec::new();
    for k in 0..5 {
        let started = Instant::now();
        let answer = api::register(&on_alone, &Inst::new(APPID, format!("during-{k}")), T).await;
        let took = started.elapsed();
        latencies.push(took);
        let body =
            answer.unwrap_or_else(|e| panic!("write #{k} on the minority node got no answer after {took:?}: {e}"));
        assert_eq!(api::code(&body), -500, "write #{k} on the minority node: {body:?}");
        assert!(
            took <= WRITE_REFUSAL_BUDGET,
            "write #{k} took {took:?} to be refused (budget {WRITE_REFUSAL_BUDGET:?})"
        );

        let started = Instant::now();
        let read = api::fetch(&on_alone, APPID, false, T).await.expect("plain fetch on the minority node");
        assert_eq!(api::code(&read), 0, "plain fetch on the minority node: {read:?}");
        let hosts = api::hostnames(&read);
        assert!(before.iter().all(|h| hosts.contains(h)), "minority node lost data: {read:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "plain fetch took {:?}", started.elapsed());
    }
    // Renews and cancels need the leader too: -500 (never -404, which makes clients re-register) in time.
    let known = Inst::new(APPID, before[0].as_str());
    assert_refused("renew", api::renew(&on_alone, &known, T)).await;
    assert_refused("cancel", api::cancel(&on_alone, &known, T)).await;
    let started = Instant::now();
    let consistent = api::fetch(&on_alone, APPID, true, T).await;
    eprintln!("consistent fetch on the minority node: {consistent:?} after {:?}", started.elapsed());
    if let Ok(body) = &consistent {
        assert_ne!(api::code(body), 0, "a consistent read without a quorum must not succeed: {body:?}");
    }
    let mut sorted = latencies.clone();
    sorted.sort();
    eprintln!("minority write refusal (-500) latencies: {latencies:?}, median {:?}, max {:?}", sorted[2], sorted[4]);

    cluster.sigcont(leader);
    cluster.sigcont(paused);
    cluster.wait_for_leader(T).await;
    let deadline = Instant::now() + T;
    let after = Inst::new(APPID, "after");
    loop {
        match api::register(&on_alone, &after, T).await {
            Ok(body) if api::code(&body) == 0 => break,
            other => assert!(Instant::now() < deadline, "writes do not recover after SIGCONT: {other:?}"),
        }
    }
    cluster.wait_converged(T).await;
    for id in cluster.live() {
        let hosts = api::hosts_on(&cluster.api(id), APPID).await;
        assert!(hosts.contains(&after.hostname) && before.iter().all(|h| hosts.contains(h)), "node {id}: {hosts:?}");
    }
}

/// `call` answers -500 within the refusal budget.
async fn assert_refused(what: &str, call: impl std::future::Future<Output = Result<Reply, ClientError>>) {
    let started = Instant::now();
    let answer = call.await;
    let took = started.elapsed();
    let body = answer.unwrap_or_else(|e| panic!("{what} on the minority node got no answer after {took:?}: {e}"));
    eprintln!("{what} on the minority node: code {} after {took:?}", api::code(&body));
    assert_eq!(api::code(&body), -500, "{what} on the minority node: {body:?}");
    assert!(took <= WRITE_REFUSAL_BUDGET, "{what} took {took:?} to be refused (budget {WRITE_REFUSAL_BUDGET:?})");
}

/// Regression (found by the chaos checker): a leader cut off from the majority kept judging renews from its
/// stale state, acknowledging renews the real leader never saw (which then evicted those instances) and
/// answering -404 for instances registered on the majority side. It must answer -500 once it cannot
/// confirm its leadership, and its renews must never be acknowledged as 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_5_a_cut_off_leader_does_not_judge_renews() {
    let mut cluster = TestCluster::start(3, &["--lease", "10m"]).await;
    let leader = cluster.wait_for_leader(T).await;
    let known = Inst::new(APPID, "stale-leader-renew");
    let answer = api::register(&cluster.api(leader), &known, T).await.expect("register");
    assert_eq!(api::code(&answer), 0, "{answer:?}");
    assert_eq!(api::code(&api::renew(&cluster.api(leader), &known, T).await.expect("renew")), 0);

    // Pause both followers: the leader still believes it leads, but no quorum confirms it any more.
    for id in cluster.others(leader) {
        cluster.sigstop(id);
    }
    let on_leader = cluster.api(leader);
    let deadline = Instant::now() + WRITE_REFUSAL_BUDGET;
    let mut answers = Vec::new();
    loop {
        let started = Instant::now();
        let body = api::renew(&on_leader, &known, T).await.expect("the leader answers renews");
        answers.push((api::code(&body), started.elapsed()));
        if api::code(&body) == -500 {
            break;
        }
        assert!(Instant::now() < deadline, "the cut-off leader kept acknowledging renews: {answers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once refused, never acknowledged again while the majority is away.
    for _ in 0..5 {
        let body = api::renew(&on_leader, &known, T).await.expect("renew");
        assert_eq!(api::code(&body), -500, "{body:?}");
    }
    eprintln!("renews on the cut-off leader: {answers:?}");
    for id in cluster.others(leader) {
        cluster.sigcont(id);
    }
    cluster.wait_for_leader(T).await;
}

/// The largest time SIGTERM may take to end a node, whatever it waits on (`SHUTDOWN_GRACE` + 5 s).
const STOP_BOUND: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_leader_cut_off_from_its_majority_in_bounded_time() {
    let mut cluster =
        TestCluster::start(3, &["--lease", "1s", "--protect-threshold", "0", "--evict-interval", "200ms"]).await;
    let c = cluster.client.clone();
    let leader = cluster.wait_for_leader(T).await;
    let answer = api::register(&cluster.api(leader), &Inst::new(APPID, "never-renewed"), T).await.expect("register");
    assert_eq!(api::code(&answer), 0, "{answer:?}");
    // Cut the leader off: its eviction of the unrenewed instance can never commit.
    for follower in cluster.others(leader) {
        cluster.sigstop(follower);
    }
    let metrics = cluster.url(leader, "/metrics");
    let proposed = crate::harness::poll_until(Instant::now() + T, async || {
        let text = c.get(&metrics).send().await.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())?;
        let evicting =
            text.lines().any(|l| l.starts_with("discovery_lessor_evicted_this_minute ") && !l.ends_with(" 0"));
        if evicting {
            Ok(())
        } else {
            Err("no eviction proposed yet".to_string())
        }
    })
    .await;
    proposed.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));

    let started = Instant::now();
    let status = cluster.sigterm_and_wait(leader, STOP_BOUND + Duration::from_secs(5)).await;
    let took = started.elapsed();
    eprintln!("cut-off leader stopped {took:?} after SIGTERM: {status:?}");
    let status =
        status.unwrap_or_else(|| panic!("the cut-off leader ignored SIGTERM for {took:?}\n{}", cluster.logs()));
    assert!(took <= STOP_BOUND, "took {took:?} (bound {STOP_BOUND:?})");
    assert!(status.success(), "a requested stop exits 0: {status}");
    for follower in cluster.others(leader) {
        cluster.sigcont(follower);
    }
}
