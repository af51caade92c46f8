//! Clients follow the live cluster (issue 16): `infra.discovery` and `/discovery/nodes` list a member only
//! while it can serve. A member killed is dropped by every survivor within 3 s, listed again once it is
//! back and caught up; a node cut off from the majority does not declare the majority dead; and a
//! client that does what the Go SDK does (first poll, pick a node of its zone, register) succeeds on its
//! first attempt with any one node dead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{self, Inst, ENV};
use crate::harness::{poll_until, TestCluster};

const T: Duration = Duration::from_secs(10);
/// The bound for every survivor to stop (or start again) listing a member.
const FOLLOW_BOUND: Duration = Duration::from_secs(3);
const APPID: &str = "live.app";

/// The addresses node `id` lists in `infra.discovery`, and its cursor; `None` if it does not answer.
async fn listed(cluster: &TestCluster, id: u64) -> Option<(BTreeSet<String>, i64)> {
    let url = cluster.url(id, &format!("/discovery/fetch?appid=infra.discovery&env={ENV}&status=1"));
    let body: Value = cluster.client.get(url).send().await.ok()?.json().await.ok()?;
    if api::code(&body) == -404 {
        return Some((BTreeSet::new(), 0));
    }
    (api::code(&body) == 0).then(|| (api::hostnames(&body), api::latest_timestamp(&body).unwrap_or_default()))
}

/// The addresses node `id` reports in `/discovery/nodes`.
async fn nodes(cluster: &TestCluster, id: u64) -> Option<BTreeSet<String>> {
    let body: Value = cluster.client.get(cluster.url(id, "/discovery/nodes")).send().await.ok()?.json().await.ok()?;
    let list = body.get("data")?.as_array()?;
    Some(list.iter().filter_map(|n| n.get("addr").and_then(Value::as_str).map(str::to_string)).collect())
}

/// Wait until every node of `on` lists exactly `expected` (infra.discovery and /discovery/nodes); how long
/// it took from `since`.
async fn wait_listing(
    cluster: &TestCluster,
    on: &[u64],
    expected: &BTreeSet<String>,
    since: Instant,
    bound: Duration,
) -> Duration {
    for &id in on {
        let seen = poll_until(since + bound + Duration::from_secs(5), async || {
            let infra = listed(cluster, id).await.map(|(addrs, _)| addrs);
            let nodes = nodes(cluster, id).await;
            if infra.as_ref() == Some(expected) && nodes.as_ref() == Some(expected) {
                Ok(())
            } else {
                Err(format!("node {id} lists infra {infra:?}, nodes {nodes:?}; expected {expected:?}"))
            }
        })
        .await;
        seen.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    let took = since.elapsed();
    assert!(took <= bound, "listing took {took:?} (bound {bound:?})");
    took
}

fn addrs(cluster: &TestCluster, ids: &[u64]) -> BTreeSet<String> {
    ids.iter().map(|id| cluster.addr(*id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_dropped_within_3s_and_listed_again_once_caught_up() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(T).await;
    let all = cluster.ids();
    wait_listing(&cluster, &all, &addrs(&cluster, &all), Instant::now(), T).await;
    let (_, cursor_before) = listed(&cluster, leader).await.expect("answers");

    // A follower dies.
    let victim = cluster.others(leader)[0];
    let survivors = cluster.others(victim);
    cluster.kill9(victim);
    let killed = Instant::now();
    let took = wait_listing(&cluster, &survivors, &addrs(&cluster, &survivors), killed, FOLLOW_BOUND).await;
    eprintln!("follower {victim} dropped by every survivor {took:?} after kill -9");
    let (_, cursor_after) = listed(&cluster, leader).await.expect("answers");
    assert!(cursor_after > cursor_before, "the cursor moves with the list: {cursor_before} -> {cursor_after}");
    assert!(cursor_after > 1_600_000_000_000_000_000, "a Unix ns time: {cursor_after}");

    // Writes go on meanwhile; the restarted member catches up, then is listed again everywhere.
    for k in 0..20 {
        let answer = api::register(&cluster.client, &cluster.base(leader), &Inst::new(APPID, format!("h{k}")), T).await;
        assert_eq!(answer.map(|a| api::code(&a)), Ok(0));
    }
    cluster.restart(victim).await;
    let restarted = Instant::now();
    let took = wait_listing(&cluster, &all, &addrs(&cluster, &all), restarted, T).await;
    eprintln!("follower {victim} listed again {took:?} after its restart");
    assert_eq!(api::hosts_on(&cluster.client, &cluster.base(victim), APPID).await.len(), 20, "caught up when listed");

    // The leader dies: the survivors elect a new one and drop the old leader within the bound.
    let survivors = cluster.others(leader);
    cluster.kill9(leader);
    let killed = Instant::now();
    let took = wait_listing(&cluster, &survivors, &addrs(&cluster, &survivors), killed, FOLLOW_BOUND).await;
    eprintln!("leader {leader} dropped by every survivor {took:?} after kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_majority_does_not_declare_it_dead() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(T).await;
    let all = cluster.ids();
    wait_listing(&cluster, &all, &addrs(&cluster, &all), Instant::now(), T).await;
    let alone = cluster.others(leader)[0];
    let others = cluster.others(alone);
    for id in &others {
        cluster.sigstop(*id);
    }
    // The lone node cannot tell dead peers from a broken link: it keeps listing them and takes itself out,
    // so its clients move to the members the majority may still serve from.
    let cut = Instant::now();
    wait_listing(&cluster, &[alone], &addrs(&cluster, &others), cut, FOLLOW_BOUND).await;
    // ...and keeps doing so.
    let settled = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settled {
        let (seen, _) = listed(&cluster, alone).await.expect("the lone node answers reads");
        assert_eq!(seen, addrs(&cluster, &others), "a cut-off node never drops the majority");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &others {
        cluster.sigcont(*id);
    }
    wait_listing(&cluster, &all, &addrs(&cluster, &all), Instant::now(), T).await;
}

/// What the Go SDK does at start-up against `seed`: poll `infra.discovery`, take the nodes of its zone, pick
/// one at random, register there (one attempt, as goim's comet does). The code of that register.
async fn sdk_start(cluster: &TestCluster, seed: u64, host: &str, pick: usize) -> Result<i64, String> {
    let url = cluster
        .url(seed, &format!("/discovery/polls?env={ENV}&hostname={host}&appid=infra.discovery&latest_timestamp=0"));
    let body: Value =
        cluster.client.get(url).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    let zones = body.pointer("/data/infra.discovery/instances").and_then(Value::as_object).ok_or(format!("{body}"))?;
    let mut nodes: Vec<String> = zones
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|i| i.pointer("/addrs/0").and_then(Value::as_str).map(str::to_string))
        .collect();
    nodes.sort();
    let node = nodes.get(pick % nodes.len().max(1)).ok_or("no node listed")?;
    let answer = api::register(&cluster.client, node, &Inst::new(APPID, host), T).await?;
    Ok(api::code(&answer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_any_one_node_dead_an_sdk_registers_on_its_first_attempt() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader(T).await;
    let all = cluster.ids();
    for dead in all.clone() {
        cluster.kill9(dead);
        let survivors = cluster.others(dead);
        wait_listing(&cluster, &survivors, &addrs(&cluster, &survivors), Instant::now(), T).await;
        cluster.wait_for_leader(T).await;
        // Every survivor as the seed, every position in its list as the SDK's random pick.
        for &seed in &survivors {
            for pick in 0..3 {
                let host = format!("svc-{dead}-{seed}-{pick}");
                let code = sdk_start(&cluster, seed, &host, pick).await;
                assert_eq!(code, Ok(0), "node {dead} dead, seed {seed}, pick {pick}\n{}", cluster.logs());
            }
        }
        cluster.restart(dead).await;
        wait_listing(&cluster, &all, &addrs(&cluster, &all), Instant::now(), T).await;
    }
}

/// A client that behaves like the Go `naming` SDK (spec §5.1): one poll loop over `infra.discovery` and its
/// app, the node list taken from `infra.discovery`, a switch to the next node (cursors reset) on any error.
struct Sdk {
    nodes: Vec<String>,
    at: usize,
    cursors: [i64; 2],
    seen: BTreeSet<String>,
    switches: usize,
    last: String,
}

impl Sdk {
    fn node(&self) -> &str {
        &self.nodes[self.at % self.nodes.len()]
    }

    fn switch(&mut self) {
        self.at += 1;
        self.cursors = [0, 0];
        self.switches += 1;
    }

    /// One `polls` round trip (the server holds it up to its poll timeout).
    async fn poll(&mut self, client: &reqwest::Client) {
        let url = format!(
            "{}/discovery/polls?env={ENV}&hostname=sdk&appid=infra.discovery&appid={APPID}&latest_timestamp={}&latest_timestamp={}",
            self.node(),
            self.cursors[0],
            self.cursors[1]
        );
        let answer = client.get(url).timeout(Duration::from_secs(5)).send().await;
        let body = async { answer?.json::<Value>().await }.await;
        self.last = format!("{body:?}").chars().take(300).collect();
        let Ok(body) = body else {
            self.switch();
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        };
        match api::code(&body) {
            -304 => {}
            0 => {
                if let Some(infra) = body.pointer("/data/infra.discovery") {
                    let addrs: Vec<String> = api::hostnames(&serde_json::json!({"data": infra}))
                        .into_iter()
                        .map(|addr| format!("http://{addr}"))
                        .collect();
                    if !addrs.is_empty() {
                        let current = self.node().to_string();
                        self.nodes = addrs;
                        self.at = self.nodes.iter().position(|n| *n == current).unwrap_or(0);
                    }
                    self.cursors[0] = infra.get("latest_timestamp").and_then(Value::as_i64).unwrap_or(self.cursors[0]);
                }
                if let Some(app) = body.pointer(&format!("/data/{APPID}")) {
                    self.seen.extend(api::hostnames(&serde_json::json!({"data": app})));
                    self.cursors[1] = app.get("latest_timestamp").and_then(Value::as_i64).unwrap_or(self.cursors[1]);
                }
            }
            _ => self.switch(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_watching_through_a_follower_loss_and_a_leader_loss_sees_every_change() {
    let mut cluster = TestCluster::start(3, &["--poll-timeout", "2s"]).await;
    let leader = cluster.wait_for_leader(T).await;
    let all = cluster.ids();
    // As in production, the service starts against a settled cluster.
    wait_listing(&cluster, &all, &addrs(&cluster, &all), Instant::now(), T).await;
    let client = cluster.client.clone();
    let mut sdk = Sdk {
        nodes: vec![cluster.base(leader)],
        at: 0,
        cursors: [0, 0],
        seen: BTreeSet::new(),
        switches: 0,
        last: String::new(),
    };
    // Register (once) and renew through the SDK's node, as the SDK does; watch with polls.
    let me = Inst::new(APPID, "sdk-self");
    assert_eq!(api::register(&client, sdk.node(), &me, T).await.map(|a| api::code(&a)), Ok(0));
    let mut written = BTreeSet::from(["sdk-self".to_string()]);
    let follower = cluster.others(leader)[0];
    let deadline = Instant::now() + Duration::from_secs(60);
    for step in 0..30 {
        match step {
            10 => cluster.kill9(follower),
            // Back before the leader goes, so that a majority remains; listed again before the leader goes.
            15 => {
                cluster.restart(follower).await;
                wait_listing(&cluster, &all, &addrs(&cluster, &all), Instant::now(), T).await;
            }
            20 => cluster.kill9(leader),
            _ => {}
        }
        // Another service registers through any live node (it retries: it is not the client under test).
        let host = format!("w{step}");
        let live: Vec<u64> = cluster.live();
        let registered = poll_until(Instant::now() + T, async || {
            for id in &live {
                if let Ok(answer) =
                    api::register(&client, &cluster.base(*id), &Inst::new(APPID, host.as_str()), T).await
                {
                    if api::code(&answer) == 0 {
                        return Ok(());
                    }
                }
            }
            Err(format!("{host} not registered"))
        })
        .await;
        registered.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        written.insert(host);
        // The SDK renews on its node; -404 makes it register again (spec §5.1 step 4).
        if let Ok(answer) = api::renew(&client, sdk.node(), &me, T).await {
            if api::code(&answer) == -404 {
                let _ = api::register(&client, sdk.node(), &me, T).await;
            }
        }
        sdk.poll(&client).await;
    }
    while !written.is_subset(&sdk.seen) {
        assert!(
            Instant::now() < deadline,
            "the SDK never saw {:?} (nodes {:?} at {} cursors {:?}, last answer {})\n{}",
            written.difference(&sdk.seen).collect::<Vec<_>>(),
            sdk.nodes,
            sdk.at,
            sdk.cursors,
            sdk.last,
            cluster.logs()
        );
        sdk.poll(&client).await;
    }
    eprintln!("the SDK saw all {} changes, switching nodes {} times", written.len(), sdk.switches);
}
