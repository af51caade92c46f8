//! The registry's data: instances, their identities, and the per-app cursor.
//!
//! Invariants:
//! - An instance is identified by the tuple [`InstanceKey`] (env, appid, zone, hostname); keys are never
//!   concatenated strings, so ids containing `-` or `.` cannot collide.
//! - Every field here is replicated: it is written only by `apply` from a committed Raft entry, so every
//!   replica holds byte-identical values. Nothing here is read from a clock.
//! - The JSON form of [`Instance`] is the wire shape of bilibili/discovery (spec §3.1): field order, integer
//!   nanosecond timestamps, `metadata` as an object of strings or `null`, `addrs` an array or `null`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::addrs::Addrs;
use super::metadata::Metadata;

/// Instance status: ready to receive traffic.
pub const STATUS_UP: u32 = 1;
/// Instance status: intentionally out of traffic.
pub const STATUS_WAITING: u32 = 2;

/// Identity of one (appid, env) pair: the unit that owns a polling cursor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppKey {
    /// Deploy env, e.g. `dev`, `prod`.
    pub env: String,
    /// Service name, e.g. `main.arch.account-service`.
    pub appid: String,
}

/// Identity of one instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceKey {
    /// Deploy env.
    pub env: String,
    /// Service name.
    pub appid: String,
    /// Availability zone.
    pub zone: String,
    /// Instance id inside (appid, env, zone).
    pub hostname: String,
}

impl InstanceKey {
    /// The app this instance belongs to.
    pub fn app(&self) -> AppKey {
        AppKey { env: self.env.clone(), appid: self.appid.clone() }
    }
}

/// One registered instance, exactly as clients see it (spec §3.1). The registry keeps the Raft log index
/// that last wrote it (its revision) beside it, not in it, so this struct is exactly the wire shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Region, as given at register (may be empty).
    pub region: Arc<str>,
    /// Availability zone.
    pub zone: Arc<str>,
    /// Deploy env.
    pub env: Arc<str>,
    /// Service name.
    pub appid: Arc<str>,
    /// Instance id inside (appid, env, zone).
    pub hostname: Arc<str>,
    /// `scheme://host:port` addresses; `None` renders as JSON `null`.
    pub addrs: Option<Addrs>,
    /// Free text.
    pub version: Arc<str>,
    /// Free-form string map; `None` renders as JSON `null`.
    pub metadata: Option<Metadata>,
    /// 1 = up, 2 = waiting.
    pub status: u32,
    /// Time of the last register (leader stamp, ns).
    pub reg_timestamp: i64,
    /// Time the instance last became up (ns).
    pub up_timestamp: i64,
    /// Time of the last register; renews are not replicated, so this is not the last renew (ns).
    pub renew_timestamp: i64,
    /// Version for conflict resolution (ns).
    pub dirty_timestamp: i64,
    /// Time of the last change to this instance (ns).
    pub latest_timestamp: i64,
}

impl Instance {
    /// Takes `other`'s copies of every shared-able value (region, zone, env, appid, hostname, version,
    /// metadata) that is equal to this one's, so that instances of one zone hold one copy of each, and a
    /// re-registered instance keeps the hostname its lease key shares. Invisible to equality and
    /// serialization, which look at the values only.
    pub fn share_with(&mut self, other: &Instance) {
        for (mine, theirs) in [
            (&mut self.region, &other.region),
            (&mut self.hostname, &other.hostname),
            (&mut self.zone, &other.zone),
            (&mut self.env, &other.env),
            (&mut self.appid, &other.appid),
            (&mut self.version, &other.version),
        ] {
            if *mine == *theirs {
                *mine = Arc::clone(theirs);
            }
        }
        if let Some(metadata) = self.metadata.take() {
            self.metadata = Some(metadata.share_from(other.metadata.as_ref()));
        }
    }

    /// The tuple identity of this instance.
    pub fn key(&self) -> InstanceKey {
        InstanceKey {
            env: self.env.to_string(),
            appid: self.appid.to_string(),
            zone: self.zone.to_string(),
            hostname: self.hostname.to_string(),
        }
    }
}

/// The (env, appid, zone) part of an instance's identity, with the registry's strings: one per zone, shared
/// by the lease keys of its instances (see [`SharedKey`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ZoneKey {
    /// Deploy env.
    pub env: Arc<str>,
    /// Service name.
    pub appid: Arc<str>,
    /// Availability zone.
    pub zone: Arc<str>,
}

/// An [`InstanceKey`] made of shared parts: its zone's one [`ZoneKey`] and the stored instance's hostname.
/// What the leader's lease table holds, one per instance: 16 bytes and no allocation of its own (the
/// registry's `Hosts` hands them out). Compares and orders as the `InstanceKey` of the same values, and
/// hashes alike through [`KeyParts`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SharedKey {
    /// Env, appid and zone.
    pub zone: Arc<ZoneKey>,
    /// Instance id inside the zone.
    pub hostname: Arc<str>,
}

impl SharedKey {
    /// The owned form, for a command.
    pub fn to_key(&self) -> InstanceKey {
        InstanceKey {
            env: self.zone.env.to_string(),
            appid: self.zone.appid.to_string(),
            zone: self.zone.zone.to_string(),
            hostname: self.hostname.to_string(),
        }
    }
}

impl From<InstanceKey> for SharedKey {
    fn from(key: InstanceKey) -> Self {
        let zone = ZoneKey { env: key.env.into(), appid: key.appid.into(), zone: key.zone.into() };
        Self { zone: Arc::new(zone), hostname: key.hostname.into() }
    }
}

/// The four strings of an instance's identity, in key order: lets one table look up an [`InstanceKey`] and a
/// [`SharedKey`] alike (equal parts, equal hash).
pub trait KeyParts {
    /// `[env, appid, zone, hostname]`.
    fn parts(&self) -> [&str; 4];
}

impl KeyParts for InstanceKey {
    fn parts(&self) -> [&str; 4] {
        [&self.env, &self.appid, &self.zone, &self.hostname]
    }
}

impl KeyParts for SharedKey {
    fn parts(&self) -> [&str; 4] {
        [&self.zone.env, &self.zone.appid, &self.zone.zone, &self.hostname]
    }
}
