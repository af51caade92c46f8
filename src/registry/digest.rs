//! A stable fingerprint of the whole replicated state, to check that replicas converged.
//!
//! The digest is FNV-1a over a canonical encoding written out by hand (not serde, not std's seeded
//! hasher): maps are walked in key order, every string and collection is length-prefixed, every
//! `Option` is tagged. Two registries have the same digest iff (barring hash collisions) they hold the
//! same apps, cursors, instances, revisions and high-water mark. The encoding destructures `Instance`,
//! so adding a field to it fails to compile here until the digest covers it.

use super::hash::Fnv64;
use super::metadata::Metadata;
use super::model::Instance;
use super::store::{AppEntry, Registry};

impl Registry {
    /// Stable 64-bit digest of every app, cursor, instance and revision (equal on converged replicas).
    pub fn digest(&self) -> u64 {
        let mut h = Fnv64::new();
        h.i64(self.high_water);
        h.len(self.apps.len());
        for (key, app) in &self.apps {
            h.str(&key.env);
            h.str(&key.appid);
            app_digest(&mut h, app);
        }
        h.finish()
    }
}

fn app_digest(h: &mut Fnv64, app: &AppEntry) {
    h.i64(app.latest_timestamp);
    h.len(app.zones.len());
    for (zone, hosts) in &app.zones {
        h.str(zone);
        h.len(hosts.len());
        for (hostname, stored) in hosts {
            h.str(hostname);
            h.u64(stored.revision);
            instance_digest(h, &stored.instance);
        }
    }
}

fn instance_digest(h: &mut Fnv64, inst: &Instance) {
    let Instance {
        region,
        zone,
        env,
        appid,
        hostname,
        addrs,
        version,
        metadata,
        status,
        reg_timestamp,
        up_timestamp,
        renew_timestamp,
        dirty_timestamp,
        latest_timestamp,
    } = inst;
    for s in [&**region, &**zone, &**env, &**appid, &**hostname] {
        h.str(s);
    }
    option_digest(h, addrs.as_ref(), |h, addrs| {
        h.len(addrs.len());
        addrs.iter().for_each(|a| h.str(a));
    });
    h.str(version);
    option_digest(h, metadata.as_ref(), map_digest);
    h.u64(u64::from(*status));
    for t in [reg_timestamp, up_timestamp, renew_timestamp, dirty_timestamp, latest_timestamp] {
        h.i64(*t);
    }
}

fn option_digest<T>(h: &mut Fnv64, value: Option<&T>, some: impl FnOnce(&mut Fnv64, &T)) {
    match value {
        None => h.bytes(&[0]),
        Some(v) => {
            h.bytes(&[1]);
            some(h, v);
        }
    }
}

fn map_digest(h: &mut Fnv64, map: &Metadata) {
    h.len(map.len());
    for (k, v) in map.iter() {
        h.str(k);
        h.str(v);
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::addrs::Addrs;
    use crate::registry::command::Command;
    use crate::registry::store::Registry;
    use crate::registry::testutil::*;

    fn sample() -> Registry {
        registry_with(&[key("dev", "demo", "z1", "a"), key("dev", "demo", "z2", "b")])
    }

    #[test]
    fn equal_states_have_equal_digests() {
        assert_eq!(sample().digest(), sample().digest());
        assert_eq!(Registry::new().digest(), Registry::new().digest());
        assert_ne!(sample().digest(), Registry::new().digest());
    }

    #[test]
    fn any_difference_changes_the_digest() {
        let base = sample();
        let a = key("dev", "demo", "z1", "a");
        let mut variants: Vec<Registry> = Vec::new();
        let mutate = |f: &dyn Fn(&mut Registry)| {
            let mut r = sample();
            f(&mut r);
            r
        };
        variants.push(mutate(&|r| r.high_water += 1));
        variants.push(mutate(&|r| {
            let keys: Vec<_> = r.apps.keys().cloned().collect();
            for key in keys {
                if let Some(app) = r.app_mut(&key) {
                    app.latest_timestamp += 1;
                }
            }
        }));
        let with_instance = |f: fn(&mut crate::registry::store::Stored)| {
            let mut r = sample();
            let app = r.app_mut(&a.app()).expect("app");
            let stored = app.zones.get_mut("z1").and_then(|h| h.get_mut("a")).expect("instance");
            f(stored);
            r
        };
        variants.push(with_instance(|s| s.revision += 1));
        variants.push(with_instance(|s| s.instance.region = format!("{}x", s.instance.region).into()));
        variants.push(with_instance(|s| s.instance.addrs = None));
        variants.push(with_instance(|s| s.instance.addrs = Some(Addrs::default())));
        variants.push(with_instance(|s| s.instance.version = format!("{}x", s.instance.version).into()));
        variants.push(with_instance(|s| s.instance.metadata = Some(map(&[]).into())));
        variants.push(with_instance(|s| s.instance.status = 2));
        variants.push(with_instance(|s| s.instance.reg_timestamp += 1));
        variants.push(with_instance(|s| s.instance.up_timestamp += 1));
        variants.push(with_instance(|s| s.instance.renew_timestamp += 1));
        variants.push(with_instance(|s| s.instance.dirty_timestamp += 1));
        variants.push(with_instance(|s| s.instance.latest_timestamp += 1));
        let mut removed = sample();
        removed.apply(9, &batch(1, vec![Command::Cancel(a.clone())]));
        variants.push(removed);
        let mut digests: Vec<u64> = variants.iter().map(Registry::digest).collect();
        digests.push(base.digest());
        let n = digests.len();
        digests.sort_unstable();
        digests.dedup();
        assert_eq!(digests.len(), n, "every variant has its own digest");
    }
}
