//! The discovery servers as the app `infra.discovery`, synthesized from the Raft membership.
//!
//! The Go SDK blocks at start-up until a poll returns at least one `infra.discovery` instance in its
//! env (spec §5.1, §5.5), so the servers are visible in **every** env. Nothing here is stored in the
//! registry: the node builds a [`Membership`] from openraft's membership and the view answers from it.
//!
//! Invariants: the answer is a pure function of (members, env, stamp); every instance is up; the cursor
//! is ≥ 1 and only moves when the node passes a larger stamp, which it must do on every membership
//! change (the membership's log index is a suitable stamp: strictly increasing on one node).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Instance, STATUS_UP};
use super::view::InstanceInfo;

/// The appid under which the discovery servers appear.
pub const INFRA_APPID: &str = "infra.discovery";

/// One discovery server as the membership knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft node id.
    pub id: u64,
    /// Advertised `host:port` (API, Raft and internal routes share it).
    pub addr: String,
    /// The server's zone.
    pub zone: String,
    /// The server's region (may be empty).
    pub region: String,
}

/// The cluster members and the stamp of the membership they come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    members: Vec<Member>,
    stamp: i64,
}

impl Membership {
    /// A membership; `stamp` must grow with every membership change (e.g. its log index).
    pub fn new(mut members: Vec<Member>, stamp: i64) -> Self {
        // Order by id so the answer does not depend on how the caller collected the members.
        members.sort_by_key(|m| m.id);
        Self { members, stamp }
    }

    /// The members, ordered by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The polling cursor of `infra.discovery` (≥ 1, never 0: clients reject a 0 cursor).
    pub fn cursor(&self) -> i64 {
        self.stamp.max(1)
    }

    /// The full `infra.discovery` answer for `env` (all zones, every instance up).
    pub fn instance_info(&self, env: &str) -> InstanceInfo {
        infra_discovery(&self.members, env, self.stamp)
    }
}

/// `infra.discovery` for `env`: one up instance per member, hostname = its address, `addrs =
/// ["http://<addr>"]`, every timestamp and the cursor = `max(stamp, 1)`.
pub fn infra_discovery(members: &[Member], env: &str, stamp: i64) -> InstanceInfo {
    let at = stamp.max(1);
    let mut instances: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    for member in members {
        instances.entry(member.zone.clone()).or_default().push(member_instance(member, env, at));
    }
    // Hostname order inside a zone, like registry answers.
    instances.values_mut().for_each(|list| list.sort_by(|a, b| a.hostname.cmp(&b.hostname)));
    InstanceInfo { instances, latest_timestamp: at }
}

fn member_instance(member: &Member, env: &str, at: i64) -> Instance {
    Instance {
        region: member.region.clone(),
        zone: member.zone.clone(),
        env: env.to_owned(),
        appid: INFRA_APPID.to_owned(),
        hostname: member.addr.clone(),
        addrs: Some(vec![format!("http://{}", member.addr)]),
        version: String::new(),
        metadata: None,
        status: STATUS_UP,
        reg_timestamp: at,
        up_timestamp: at,
        renew_timestamp: at,
        dirty_timestamp: at,
        latest_timestamp: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesis_is_pure_and_never_has_a_zero_cursor() {
        let members = [Member { id: 1, addr: "127.0.0.1:7171".into(), zone: "".into(), region: "".into() }];
        let a = infra_discovery(&members, "dev", 0);
        assert_eq!(a, infra_discovery(&members, "dev", 0));
        assert_eq!(a.latest_timestamp, 1);
        let inst = &a.instances[""][0];
        assert_eq!((inst.appid.as_str(), inst.hostname.as_str(), inst.status), (INFRA_APPID, "127.0.0.1:7171", 1));
        assert_eq!(Membership::new(members.to_vec(), 0).cursor(), 1);
    }

    #[test]
    fn member_order_does_not_matter() {
        let m = |id: u64| Member { id, addr: format!("h{id}:1"), zone: "z".into(), region: "r".into() };
        let one = Membership::new(vec![m(2), m(1)], 5);
        let two = Membership::new(vec![m(1), m(2)], 5);
        assert_eq!(one, two);
        assert_eq!(one.instance_info("dev"), two.instance_info("dev"));
    }
}
