//! The service layer: what a client can ask of a node, in the registry's own terms, whatever the transport.
//!
//! The bilibili API (`api`) holds a [`Service`] and calls it for everything: it parses and validates
//! requests and renders answers; it never sees Raft, the routing to the leader, the internal wire types or
//! the node's state. The node (`node`) builds what this layer drives and supervises its tasks; it never
//! imports the API: the application (`app`) assembles the two.
//!
//! | operation | method | where it is decided |
//! |---|---|---|
//! | write (register, cancel, set) | [`Service::write`] | `node::routing`: locally on the leader, else forwarded |
//! | renew | [`Service::renew`] | here, once: this node's lessor if it leads, else the leader's through the renew batcher |
//! | consistent read | [`Service::linearize`] then [`Service::read`] | `node::routing`: read index, locally or from the leader |
//! | read a view | [`Service::read`], [`Service::read_registry`], [`Service::members`] | this node's applied state |
//! | wait for a change (long poll) | [`Service::watch`] | here: subscribe, read, wait, read again |
//! | change membership | [`Service::add_member`], `promote_member`, `demote_member`, `remove_member` | here ([`membership`]): checks, learner, catch-up, voter |
//!
//! Invariants:
//! - Every refusal is a [`Refusal`]: overloaded (retry later) or unavailable, with a reason an operator can
//!   act on; never "unknown instance", which would make every SDK re-register at once.
//! - A watch subscribes to its apps before its first read, so a change applied between a read and the wait
//!   is never lost; each watch holds one waiter, freed when it ends or its caller goes away.
//! - Reads never hold the registry's lock across an `.await`.

pub(crate) mod headers;
mod member_checks;
pub(crate) mod membership;
pub(crate) mod node_facts;
mod reads;
mod renew;
mod watch;
mod writes;

use crate::node::routing::RouteError;
use crate::node::AppState;

pub(crate) use renew::RenewVerdict;

/// The handle handlers hold. Cheap to clone (one reference count).
#[derive(Clone)]
pub struct Service {
    node: AppState,
}

impl Service {
    /// The service of a running node.
    pub fn new(node: AppState) -> Self {
        Self { node }
    }
}

/// Why the service could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Too much pending work on this node or the leader: retry later.
    #[error("{0}")]
    Overloaded(String),
    /// The operation cannot be done now (no leader, not a member, disk low, cut off).
    #[error("{0}")]
    Unavailable(String),
    /// A write reached a leader but its answer did not come back in time: it may or may not apply.
    #[error("{0}")]
    OutcomeUnknown(String),
}

impl From<RouteError> for Refusal {
    fn from(err: RouteError) -> Self {
        match err {
            RouteError::Overloaded => Refusal::Overloaded("too many pending writes, retry later".into()),
            RouteError::NoLeader(_) => Refusal::Unavailable("no reachable leader; retry later".into()),
            RouteError::Unknown(_) => {
                Refusal::OutcomeUnknown("the write did not complete in time; its outcome is unknown, retry".into())
            }
            RouteError::NotMember => Refusal::Unavailable("this node is not a member of the cluster".into()),
            RouteError::Unavailable(reason) => {
                Refusal::Unavailable(format!("the registry is unavailable ({reason}); retry later"))
            }
            RouteError::DiskLow(reason) | RouteError::CutOff(reason) => Refusal::Unavailable(reason),
        }
    }
}
