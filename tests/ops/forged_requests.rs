//! Forged requests on the peer routes (issue 11, item 5): a lone node without a cluster token serves no Raft or
//! internal route, an `--api-token` node without a cluster token never does, a term no correct peer sends is
//! refused and leaves a node that restarts healthy, and `cluster add` checks who it adds.

use std::time::{Duration, Instant};

use discovery::config::Config;
use discovery::node::internal_wire::{WriteRequest, WRITE_PATH};
use discovery::node::RunningNode;
use discovery::raft_types::TypeConfig;
use discovery::registry::command::Command;
use discovery::registry::model::InstanceKey;
use discovery_raft::codec::encode;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Vote;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::node::{wait_until, TestNode, WAIT};

const TOKEN: &str = "s3cret";

/// POST `body` to `addr` `path` with the cluster token if given: status and text.
async fn post(addr: &str, path: &str, body: Vec<u8>, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().post(format!("http://{addr}{path}")).body(body);
    if let Some(token) = token {
        request = request.header(discovery_raft::TOKEN_HEADER, token);
    }
    let response = request.send().await.expect("send");
    (response.status().as_u16(), response.text().await.expect("text"))
}

/// The probe of the issue: a vote from node `from` at term 2^64-1.
fn huge_vote(from: u64) -> Vec<u8> {
    encode(&VoteRequest::new(Vote::new(u64::MAX, from), None)).expect("encode")
}

/// A heartbeat from "leader" `from` at term 2^64-1 (adopted unconditionally by openraft if it got through).
fn huge_append(from: u64) -> Vec<u8> {
    let rpc = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(u64::MAX, from),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![],
    };
    encode(&rpc).expect("encode")
}

fn key(hostname: &str) -> InstanceKey {
    InstanceKey { env: "dev".into(), appid: "forged.app".into(), zone: "sh001".into(), hostname: hostname.into() }
}

/// A forwarded cancel, as a member would send it: it needs no API token on `/internal/write`.
fn forged_cancel(hostname: &str) -> Vec<u8> {
    encode(&WriteRequest { command: Command::Cancel(key(hostname)), from: 1 }).expect("encode")
}

fn instances(node: &TestNode) -> usize {
    node.state().registry.read().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_node_serves_no_raft_or_internal_route() {
    let node = TestNode::start(|_| {}).await;
    node.register("dev", "forged.app", "h1").await;
    let term = node.state().raft.metrics().borrow().current_term;

    for (path, body) in
        [("/raft/vote", huge_vote(99)), ("/raft/append", huge_append(1)), (WRITE_PATH, forged_cancel("h1"))]
    {
        let (status, text) = post(&node.addr, path, body, None).await;
        assert_eq!(status, 403, "{path}: {text}");
        assert!(text.contains("one-node cluster") && text.contains("--cluster-token"), "{path}: {text}");
    }
    assert_eq!(instances(&node), 1, "the forged cancel did not reach the registry");
    assert_eq!(node.state().raft.metrics().borrow().current_term, term, "nor did the vote reach Raft");

    // The API, the probes and the operator routes work as before.
    node.register("dev", "forged.app", "h2").await;
    assert_eq!(instances(&node), 2);
    assert_eq!(node.get_json("/discovery/fetch?appid=forged.app&env=dev&status=1").await["code"], 0);
    assert_eq!(node.http.get(node.url("/healthz")).send().await.expect("send").status(), 200);
    assert_eq!(node.http.get(node.url("/admin/status")).send().await.expect("send").status(), 200);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_without_a_cluster_token_never_opens_the_internal_routes() {
    let node = TestNode::start(|c| c.api_token = Some("t0k".into())).await;
    let form = [
        ("zone", "sh001"),
        ("env", "dev"),
        ("appid", "forged.app"),
        ("hostname", "h1"),
        ("status", "1"),
        ("addrs", "grpc://a:1"),
    ];
    assert_eq!(node.post_with("/discovery/register", &form, Some("t0k")).await["code"], 0);

    let (status, text) = post(&node.addr, WRITE_PATH, forged_cancel("h1"), None).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("--api-token") && text.contains("--cluster-token"), "{text}");
    assert_eq!(instances(&node), 1, "the cancel without the API token did not go through");

    // Nor can it get a peer, which would open them.
    let add = json!({ "id": 2, "addr": "127.0.0.1:1", "zone": "sh001" });
    let response = node.http.post(node.url("/admin/cluster/add")).json(&add).send().await.expect("send");
    assert_eq!(response.status(), 403);
    let answer: Value = response.json().await.expect("json");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("--cluster-token"), "{answer}");
    assert_eq!(node.state().raft.metrics().borrow().membership_config.membership().nodes().count(), 1);
    node.stop().await;
}

/// A node on a data dir it keeps across restarts, at a fixed address.
struct Restartable {
    config: Config,
    node: Option<RunningNode>,
    _dir: tempfile::TempDir,
}

impl Restartable {
    async fn start(tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            addr: listener.local_addr().expect("addr").to_string(),
            ..Config::default()
        };
        tune(&mut config);
        config.validate().expect("valid test config");
        let node = discovery::app::start(config.clone(), listener).await.expect("node starts");
        Self { config, node: Some(node), _dir: dir }
    }

    fn addr(&self) -> &str {
        &self.config.addr
    }

    fn raft(&self) -> &discovery::raft_types::Raft {
        &self.node.as_ref().expect("running").state.raft
    }

    async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await.expect("clean stop");
        }
    }

    async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(&self.config.addr).await.expect("bind the same address again");
        self.node = Some(discovery::app::start(self.config.clone(), listener).await.expect("node restarts"));
    }

    async fn wait_leader(&self) {
        let raft = self.raft().clone();
        wait_until(WAIT, "node leads", || {
            let leads = raft.metrics().borrow().current_leader == Some(raft.metrics().borrow().id);
            async move { leads }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_term_is_refused_and_the_node_restarts_healthy() {
    let mut node = Restartable::start(|c| c.cluster_token = Some(TOKEN.into())).await;
    node.wait_leader().await;

    // With a token, the internal routes need it (and the Raft ones too).
    let (status, text) = post(node.addr(), WRITE_PATH, forged_cancel("h1"), None).await;
    assert_eq!(status, 401, "{text}");

    // From the node's own id (a member), with the token: only the bounds stand between these and openraft. A
    // granted vote is persisted and the next election overflows `term + 1` (on every start: a bricked data dir);
    // the append trips an assertion in openraft's core, which dies.
    for (path, body) in [("/raft/vote", huge_vote(1)), ("/raft/append", huge_append(1))] {
        let (status, text) = post(node.addr(), path, body, Some(TOKEN)).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("term 18446744073709551615 is above the largest accepted term"), "{path}: {text}");
    }
    let term = node.raft().metrics().borrow().current_term;
    assert!(term < 100, "term {term}");
    let committed = node.raft().client_write(discovery::registry::command::Batch::default()).await;
    assert!(committed.is_ok(), "the Raft core still commits: {committed:?}");

    // Elections still work: a restart re-elects the node at once, from its persisted vote.
    node.restart().await;
    node.wait_leader().await;
    let after = node.raft().metrics().borrow().current_term;
    assert!(after >= term && after < 100, "term {term} before the restart, {after} after");
    let url = format!("http://{}/healthz", node.addr());
    wait_until(WAIT, "healthy after the restart", || {
        let url = url.clone();
        async move { reqwest::get(url).await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    node.stop().await;
}

/// `POST /admin/cluster/add` on `node`: the status and the operator's message.
async fn add(node: &TestNode, id: u64, addr: &str) -> (u16, String) {
    let body = json!({ "id": id, "addr": addr, "zone": "sh001" });
    let response = node.http.post(node.url("/admin/cluster/add")).json(&body).send().await.expect("send");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("json answer");
    (status, answer["message"].as_str().unwrap_or_default().to_string())
}

/// `discovery cluster add --node <node> --server <server>` with the real binary.
async fn cli_add(node: &str, server: &str) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_discovery"));
    command.args(["cluster", "add", "--node", node, "--server", server]).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("cli finished").expect("cli ran")
}

fn members(node: &TestNode) -> Vec<(u64, bool)> {
    let metrics = node.state().raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    membership.nodes().map(|(id, _)| (*id, voters.contains(id))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_add_checks_who_it_adds() {
    let leader = TestNode::start(|_| {}).await;
    let mut joiner = Restartable::start(|c| {
        c.id = 3;
        c.join = true;
    })
    .await;
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").to_string();

    let (status, message) = add(&leader, 2, &leader.addr).await;
    assert_eq!(status, 409, "{message}");
    assert!(message.contains(&leader.addr) && message.contains("node 1") && message.contains("node 2"), "{message}");
    let (status, message) = add(&leader, 1, joiner.addr()).await;
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("node 1 is already a member"), "{message}");
    let (status, message) = add(&leader, 2, joiner.addr()).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains(&format!("the node at {} is node 3, not node 2", joiner.addr())), "{message}");
    let asked = Instant::now();
    let (status, message) = add(&leader, 4, &dead).await;
    assert_eq!(status, 502, "{message}");
    assert!(message.contains(&dead), "{message}");
    assert!(asked.elapsed() < Duration::from_secs(5), "refused at once, not after a catch-up timeout");
    assert_eq!(members(&leader), [(1, true)], "no refused add touched the membership");

    // The real thing, through the CLI (it reads the id and zone from the node): the lone node gets a peer.
    let output = cli_add(joiner.addr(), &leader.addr).await;
    assert!(output.status.success(), "cluster add: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(members(&leader), [(1, true), (3, true)]);
    // With a peer, its Raft routes are served (here: a body that does not decode reaches the decoder).
    let (status, text) = post(&leader.addr, "/raft/vote", b"not bincode".to_vec(), None).await;
    assert_eq!(status, 400, "{text}");
    let (status, message) = add(&leader, 3, joiner.addr()).await;
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("node 3 is already a member (voter"), "{message}");

    // Shrunk back to itself, the node closes its peer routes again.
    let remove = json!({ "id": 3 });
    let response = leader.http.post(leader.url("/admin/cluster/remove")).json(&remove).send().await.expect("send");
    assert_eq!(response.status(), 200);
    joiner.stop().await;
    let term = leader.state().raft.metrics().borrow().current_term;
    let vote = encode(&VoteRequest::new(Vote::new(term + 1, 3), None)).expect("encode");
    let (status, text) = post(&leader.addr, "/raft/vote", vote, None).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("one-node cluster"), "{text}");
    leader.stop().await;
}

#[test]
fn an_api_token_without_a_cluster_token_on_a_cluster_refuses_to_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data").to_string_lossy().to_string();
    let (a, b) = (crate::support::free_port(), crate::support::free_port());
    let me = format!("127.0.0.1:{a}");
    let peers = format!("1={me},2=127.0.0.1:{b}");
    let clustered = ["--id", "1", "--addr", &me, "--peers", &peers, "--api-token", "t0k", "--data-dir", &data];
    let joining = ["--id", "4", "--addr", &me, "--join", "--api-token", "t0k", "--data-dir", &data];
    for args in [&clustered[..], &joining[..]] {
        let (status, stderr) = crate::support::run_to_exit(args, Duration::from_secs(20));
        assert!(!status.success(), "{args:?}");
        assert!(
            stderr.contains("--api-token without --cluster-token") && stderr.contains("without the API token"),
            "{args:?}: {stderr}"
        );
        assert!(!tmp.path().join("data").exists(), "refused before touching the data dir");
    }
}
