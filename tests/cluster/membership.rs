//! Membership changes at run time: grow 3 → 5 and shrink back under a light load; a node removed, wiped and
//! added again catches up from a snapshot (its log was purged on the leader).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::api::{self, Inst};
use crate::harness::{run_cli, TestCluster};
use crate::workload::{WriteLoad, Writers};

const T: Duration = Duration::from_secs(10);
const NO_EXPIRY: [&str; 2] = ["--lease", "10m"];

fn bases(cluster: &TestCluster, ids: &[u64]) -> Vec<String> {
    ids.iter().map(|&id| cluster.base(id)).collect()
}

/// Unix time in nanoseconds.
fn now_ns() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_nanos()).expect("fits i64")
}

/// `infra.discovery` on node `id`: its cursor and how many servers it lists.
async fn infra_on(cluster: &TestCluster, id: u64) -> (i64, usize) {
    let body = api::fetch(&cluster.api(id), "infra.discovery", false, T).await.expect("fetch");
    assert_eq!(api::code(&body), 0, "infra.discovery on node {id}: {body:?}");
    (api::latest_timestamp(&body).expect("cursor"), api::hostnames(&body).len())
}

/// `infra_on` once node `id` lists `servers` members (liveness lists a member once it is probed and current).
async fn infra_listing(cluster: &TestCluster, id: u64, servers: usize) -> i64 {
    let listed = crate::harness::poll_until(Instant::now() + T, async || match infra_on(cluster, id).await {
        (cursor, n) if n == servers => Ok(cursor),
        (_, n) => Err(format!("node {id} lists {n} servers, not {servers}")),
    })
    .await;
    listed.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
}

async fn assert_has_all(cluster: &TestCluster, id: u64, appid: &str, expected: &[String]) {
    let hosts = api::hosts_on(&cluster.api(id), appid).await;
    let missing: BTreeSet<&String> = expected.iter().filter(|h| !hosts.contains(*h)).collect();
    assert!(missing.is_empty(), "node {id} misses {} acknowledged registers: {missing:?}", missing.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_to_five_and_shrink_to_three() {
    let started = now_ns();
    let mut cluster = TestCluster::start(3, &NO_EXPIRY).await;
    let appid = "membership.grow";
    cluster.wait_for_leader(T).await;
    // Issue 11: the infra.discovery cursor is a Unix time in ns (the time node 1 saw its membership), as every
    // other app's, not a log index.
    let before = infra_listing(&cluster, 1, 3).await;
    assert!((started..=now_ns()).contains(&before), "cursor {before} is not a time since the cluster started");
    let light = WriteLoad { writers: 1, pause: Duration::from_millis(40), ..WriteLoad::default() };
    let mut writers = Writers::start(appid, bases(&cluster, &cluster.live()), light);
    writers.wait_more_acks(10, T).await;

    let growing = now_ns();
    let a = cluster.add_node().await;
    let b = cluster.add_node().await;
    let members = cluster.wait_membership(|m| m.iter().filter(|m| m.voter).count() == 5, T).await;
    let voters: Vec<u64> = members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    assert_eq!(voters, vec![1, 2, 3, a, b], "five voters: {members:?}");
    let after = infra_listing(&cluster, 1, 5).await;
    assert!(after > before, "the membership change moved the infra.discovery cursor: {before} → {after}");
    assert!((growing..=now_ns()).contains(&after), "cursor {after} is not the time node 1 saw the change");
    let (on_new, _) = infra_on(&cluster, a).await;
    assert!((growing..=now_ns()).contains(&on_new), "node {a}'s own cursor {on_new} is a time too");
    writers.set_targets(bases(&cluster, &cluster.live()));
    writers.wait_more_acks(10, T).await;
    writers.pause().await;
    let grown = cluster.wait_converged(Duration::from_secs(30)).await;
    for id in [a, b] {
        assert_has_all(&cluster, id, appid, &writers.acked()).await;
    }
    writers.resume();
    eprintln!("grown to five: {grown:?}");
    let shown = run_cli(&["cluster", "status", "--server", &cluster.addr(a)], T).await.expect("cluster status");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap_or_else(|e| panic!("{e}: {shown}"));
    let listed = shown["membership"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 5, "`discovery cluster status` on a new node lists five members: {shown}");

    // Shrink: remove the leader itself and one of the new nodes.
    let leader = cluster.wait_for_leader(T).await;
    let removed = [leader, b];
    let remaining: Vec<u64> = cluster.live().into_iter().filter(|id| !removed.contains(id)).collect();
    writers.set_targets(bases(&cluster, &remaining));
    cluster.remove_node(leader).await;
    cluster.remove_node_cli(b).await;
    let members = cluster.wait_membership(|m| m.len() == 3, T).await;
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    assert_eq!(ids, remaining, "membership back to three: {members:?}");
    assert!(members.iter().all(|m| m.voter), "all three vote: {members:?}");
    writers.wait_more_acks(10, T).await;

    for id in removed {
        let started = Instant::now();
        let inst = Inst::new(appid, format!("on-removed-{id}"));
        let answer = api::register(&cluster.api(id), &inst, T).await;
        eprintln!("register on removed node {id}: {answer:?} after {:?}", started.elapsed());
        if let Ok(body) = &answer {
            assert_ne!(api::code(body), 0, "removed node {id} acknowledged a write: {body:?}");
        }
    }
    let acked = writers.stop().await;
    cluster.wait_converged(Duration::from_secs(30)).await;
    for id in cluster.live() {
        assert_has_all(&cluster, id, appid, &acked).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_catches_up_by_snapshot() {
    let args = ["--snapshot-logs", "50", NO_EXPIRY[0], NO_EXPIRY[1]];
    let mut cluster = TestCluster::start(3, &args).await;
    let appid = "membership.wiped";
    let leader = cluster.wait_for_leader(T).await;
    let mut written = Vec::new();
    // One at a time, so that each register is its own log entry: > 200 entries, snapshots every 50.
    for k in 0..250 {
        let inst = Inst::new(appid, format!("host-{k}"));
        let answer = api::register(&cluster.api(leader), &inst, T).await.expect("register");
        assert_eq!(api::code(&answer), 0, "register #{k}: {answer:?}");
        written.push(inst.hostname);
    }
    let index = cluster.leader_applied(T).await;
    assert!(index >= 200, "only {index} entries");

    let victim = cluster.others(leader)[0];
    cluster.remove_node(victim).await;
    cluster.wipe_and_restart(victim).await;
    // More history while it is away, so that its catch-up starts far behind the purged log.
    for k in 250..320 {
        let inst = Inst::new(appid, format!("host-{k}"));
        let leader = cluster.wait_for_leader(T).await;
        let answer = api::register(&cluster.api(leader), &inst, T).await.expect("register");
        assert_eq!(api::code(&answer), 0, "register #{k}: {answer:?}");
        written.push(inst.hostname);
    }
    cluster.join(victim).await;
    let digest = cluster.wait_converged(Duration::from_secs(60)).await;
    assert_eq!(digest.instances, written.len(), "{digest:?}");
    assert_has_all(&cluster, victim, appid, &written).await;
}

/// A "node" that says it is node `id` (so an add's identity check passes) but refuses every Raft RPC, so it
/// never catches up; its address.
async fn ghost_node(id: u64) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let status = serde_json::json!({ "id": id, "addr": addr, "zone": "zone01", "membership": [] });
    let app = axum::Router::new()
        .route("/admin/status", axum::routing::get(move || async move { axum::Json(status) }))
        .fallback(|| async { (axum::http::StatusCode::FORBIDDEN, "a ghost refuses Raft RPCs") });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Contract (d): an add waits until the new node caught up, and changes run one at a time. An add that
/// cannot finish (the new node refuses the leader, so it never catches up) must not make it a voter and holds
/// the change slot: a concurrent change is refused at once. Once the operator gives up on the add, the
/// slot is free again and the stuck learner can be removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_of_unreachable_node_blocks_and_refuses_concurrent_change() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(T).await;
    let ghost = 9;
    let nowhere = ghost_node(ghost).await;
    let add = serde_json::json!({ "id": ghost, "addr": nowhere, "zone": "zone01" });
    let remove = serde_json::json!({ "id": ghost });
    let stuck = cluster.admin_post(leader, "/admin/cluster/add", &add, Duration::from_secs(3));
    let concurrent = async {
        cluster.wait_membership(|m| m.iter().any(|m| m.id == ghost), T).await;
        cluster.admin_post(leader, "/admin/cluster/remove", &remove, T).await
    };
    let (stuck, concurrent) = tokio::join!(stuck, concurrent);
    let members = cluster.status(leader).await.map(|s| s.membership);
    eprintln!("add of an unreachable node: {stuck:?}; concurrent remove: {concurrent:?}; members {members:?}");
    assert!(
        !matches!(&stuck, Ok((200, _))),
        "the add of an unreachable node succeeded, so it was promoted without catching up: {stuck:?}; {members:?}"
    );
    let (status, body) = concurrent.expect("concurrent remove answered");
    assert_ne!(status, 200, "a second change while one runs must be refused: {body}");
    assert_eq!(body["ok"], false, "{body}");

    // The operator gave up on the add (client timeout): the slot must become usable again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = cluster.admin_post(leader, "/admin/cluster/remove", &remove, T).await;
        if matches!(&answer, Ok((200, _))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "membership changes still blocked 60 s after the add was abandoned: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let members = cluster.wait_membership(|m| m.iter().all(|m| m.id != ghost), T).await;
    assert_eq!(members.len(), 3, "{members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_with_an_api_token_but_no_cluster_token_refuses_to_start() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader(T).await;
    let (addr, dir) = (cluster.addr(3), cluster.data_dir(3));
    cluster.kill9(3);
    // No --peers, no --join: only the data dir says this node is in a cluster.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_discovery"))
        .args(["--id", "3", "--addr", &addr, "--api-token", "secret", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(T, output).await.expect("exits").expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--cluster-token") && stderr.contains(&dir.display().to_string()), "{stderr}");
}
