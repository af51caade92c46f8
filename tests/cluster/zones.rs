//! Zones (issue 14): three voters in zone A and two read replicas (learners) in zone B, the zone of the test's
//! instances (`api::ZONE`).
//!
//! - The replicas serve reads from their own copy, forward writes with read-your-writes, answer `consistent=1`
//!   through the leader's read index, appear in `infra.discovery` with their zone, and never count toward a
//!   quorum (writes go on with both replicas dead).
//! - Zone A cut away from zone B's side (every voter paused): the replicas keep answering reads with a stale
//!   header, refuse writes and renews at once naming the cause, and report `stale` on `/healthz`.
//! - Zone B cut away from the leader's side (both replicas paused, so the zone's renews cannot arrive): its
//!   instances are not evicted while the cut lasts (longer than the lease), an instance of zone A that
//!   stops renewing is; after the heal the replicas converge with no operator action and zone B's
//!   instances live on.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use discovery::client::wire::STATUS_UP;
use discovery::client::{ClientError, InstanceKey, Registration};

use crate::api::{self, Inst, ENV, ZONE};
use crate::harness::{poll_until, run_cli, TestCluster};

const T: Duration = Duration::from_secs(15);
const ZONE_A: &str = "sh002";
/// Short leases so a cut can outlast one; self-preservation off so only the zone rule can keep an instance.
const ARGS: [&str; 8] = ["--zone", ZONE_A, "--lease", "4s", "--protect-threshold", "0", "--stale-after", "3s"];

/// `(zone, addr)` of every server `infra.discovery` lists on node `id`.
async fn infra_zones(cluster: &TestCluster, id: u64) -> BTreeSet<(String, String)> {
    let Ok(info) = cluster.api(id).fetch(ENV, "infra.discovery", None, STATUS_UP).await else {
        return BTreeSet::new();
    };
    info.instances
        .iter()
        .flat_map(|(zone, list)| list.iter().map(move |i| (zone, i)))
        .filter_map(|(zone, i)| {
            let addr = i.addrs.as_ref()?.first()?.trim_start_matches("http://").to_string();
            Some((zone.clone(), addr))
        })
        .collect()
}

async fn member_view(cluster: &TestCluster, on: u64, id: u64) -> Option<Value> {
    let status = cluster.api(on).status_json_of(&cluster.addr(on)).await.ok()?;
    status["membership"].as_array()?.iter().find(|m| m["id"].as_u64() == Some(id)).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_replicas_in_a_second_zone() {
    let mut cluster = TestCluster::start(3, &ARGS).await;
    cluster.wait_for_leader(T).await;
    let r1 = cluster.add_learner(ZONE).await;
    let r2 = cluster.add_learner(ZONE).await;
    let members = cluster.wait_membership(|m| m.len() == 5, T).await;
    assert_eq!(members.iter().filter(|m| m.voter).count(), 3, "{members:?}");
    for m in &members {
        let expected = if m.voter { ZONE_A } else { ZONE };
        assert_eq!(m.zone, expected, "member {m:?}");
    }

    // Every serving member appears in infra.discovery with its own zone, on every node.
    let expected: BTreeSet<(String, String)> = members.iter().map(|m| (m.zone.clone(), m.addr.clone())).collect();
    for id in cluster.ids() {
        let listed = poll_until(Instant::now() + T, async || match infra_zones(&cluster, id).await {
            found if found == expected => Ok(()),
            found => Err(found),
        })
        .await;
        listed.unwrap_or_else(|found| panic!("node {id} lists {found:?}, not {expected:?}"));
    }

    // A client pinned to zone B picks zone B's servers from that list and does everything there.
    let zone_b: Vec<String> =
        expected.iter().filter(|(zone, _)| zone == ZONE).map(|(_, addr)| format!("http://{addr}")).collect();
    let replicas: BTreeSet<String> = [cluster.base(r1), cluster.base(r2)].into();
    assert_eq!(zone_b.iter().cloned().collect::<BTreeSet<_>>(), replicas, "zone B's servers are its replicas");
    let appid = "zones.app";
    let inst = Inst::new(appid, "b-1");
    let (on_b0, on_b1) = (api::client(&zone_b[0]), api::client(&zone_b[1]));
    let body = api::register(&on_b0, &inst, T).await.expect("register through a replica");
    assert_eq!(api::code(&body), 0, "{body:?}");
    // Read-your-writes on the replica that acknowledged it, a consistent read on the other.
    assert!(api::hosts_on(&on_b0, appid).await.contains("b-1"));
    let body = api::fetch(&on_b1, appid, true, T).await.expect("consistent fetch");
    assert_eq!(api::code(&body), 0, "{body:?}");
    assert!(api::hostnames(&body).contains("b-1"), "consistent=1 on a replica sees the acknowledged write");

    // /admin/status shows each member's role, zone and lag.
    for id in [r1, r2] {
        let view = poll_until(Instant::now() + T, async || match member_view(&cluster, 1, id).await {
            Some(v) if v["lag_entries"].as_u64() == Some(0) => Ok(v),
            other => Err(other),
        })
        .await
        .unwrap_or_else(|v| panic!("replica {id} never reported caught up: {v:?}"));
        assert_eq!(view["role"], "learner");
        assert_eq!(view["zone"], ZONE);
        assert_eq!(view["lag_ms"].as_u64(), Some(0));
    }

    // Replicas never count toward a quorum: writes go on with both dead... and with them alive a
    // quorum is still 2 of 3 voters (checked by the cut below).
    cluster.kill9(r1);
    cluster.kill9(r2);
    let leader = cluster.wait_for_leader(T).await;
    let body = api::register(&cluster.api(leader), &Inst::new(appid, "a-1"), T).await.expect("write");
    assert_eq!(api::code(&body), 0, "writes need the voters only: {body:?}");
    cluster.restart(r1).await;
    cluster.restart(r2).await;
    cluster.wait_converged(T).await;

    // Promote a replica to voter and demote it back.
    let out = run_cli(&["cluster", "promote", "--node", &cluster.addr(r1), "--server", &cluster.addr(1)], T).await;
    assert!(out.is_ok(), "promote: {out:?}");
    cluster.wait_membership(|m| m.iter().any(|m| m.id == r1 && m.voter), T).await;
    let out = run_cli(&["cluster", "demote", "--node", &cluster.addr(r1), "--server", &cluster.addr(2)], T).await;
    assert!(out.is_ok(), "demote: {out:?}");
    cluster.wait_membership(|m| m.iter().filter(|m| m.voter).count() == 3 && m.iter().any(|m| m.id == r1), T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_cut_off_serves_stale_reads_refuses_writes_and_loses_no_instance() {
    let mut cluster = TestCluster::start(3, &ARGS).await;
    cluster.wait_for_leader(T).await;
    let r1 = cluster.add_learner(ZONE).await;
    let r2 = cluster.add_learner(ZONE).await;
    let appid = "zones.cut";
    let b = Inst::new(appid, "b-1");
    let b_addr = cluster.addr(r1);
    let on_b = cluster.api(r1);
    let fetch = [("appid", appid.to_string()), ("env", ENV.to_string()), ("status", "3".to_string())];
    let body = api::register(&on_b, &b, T).await.expect("register");
    assert_eq!(api::code(&body), 0, "{body:?}\n{}", cluster.logs());

    // 1. Zone A (every voter) unreachable from zone B.
    for id in [1, 2, 3] {
        cluster.sigstop(id);
    }
    // Reads go on from the last state and say how stale they are.
    let stale = poll_until(Instant::now() + T, async || {
        let reply = on_b.get_envelope_at(&b_addr, "/discovery/fetch", &fetch, T).await.map_err(|e| e.to_string())?;
        match reply.stale_ms {
            Some(ms) if ms >= 1_000 => Ok(reply),
            other => Err(format!("stale header {other:?}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("no stale header on a cut-off replica: {e}\n{}", cluster.logs()));
    assert_eq!(stale.code, 0, "reads answer from the last state: {stale:?}");
    assert!(api::hosts_in(stale.data.as_ref().unwrap_or(&Value::Null)).contains("b-1"));
    // Writes and renews answer -500 at once, naming the cause.
    for what in ["register", "renew"] {
        let started = Instant::now();
        let body = match what {
            "register" => api::register(&on_b, &Inst::new(appid, "b-2"), T).await,
            _ => api::renew(&on_b, &b, T).await,
        };
        let took = started.elapsed();
        let body = body.expect("an answer");
        assert_eq!(api::code(&body), -500, "{what}: {body:?}");
        assert!(body.message.contains("cut off"), "{what}: {body:?}");
        assert!(took < Duration::from_millis(500), "{what} took {took:?}: not at once");
    }
    // /healthz says stale after --stale-after (3 s).
    let health = poll_until(Instant::now() + T, async || match on_b.health_of(&b_addr).await {
        Err(ClientError::Refused { status: 503, message, .. }) if message.starts_with("stale") => Ok(message),
        other => Err(format!("{other:?}")),
    })
    .await;
    assert!(health.is_ok(), "healthz: {health:?}");
    for id in [1, 2, 3] {
        cluster.sigcont(id);
    }
    cluster.wait_converged(T).await;
    let fresh = on_b.get_envelope_at(&b_addr, "/discovery/fetch", &fetch, T).await.expect("fetch after the heal");
    let header = poll_until(Instant::now() + T, async || {
        let reply = on_b.get_envelope_at(&b_addr, "/discovery/fetch", &fetch, T).await.map_err(|e| e.to_string())?;
        match reply.stale_ms {
            None => Ok(()),
            Some(ms) => Err(format!("still stale: {ms} ms")),
        }
    })
    .await;
    assert!(header.is_ok(), "{header:?} (first answer after heal: {fresh:?})");

    // 2. Zone B unreachable from the leader, for longer than the lease (4 s): its instance renews through
    //    zone B's replicas and cannot; an instance of zone A that stops renewing is evicted meanwhile.
    //    (b-1 may have expired in step 1: the paused leader saw no cut. Register it again.)
    let leader = cluster.wait_for_leader(T).await;
    let on_a = cluster.api(leader);
    assert_eq!(api::code(&api::register(&on_b, &b, T).await.expect("register")), 0);
    assert_eq!(api::code(&api::renew(&on_b, &b, T).await.expect("renew")), 0);
    let a_quiet = Registration::new(InstanceKey::new(ENV, appid, ZONE_A, "a-quiet"), ["grpc://10.0.0.9:9000"]);
    on_a.register(&a_quiet).await.unwrap_or_else(|e| panic!("register a-quiet in zone A: {e}"));
    cluster.sigstop(r1);
    cluster.sigstop(r2);
    let cut_at = Instant::now();
    // The quiet zone A instance goes (lease 4 s + the post-election grace is long past).
    let gone = poll_until(Instant::now() + Duration::from_secs(30), async || {
        let hosts = api::hosts_on(&on_a, appid).await;
        if hosts.contains("a-quiet") {
            Err(hosts)
        } else {
            Ok(hosts)
        }
    })
    .await;
    let hosts =
        gone.unwrap_or_else(|h| panic!("zone A's silent instance was never evicted: {h:?}\n{}", cluster.logs()));
    assert!(hosts.contains("b-1"), "zone B's instance was evicted while its zone was cut off: {hosts:?}");
    // Hold the cut past two leases in all, then check zone B's instance is still there.
    while cut_at.elapsed() < Duration::from_secs(9) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(api::hosts_on(&on_a, appid).await.contains("b-1"), "evicted during the cut");
    cluster.sigcont(r1);
    cluster.sigcont(r2);
    // After the heal its renews reach the leader again and it lives on.
    let healed = Instant::now();
    while healed.elapsed() < Duration::from_secs(6) {
        // A connection pooled before the pause may be closed by the resumed node: a client retries.
        if api::renew(&on_b, &b, T).await.is_ok_and(|body| api::code(&body) == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..8 {
        let body = api::renew(&on_b, &b, T).await.expect("renew");
        assert_eq!(api::code(&body), 0, "renew after the heal: {body:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(api::hosts_on(&on_a, appid).await.contains("b-1"));
    let digest = cluster.wait_converged(T).await;
    assert!(digest.instances >= 1);
}
