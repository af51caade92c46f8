//! Deterministic apply: one committed [`Batch`] in, a new state and one [`Outcome`] per command out.
//!
//! Contract (the state machine's, as in hashicorp's `FSM.Apply`):
//! - Apply reads nothing but the state, the log index and the batch: no clock, no randomness, no I/O.
//!   Every timestamp written is the batch's leader stamp (or a client-supplied dirty/set timestamp), so
//!   every replica that applies the same log holds the same bytes and hands out the same cursors.
//! - Apply is total: a command that cannot be applied yields `NotFound`/`Invalid` and changes nothing.
//! - A stored client timestamp (`dirty_timestamp`, `set_timestamp`) is never more than
//!   [`MAX_CLIENT_AHEAD_NS`] ahead of the entry's leader stamp: such a command is `Invalid` (-400). A stored
//!   `dirty_timestamp` already that far ahead (written before this bound existed, or the leader's clock went
//!   back by more than the bound) no longer wins against a register: it would pin the instance forever.
//! - Besides the outcomes, apply reports its side effects in [`Applied`]: which apps' cursors moved (to
//!   wake exactly their long-pollers) and which leases appeared or vanished (for the leader's lessor).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::addrs::Addrs;
use super::command::{
    check_client_timestamp, Batch, BatchResult, Command, Outcome, RegisterArgs, SetArgs, MAX_CLIENT_AHEAD_NS,
};
use super::metadata::Metadata;
use super::model::{AppKey, Instance, InstanceKey, SharedKey, STATUS_UP, STATUS_WAITING};
use super::store::{Hosts, Registry, Stored};

/// What applying one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// One outcome per command, in order: the answer for each proposer.
    pub result: BatchResult,
    /// Apps whose cursor moved, or that disappeared: wake their long-pollers (and only theirs).
    pub changed: BTreeSet<AppKey>,
    /// Lease changes, in apply order, for the leader's lessor (followers ignore them).
    pub leases: Vec<LeaseEvent>,
}

/// A change to the set of instances that hold a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// A register touched the instance (new, replaced, or kept because older): it now has this revision,
    /// and the register is proof of life, so its lease starts afresh.
    Registered {
        /// The instance, sharing the registry's strings.
        key: SharedKey,
        /// Its new revision (the log index of the register).
        revision: u64,
    },
    /// The instance was cancelled or evicted.
    Removed(InstanceKey),
}

impl Registry {
    /// Applies the batch committed at log `index`, command by command, in order.
    pub fn apply(&mut self, index: u64, batch: &Batch) -> Applied {
        let mut fx = Applied::default();
        for command in batch.commands.iter() {
            let outcome = match command {
                Command::Register(args) => self.apply_register(index, batch.stamp_ns, args, &mut fx),
                Command::Cancel(key) => self.apply_cancel(batch.stamp_ns, key, &mut fx),
                Command::Set(args) => self.apply_set(batch.stamp_ns, args, &mut fx),
                Command::Evict(victims) => self.apply_evict(batch.stamp_ns, victims, &mut fx),
            };
            fx.result.outcomes.push(outcome);
        }
        fx
    }

    /// Spec §2.1/§4.1. A re-register keeps the old `up_timestamp`; one whose dirty timestamp is older
    /// than the stored one keeps the old instance. Either way the revision and the cursor move.
    fn apply_register(&mut self, index: u64, stamp: i64, args: &RegisterArgs, fx: &mut Applied) -> Outcome {
        if let Err(reason) = check_register(args, stamp) {
            return Outcome::Invalid(reason);
        }
        let mut fresh = new_instance(args, stamp);
        let key = &args.key;
        let app = key.app();
        let entry = Arc::make_mut(self.apps.entry(app.clone()).or_default());
        let hosts = entry.zones.entry(key.zone.clone()).or_default();
        share_metadata(&mut fresh, hosts, &key.hostname);
        match hosts.get_mut(&key.hostname) {
            Some(stored) => {
                let pinned = stored.instance.dirty_timestamp > stamp.saturating_add(MAX_CLIENT_AHEAD_NS);
                if fresh.dirty_timestamp >= stored.instance.dirty_timestamp || pinned {
                    let up_timestamp = stored.instance.up_timestamp;
                    stored.instance = Instance { up_timestamp, ..fresh };
                }
                stored.revision = index;
            }
            None => {
                hosts.insert(Stored { instance: fresh, revision: index });
            }
        }
        // Just stored: the key is there (the fallback allocates, and is never taken).
        let shared = hosts.shared_key(&key.hostname).unwrap_or_else(|| key.clone().into());
        fx.leases.push(LeaseEvent::Registered { key: shared, revision: index });
        self.touch(app, stamp, fx);
        Outcome::Ok
    }

    /// Spec §2.3/§4.3: remove, bump the cursor (a no-op when the app vanished with it).
    fn apply_cancel(&mut self, stamp: i64, key: &InstanceKey, fx: &mut Applied) -> Outcome {
        if !self.remove_if(key, |_| true) {
            return Outcome::NotFound;
        }
        fx.leases.push(LeaseEvent::Removed(key.clone()));
        self.touch(key.app(), stamp, fx);
        Outcome::Ok
    }

    /// Spec §2.4 with the DESIGN.md fixes: validate everything first (all or nothing), then change the
    /// instances and bump the cursor, which the original forgot.
    fn apply_set(&mut self, stamp: i64, args: &SetArgs, fx: &mut Applied) -> Outcome {
        let app = AppKey { env: args.env.clone(), appid: args.appid.clone() };
        let Some(hosts) = self.app_mut(&app).and_then(|entry| entry.zones.get_mut(&args.zone)) else {
            return Outcome::NotFound;
        };
        if let Err(reason) = check_set(args, hosts, stamp) {
            return Outcome::Invalid(reason);
        }
        let at = if args.set_timestamp > 0 { args.set_timestamp } else { stamp };
        for (i, hostname) in args.hostnames.iter().enumerate() {
            // Checked above: every hostname exists.
            let Some(stored) = hosts.get_mut(hostname) else { continue };
            set_one(&mut stored.instance, args.statuses.get(i).copied(), args.metadata.get(i), at);
        }
        self.touch(app, stamp, fx);
        Outcome::Ok
    }

    /// Leader-decided expiry: compare-and-delete on the revision, then bump every touched app once.
    fn apply_evict(&mut self, stamp: i64, victims: &[(InstanceKey, u64)], fx: &mut Applied) -> Outcome {
        let mut touched = BTreeSet::new();
        let mut removed = 0u32;
        for (key, revision) in victims {
            if self.remove_if(key, |stored| stored.revision == *revision) {
                removed = removed.saturating_add(1);
                fx.leases.push(LeaseEvent::Removed(key.clone()));
                touched.insert(key.app());
            }
        }
        for app in touched {
            self.touch(app, stamp, fx);
        }
        Outcome::Evicted(removed)
    }

    /// Records `app` as changed and advances its cursor if it still exists.
    fn touch(&mut self, app: AppKey, stamp: i64, fx: &mut Applied) {
        self.bump_cursor(&app, stamp);
        fx.changed.insert(app);
    }
}

/// Re-checks what the HTTP layer validated, so apply stays total and the stored data keeps its shape; the
/// bound on `dirty_timestamp` is authoritative here, against the leader stamp (the handler's check against
/// its own clock only saves a round trip).
fn check_register(args: &RegisterArgs, stamp: i64) -> Result<(), String> {
    let key = &args.key;
    if key.env.is_empty() || key.appid.is_empty() || key.zone.is_empty() || key.hostname.is_empty() {
        return Err("env, appid, zone and hostname are required".to_owned());
    }
    if args.addrs.is_empty() || args.addrs.iter().any(String::is_empty) {
        return Err("addrs must hold at least one non-empty address".to_owned());
    }
    check_client_timestamp("dirty_timestamp", args.dirty_timestamp, stamp)?;
    check_status(args.status)
}

fn check_status(status: u32) -> Result<(), String> {
    match status {
        STATUS_UP | STATUS_WAITING => Ok(()),
        other => Err(format!("status must be 1 or 2, got {other}")),
    }
}

/// Everything that could make a set fail half-way, checked before anything is changed.
fn check_set(args: &SetArgs, hosts: &Hosts, stamp: i64) -> Result<(), String> {
    check_client_timestamp("set_timestamp", args.set_timestamp, stamp)?;
    let n = args.hostnames.len();
    if n == 0 {
        return Err("at least one hostname is required".to_owned());
    }
    if !args.statuses.is_empty() && args.statuses.len() != n {
        return Err(format!("{} statuses for {n} hostnames", args.statuses.len()));
    }
    if !args.metadata.is_empty() && args.metadata.len() != n {
        return Err(format!("{} metadata for {n} hostnames", args.metadata.len()));
    }
    if let Some(missing) = args.hostnames.iter().find(|h| !hosts.contains_key(h)) {
        return Err(format!("unknown hostname {missing}"));
    }
    args.statuses.iter().try_for_each(|&status| check_status(status))
}

/// Changes one instance as `/set` does: status (a switch to up restarts `up_timestamp`), metadata merged
/// key by key into the existing map, and the instance's version timestamps.
fn set_one(inst: &mut Instance, status: Option<u32>, metadata: Option<&BTreeMap<String, String>>, at: i64) {
    if let Some(status) = status {
        if status == STATUS_UP && inst.status != STATUS_UP {
            inst.up_timestamp = at;
        }
        inst.status = status;
    }
    if let Some(metadata) = metadata {
        inst.metadata = Some(inst.metadata.take().unwrap_or_default().merged(metadata));
    }
    inst.dirty_timestamp = at;
    inst.latest_timestamp = at;
}

/// Equal values are shared with the instance it replaces or the zone's first instance (see `metadata`).
fn share_metadata(fresh: &mut Instance, hosts: &Hosts, hostname: &str) {
    if let Some(neighbour) = hosts.get(hostname).or_else(|| hosts.values().next()) {
        fresh.share_with(&neighbour.instance);
    }
}

/// The instance a register creates: every timestamp is the leader stamp, except a client-supplied
/// dirty timestamp.
fn new_instance(args: &RegisterArgs, stamp: i64) -> Instance {
    let key = &args.key;
    Instance {
        region: args.region.as_str().into(),
        zone: key.zone.as_str().into(),
        env: key.env.as_str().into(),
        appid: key.appid.as_str().into(),
        hostname: key.hostname.as_str().into(),
        addrs: Some(Addrs::from(args.addrs.as_slice())),
        version: args.version.as_str().into(),
        metadata: args.metadata.clone().map(Metadata::from),
        status: args.status,
        reg_timestamp: stamp,
        up_timestamp: stamp,
        renew_timestamp: stamp,
        dirty_timestamp: if args.dirty_timestamp > 0 { args.dirty_timestamp } else { stamp },
        latest_timestamp: stamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::command::Command;
    use crate::registry::testutil::*;

    fn cursor(reg: &Registry) -> i64 {
        reg.cursor("dev", "demo").unwrap_or(0)
    }

    #[test]
    fn cursor_strictly_increases_and_is_identical_on_replicas_even_when_the_stamp_goes_back() {
        let a = key("dev", "demo", "z1", "a");
        let b = key("dev", "demo", "z1", "b");
        let batches = [
            batch(100, vec![register(&a)]),
            batch(100, vec![register(&b)]),
            batch(50, vec![Command::Cancel(b.clone())]),
            batch(200, vec![register(&b), register(&b)]),
            batch(150, vec![Command::Set(set_args("dev", "demo", "z1", &["a"]))]),
        ];
        let (mut r1, mut r2) = (Registry::new(), Registry::new());
        let mut seen = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let fx1 = r1.apply(i as u64 + 1, b);
            let fx2 = r2.apply(i as u64 + 1, b);
            assert_eq!(fx1, fx2);
            assert_eq!(cursor(&r1), cursor(&r2));
            seen.push(cursor(&r1));
        }
        // max(stamp, previous + 1); two registers in one batch bump twice.
        assert_eq!(seen, vec![100, 101, 102, 201, 202]);
        assert_eq!(r1, r2);
        assert_eq!(r1.digest(), r2.digest());
    }

    #[test]
    fn a_recreated_app_gets_a_cursor_above_its_old_one() {
        let a = key("dev", "demo", "z1", "a");
        let mut reg = Registry::new();
        reg.apply(1, &batch(1000, vec![register(&a)]));
        let fx = reg.apply(2, &batch(1001, vec![Command::Cancel(a.clone())]));
        assert!(reg.is_empty(), "last instance gone: the app and its cursor go too");
        assert!(fx.changed.contains(&a.app()), "pollers of a vanished app are still woken");
        // The leader's clock went back: the new cursor must still be above 1000.
        reg.apply(3, &batch(10, vec![register(&a)]));
        assert_eq!(reg.cursor("dev", "demo"), Some(1001));
    }

    #[test]
    fn register_stamps_every_timestamp_and_honours_a_client_dirty_timestamp() {
        let a = key("dev", "demo", "z1", "a");
        let mut reg = Registry::new();
        let mut args = register_args(&a);
        args.dirty_timestamp = 77;
        let fx = reg.apply(5, &batch(1000, vec![Command::Register(args)]));
        assert_eq!(fx.result.outcomes, vec![Outcome::Ok]);
        assert_eq!(fx.leases, vec![LeaseEvent::Registered { key: a.clone().into(), revision: 5 }]);
        let stored = reg.get(&a).expect("registered");
        assert_eq!(stored.revision, 5);
        let i = &stored.instance;
        assert_eq!(
            (i.reg_timestamp, i.up_timestamp, i.renew_timestamp, i.latest_timestamp, i.dirty_timestamp),
            (1000, 1000, 1000, 1000, 77)
        );
        assert_eq!(i.addrs.as_ref().map(|a| a.to_vec()), Some(vec!["grpc://a:9000".to_owned()]));
        assert_eq!(i.key(), a);
    }

    #[test]
    fn reregister_replaces_the_instance_but_keeps_up_timestamp() {
        let a = key("dev", "demo", "z1", "a");
        let mut reg = Registry::new();
        reg.apply(1, &batch(1000, vec![register(&a)]));
        let mut args = register_args(&a);
        args.addrs = vec!["http://new:1".into()];
        args.version = "v2".into();
        args.metadata = Some(map(&[("k", "v")]));
        reg.apply(2, &batch(2000, vec![Command::Register(args)]));
        let stored = reg.get(&a).expect("still there");
        assert_eq!(stored.revision, 2);
        let i = &stored.instance;
        assert_eq!(i.addrs.as_ref().map(|a| a.to_vec()), Some(vec!["http://new:1".to_owned()]));
        assert_eq!((&*i.version, i.metadata.clone()), ("v2", Some(map(&[("k", "v")]).into())));
        assert_eq!((i.up_timestamp, i.reg_timestamp, i.dirty_timestamp), (1000, 2000, 2000));
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn reregister_with_an_older_dirty_timestamp_keeps_the_old_instance_but_moves_revision_and_cursor() {
        let a = key("dev", "demo", "z1", "a");
        let mut reg = Registry::new();
        let mut newer = register_args(&a);
        newer.dirty_timestamp = 500;
        reg.apply(1, &batch(1000, vec![Command::Register(newer)]));
        let before = reg.get(&a).expect("registered").instance.clone();
        let mut older = register_args(&a);
        older.dirty_timestamp = 400;
        older.version = "old".into();
        let fx = reg.apply(2, &batch(2000, vec![Command::Register(older)]));
        assert_eq!(fx.result.outcomes, vec![Outcome::Ok]);
        let stored = reg.get(&a).expect("kept");
        assert_eq!(stored.instance, before);
        assert_eq!(stored.revision, 2, "the register is still proof of life for the lease");
        assert_eq!(reg.cursor("dev", "demo"), Some(2000));
        assert_eq!(fx.leases, vec![LeaseEvent::Registered { key: a.into(), revision: 2 }]);
    }

    const MINUTE: i64 = 60 * 1_000_000_000;

    #[test]
    fn issue_11_a_dirty_timestamp_far_ahead_of_the_leader_stamp_is_refused() {
        let a = key("dev", "demo", "z1", "a");
        let now = 1_700_000_000_000_000_000;
        let mut reg = Registry::new();
        reg.apply(1, &batch(now, vec![register(&a)]));
        let before = reg.clone();
        for far in [i64::MAX, now + 10 * MINUTE + 1] {
            let mut args = register_args(&a);
            args.dirty_timestamp = far;
            let fx = reg.apply(2, &batch(now, vec![Command::Register(args)]));
            let [Outcome::Invalid(why)] = fx.result.outcomes.as_slice() else { panic!("{:?}", fx.result) };
            assert!(why.contains("\"dirty_timestamp\"") && why.contains(&far.to_string()), "{why}");
            assert!(fx.changed.is_empty() && fx.leases.is_empty(), "nothing happened: {fx:?}");
            assert_eq!(reg, before, "a refused register changes nothing, not even the cursor");
        }
        // Up to 10 minutes ahead is clock skew, accepted and honoured.
        let mut skewed = register_args(&a);
        skewed.dirty_timestamp = now + 10 * MINUTE;
        let fx = reg.apply(3, &batch(now, vec![Command::Register(skewed)]));
        assert_eq!(fx.result.outcomes, vec![Outcome::Ok]);
        assert_eq!(reg.get(&a).map(|s| s.instance.dirty_timestamp), Some(now + 10 * MINUTE));
        // The bound is the entry's stamp, not a clock: the same command on a later entry is judged anew.
        let mut args = register_args(&a);
        args.dirty_timestamp = now + 15 * MINUTE;
        let fx = reg.apply(4, &batch(now + 5 * MINUTE, vec![Command::Register(args)]));
        assert_eq!(fx.result.outcomes, vec![Outcome::Ok]);
    }

    #[test]
    fn issue_11_a_set_timestamp_far_ahead_is_refused_as_it_would_pin_dirty_timestamp() {
        let a = key("dev", "demo", "z1", "a");
        let now = 1_700_000_000_000_000_000;
        let mut reg = registry_with(std::slice::from_ref(&a));
        let before = reg.clone();
        let mut set = set_args("dev", "demo", "z1", &["a"]);
        set.statuses = vec![2];
        set.set_timestamp = i64::MAX;
        let fx = reg.apply(5, &batch(now, vec![Command::Set(set.clone())]));
        let [Outcome::Invalid(why)] = fx.result.outcomes.as_slice() else { panic!("{:?}", fx.result) };
        assert!(why.contains("\"set_timestamp\""), "{why}");
        assert_eq!(reg, before);
        set.set_timestamp = now + MINUTE;
        assert_eq!(reg.apply(6, &batch(now, vec![Command::Set(set)])).result.outcomes, vec![Outcome::Ok]);
        // A later register (dirty = its stamp, below the set's timestamp) is kept out as "older": that is
        // the documented conflict rule, and within the bound it ends once the clock passes the set.
        reg.apply(7, &batch(now + 2 * MINUTE, vec![register(&a)]));
        assert_eq!(reg.get(&a).map(|s| s.instance.reg_timestamp), Some(now + 2 * MINUTE));
    }

    #[test]
    fn issue_11_an_instance_pinned_before_the_bound_existed_is_released_by_the_next_register() {
        let a = key("dev", "demo", "z1", "a");
        let now = 1_700_000_000_000_000_000;
        // What an older version stored for `dirty_timestamp=9223372036854775807` (here through a stamp far in
        // the future, the only way past the bound now).
        let mut reg = Registry::new();
        let mut args = register_args(&a);
        args.dirty_timestamp = i64::MAX;
        reg.apply(1, &batch(i64::MAX - MINUTE, vec![Command::Register(args)]));
        assert_eq!(reg.get(&a).map(|s| s.instance.dirty_timestamp), Some(i64::MAX));
        let mut fresh = register_args(&a);
        fresh.version = "v2".into();
        reg.apply(2, &batch(now, vec![Command::Register(fresh)]));
        let i = &reg.get(&a).expect("there").instance;
        assert_eq!((&*i.version, i.dirty_timestamp, i.reg_timestamp), ("v2", now, now), "replaced");
    }

    #[test]
    fn invalid_register_changes_nothing() {
        let a = key("dev", "demo", "z1", "a");
        let mut reg = Registry::new();
        let mut no_addr = register_args(&a);
        no_addr.addrs.clear();
        let fx = reg.apply(1, &batch(1000, vec![register_with_status(&a, 3), Command::Register(no_addr)]));
        assert!(matches!(fx.result.outcomes.as_slice(), [Outcome::Invalid(_), Outcome::Invalid(_)]));
        assert!(reg.is_empty());
        assert_eq!(reg.high_water(), 0);
        assert!(fx.changed.is_empty() && fx.leases.is_empty());
    }

    #[test]
    fn cancel_removes_prunes_and_bumps() {
        let (a, b, c) = (key("dev", "demo", "z1", "a"), key("dev", "demo", "z1", "b"), key("dev", "demo", "z2", "c"));
        let mut reg = registry_with(&[a.clone(), b.clone(), c.clone()]);
        let fx = reg.apply(4, &batch(10, vec![Command::Cancel(c.clone()), Command::Cancel(c.clone())]));
        assert_eq!(fx.result.outcomes, vec![Outcome::Ok, Outcome::NotFound]);
        assert_eq!(fx.leases, vec![LeaseEvent::Removed(c.clone())]);
        assert!(reg.zone("dev", "demo", "z2").is_none(), "empty zone removed");
        assert_eq!(reg.cursor("dev", "demo"), Some(3001));
        assert_eq!(fx.changed.into_iter().collect::<Vec<_>>(), vec![a.app()]);
        let fx = reg.apply(5, &batch(5000, vec![Command::Cancel(key("dev", "other", "z1", "a"))]));
        assert_eq!(fx.result.outcomes, vec![Outcome::NotFound]);
        assert!(fx.changed.is_empty());
        assert_eq!(reg.len(), 2);
    }

    #[test]
    fn set_is_all_or_nothing() {
        let (a, b) = (key("dev", "demo", "z1", "a"), key("dev", "demo", "z1", "b"));
        let mut reg = registry_with(&[a, b]);
        let before = reg.clone();
        let mut unknown_host = set_args("dev", "demo", "z1", &["a", "nope"]);
        unknown_host.statuses = vec![2, 2];
        let mut bad_status = set_args("dev", "demo", "z1", &["a", "b"]);
        bad_status.statuses = vec![2, 3];
        let mut short = set_args("dev", "demo", "z1", &["a", "b"]);
        short.metadata = vec![map(&[("k", "v")])];
        let empty = set_args("dev", "demo", "z1", &[]);
        let cmds = [unknown_host, bad_status, short, empty].map(Command::Set).to_vec();
        let fx = reg.apply(3, &batch(9000, cmds));
        assert!(fx.result.outcomes.iter().all(|o| matches!(o, Outcome::Invalid(_))), "{:?}", fx.result);
        let cmds = [set_args("dev", "nope", "z1", &["a"]), set_args("dev", "demo", "z9", &["a"])];
        let fx2 = reg.apply(4, &batch(9000, cmds.map(Command::Set).to_vec()));
        assert_eq!(fx2.result.outcomes, vec![Outcome::NotFound, Outcome::NotFound]);
        assert_eq!(reg, before, "a refused set changes nothing, not even the cursor");
        assert!(fx.changed.is_empty() && fx2.changed.is_empty());
    }

    #[test]
    fn set_changes_status_and_merges_metadata_and_bumps_the_cursor() {
        let a = key("dev", "demo", "z1", "a");
        let mut reg = Registry::new();
        let mut args = register_args(&a);
        args.metadata = Some(map(&[("a", "1"), ("b", "2")]));
        reg.apply(1, &batch(1000, vec![Command::Register(args)]));

        let mut down = set_args("dev", "demo", "z1", &["a"]);
        down.statuses = vec![2];
        down.metadata = vec![map(&[("b", "3"), ("c", "4")])];
        let fx = reg.apply(2, &batch(900, vec![Command::Set(down)]));
        assert_eq!(fx.result.outcomes, vec![Outcome::Ok]);
        assert_eq!(fx.changed.into_iter().collect::<Vec<_>>(), vec![a.app()]);
        assert!(fx.leases.is_empty(), "set is not proof of life");
        assert_eq!(reg.cursor("dev", "demo"), Some(1001), "set advances the cursor (fix of the original)");
        let i = &reg.get(&a).expect("there").instance;
        assert_eq!(i.status, 2);
        assert_eq!(i.metadata, Some(map(&[("a", "1"), ("b", "3"), ("c", "4")]).into()));
        assert_eq!((i.up_timestamp, i.dirty_timestamp, i.latest_timestamp), (1000, 900, 900));

        let mut up = set_args("dev", "demo", "z1", &["a"]);
        up.statuses = vec![1];
        up.set_timestamp = 5555;
        reg.apply(3, &batch(6000, vec![Command::Set(up)]));
        let stored = reg.get(&a).expect("there");
        let i = &stored.instance;
        assert_eq!((i.status, i.up_timestamp, i.dirty_timestamp, i.latest_timestamp), (1, 5555, 5555, 5555));
        assert_eq!(i.metadata, Some(map(&[("a", "1"), ("b", "3"), ("c", "4")]).into()), "no metadata: unchanged");
        assert_eq!(stored.revision, 1, "set keeps the revision, so the lessor's eviction still matches");
        assert_eq!(reg.cursor("dev", "demo"), Some(6000));
    }

    #[test]
    fn set_into_null_metadata_creates_the_map() {
        let a = key("dev", "demo", "z1", "a");
        let mut reg = registry_with(std::slice::from_ref(&a));
        let mut args = set_args("dev", "demo", "z1", &["a"]);
        args.metadata = vec![map(&[("weight", "10")])];
        reg.apply(2, &batch(5000, vec![Command::Set(args)]));
        assert_eq!(reg.get(&a).expect("there").instance.metadata, Some(map(&[("weight", "10")]).into()));
    }

    #[test]
    fn evict_is_compare_and_delete() {
        let (a, b) = (key("dev", "demo", "z1", "a"), key("dev", "demo", "z2", "b"));
        let mut reg = registry_with(&[a.clone(), b.clone()]);
        // `a` re-registers after the leader decided to evict it at revision 1.
        reg.apply(3, &batch(3000, vec![register(&a)]));
        let victims = vec![(a.clone(), 1), (b.clone(), 2), (key("dev", "gone", "z1", "x"), 1)];
        let fx = reg.apply(4, &batch(100, vec![Command::Evict(victims)]));
        assert_eq!(fx.result.outcomes, vec![Outcome::Evicted(1)]);
        assert_eq!(fx.leases, vec![LeaseEvent::Removed(b.clone())]);
        assert!(reg.get(&a).is_some(), "re-registered instance survives");
        assert!(reg.get(&b).is_none());
        assert_eq!(reg.cursor("dev", "demo"), Some(3001), "one bump per touched app");
        assert_eq!(fx.changed.into_iter().collect::<Vec<_>>(), vec![a.app()]);
    }

    #[test]
    fn apps_are_keyed_by_tuple_not_by_concatenation() {
        // "a-b" + "c" and "a" + "b-c" collide in the original's "appid-env" keys.
        let x = key("c", "a-b", "z", "h");
        let y = key("b-c", "a", "z", "h");
        let reg = registry_with(&[x.clone(), y.clone()]);
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.get(&x).map(|s| s.instance.key()), Some(x));
        assert_eq!(reg.get(&y).map(|s| s.instance.key()), Some(y));
    }
}
