//! The final state of every node after healing and settling (`final.json`), and rule (c) on it.
//!
//! Collected while the instances' owners keep renewing (so live instances stay) and nothing else writes:
//! digests of every node, then every app's instances from every node (local reads), then the digests again.
//! The snapshot is `stable` when every node answered the same `last_applied` and digest both times.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::{Rule, Violation};
use crate::history::{Micros, Seen};

/// One node's final state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalNode {
    /// Node id.
    pub id: u32,
    /// Address.
    pub addr: String,
    /// `/admin/status` answered.
    pub reachable: bool,
    /// A member of the cluster in its role, as the node itself reports it: a voter, or for the read
    /// replicas of the `--zones` topology a learner (rule (c) covers them like the voters).
    pub member: bool,
    /// Role reported.
    pub role: String,
    /// `/admin/digest` `last_applied`.
    pub last_applied: Option<u64>,
    /// `/admin/digest` `digest`.
    pub digest: Option<String>,
    /// `/admin/digest` `instances`.
    pub instances: Option<u64>,
    /// App → every instance of it (fetch status=3 on this node); an app the node does not know is absent.
    pub apps: BTreeMap<String, Vec<Seen>>,
}

/// The final state of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalState {
    /// Collection started.
    pub start: Micros,
    /// Collection ended.
    pub end: Micros,
    /// Every node agreed, before and after the reads.
    pub stable: bool,
    /// Per node.
    pub nodes: Vec<FinalNode>,
}

impl FinalState {
    /// Read `final.json`.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Rule (c): every node (learners included) reachable, a member in its role, and holding the same registry (digest, applied index and the
/// instances it answers).
pub fn check_converged(state: &FinalState) -> Vec<Violation> {
    let mut out = Vec::new();
    let violation = |what: String| Violation { rule: Rule::C, what, ops: vec![] };
    if !state.stable {
        out.push(violation("the nodes never agreed on one state during the collection".to_string()));
    }
    for node in &state.nodes {
        if !node.reachable || !node.member {
            out.push(violation(format!(
                "node {} ({}) at the end: reachable {}, member in its role {}, role {}",
                node.id, node.addr, node.reachable, node.member, node.role
            )));
        }
    }
    let Some(first) = state.nodes.first() else {
        out.push(violation("no node in the final state".to_string()));
        return out;
    };
    for node in &state.nodes[1..] {
        if (node.digest.as_ref(), node.last_applied) != (first.digest.as_ref(), first.last_applied) {
            out.push(violation(format!(
                "node {} has digest {:?} at index {:?}, node {} has {:?} at {:?}",
                node.id, node.digest, node.last_applied, first.id, first.digest, first.last_applied
            )));
        }
        if node.apps != first.apps {
            out.push(violation(format!("node {} answers other instances than node {}", node.id, first.id)));
        }
    }
    out
}
