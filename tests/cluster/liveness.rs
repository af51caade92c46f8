//! Clients follow the live cluster (issue 16): `infra.discovery` and `/discovery/nodes` list a member only
//! while it can serve. A member killed is dropped by every survivor within 3 s, listed again once it is
//! back and caught up; a node cut off from the majority does not declare the majority dead; and a
//! client that does what the Go SDK does (first poll, pick a node of its zone, register) succeeds on its
//! first attempt with any one node dead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use discovery::client::wire::STATUS_UP;
use discovery::client::{Client, Poll};

use crate::api::{self, Inst, ENV};
use crate::harness::{poll_until, TestCluster};

const T: Duration = Duration::from_secs(10);
/// The bound for every survivor to stop (or start again) listing a member.
const FOLLOW_BOUND: Duration = Duration::from_secs(3);
const APPID: &str = "live.app";

/// The addresses node `id` lists in `infra.discovery` (up instances), and its cursor; `None` if it does not
/// answer.
async fn listed(cluster: &TestCluster, id: u64) -> Option<(BTreeSet<String>, i64)> {
    match cluster.api(id).fetch(ENV, "infra.discovery", None, STATUS_UP).await {
        Ok(info) => Some((info.all().map(|i| i.hostname.clone()).collect(), info.latest_timestamp)),
        Err(e) if e.is_not_found() => Some((BTreeSet::new(), 0)),
        Err(_) => None,
    }
}

/// The addresses node `id` reports in `/discovery/nodes`.
async fn nodes(cluster: &TestCluster, id: u64) -> Option<BTreeSet<String>> {
    let list = cluster.api(id).nodes().await.ok()?;
    Some(list.into_iter().map(|n| n.addr).collect())
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
        let answer = api::register(&cluster.api(leader), &Inst::new(APPID, format!("h{k}")), T).await;
        assert_eq!(answer.map(|a| api::code(&a)), Ok(0));
    }
    cluster.restart(victim).await;
    let restarted = Instant::now();
    let took = wait_listing(&cluster, &all, &addrs(&cluster, &all), restarted, T).await;
    eprintln!("follower {victim} listed again {took:?} after its restart");
    assert_eq!(api::hosts_on(&cluster.api(victim), APPID).await.len(), 20, "caught up when listed");

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
    let first = cluster.api(seed).poll(ENV, "infra.discovery", host, 0).await.map_err(|e| e.to_string())?;
    let Poll::Changed(infra) = first else { return Err(format!("first poll of infra.discovery: {first:?}")) };
    let mut nodes: Vec<String> =
        infra.all().filter_map(|i| i.addrs.as_ref().and_then(|a| a.first()).cloned()).collect();
    nodes.sort();
    let node = nodes.get(pick % nodes.len().max(1)).ok_or("no node listed")?;
    let answer = api::register(&api::client(node), &Inst::new(APPID, host), T).await.map_err(|e| e.to_string())?;
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

    /// One `polls` round trip (the server holds it up to its poll timeout), through the library's client.
    async fn poll(&mut self) {
        let addr = self.node().trim_start_matches("http://").to_string();
        let client = Client::builder([addr])
            .connect_timeout(Duration::from_secs(1))
            .poll_timeout(Duration::from_secs(5))
            .build();
        let apps = [("infra.discovery".to_string(), self.cursors[0]), (APPID.to_string(), self.cursors[1])];
        let answer = client.polls(ENV, "sdk", &apps).await;
        self.last = format!("{answer:?}").chars().take(300).collect();
        match answer {
            // No envelope (transport failure, timeout, not JSON): next node, after a pause.
            Err(e) if e.code().is_none() => {
                self.switch();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => self.switch(),
            Ok(polls) if polls.not_modified => {}
            Ok(polls) => {
                if let Some(infra) = polls.changed.get("infra.discovery") {
                    let listed: BTreeSet<&str> = infra.all().map(|i| i.hostname.as_str()).collect();
                    let addrs: Vec<String> = listed.into_iter().map(|addr| format!("http://{addr}")).collect();
                    if !addrs.is_empty() {
                        let current = self.node().to_string();
                        self.nodes = addrs;
                        self.at = self.nodes.iter().position(|n| *n == current).unwrap_or(0);
                    }
                    self.cursors[0] = infra.latest_timestamp;
                }
                if let Some(app) = polls.changed.get(APPID) {
                    self.seen.extend(app.all().map(|i| i.hostname.clone()));
                    self.cursors[1] = app.latest_timestamp;
                }
            }
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
    assert_eq!(api::register(&api::client(sdk.node()), &me, T).await.map(|a| api::code(&a)), Ok(0));
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
                if let Ok(answer) = api::register(&cluster.api(*id), &Inst::new(APPID, host.as_str()), T).await {
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
        if let Ok(answer) = api::renew(&api::client(sdk.node()), &me, T).await {
            if api::code(&answer) == -404 {
                let _ = api::register(&api::client(sdk.node()), &me, T).await;
            }
        }
        sdk.poll().await;
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
        sdk.poll().await;
    }
    eprintln!("the SDK saw all {} changes, switching nodes {} times", written.len(), sdk.switches);
}
