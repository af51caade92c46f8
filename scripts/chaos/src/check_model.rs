//! The checker's model of each instance: its timeline of writes, renews and "not found" answers.
//!
//! The workload gives every instance (hostname) exactly one writer task that issues one call at a time,
//! and retires the hostname after any write of unknown outcome (later writes go to a fresh hostname). So
//! the calls on one hostname are totally ordered in real time, and an unknown write is always the last
//! write of its hostname: it may take effect at any time after it started, or never.
//!
//! Every register and set writes its own op id into the instance's metadata (`w`), so a read tells
//! exactly which write produced the version it saw.
//!
//! What is known to have been applied before a time `t` (the "known position"):
//! - a write answered 0 that ended before `t` (applied before it was acknowledged);
//! - a set or cancel answered -404 that ended before `t` (apply found the instance absent);
//! - the write whose `w` any read (fetch, consistent fetch, poll, renew answer) showed, if that read ended
//!   before `t`: a node only serves applied, hence committed, entries.
//!
//! Leases: a successful register or renew processed at `p` (start ≤ p ≤ end) keeps the instance until at
//! least `p + lease` on the leader's clock (the same machine's monotonic clock), and a new leader only adds
//! grace. So the instance cannot be evicted legitimately in `[end, start + lease]` of each such call, and an
//! eviction is "possible" only where these intervals leave a gap.

use std::collections::{BTreeMap, HashMap};

use crate::history::{Micros, Op, OpKind, Outcome, StatusSample};

/// Hostnames of the per-app anchor instances start with this (registered, renewed, never set or cancelled).
pub const ANCHOR_PREFIX: &str = "anchor-";

/// What one call on an instance tells the checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ev {
    /// A register, set or cancel that took effect (answered 0) or may have (`certain: false`).
    Write {
        /// Register, set or cancel.
        kind: OpKind,
        /// Answered 0 (else: unknown outcome).
        certain: bool,
    },
    /// A set or cancel answered -404: apply found the instance absent.
    NotFound,
    /// A renew answered 0: the leader extended the lease.
    Renewed,
    /// A renew answered -404: the leader did not know the instance.
    RenewNotFound,
}

/// Classify a call; `None` for calls that tell nothing (failed, unknown renews, reads).
pub fn classify(op: &Op) -> Option<Ev> {
    match (op.kind, op.outcome, op.code) {
        (k, Outcome::Ok, Some(0)) if k.is_write() => Some(Ev::Write { kind: k, certain: true }),
        (k, Outcome::Unknown, _) if k.is_write() => Some(Ev::Write { kind: k, certain: false }),
        (OpKind::Set | OpKind::Cancel, Outcome::Ok, Some(-404)) => Some(Ev::NotFound),
        (OpKind::Renew, Outcome::Ok, Some(0)) => Some(Ev::Renewed),
        (OpKind::Renew, Outcome::Ok, Some(-404)) => Some(Ev::RenewNotFound),
        _ => None,
    }
}

/// One instance's calls, in issue order.
#[derive(Debug)]
pub struct Timeline<'a> {
    /// The app it belongs to.
    pub app: &'a str,
    /// The calls that tell something, in issue order (sequential: starts and ends both increase).
    pub events: Vec<(&'a Op, Ev)>,
    /// `w` → index in `events` of the register or set that wrote it.
    pub by_w: HashMap<u64, usize>,
    /// `last_definite[i]`: the greatest `j ≤ i` whose event certainly happened at its position.
    last_definite: Vec<Option<usize>>,
    /// Reads that showed a `w`: (read end, event index), sorted by end, index replaced by the running max.
    seen_at: Vec<(Micros, usize)>,
}

impl<'a> Timeline<'a> {
    fn new(app: &'a str) -> Self {
        Self { app, events: Vec::new(), by_w: HashMap::new(), last_definite: Vec::new(), seen_at: Vec::new() }
    }

    /// Index of the latest event known to have been applied before `t`.
    pub fn known(&self, t: Micros) -> Option<usize> {
        let ended = self.events.partition_point(|(op, _)| op.end < t);
        let by_calls = ended.checked_sub(1).and_then(|i| self.last_definite.get(i).copied().flatten());
        let seen = self.seen_at.partition_point(|(end, _)| *end < t);
        let by_reads = seen.checked_sub(1).and_then(|i| self.seen_at.get(i)).map(|(_, idx)| *idx);
        by_calls.max(by_reads)
    }

    /// The event's op.
    pub fn op(&self, i: usize) -> &'a Op {
        self.events[i].0
    }

    /// The latest register (certain or not) at or before `i`.
    pub fn register_at_or_before(&self, i: usize) -> Option<usize> {
        (0..=i).rev().find(|&j| matches!(self.events[j].1, Ev::Write { kind: OpKind::Register, .. }))
    }

    /// Could the instance registered by event `r` have been evicted before `t`, looking at events
    /// `r+1 .. upto`? True when the leases of the register and the renews after it leave a gap before
    /// `t`, or when a -404 in that range shows an eviction happened (rule (e) judges whether it was due).
    pub fn eviction_possible(&self, r: usize, upto: usize, t: Micros, lease: Micros) -> bool {
        let mut covered = self.op(r).start.saturating_add(lease);
        for &(op, ev) in self.events.iter().take(upto).skip(r + 1) {
            if op.start >= t {
                break;
            }
            match ev {
                Ev::Renewed | Ev::Write { kind: OpKind::Register, .. } => {
                    if covered < op.end.min(t) {
                        return true;
                    }
                    covered = covered.max(op.start.saturating_add(lease));
                }
                Ev::RenewNotFound | Ev::NotFound => return true,
                Ev::Write { .. } => {}
            }
        }
        covered < t
    }

    /// The successful renews and registers from `r` up to (excluding) `upto`: the lease evidence.
    pub fn lease_evidence(&self, r: usize, upto: usize) -> Vec<&'a Op> {
        self.events
            .iter()
            .take(upto)
            .skip(r)
            .filter(|(_, ev)| matches!(ev, Ev::Renewed | Ev::Write { kind: OpKind::Register, .. }))
            .map(|(op, _)| *op)
            .collect()
    }
}

/// Every instance's timeline, by hostname, plus the hostnames of each app.
#[derive(Debug)]
pub struct Model<'a> {
    /// Hostname → timeline.
    pub hosts: BTreeMap<&'a str, Timeline<'a>>,
    /// App → its hostnames.
    pub apps: BTreeMap<&'a str, Vec<&'a str>>,
    /// The nodes' role/term samples (diagnostics only).
    pub statuses: &'a [StatusSample],
}

impl<'a> Model<'a> {
    /// Build from the ops of a history (any order).
    pub fn build(ops: &'a [Op], statuses: &'a [StatusSample]) -> Self {
        let mut model = Model { hosts: BTreeMap::new(), apps: BTreeMap::new(), statuses };
        let mut calls: Vec<&Op> = ops.iter().filter(|op| op.host.is_some()).collect();
        calls.sort_by_key(|op| (op.start, op.id));
        for op in calls {
            let (Some(host), Some(ev)) = (op.host.as_deref(), classify(op)) else { continue };
            let tl = model.hosts.entry(host).or_insert_with(|| Timeline::new(&op.app));
            if let (Ev::Write { kind: OpKind::Register | OpKind::Set, .. }, Some(w)) = (ev, op.w) {
                tl.by_w.insert(w, tl.events.len());
            }
            tl.events.push((op, ev));
        }
        for (host, tl) in &mut model.hosts {
            let mut last = None;
            tl.last_definite = tl
                .events
                .iter()
                .enumerate()
                .map(|(i, (_, ev))| {
                    if matches!(ev, Ev::Write { certain: true, .. } | Ev::NotFound) {
                        last = Some(i);
                    }
                    last
                })
                .collect();
            model.apps.entry(tl.app).or_default().push(host);
        }
        model.learn_from_reads(ops);
        model
    }

    /// Record, per instance, which writes reads showed and when those reads ended.
    fn learn_from_reads(&mut self, ops: &'a [Op]) {
        for op in ops.iter().filter(|op| op.outcome == Outcome::Ok) {
            for seen in op.seen.iter().flatten() {
                let Some(tl) = self.hosts.get_mut(seen.h.as_str()) else { continue };
                if let Some(&idx) = seen.w.and_then(|w| tl.by_w.get(&w)) {
                    tl.seen_at.push((op.end, idx));
                }
            }
        }
        for tl in self.hosts.values_mut() {
            tl.seen_at.sort_unstable();
            let mut max = 0;
            for entry in &mut tl.seen_at {
                max = max.max(entry.1);
                entry.1 = max;
            }
        }
    }

    /// The hostnames of `app` (empty if none).
    pub fn hosts_of(&self, app: &str) -> &[&'a str] {
        self.apps.get(app).map_or(&[], Vec::as_slice)
    }
}
