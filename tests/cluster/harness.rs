//! `TestCluster`: n real `discovery` processes on ephemeral loopback ports, each with its own temp data dir
//! and a log file, driven through their HTTP API. Every wait polls observable state (`/admin/status`,
//! `/admin/digest`) against a deadline; nothing sleeps for a fixed time to let state settle.
//!
//! Nodes log with `RUST_LOG=warn` (override with `CLUSTER_TEST_LOG`, e.g. `warn,discovery=info`) to
//! `<tempdir>/node-<id>.log`; a failing test prints the tail of every log.
//!
//! Nodes are addressed by their Raft id (1..=n for the founding members, then n+1, … for added nodes).
//! A node is *live* while its process runs, is not paused and is a member of the cluster; the waits only
//! look at live nodes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Semaphore, SemaphorePermit};

pub use crate::process::{free_port, run_cli};
use crate::process::{http_client, signal, NodeProc};

/// Poll period of every wait.
pub const POLL: Duration = Duration::from_millis(25);

/// Look at observable state every [`POLL`] until `look` succeeds or `deadline` passes; then the last miss.
pub async fn poll_until<T, E>(deadline: Instant, mut look: impl AsyncFnMut() -> Result<T, E>) -> Result<T, E> {
    loop {
        match look().await {
            Ok(found) => return Ok(found),
            Err(miss) if Instant::now() > deadline => return Err(miss),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Clusters that may run at once in this test binary (each is 3–5 processes; the machine may have 2 cores).
static SLOTS: Semaphore = Semaphore::const_new(2);

/// What `/admin/status` and `/admin/digest` answer: the library client's types.
pub use discovery::client::wire::{Digest, Member, NodeStatus as Status};

/// A cluster of real processes. Dropping it kills every process.
pub struct TestCluster {
    nodes: BTreeMap<u64, NodeProc>,
    extra: Vec<String>,
    dir: Option<tempfile::TempDir>,
    /// Raw HTTP client with short timeouts (connect 1 s, request 5 s), no proxy: the console's `/ui` routes
    /// and [`TestCluster::admin_post`], which keep the exact HTTP status and body a test asserts on. The
    /// API itself goes through the library's client ([`TestCluster::api`]).
    pub client: reqwest::Client,
    /// The library's API client of each node, by address (see [`TestCluster::api`]).
    api_clients: std::sync::Mutex<BTreeMap<String, discovery::client::Client>>,
    _slot: Option<SemaphorePermit<'static>>,
}

impl TestCluster {
    /// Start `n` founding members (same `--peers` for all, the lowest id initializes) with `extra_args`, and
    /// wait until they agree on a leader. A port clash restarts the whole cluster on new ports.
    pub async fn start(n: usize, extra_args: &[&str]) -> TestCluster {
        let mut slot = Some(SLOTS.acquire().await.expect("cluster slots"));
        let extra: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let mut last_error = String::new();
        for attempt in 0..5 {
            let mut cluster = TestCluster {
                nodes: BTreeMap::new(),
                extra: extra.clone(),
                dir: Some(tempfile::tempdir().expect("tempdir")),
                client: http_client(),
                api_clients: Default::default(),
                _slot: slot.take(),
            };
            cluster.spawn_founders(n);
            match cluster.wait_started(Duration::from_secs(30)).await {
                Ok(()) => return cluster,
                Err(e) => {
                    // Most likely a port taken between probing and binding: start over on new ports.
                    last_error = format!("attempt {attempt}: {e}\n{}", cluster.logs());
                    slot = cluster._slot.take();
                    cluster.nodes.values_mut().for_each(NodeProc::kill9);
                    cluster.nodes.clear();
                }
            }
        }
        panic!("cluster did not start: {last_error}");
    }

    fn spawn_founders(&mut self, n: usize) {
        let mut ports = Vec::new();
        while ports.len() < n {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let peers: Vec<String> = ports.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect();
        let peers = peers.join(",");
        for (i, port) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let addr = format!("127.0.0.1:{port}");
            let mut node = self.new_proc(id, addr);
            node.args.extend(["--peers".to_string(), peers.clone()]);
            node.spawn();
            self.nodes.insert(id, node);
        }
    }

    fn new_proc(&self, id: u64, addr: String) -> NodeProc {
        let dir = self.dir.as_ref().expect("cluster dir").path();
        let data_dir = dir.join(format!("node-{id}"));
        let log = dir.join(format!("node-{id}.log"));
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--addr".to_string(),
            addr.clone(),
            "--data-dir".to_string(),
            data_dir.to_string_lossy().to_string(),
        ];
        args.extend(self.extra.iter().cloned());
        NodeProc { addr, data_dir, log, args, child: None, paused: false, member: true }
    }

    /// Every process answers `/admin/status` and they agree on a leader.
    async fn wait_started(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.wait_responding(id, deadline).await?;
        }
        self.try_wait_for_leader(deadline.saturating_duration_since(Instant::now())).await.map(|_| ())
    }

    /// Poll until node `id` answers `/admin/status`, failing early if its process exited.
    async fn wait_responding(&mut self, id: u64, deadline: Instant) -> Result<(), String> {
        loop {
            let node = self.nodes.get_mut(&id).expect("known node");
            if node.exited() {
                return Err(format!("node {id} exited"));
            }
            if self.status(id).await.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("node {id} does not answer /admin/status"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    // ---- addressing -------------------------------------------------------------------------------

    /// `http://<addr of node id><path>`.
    pub fn url(&self, id: u64, path: &str) -> String {
        format!("http://{}{path}", self.node(id).addr)
    }

    /// `http://<addr of node id>`.
    pub fn base(&self, id: u64) -> String {
        self.url(id, "")
    }

    /// The library's API client of node `id` alone (no failover: calls go to that node), for
    /// [`crate::api`]; one per address, cloned (clones share the connection pool).
    pub fn api(&self, id: u64) -> discovery::client::Client {
        let addr = self.addr(id);
        let mut clients = self.api_clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.entry(addr).or_insert_with_key(|addr| crate::api::client(addr)).clone()
    }

    /// The advertised address of node `id`.
    pub fn addr(&self, id: u64) -> String {
        self.node(id).addr.clone()
    }

    /// Every node id ever started (members or not).
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Nodes running, not paused and members.
    pub fn live(&self) -> Vec<u64> {
        self.nodes.iter().filter(|(_, n)| n.child.is_some() && !n.paused && n.member).map(|(id, _)| *id).collect()
    }

    /// Live nodes except `id`.
    pub fn others(&self, id: u64) -> Vec<u64> {
        self.live().into_iter().filter(|&i| i != id).collect()
    }

    /// Node `id`'s data dir.
    pub fn data_dir(&self, id: u64) -> std::path::PathBuf {
        self.node(id).data_dir.clone()
    }

    fn node(&self, id: u64) -> &NodeProc {
        self.nodes.get(&id).unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id}"))
    }

    // ---- observation ------------------------------------------------------------------------------

    /// `/admin/status` of node `id`, or `None` if it does not answer within 1 s.
    pub async fn status(&self, id: u64) -> Option<Status> {
        let addr = self.addr(id);
        self.api(id).with_call_timeout(Duration::from_secs(1)).status_of(&addr).await.ok()
    }

    /// `/admin/digest` of node `id`, or `None` if it does not answer within 1 s.
    pub async fn digest(&self, id: u64) -> Option<Digest> {
        let addr = self.addr(id);
        self.api(id).with_call_timeout(Duration::from_secs(1)).digest_of(&addr).await.ok()
    }

    /// The node that currently says it is leader (highest term wins), if any live node does.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.live() {
            if let Some(s) = self.status(id).await {
                if s.role == "Leader" && best.is_none_or(|(term, _)| s.term > term) {
                    best = Some((s.term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Wait until every live node answers and all name the same leader, which itself is live and says
    /// it is leader. Returns the leader's id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> u64 {
        match self.try_wait_for_leader(timeout).await {
            Ok(id) => id,
            Err(e) => panic!("{e}\n{}", self.logs()),
        }
    }

    async fn try_wait_for_leader(&self, timeout: Duration) -> Result<u64, String> {
        poll_until(Instant::now() + timeout, async || self.agreed_leader().await)
            .await
            .map_err(|last| format!("no agreed leader within {timeout:?}: {last}"))
    }

    async fn agreed_leader(&self) -> Result<u64, String> {
        let live = self.live();
        let mut statuses = BTreeMap::new();
        for &id in &live {
            let s = self.status(id).await.ok_or_else(|| format!("node {id} does not answer"))?;
            statuses.insert(id, s);
        }
        let leaders: Vec<Option<u64>> = statuses.values().map(|s| s.leader).collect();
        let Some(Some(leader)) = leaders.first().copied() else { return Err(format!("leaders: {leaders:?}")) };
        if leaders.iter().any(|l| *l != Some(leader)) {
            return Err(format!("leaders disagree: {leaders:?}"));
        }
        match statuses.get(&leader) {
            Some(s) if s.role == "Leader" => Ok(leader),
            _ => Err(format!("leader {leader} is not live or not in role Leader")),
        }
    }

    /// Wait until every live node applied at least `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) {
        let applied = poll_until(Instant::now() + timeout, async || {
            let mut behind = Vec::new();
            for id in self.live() {
                let applied = self.status(id).await.and_then(|s| s.last_applied);
                if applied.is_none_or(|a| a < index) {
                    behind.push((id, applied));
                }
            }
            if behind.is_empty() {
                Ok(())
            } else {
                Err(behind)
            }
        })
        .await;
        if let Err(behind) = applied {
            panic!("nodes {behind:?} did not apply {index} within {timeout:?}\n{}", self.logs());
        }
    }

    /// The leader's last applied index (waits for a leader).
    pub async fn leader_applied(&self, timeout: Duration) -> u64 {
        let leader = self.wait_for_leader(timeout).await;
        self.status(leader).await.and_then(|s| s.last_applied).unwrap_or(0)
    }

    /// Wait until every live node reports the same `last_applied` and the same digest; returns it.
    pub async fn wait_converged(&self, timeout: Duration) -> Digest {
        let converged = poll_until(Instant::now() + timeout, async || {
            let mut seen = BTreeMap::new();
            for id in self.live() {
                seen.insert(id, self.digest(id).await);
            }
            match seen.values().next().cloned().flatten() {
                Some(first) if seen.values().all(|d| d.as_ref() == Some(&first)) => Ok(first),
                _ => Err(seen),
            }
        })
        .await;
        converged.unwrap_or_else(|seen| panic!("nodes did not converge within {timeout:?}: {seen:?}\n{}", self.logs()))
    }

    // ---- faults -----------------------------------------------------------------------------------

    /// SIGKILL node `id` and reap it (it stays a member; `restart` brings it back).
    pub fn kill9(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.kill9();
        node.note("kill -9");
    }

    /// SIGSTOP node `id`: its sockets stay open but it answers nothing.
    pub fn sigstop(&mut self, id: u64) {
        let node = self.node_mut(id);
        signal(&node.pid(id), "-STOP");
        node.paused = true;
    }

    /// SIGTERM node `id` and wait up to `timeout` for it to exit: its exit status, or `None` if it did not.
    pub async fn sigterm_and_wait(&mut self, id: u64, timeout: Duration) -> Option<std::process::ExitStatus> {
        let node = self.node_mut(id);
        signal(&node.pid(id), "-TERM");
        node.note("SIGTERM");
        let deadline = Instant::now() + timeout;
        loop {
            let node = self.node_mut(id);
            if let Some(status) = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                node.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGCONT node `id`.
    pub fn sigcont(&mut self, id: u64) {
        let node = self.node_mut(id);
        signal(&node.pid(id), "-CONT");
        node.paused = false;
    }

    /// Start node `id` again with the same data dir, port and flags; returns once it answers
    /// `/admin/status` (it may still be catching up: use the waits).
    pub async fn restart(&mut self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let node = self.node_mut(id);
            node.note("restart");
            node.spawn();
            match self.wait_responding(id, deadline).await {
                Ok(()) => return,
                // The port may have been taken by someone else meanwhile: try again until the deadline.
                Err(e) if Instant::now() < deadline => eprintln!("restart of node {id}: {e}; retrying"),
                Err(e) => panic!("restart of node {id}: {e}\n{}", self.logs()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // ---- membership -------------------------------------------------------------------------------

    /// Start a new node (next id, new port, empty dir, `--join`) without adding it; its id once it answers.
    pub async fn spawn_joining(&mut self) -> u64 {
        let id = self.nodes.keys().max().copied().unwrap_or(0) + 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut node = self.new_proc(id, format!("127.0.0.1:{}", free_port()));
            node.args.push("--join".to_string());
            node.member = false;
            self.nodes.insert(id, node);
            self.node_mut(id).spawn();
            match self.wait_responding(id, deadline).await {
                Ok(()) => return id,
                Err(e) if Instant::now() < deadline => eprintln!("new node {id}: {e}; retrying on another port"),
                Err(e) => panic!("new node {id}: {e}\n{}", self.logs()),
            }
        }
    }

    /// Count node `id` as a member from now on (its add was done by the test itself).
    pub fn mark_member(&mut self, id: u64) {
        self.node_mut(id).member = true;
    }

    /// The text of node `id`'s log so far.
    pub fn log_of(&self, id: u64) -> String {
        self.nodes.get(&id).map(NodeProc::log_text).unwrap_or_default()
    }

    /// Start a new node (next id, new port, empty dir, `--join` instead of `--peers`) and add it to the
    /// cluster with `discovery cluster add`; returns once every live node sees it as a voter.
    pub async fn add_node(&mut self) -> u64 {
        let id = self.nodes.keys().max().copied().unwrap_or(0) + 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut node = self.new_proc(id, format!("127.0.0.1:{}", free_port()));
            node.args.push("--join".to_string());
            self.nodes.insert(id, node);
            self.node_mut(id).member = false;
            self.node_mut(id).spawn();
            match self.wait_responding(id, deadline).await {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => eprintln!("new node {id}: {e}; retrying on another port"),
                Err(e) => panic!("new node {id}: {e}\n{}", self.logs()),
            }
        }
        self.join(id).await;
        id
    }

    /// Start a new node in `zone` (next id, new port, empty dir, `--join`) and add it as a learner (a read
    /// replica) with `discovery cluster add --learner`; returns once every live node sees it as a learner.
    pub async fn add_learner(&mut self, zone: &str) -> u64 {
        let id = self.nodes.keys().max().copied().unwrap_or(0) + 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut node = self.new_proc(id, format!("127.0.0.1:{}", free_port()));
            match node.args.iter().position(|a| a == "--zone") {
                Some(at) => node.args[at + 1] = zone.to_string(),
                None => node.args.extend(["--zone".to_string(), zone.to_string()]),
            }
            node.args.push("--join".to_string());
            node.member = false;
            self.nodes.insert(id, node);
            self.node_mut(id).spawn();
            match self.wait_responding(id, deadline).await {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => eprintln!("new node {id}: {e}; retrying on another port"),
                Err(e) => panic!("new node {id}: {e}\n{}", self.logs()),
            }
        }
        loop {
            let leader = self.wait_for_leader(Duration::from_secs(10)).await;
            let args = ["cluster", "add", "--learner", "--node", &self.addr(id), "--server", &self.addr(leader)];
            match run_cli(&args, deadline.saturating_duration_since(Instant::now())).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => eprintln!("discovery {args:?}: {e}; retrying"),
                Err(e) => panic!("discovery {args:?}: {e}\n{}", self.logs()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.node_mut(id).member = true;
        self.wait_membership(|m| m.iter().any(|m| m.id == id && !m.voter), Duration::from_secs(30)).await;
        id
    }

    /// Add the running, non-member node `id` to the cluster with `discovery cluster add --node <its addr>
    /// --server <leader>` (learner, caught up, voter), retrying while another change runs or the leader
    /// moves, and wait until every live node sees it as a voter.
    pub async fn join(&mut self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let leader = self.wait_for_leader(Duration::from_secs(10)).await;
            let args = ["cluster", "add", "--node", &self.addr(id), "--server", &self.addr(leader)];
            match run_cli(&args, deadline.saturating_duration_since(Instant::now())).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => eprintln!("discovery {args:?}: {e}; retrying"),
                Err(e) => panic!("discovery {args:?}: {e}\n{}", self.logs()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.node_mut(id).member = true;
        self.wait_membership(|m| m.iter().any(|m| m.id == id && m.voter), Duration::from_secs(30)).await;
    }

    /// Remove node `id` from the membership through `POST /admin/cluster/remove` on the leader, and wait
    /// until every remaining live node sees it gone (not even a learner). Its process keeps running.
    /// Returns once the remaining members agree on a leader again (removing the leader costs an election).
    pub async fn remove_node(&mut self, id: u64) {
        if self.members_of_leader().await.is_some_and(|m| m.iter().any(|m| m.id == id)) {
            self.remove_member(id, Duration::from_secs(30)).await;
        }
        self.removed(id).await;
    }

    /// [`TestCluster::remove_node`] through `discovery cluster remove --node <its addr> --server <a member>`.
    pub async fn remove_node_cli(&mut self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = self.wait_for_leader(Duration::from_secs(10)).await;
            let server = *self.others(id).first().unwrap_or(&leader);
            let args = ["cluster", "remove", "--node", &self.addr(id), "--server", &self.addr(server)];
            match run_cli(&args, Duration::from_secs(30)).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => eprintln!("discovery {args:?}: {e}; retrying"),
                Err(e) => panic!("discovery {args:?}: {e}\n{}", self.logs()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.removed(id).await;
    }

    async fn removed(&mut self, id: u64) {
        self.node_mut(id).member = false;
        self.wait_membership(|m| m.iter().all(|m| m.id != id), Duration::from_secs(30)).await;
        self.wait_for_leader(Duration::from_secs(10)).await;
    }

    async fn members_of_leader(&self) -> Option<Vec<Member>> {
        let leader = self.wait_for_leader(Duration::from_secs(10)).await;
        self.status(leader).await.map(|s| s.membership)
    }

    /// Kill node `id`, delete its data dir, and start it again with the same id and port as a joining node
    /// (`--join` instead of `--peers`). It is not a member until [`TestCluster::join`].
    pub async fn wipe_and_restart(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.kill9();
        node.note("wipe");
        let _ = std::fs::remove_dir_all(&node.data_dir);
        if let Some(at) = node.args.iter().position(|a| a == "--peers") {
            node.args.drain(at..at + 2);
            node.args.push("--join".to_string());
        }
        node.member = false;
        self.restart(id).await;
    }

    /// The membership (sorted by id) as every live node reports it, once they all agree and `pred` holds.
    pub async fn wait_membership(&self, pred: impl Fn(&[Member]) -> bool, timeout: Duration) -> Vec<Member> {
        let settled = poll_until(Instant::now() + timeout, async || {
            let mut views = BTreeMap::new();
            for id in self.live() {
                let members = self.status(id).await.map(|s| {
                    let mut m = s.membership;
                    m.sort_by_key(|m| m.id);
                    m
                });
                views.insert(id, members);
            }
            match views.values().next().cloned().flatten() {
                Some(first) if views.values().all(|v| v.as_ref() == Some(&first)) && pred(&first) => Ok(first),
                _ => Err(views),
            }
        })
        .await;
        settled
            .unwrap_or_else(|views| panic!("membership did not settle within {timeout:?}: {views:?}\n{}", self.logs()))
    }

    /// POST `body` as JSON to `path` on node `id`: the HTTP status and the JSON answer.
    pub async fn admin_post(
        &self,
        id: u64,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<(u16, Value), String> {
        let resp =
            self.client.post(self.url(id, path)).json(body).timeout(timeout).send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map(|v| (status, v)).map_err(|_| format!("HTTP {status}, not JSON: {text:?}"))
    }

    /// Remove member `id` through the library client on the leader, retrying (new leader, change in
    /// progress) until it is accepted or observed done.
    async fn remove_member(&self, id: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let node = self.addr(id);
        let mut last = String::new();
        while Instant::now() < deadline {
            let leader = self.wait_for_leader(deadline.saturating_duration_since(Instant::now())).await;
            match self.api(leader).cluster_remove(&self.addr(leader), &node).await {
                Ok(_) => return,
                Err(e) => last = e.to_string(),
            }
            if self.members_of_leader().await.is_some_and(|m| m.iter().all(|m| m.id != id)) {
                return; // an earlier attempt went through although its answer was lost
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("removing node {id} not accepted within {timeout:?}: {last}\n{}", self.logs());
    }

    // ---- diagnostics ------------------------------------------------------------------------------

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (id, node) in &self.nodes {
            let text = node.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            out.push_str(&format!("---- node {id} ({}) log tail:\n{}\n", node.addr, tail.join("\n")));
        }
        out
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            node.kill9();
        }
        if std::thread::panicking() && !self.nodes.is_empty() {
            eprintln!("{}", self.logs());
            // On request, keep the data dirs and full logs of a failed test for a post-mortem.
            if std::env::var_os("CLUSTER_TEST_KEEP").is_some() {
                if let Some(dir) = self.dir.take() {
                    eprintln!("cluster logs and data kept in {}", dir.keep().display());
                }
            }
        }
    }
}
