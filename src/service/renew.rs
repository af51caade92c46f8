//! Renews: judged by the leader's lessor, never written to the Raft log.
//!
//! The one decision: this node's lessor answers when it is the active leader's; otherwise the renew joins
//! the batch bound for the leader (whose `with_leader` follows a leadership that moved meanwhile). A node cut
//! off from the leader refuses at once. "Unknown" is only ever the leader's verdict.

use super::{Refusal, Service};
use crate::node::forward::renews::renew_local;
use crate::node::internal_wire::RenewReply;
use crate::registry::model::{Instance, InstanceKey};

/// The leader's verdict on a renew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewVerdict {
    /// The lease was extended; the instance as stored.
    Renewed(Instance),
    /// The leader does not know the instance; `zone_known` says whether its (app, env, zone) exists.
    Unknown {
        /// Whether the instance's zone holds other instances.
        zone_known: bool,
    },
}

impl Service {
    /// Extends the lease of `key` (see the module doc).
    pub async fn renew(&self, key: InstanceKey) -> Result<RenewVerdict, Refusal> {
        self.node.history.activity.renew();
        let reply = match renew_local(&self.node, &key) {
            RenewReply::NotLeader => {
                if let Some(why) = self.node.cut_off() {
                    return Err(Refusal::Unavailable(why));
                }
                self.node.renewals.renew(key).await
            }
            verdict => verdict,
        };
        match reply {
            RenewReply::Renewed(instance) => Ok(RenewVerdict::Renewed(*instance)),
            RenewReply::Unknown { zone_known } => Ok(RenewVerdict::Unknown { zone_known }),
            RenewReply::NotLeader => Err(self.no_verdict()),
        }
    }

    fn no_verdict(&self) -> Refusal {
        match self.node.raft.metrics().borrow().current_leader {
            Some(id) => Refusal::Unavailable(format!("the leader (node {id}) could not judge the renew; retry later")),
            None => Refusal::Unavailable("no reachable leader; retry later".into()),
        }
    }
}
