//! Runs the schedule against the cluster through `scripts/chaos/ctl.sh` (which knows the namespaces, the
//! processes and iptables), resolving "leader" targets at run time, and records every action in the
//! history with the time it completed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::Api;
use crate::history::{NemesisEvent, NodeInfo, Record, Recorder};
use crate::rng::Rng;
use crate::schedule::{Fault, Step, Target};

/// Every `(to, from)` edge between the two sides, in both directions.
fn both_ways(a: &[u32], b: &[u32]) -> Vec<(u32, u32)> {
    a.iter().flat_map(|x| b.iter().flat_map(move |y| [(*x, *y), (*y, *x)])).collect()
}

/// Most time one ctl action may take (a membership add waits for the node to catch up).
const CTL_TIMEOUT: Duration = Duration::from_secs(90);
/// Most time to wait for every node to be healthy after a heal.
const HEALTHY_WAIT: Duration = Duration::from_secs(30);

/// The fault injector and what it has done to the cluster.
pub struct Nemesis {
    ctl: PathBuf,
    api: Api,
    rec: Recorder,
    nodes: Vec<NodeInfo>,
    rng: Rng,
    dead: BTreeSet<u32>,
    paused: BTreeSet<u32>,
    removed: BTreeSet<u32>,
    step: u32,
}

impl Nemesis {
    /// A nemesis driving `ctl`.
    pub fn new(ctl: PathBuf, api: Api, rec: Recorder, nodes: Vec<NodeInfo>, rng: Rng) -> Self {
        let (dead, paused, removed) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        Self { ctl, api, rec, nodes, rng, dead, paused, removed, step: 0 }
    }

    fn ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn addr(&self, id: u32) -> String {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.addr.clone()).unwrap_or_default()
    }

    fn event(&self, action: &str, nodes: &[u32], detail: String, ok: bool) {
        let ev = NemesisEvent {
            t: self.rec.now(),
            step: self.step,
            action: action.into(),
            nodes: nodes.to_vec(),
            detail,
            ok,
        };
        println!(
            "[nemesis {:>8.1}s] step {} {action} {nodes:?} {}{}",
            ev.t as f64 / 1e6,
            self.step,
            ev.detail,
            if ok { "" } else { " (FAILED)" }
        );
        self.rec.record(Record::Nemesis(ev));
    }

    /// Run `ctl.sh <verb> <args>` and record it as `action` on `nodes`.
    async fn ctl(&mut self, action: &str, nodes: &[u32], args: &[String]) -> bool {
        // Through bash: the script need not be executable (a fresh clone may not keep the mode).
        let mut command = tokio::process::Command::new("bash");
        command.arg(&self.ctl).args(args).kill_on_drop(true).stdin(std::process::Stdio::null());
        let (ok, detail) = match tokio::time::timeout(CTL_TIMEOUT, command.output()).await {
            Ok(Ok(out)) if out.status.success() => (true, args.join(" ")),
            Ok(Ok(out)) => {
                let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
                (false, format!("{}: {} {text}", args.join(" "), out.status))
            }
            Ok(Err(e)) => (false, format!("{}: {e}", args.join(" "))),
            Err(_) => (false, format!("{}: timed out", args.join(" "))),
        };
        self.event(action, nodes, detail, ok);
        ok
    }

    async fn kill(&mut self, n: u32) {
        if self.ctl("kill", &[n], &["kill".into(), n.to_string()]).await {
            self.dead.insert(n);
            self.paused.remove(&n);
        }
    }

    async fn start(&mut self, n: u32) {
        if self.ctl("start", &[n], &["start".into(), n.to_string()]).await {
            self.dead.remove(&n);
        }
    }

    async fn stop(&mut self, n: u32) {
        if self.ctl("stop", &[n], &["stop".into(), n.to_string()]).await {
            self.paused.insert(n);
        }
    }

    async fn cont(&mut self, n: u32) {
        if self.ctl("cont", &[n], &["cont".into(), n.to_string()]).await {
            self.paused.remove(&n);
        }
    }

    /// Drop at `to` every packet from `from`.
    async fn drop_packets(&mut self, to: u32, from: u32) {
        self.ctl("cut", &[to, from], &["drop".into(), to.to_string(), from.to_string()]).await;
    }

    async fn heal_net(&mut self) {
        let ids = self.ids();
        self.ctl("heal_net", &ids, &["heal-net".into()]).await;
    }

    /// The leader, as the reachable nodes report it (highest term wins).
    pub async fn leader(&self) -> Option<u32> {
        let live: Vec<u32> =
            self.ids().into_iter().filter(|n| !self.dead.contains(n) && !self.paused.contains(n)).collect();
        let queries = live.iter().map(|n| {
            let addr = self.addr(*n);
            let api = self.api.clone();
            async move { api.status(&addr, Duration::from_millis(1500)).await }
        });
        let answers: Vec<_> = futures::future::join_all(queries).await.into_iter().flatten().collect();
        answers
            .iter()
            .filter_map(|s| Some((s.term, s.leader?)))
            .max()
            .and_then(|(_, leader)| u32::try_from(leader).ok())
    }

    async fn resolve(&mut self, target: Target) -> u32 {
        match target {
            Target::Node(n) => n,
            Target::Leader => match self.leader().await {
                Some(n) => n,
                None => {
                    let ids = self.ids();
                    self.rng.pick(&ids).copied().unwrap_or(1)
                }
            },
        }
    }

    /// A live member other than `not`, to send a membership change to.
    fn other_member(&self, not: u32) -> Option<u32> {
        self.ids()
            .into_iter()
            .find(|n| *n != not && !self.dead.contains(n) && !self.paused.contains(n) && !self.removed.contains(n))
    }

    /// Run one step: inject, hold, heal; then wait (bounded) until every node is healthy.
    pub async fn run_step(&mut self, step: &Step) {
        self.step = step.n;
        let hold = Duration::from_millis(step.hold_ms);
        let others = |n: u32, ids: Vec<u32>| -> Vec<u32> { ids.into_iter().filter(|o| *o != n).collect() };
        match step.fault.clone() {
            Fault::Kill { target } => {
                let n = self.resolve(target).await;
                self.crash(&[n], format!("kill node {n} ({target:?})"), hold).await;
            }
            Fault::KillMinority { nodes } => self.crash(&nodes, format!("kill-minority {nodes:?}"), hold).await,
            Fault::Pause { target } => {
                let n = self.resolve(target).await;
                self.freeze(&[n], format!("pause node {n} ({target:?})"), hold).await;
            }
            Fault::PauseMinority { nodes } => self.freeze(&nodes, format!("pause-minority {nodes:?}"), hold).await,
            Fault::Restart { target } => {
                let n = self.resolve(target).await;
                self.event("fault", &[n], format!("restart node {n} ({target:?}), graceful"), true);
                if self.ctl("term", &[n], &["term".into(), n.to_string()]).await {
                    self.dead.insert(n);
                }
                self.start(n).await;
            }
            Fault::Isolate { target } => {
                let n = self.resolve(target).await;
                let edges = both_ways(&[n], &others(n, self.ids()));
                self.partition(&[n], format!("isolate node {n} ({target:?})"), &edges, hold).await;
            }
            Fault::Split { minority } => {
                let majority: Vec<u32> = self.ids().into_iter().filter(|n| !minority.contains(n)).collect();
                let edges = both_ways(&minority, &majority);
                self.partition(&minority, format!("split {minority:?} | {majority:?}"), &edges, hold).await;
            }
            Fault::Bridge { hub, left, right } => {
                let edges = both_ways(&left, &right);
                self.partition(&[hub], format!("bridge {left:?} <-> {hub} <-> {right:?}"), &edges, hold).await;
            }
            Fault::OneWay { target, inbound } => {
                let n = self.resolve(target).await;
                let peers = others(n, self.ids());
                // (to, from): `to` drops every packet from `from`.
                let edges: Vec<(u32, u32)> = peers.iter().map(|o| if inbound { (n, *o) } else { (*o, n) }).collect();
                let how = if inbound { "hears no peer" } else { "is heard by no peer" };
                self.partition(&[n], format!("one-way node {n} ({target:?}) {how}"), &edges, hold).await;
            }
            Fault::Membership { target, wipe } => {
                let n = self.resolve(target).await;
                let detail = format!("membership remove and re-add node {n} ({target:?}), wipe {wipe}");
                self.event("fault", &[n], detail, true);
                self.membership(n, wipe, hold).await;
            }
            Fault::Demote { target } => {
                let n = self.resolve(target).await;
                self.event("fault", &[n], format!("demote node {n} ({target:?}) to a learner"), true);
                self.role_change(n, "demote", "promote", hold).await;
            }
            Fault::Promote { node } => {
                self.event("fault", &[node], format!("promote learner {node} to a voter"), true);
                self.role_change(node, "promote", "demote", hold).await;
            }
        }
        self.wait_healthy().await;
        self.event("healed", &self.ids(), step.fault.name().to_string(), true);
    }

    /// `ctl.sh <change> n`, hold, then `ctl.sh <back> n` (a few tries: the cluster may be electing; the
    /// final heal puts every role right anyway).
    async fn role_change(&mut self, n: u32, change: &str, back: &str, hold: Duration) {
        let Some(server) = self.other_member(n) else {
            self.event(change, &[n], "no other live member to ask".into(), false);
            return;
        };
        let done = self.ctl(change, &[n], &[change.into(), n.to_string(), server.to_string()]).await;
        tokio::time::sleep(hold).await;
        if done {
            self.change_role(n, back).await;
        }
    }

    async fn change_role(&mut self, n: u32, change: &str) -> bool {
        for _ in 0..5 {
            let Some(server) = self.other_member(n) else { break };
            if self.ctl(change, &[n], &[change.into(), n.to_string(), server.to_string()]).await {
                return true;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        false
    }

    /// kill -9 `nodes`, hold, start them again.
    async fn crash(&mut self, nodes: &[u32], detail: String, hold: Duration) {
        self.event("fault", nodes, detail, true);
        for n in nodes {
            self.kill(*n).await;
        }
        tokio::time::sleep(hold).await;
        for n in nodes {
            self.start(*n).await;
        }
    }

    /// SIGSTOP `nodes`, hold, SIGCONT them.
    async fn freeze(&mut self, nodes: &[u32], detail: String, hold: Duration) {
        self.event("fault", nodes, detail, true);
        for n in nodes {
            self.stop(*n).await;
        }
        tokio::time::sleep(hold).await;
        for n in nodes {
            self.cont(*n).await;
        }
    }

    /// Drop the packets of every `(to, from)` edge, hold, remove every drop rule.
    async fn partition(&mut self, affected: &[u32], detail: String, edges: &[(u32, u32)], hold: Duration) {
        self.event("fault", affected, detail, true);
        for (to, from) in edges {
            self.drop_packets(*to, *from).await;
        }
        tokio::time::sleep(hold).await;
        self.heal_net().await;
    }

    async fn membership(&mut self, n: u32, wipe: bool, hold: Duration) {
        let Some(server) = self.other_member(n) else {
            self.event("remove", &[n], "no other live member to ask".into(), false);
            return;
        };
        let args = ["member-remove".into(), n.to_string(), server.to_string()];
        if !self.ctl("remove", &[n], &args).await {
            tokio::time::sleep(hold).await;
            return;
        }
        self.removed.insert(n);
        self.kill(n).await;
        if wipe {
            self.ctl("wipe", &[n], &["wipe".into(), n.to_string()]).await;
        }
        tokio::time::sleep(hold).await;
        self.start(n).await;
        self.re_add(n).await;
    }

    /// Add `n` back (a few tries: the cluster may be electing).
    async fn re_add(&mut self, n: u32) {
        for _ in 0..5 {
            let Some(server) = self.other_member(n) else { break };
            if self.ctl("add", &[n], &["member-add".into(), n.to_string(), server.to_string()]).await {
                self.removed.remove(&n);
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Wait (bounded) until every node answers `/healthz` 200.
    async fn wait_healthy(&self) -> bool {
        let deadline = Instant::now() + HEALTHY_WAIT;
        while Instant::now() < deadline {
            let checks = self.nodes.iter().map(|n| self.api.healthy(&n.addr, Duration::from_millis(1000)));
            if futures::future::join_all(checks).await.into_iter().all(|ok| ok) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.event("healthy", &self.ids(), format!("not every node healthy after {HEALTHY_WAIT:?}"), false);
        false
    }

    /// Undo everything: continue, reconnect, restart and re-add every node; wait until all are healthy
    /// voters. Recorded as step 0.
    pub async fn heal_all(&mut self) {
        self.step = 0;
        self.event("fault", &[], "final-heal".into(), true);
        for n in self.paused.clone() {
            self.cont(n).await;
        }
        self.heal_net().await;
        for n in self.dead.clone() {
            self.start(n).await;
        }
        for n in self.removed.clone() {
            self.re_add(n).await;
        }
        for _ in 0..3 {
            let (missing, learners, voters) = self.wrong_roles().await;
            if missing.is_empty() && learners.is_empty() && voters.is_empty() {
                break;
            }
            for n in missing {
                self.re_add(n).await;
            }
            for n in learners {
                self.change_role(n, "promote").await;
            }
            for n in voters {
                self.change_role(n, "demote").await;
            }
        }
        self.wait_healthy().await;
        self.event("healed", &self.ids(), "final-heal".into(), true);
    }

    /// What the leader's membership gets wrong: (voters it lacks entirely, voters it has as learners,
    /// learners — the read replicas of `--zones` — it has as voters). A learner it lacks is re-added as a
    /// voter by nobody: it is left to rule (c).
    async fn wrong_roles(&self) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let none = (Vec::new(), Vec::new(), Vec::new());
        let Some(leader) = self.leader().await else { return none };
        let Some(status) = self.api.status(&self.addr(leader), Duration::from_secs(2)).await else {
            return none;
        };
        let roles: BTreeMap<u64, bool> = status.membership.iter().map(|m| (m.id, m.voter)).collect();
        let (mut missing, mut learners, mut voters) = none;
        for node in &self.nodes {
            match (node.learner, roles.get(&u64::from(node.id))) {
                (false, None) => missing.push(node.id),
                (false, Some(false)) => learners.push(node.id),
                (true, Some(true)) => voters.push(node.id),
                _ => {}
            }
        }
        (missing, learners, voters)
    }
}
