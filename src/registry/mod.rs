//! The registry domain: plain data and methods, no tokio, no sled, no clock (`now` is passed in).
//!
//! # Layout
//! - `model`: the wire-shaped [`Instance`](model::Instance) and the tuple keys; `addrs` and `metadata`: its
//!   compact fields.
//! - `command`: what a Raft entry carries ([`Batch`](command::Batch)) and what apply answers.
//! - `store`: the replicated [`Registry`] (apps, zones, instances, cursors); `hosts`: one zone's instances.
//! - `apply`: deterministic `Registry::apply`, reporting changed apps and lease events.
//! - `digest`: a stable fingerprint of the state, to compare replicas.
//! - `view`: fetch / fetchs / fetch-all / polls answers, exact wire JSON.
//! - `infra`: the servers as `infra.discovery`, synthesized from the Raft membership.
//! - `lease`, `guard`, `lessor`: the leader's lease table, self-preservation, and the eviction step.

pub mod addrs;
pub mod apply;
pub mod changes;
pub mod command;
mod digest;
pub mod guard;
mod hash;
pub mod hosts;
pub mod infra;
pub mod lease;
pub mod lessor;
pub mod metadata;
pub mod model;
pub mod store;
pub mod view;

pub use apply::{Applied, LeaseEvent};
pub use infra::{Member, Membership, INFRA_APPID};
pub use lessor::{Lessor, LessorConfig, Renewal};
pub use store::Registry;
pub use view::{InstanceInfo, PollDecision, PollsAnswer, View};

#[cfg(test)]
pub(crate) mod testutil;
