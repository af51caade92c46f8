//! Encoded fetch answers, kept per (env, appid, zone filter, status mask) and reused while the app is
//! unchanged: a fetch of an unchanged app costs a map lookup instead of cloning and encoding every
//! instance (those were most of a fetch's CPU).
//!
//! Invariants:
//! - An entry is valid only for the app cursor it was encoded at. Every change to an app moves its cursor
//!   strictly up, and cursors never repeat within a registry's history, even across the app's removal and
//!   re-registration (`registry::store`). Renews change nothing that a fetch shows. So an entry whose
//!   cursor equals the app's current cursor holds exactly the bytes a fresh encoding would give.
//! - Lookups and fills happen under the registry's read lock, so the cursor read and the encoded state
//!   are the same state.
//! - Bounded: when the cached bytes pass [`MAX_CACHED_BYTES`] everything is dropped and refilled on
//!   demand (entries of removed apps go with it). `-404` answers and `infra.discovery` are never cached.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;

use super::envelope::Envelope;
use crate::registry::store::Registry;

/// Most bytes of encoded answers kept at once.
pub(crate) const MAX_CACHED_BYTES: usize = 32 << 20;

#[derive(Debug)]
struct Entry {
    cursor: i64,
    body: Bytes,
}

#[derive(Debug, Default)]
struct Entries {
    by_request: HashMap<String, Entry>,
    bytes: usize,
}

/// The cache of one node. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct FetchCache {
    entries: Mutex<Entries>,
}

/// Outcome of a fetch: the body of a success envelope, or nothing to show (-404).
pub(crate) type Encoded = Result<Option<Bytes>, serde_json::Error>;

impl FetchCache {
    /// The `{"code":0,…,"data":{instances,latest_timestamp}}` body of spec §2.5 for this request, from the
    /// cache when the app has not changed since it was encoded. `Ok(None)`: unknown app or absent zone.
    pub fn fetch(&self, registry: &Registry, env: &str, appid: &str, zone: Option<&str>, status: u32) -> Encoded {
        let Some(cursor) = registry.cursor(env, appid) else { return Ok(None) };
        let key = request_key(env, appid, zone, status);
        if let Some(entry) = self.lock().by_request.get(&key) {
            if entry.cursor == cursor {
                return Ok(Some(entry.body.clone()));
            }
        }
        let Some(info) = registry.fetch(env, appid, zone, status) else { return Ok(None) };
        let body = Bytes::from(Envelope::ok_data(info).to_json()?);
        let mut entries = self.lock();
        if entries.bytes + body.len() > MAX_CACHED_BYTES {
            entries.by_request.clear();
            entries.bytes = 0;
        }
        entries.bytes += body.len();
        if let Some(old) = entries.by_request.insert(key, Entry { cursor, body: body.clone() }) {
            entries.bytes -= old.body.len();
        }
        Ok(Some(body))
    }

    /// Number of cached answers (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().by_request.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // The map is consistent after every statement, so a panic elsewhere never leaves it broken.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One string per distinct request; `\0` cannot occur in a validated parameter, so keys do not collide.
fn request_key(env: &str, appid: &str, zone: Option<&str>, status: u32) -> String {
    let zone = zone.unwrap_or("");
    let mut key = String::with_capacity(env.len() + appid.len() + zone.len() + 8);
    for part in [env, appid, zone] {
        key.push_str(part);
        key.push('\0');
    }
    key.push_str(&status.to_string());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::testutil::{batch, key, register, register_with_status};
    use crate::registry::view::{MASK_ALL, MASK_UP};

    fn encoded(registry: &Registry, zone: Option<&str>, status: u32) -> Option<Bytes> {
        let info = registry.fetch("prod", "app", zone, status)?;
        Some(Bytes::from(Envelope::ok_data(info).to_json().expect("test setup")))
    }

    fn apply(registry: &mut Registry, index: u64, commands: Vec<crate::registry::command::Command>) {
        let _ = registry.apply(index, &batch(index as i64 * 1000, commands));
    }

    #[test]
    fn cached_answers_equal_fresh_encodings_through_every_change() {
        let cache = FetchCache::default();
        let mut registry = Registry::new();
        let (a, b) = (key("prod", "app", "z1", "a"), key("prod", "app", "z2", "b"));
        let requests = [(None, MASK_UP), (None, MASK_ALL), (Some("z1"), MASK_UP), (Some("z2"), MASK_ALL)];
        let check = |registry: &Registry| {
            for (zone, status) in requests {
                // Twice: the first may fill, the second must hit and still be right.
                for _ in 0..2 {
                    let got = cache.fetch(registry, "prod", "app", zone, status).expect("test setup");
                    assert_eq!(got, encoded(registry, zone, status), "zone {zone:?} status {status}");
                }
            }
        };
        check(&registry);
        apply(&mut registry, 1, vec![register(&a)]);
        check(&registry);
        apply(&mut registry, 2, vec![register_with_status(&b, 2)]);
        check(&registry);
        apply(&mut registry, 3, vec![register_with_status(&a, 2)]);
        check(&registry);
        apply(&mut registry, 4, vec![crate::registry::command::Command::Cancel(a.clone())]);
        check(&registry);
        apply(&mut registry, 5, vec![crate::registry::command::Command::Cancel(b.clone())]);
        check(&registry);
        // Removed and registered again: the new cursor is above every earlier one, so no stale hit.
        apply(&mut registry, 6, vec![register(&a)]);
        check(&registry);
        assert!(!cache.is_empty());
    }

    #[test]
    fn unknown_apps_and_absent_zones_are_not_cached() {
        let cache = FetchCache::default();
        let mut registry = Registry::new();
        assert_eq!(cache.fetch(&registry, "prod", "app", None, MASK_UP).expect("test setup"), None);
        apply(&mut registry, 1, vec![register(&key("prod", "app", "z1", "a"))]);
        assert_eq!(cache.fetch(&registry, "prod", "app", Some("nowhere"), MASK_UP).expect("test setup"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = FetchCache::default();
        let mut registry = Registry::new();
        // Each fetch with another zone filter is another entry; far more requests than fit.
        apply(&mut registry, 1, vec![register(&key("prod", "app", "z1", "a"))]);
        let body_len =
            cache.fetch(&registry, "prod", "app", None, MASK_UP).expect("test setup").expect("test setup").len();
        let requests = MAX_CACHED_BYTES / body_len + 10;
        for status in 0..requests as u32 {
            let _ = cache.fetch(&registry, "prod", "app", None, status << 1 | MASK_UP);
            assert!(cache.lock().bytes <= MAX_CACHED_BYTES);
        }
        assert!(cache.len() < requests, "old entries were dropped");
    }
}
