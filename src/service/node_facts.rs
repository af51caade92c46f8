//! What an operator's page asks of a node besides the registry: who it is, its view of the cluster, the
//! leases it holds when it leads, its disk and its recent history. The console (`ui`) reads these through
//! the [`Service`] like the API reads the registry, so it too never touches the node's machinery.
//!
//! Invariants:
//! - Every answer is a copy taken under the owner's lock and released before returning: a page never holds
//!   a node lock across an `.await`.
//! - Lease figures exist only on the leader (the lessor is active there); elsewhere they are `None`, and
//!   the page asks the leader's console instead.

use super::Service;
use crate::config::Config;
use crate::node::admin::status_view;
use crate::registry::changes::Change;
use crate::registry::lessor::LessorStatus;
use crate::registry::model::InstanceKey;

// The shapes these facts come in, and the helpers a page uses to render them, so a page needs nothing of `node`.
pub(crate) use crate::node::admin::{MemberView, StatusView};
pub(crate) use crate::node::charts::{unix_ms, LeaderChange, Sample, SAMPLE_EVERY};
pub(crate) use crate::node::disk_guard::DiskStatus;
pub(crate) use crate::node::lease_keeper::LeaseFigures;
pub(crate) use crate::node::metrics::dir_size;

impl Service {
    /// This node's configuration (id, address, zone, tokens, data dir...).
    pub fn config(&self) -> &Config {
        &self.node.config
    }

    /// This node's view of itself and the membership (what `/admin/status` answers).
    pub fn status(&self) -> StatusView {
        status_view(&self.node)
    }

    /// The leader this node knows: its id and address.
    pub fn leader(&self) -> Option<(u64, String)> {
        let metrics = self.node.raft.metrics();
        let m = metrics.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    /// This node's lessor: its lease counts and the self-preservation guard (meaningful on the leader).
    pub fn lease_status(&self) -> LessorStatus {
        self.node.lessor.status()
    }

    /// The lease of each of `keys` (`None` for an instance without one), or `None` when this node does not
    /// hold the leases (it is not an active leader).
    pub fn lease_figures(&self, keys: &[InstanceKey]) -> Option<Vec<Option<LeaseFigures>>> {
        self.node.lessor.lease_figures(&self.node.registry, keys)
    }

    /// Free space of the data dir and whether writes are refused for it.
    pub fn disk_status(&self) -> DiskStatus {
        self.node.disk.status()
    }

    /// The leader changes this node saw, newest first.
    pub fn leader_changes(&self) -> Vec<LeaderChange> {
        self.node.history.leader_changes()
    }

    /// The recent changes of one app, as this node applied them (the console's change log).
    pub fn changes_of(&self, env: &str, appid: &str) -> Vec<Change> {
        self.node.registry.changes_of(env, appid)
    }

    /// The sampled figures of the charts, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.node.history.samples()
    }
}
