//! The discovery servers as the app `infra.discovery`, synthesized from the Raft membership.
//!
//! The Go SDK blocks at start-up until a poll returns at least one `infra.discovery` instance in its
//! env (spec §5.1, §5.5), so the servers are visible in **every** env. Nothing here is stored in the
//! registry: the node builds a [`Membership`] from openraft's membership and the view answers from it.
//!
//! Invariants: the answer is a pure function of (members, env, stamp); every instance is up; the cursor
//! is ≥ 1 and only moves when the node passes a larger stamp, which it must do on every membership
//! change. Clients log and compare the cursor as a Unix time in nanoseconds, as every other app's, so the
//! stamp is one: [`ChangeStamp`] gives each change `max(now, previous + 1)`.

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

/// A change cursor in Unix nanoseconds, for state that is not in the Raft log (the membership as this node
/// sees it; later also member liveness): each change of `K` gets `max(now, previous + 1)`, so the cursor is a
/// wall-clock time, strictly increases with every change, and never goes back even when the clock does.
/// Repeated observations of the same `K` keep the stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeStamp<K> {
    seen: Option<K>,
    stamp: i64,
}

impl<K> Default for ChangeStamp<K> {
    fn default() -> Self {
        Self { seen: None, stamp: 0 }
    }
}

impl<K: PartialEq> ChangeStamp<K> {
    /// The stamp of state `key` at `now_ns`: the previous stamp while `key` is the state seen last, else a
    /// new one, `max(now_ns, previous + 1)`.
    pub fn observe(&mut self, key: K, now_ns: i64) -> i64 {
        if self.seen.as_ref() != Some(&key) {
            self.stamp = now_ns.max(self.stamp.saturating_add(1));
            self.seen = Some(key);
        }
        self.stamp
    }
}

/// The cluster members and the stamp of the membership they come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    members: Vec<Member>,
    stamp: i64,
}

impl Membership {
    /// A membership; `stamp` (Unix ns) must grow with every membership change (see [`ChangeStamp`]).
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
        region: member.region.as_str().into(),
        zone: member.zone.as_str().into(),
        env: env.into(),
        appid: INFRA_APPID.into(),
        hostname: member.addr.as_str().into(),
        addrs: Some([format!("http://{}", member.addr)].into_iter().collect()),
        version: "".into(),
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
        assert_eq!((&*inst.appid, &*inst.hostname, inst.status), (INFRA_APPID, "127.0.0.1:7171", 1));
        assert_eq!(Membership::new(members.to_vec(), 0).cursor(), 1);
    }

    #[test]
    fn a_change_stamp_is_the_clock_at_each_change_and_never_goes_back() {
        let mut c = ChangeStamp::default();
        assert_eq!(c.observe(1, 1_000), 1_000, "first state: the clock");
        assert_eq!(c.observe(1, 5_000), 1_000, "same state: same stamp, however late");
        assert_eq!(c.observe(2, 7_000), 7_000, "a change: the clock when it is seen");
        assert_eq!(c.observe(3, 7_000), 7_001, "two changes in one clock tick still differ");
        assert_eq!(c.observe(4, 10), 7_002, "the clock went back: the cursor does not");
        assert_eq!(c.observe(3, 9_000), 9_000, "back to an earlier state is a change too");
        assert_eq!(c.observe(3, 9_500), 9_000);
        let mut top = ChangeStamp::default();
        top.observe(1, i64::MAX);
        assert_eq!(top.observe(2, 0), i64::MAX, "saturates instead of wrapping");
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
