//! Collect the final state of every node (see [`crate::final_state`]): digests, instances, digests again,
//! until two rounds agree on every node or the time runs out.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{instances_of, Api, Call};
use crate::final_state::{FinalNode, FinalState};
use crate::history::{Header, Outcome, Recorder};

/// Most time spent waiting for the nodes to agree.
const COLLECT_FOR: Duration = Duration::from_secs(60);

/// Per node: (reachable, a member in its role, role, last_applied, digest, instances).
type Probe = (bool, bool, String, Option<u64>, Option<String>, Option<u64>);

/// `learner`: the node is a read replica (`--zones`), which must be a member but not a voter.
async fn probe(api: &Api, id: u32, addr: &str, learner: bool) -> Probe {
    let timeout = Duration::from_secs(2);
    let (status, digest) = tokio::join!(api.status(addr, timeout), api.digest(addr, timeout));
    let reachable = status.is_some() && digest.is_some();
    let role = status.as_ref().map(|s| s.role.clone()).unwrap_or_default();
    let voter =
        status.as_ref().is_some_and(|s| s.membership.iter().any(|m| m.id == u64::from(id) && m.voter != learner));
    let d = digest.as_ref();
    (reachable, voter, role, d.and_then(|d| d.last_applied), d.map(|d| d.digest.clone()), d.map(|d| d.instances as u64))
}

async fn probe_all(api: &Api, header: &Header) -> Vec<Probe> {
    futures::future::join_all(header.nodes.iter().map(|n| probe(api, n.id, &n.addr, n.learner))).await
}

fn agree(probes: &[Probe]) -> bool {
    probes.iter().all(|p| p.0 && p.1)
        && probes.windows(2).all(|w| (w[0].3, &w[0].4) == (w[1].3, &w[1].4))
        && probes.first().is_some_and(|p| p.4.is_some())
}

async fn apps_of(api: &Api, header: &Header, addr: &str) -> BTreeMap<String, Vec<crate::history::Seen>> {
    let mut apps = BTreeMap::new();
    for app in &header.apps {
        let query = [("appid", app.clone()), ("env", header.env.clone()), ("status", "3".to_string())];
        let answer = api.get(addr, "/discovery/fetch", &query, Call::Read, Duration::from_secs(3)).await;
        if answer.outcome == Outcome::Ok && answer.code == Some(0) {
            if let Some(data) = &answer.data {
                apps.insert(app.clone(), instances_of(data).0);
            }
        }
    }
    apps
}

/// Collect the final state.
pub async fn collect(api: &Api, header: &Header, rec: &Recorder) -> FinalState {
    let deadline = Instant::now() + COLLECT_FOR;
    loop {
        let start = rec.now();
        let before = probe_all(api, header).await;
        let mut apps = Vec::new();
        for node in &header.nodes {
            apps.push(apps_of(api, header, &node.addr).await);
        }
        let after = probe_all(api, header).await;
        let end = rec.now();
        let stable = agree(&before) && before == after;
        if stable || Instant::now() >= deadline {
            let nodes = header
                .nodes
                .iter()
                .zip(after)
                .zip(apps)
                .map(|((n, p), apps)| FinalNode {
                    id: n.id,
                    addr: n.addr.clone(),
                    reachable: p.0,
                    member: p.1,
                    role: p.2,
                    last_applied: p.3,
                    digest: p.4,
                    instances: p.5,
                    apps,
                })
                .collect();
            return FinalState { start, end, stable, nodes };
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}
