//! The replicated commands and their outcomes: what a Raft entry carries and what apply answers.
//!
//! Invariants:
//! - A [`Batch`] is one Raft entry. Its `stamp_ns` is the leader's wall clock when it proposed the batch;
//!   apply takes every timestamp from it and never reads a clock, so all replicas compute the same state.
//! - Variants are only ever appended (bincode encodes the variant index). No `flatten`, `untagged` or
//!   `skip_serializing_if` here.
//! - Commands are validated before they are proposed (HTTP layer); apply still re-checks what it must to
//!   stay total (a bad command yields an [`Outcome`] error, never a panic).
//! - A client timestamp that is stored (register's `dirty_timestamp`, set's `set_timestamp`) is at most
//!   [`MAX_CLIENT_AHEAD_NS`] ahead of the batch's leader stamp; apply refuses the command otherwise, so no
//!   client can pin an instance with a timestamp in the far future.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::model::InstanceKey;

/// How far a stored client timestamp may be ahead of the leader's clock: 10 minutes. Beyond that it is a
/// bug or an attack, not clock skew: a `dirty_timestamp` of `i64::MAX` would make every later register of the
/// instance "older" and change nothing.
pub const MAX_CLIENT_AHEAD_NS: i64 = 10 * 60 * 1_000_000_000;

/// `Err` (the -400 text, naming `param`) when the client timestamp `value` is more than
/// [`MAX_CLIENT_AHEAD_NS`] ahead of `clock_ns` (the leader stamp in apply, the local clock in a handler).
pub fn check_client_timestamp(param: &str, value: i64, clock_ns: i64) -> Result<(), String> {
    if value > clock_ns.saturating_add(MAX_CLIENT_AHEAD_NS) {
        return Err(format!("invalid parameter {param:?}: {value} is more than 10 minutes ahead of the server clock"));
    }
    Ok(())
}

/// One Raft entry's payload: commands proposed together, stamped once by the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Leader wall-clock time at proposal, Unix nanoseconds.
    pub stamp_ns: i64,
    /// The commands, applied in order. Shared, not copied, when the entry is cloned: the log store hands
    /// out clones of recent entries to replication and apply (stored and sent exactly as a `Vec`).
    pub commands: Arc<[Command]>,
}

/// One replicated change to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Add or replace an instance (spec §2.1, §4.1).
    Register(RegisterArgs),
    /// Remove an instance (spec §2.3, §4.3).
    Cancel(InstanceKey),
    /// Change status and/or merge metadata of several instances of one app and zone, all or nothing
    /// (spec §2.4, with the fixes of DESIGN.md).
    Set(SetArgs),
    /// Leader-decided lease expiry: remove each instance only if it still has the given revision
    /// (compare-and-delete), so an instance re-registered after the decision survives.
    Evict(Vec<(InstanceKey, u64)>),
}

/// A validated register request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterArgs {
    /// Region (may be empty).
    pub region: String,
    /// Identity of the instance.
    pub key: InstanceKey,
    /// Addresses, already split on commas, at least one.
    pub addrs: Vec<String>,
    /// Free text.
    pub version: String,
    /// Parsed metadata; `None` when the request had none.
    pub metadata: Option<BTreeMap<String, String>>,
    /// 1 or 2.
    pub status: u32,
    /// Client-supplied dirty timestamp (0 = none, use the stamp); apply refuses one more than
    /// [`MAX_CLIENT_AHEAD_NS`] ahead of the stamp.
    pub dirty_timestamp: i64,
}

/// A validated set request: parallel lists, `statuses` and `metadata` either empty (unchanged) or the same
/// length as `hostnames`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetArgs {
    /// Deploy env.
    pub env: String,
    /// Service name.
    pub appid: String,
    /// Zone the hostnames live in.
    pub zone: String,
    /// Instances to change, at least one.
    pub hostnames: Vec<String>,
    /// New status per hostname (1 or 2), or empty.
    pub statuses: Vec<u32>,
    /// Metadata to merge per hostname, or empty.
    pub metadata: Vec<BTreeMap<String, String>>,
    /// Client-supplied set timestamp (0 = use the stamp); apply refuses one more than
    /// [`MAX_CLIENT_AHEAD_NS`] ahead of the stamp.
    pub set_timestamp: i64,
}

/// What applying one command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied.
    Ok,
    /// The instance (or app, or zone) does not exist: -404 on the wire.
    NotFound,
    /// The command was refused as a whole, nothing changed: -400 on the wire, with the reason.
    Invalid(String),
    /// Eviction result: how many instances were actually removed.
    Evicted(u32),
}

/// Apply's answer for one entry: one outcome per command, in order. Blank and membership entries answer
/// an empty list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// One outcome per command of the batch.
    pub outcomes: Vec<Outcome>,
}
