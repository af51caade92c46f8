//! The recent changes of each app, as the console shows them: register, cancel, set, eviction, with the
//! leader stamp of the entry and the id of the leader that accepted it into the log.
//!
//! Invariants:
//! - Recorded from what apply did (outcome `Ok`, or an eviction that removed the instance), so every replica
//!   records the same changes from the same entries; the node id is the one in the entry's log id (the leader
//!   that appended it), not the node a client happened to send its request to (that is not replicated).
//! - Not replicated and not in snapshots: a restarted node, or one that caught up from a snapshot, shows
//!   only what it applied since.
//! - Bounded: at most [`PER_APP`] changes per app, and changes of at most [`MAX_APPS`] apps. A change equal
//!   to the app's newest one (same instance, kind and detail: goim sets the same metadata every 10 s) is
//!   folded into it (`repeats` + 1, newest time), so periodic writes do not push real changes out.
//! - Nothing here reads a clock: times come from the entries' leader stamps.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::command::{Command, Outcome, SetArgs};
use super::model::{AppKey, InstanceKey};

/// Most changes kept per app.
pub const PER_APP: usize = 12;
/// Most apps whose changes are kept; beyond it, the apps with the oldest newest change are forgotten.
pub const MAX_APPS: usize = 50_000;

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Registered (or registered again).
    Register,
    /// Cancelled by a client.
    Cancel,
    /// Status or metadata changed by `set`.
    Set,
    /// Removed by the leader because its lease ran out.
    Evict,
}

/// One change of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Leader stamp of the entry, Unix nanoseconds (of the newest one when `repeats` > 1).
    pub at_ns: i64,
    /// The leader that appended the entry.
    pub node: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// Zone of the instance.
    pub zone: String,
    /// Hostname of the instance.
    pub hostname: String,
    /// Human-readable detail (`status up`, `metadata weight`), may be empty. Borrowed for the common
    /// texts, so the changes of a million registers allocate no detail.
    pub detail: Cow<'static, str>,
    /// How many equal changes in a row this stands for (1 for a single one).
    pub repeats: u32,
}

/// One change as apply saw it, before it is filed under its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The instance.
    pub key: InstanceKey,
    /// What happened.
    pub kind: ChangeKind,
    /// Detail text.
    pub detail: Cow<'static, str>,
}

/// The changes a batch made, from its commands and apply's outcomes. `evicted` tells whether an evicted
/// key was really removed (compare-and-delete may have kept a re-registered instance).
pub fn observe(commands: &[Command], outcomes: &[Outcome], evicted: impl Fn(&InstanceKey) -> bool) -> Vec<Observed> {
    let mut seen = Vec::new();
    for (command, outcome) in commands.iter().zip(outcomes) {
        match (command, outcome) {
            (Command::Register(args), Outcome::Ok) => seen.push(Observed {
                key: args.key.clone(),
                kind: ChangeKind::Register,
                detail: status_text(args.status),
            }),
            (Command::Cancel(key), Outcome::Ok) => {
                seen.push(Observed { key: key.clone(), kind: ChangeKind::Cancel, detail: Cow::Borrowed("") })
            }
            (Command::Set(args), Outcome::Ok) => observe_set(args, &mut seen),
            (Command::Evict(keys), Outcome::Evicted(n)) if *n > 0 => {
                seen.extend(keys.iter().filter(|(key, _)| evicted(key)).map(|(key, _)| Observed {
                    key: key.clone(),
                    kind: ChangeKind::Evict,
                    detail: Cow::Borrowed(""),
                }))
            }
            _ => {}
        }
    }
    seen
}

fn observe_set(args: &SetArgs, seen: &mut Vec<Observed>) {
    for (i, hostname) in args.hostnames.iter().enumerate() {
        let mut parts = Vec::new();
        if let Some(status) = args.statuses.get(i) {
            parts.push(format!("status {}", status_text(*status)));
        }
        if let Some(metadata) = args.metadata.get(i).filter(|m| !m.is_empty()) {
            let keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
            parts.push(format!("metadata {}", keys.join(",")));
        }
        let key = InstanceKey {
            env: args.env.clone(),
            appid: args.appid.clone(),
            zone: args.zone.clone(),
            hostname: hostname.clone(),
        };
        seen.push(Observed { key, kind: ChangeKind::Set, detail: Cow::Owned(parts.join("; ")) });
    }
}

/// `up`, `waiting`, or the number.
pub fn status_text(status: u32) -> Cow<'static, str> {
    match status {
        1 => "up".into(),
        2 => "waiting".into(),
        other => other.to_string().into(),
    }
}

/// The recent changes of every app.
#[derive(Debug, Default)]
pub struct ChangeLog {
    apps: HashMap<AppKey, VecDeque<Change>>,
}

impl ChangeLog {
    /// File `observed` (changes of one entry stamped `at_ns` by leader `node`).
    pub fn record(&mut self, at_ns: i64, node: u64, observed: Vec<Observed>) {
        for o in observed {
            let app = o.key.app();
            let list = self.apps.entry(app).or_default();
            if let Some(last) = list.back_mut() {
                if last.kind == o.kind
                    && last.hostname == o.key.hostname
                    && last.zone == o.key.zone
                    && last.detail == o.detail
                {
                    last.repeats = last.repeats.saturating_add(1);
                    last.at_ns = last.at_ns.max(at_ns);
                    last.node = node;
                    continue;
                }
            }
            if list.len() == PER_APP {
                list.pop_front();
            }
            list.push_back(Change {
                at_ns,
                node,
                kind: o.kind,
                zone: o.key.zone,
                hostname: o.key.hostname,
                detail: o.detail,
                repeats: 1,
            });
        }
        if self.apps.len() > MAX_APPS {
            self.forget_oldest();
        }
    }

    /// Drops the apps whose newest change is oldest, down to 90% of [`MAX_APPS`] (amortized: this runs
    /// once per `MAX_APPS / 10` new apps).
    fn forget_oldest(&mut self) {
        let keep = MAX_APPS * 9 / 10;
        let mut newest: Vec<(i64, AppKey)> =
            self.apps.iter().map(|(app, list)| (list.back().map_or(i64::MIN, |c| c.at_ns), app.clone())).collect();
        newest.sort_unstable();
        let drop = newest.len().saturating_sub(keep);
        for (_, app) in newest.into_iter().take(drop) {
            self.apps.remove(&app);
        }
    }

    /// The changes of one app, newest first.
    pub fn of(&self, env: &str, appid: &str) -> Vec<Change> {
        let key = AppKey { env: env.to_string(), appid: appid.to_string() };
        self.apps.get(&key).map(|list| list.iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// Apps with recorded changes.
    #[cfg(test)]
    pub fn apps(&self) -> usize {
        self.apps.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::registry::testutil;

    fn key(hostname: &str) -> InstanceKey {
        testutil::key("dev", "app", "z1", hostname)
    }

    fn register(hostname: &str) -> Command {
        testutil::register(&key(hostname))
    }

    fn set(hostname: &str, status: Option<u32>, metadata: &[(&str, &str)]) -> Command {
        let metadata: BTreeMap<String, String> = metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Command::Set(SetArgs {
            env: "dev".into(),
            appid: "app".into(),
            zone: "z1".into(),
            hostnames: vec![hostname.into()],
            statuses: status.into_iter().collect(),
            metadata: if metadata.is_empty() { vec![] } else { vec![metadata] },
            set_timestamp: 0,
        })
    }

    #[test]
    fn only_what_apply_did_is_observed() {
        let commands = vec![
            register("h1"),
            register("h2"),
            Command::Cancel(key("h3")),
            set("h1", Some(2), &[("weight", "10")]),
            Command::Evict(vec![(key("h4"), 7), (key("h5"), 8)]),
        ];
        let outcomes =
            vec![Outcome::Ok, Outcome::Invalid("bad".into()), Outcome::NotFound, Outcome::Ok, Outcome::Evicted(1)];
        let seen = observe(&commands, &outcomes, |k| k.hostname == "h4");
        let summary: Vec<(ChangeKind, &str, &str)> =
            seen.iter().map(|o| (o.kind, o.key.hostname.as_str(), o.detail.as_ref())).collect();
        assert_eq!(
            summary,
            vec![
                (ChangeKind::Register, "h1", "up"),
                (ChangeKind::Set, "h1", "status waiting; metadata weight"),
                (ChangeKind::Evict, "h4", ""),
            ]
        );
    }

    #[test]
    fn equal_changes_in_a_row_fold_and_each_app_keeps_its_newest() {
        let mut log = ChangeLog::default();
        let metadata = set("h1", None, &[("conn", "5")]);
        for i in 0..100 {
            log.record(i, 1, observe(std::slice::from_ref(&metadata), &[Outcome::Ok], |_| false));
        }
        let changes = log.of("dev", "app");
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].repeats, changes[0].at_ns), (100, 99));

        for i in 0..(PER_APP as i64 + 5) {
            let command = register(&format!("host-{i}"));
            log.record(1_000 + i, 2, observe(&[command], &[Outcome::Ok], |_| false));
        }
        let changes = log.of("dev", "app");
        assert_eq!(changes.len(), PER_APP);
        assert_eq!(changes[0].hostname, format!("host-{}", PER_APP + 4), "newest first");
        assert_eq!(changes[0].node, 2);
        assert!(changes.iter().all(|c| c.kind == ChangeKind::Register), "the folded set was pushed out");
        assert!(log.of("dev", "other").is_empty());
    }

    #[test]
    fn the_number_of_apps_is_bounded_and_the_stalest_go_first() {
        let mut log = ChangeLog::default();
        for i in 0..=MAX_APPS {
            let mut k = key("h");
            k.appid = format!("app-{i}");
            log.record(i as i64, 1, vec![Observed { key: k, kind: ChangeKind::Cancel, detail: Cow::Borrowed("") }]);
        }
        assert_eq!(log.apps(), MAX_APPS * 9 / 10);
        assert!(log.of("dev", "app-0").is_empty(), "the stalest app was forgotten");
        assert_eq!(log.of("dev", &format!("app-{MAX_APPS}")).len(), 1, "the newest is kept");
    }
}
