//! Rule (g): long polls observe every change they are due (no missed wake-ups).
//!
//! A poll sent at `ps` to node N with cursor `c` for app A, where `c` came from a call that ended at `f`
//! (0 for the initial cursor 0), that answered -304 after waiting its full timeout `T`. N decides -304 at
//! its deadline `d ≥ ps + T` (the wait starts when N receives the request). Any write W to A that started
//! after `f` was proposed after `c` was read anywhere, so its cursor is greater than `c`. The poll missed W
//! when W was surely applied on N before `d`, and A had an up instance then (polls never answer an app
//! without one). Two cases are surely applied:
//!
//! - (g1, exact) W was acknowledged by N itself in less than the apply wait (a forwarding node answers
//!   only after applying the entry, or after giving up on it when the wait runs out; the leader answers
//!   after applying), and `W.end < ps + T`;
//! - (g2, healthy cluster) W was acknowledged by any node and `W.end + staleness < ps + T`, with no fault
//!   active or healed within `staleness` of `[W.start, poll end]` (a bounded replication lag on a healthy
//!   cluster: an assumption, stated in the verdict's parameters).
//!
//! In both cases N must not have been killed, stopped, continued, restarted or wiped around the window
//! (a restarted node rebuilds its state and may briefly be behind), and an anchor of A must have been up
//! throughout (acknowledged before W started, leases covering the window).
//!
//! Also checked: a poll that answers 0 moves the cursor forward and lists at least one instance.

use std::collections::BTreeMap;

use crate::check::{Rule, Violation};
use crate::check_model::{Ev, Model, ANCHOR_PREFIX};
use crate::history::{Header, Micros, NemesisEvent, Op, OpKind};

/// Slack around nemesis actions: their recorded time is when they completed.
const ACTION_SLACK: Micros = 1_000_000;

/// The nemesis facts the rule needs.
#[derive(Debug, Default)]
pub struct Disturbances {
    /// Fault windows `[fault, healed]` (a step not healed by the end lasts forever).
    pub faults: Vec<(Micros, Micros)>,
    /// Per node: times it was killed, terminated, started, stopped, continued or wiped.
    pub node_actions: BTreeMap<u32, Vec<Micros>>,
}

impl Disturbances {
    /// Collect from the nemesis log.
    pub fn from_events(events: &[NemesisEvent]) -> Self {
        let mut d = Disturbances::default();
        let mut open: BTreeMap<u32, Micros> = BTreeMap::new();
        for ev in events {
            match ev.action.as_str() {
                "fault" => {
                    open.insert(ev.step, ev.t);
                }
                "healed" => {
                    let start = open.remove(&ev.step).unwrap_or(ev.t);
                    d.faults.push((start, ev.t));
                }
                "kill" | "term" | "start" | "stop" | "cont" | "wipe" => {
                    for n in &ev.nodes {
                        d.node_actions.entry(*n).or_default().push(ev.t);
                    }
                }
                _ => {}
            }
        }
        d.faults.extend(open.into_values().map(|start| (start, Micros::MAX)));
        d
    }

    /// No fault overlaps `[t0, t1]`, widened by `margin` on both sides.
    pub fn quiet(&self, t0: Micros, t1: Micros, margin: Micros) -> bool {
        let (lo, hi) = (t0.saturating_sub(margin), t1.saturating_add(margin));
        self.faults.iter().all(|&(s, e)| e < lo || s > hi)
    }

    /// `node` had no process-level action in `[t0 - slack, t1]`.
    pub fn undisturbed(&self, node: u32, t0: Micros, t1: Micros) -> bool {
        let lo = t0.saturating_sub(ACTION_SLACK);
        self.node_actions.get(&node).is_none_or(|ts| ts.iter().all(|&t| t < lo || t > t1))
    }
}

/// An anchor of `app` was surely present and up during `[t0, t1]`.
fn anchor_up(model: &Model<'_>, app: &str, t0: Micros, t1: Micros, lease: Micros) -> bool {
    model.hosts_of(app).iter().filter(|h| h.starts_with(ANCHOR_PREFIX)).any(|h| {
        let Some(tl) = model.hosts.get(h) else { return false };
        let registered = tl
            .events
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (op, ev))| op.end < t0 && matches!(ev, Ev::Write { kind: OpKind::Register, certain: true }));
        registered.is_some_and(|(r, _)| !tl.eviction_possible(r, tl.events.len(), t1, lease))
    })
}

/// Rule (g) over every poll.
pub fn check_polls(model: &Model<'_>, ops: &[Op], nemesis: &[NemesisEvent], header: &Header) -> Vec<Violation> {
    let lease = header.lease_ms * 1000;
    let timeout = header.poll_timeout_ms * 1000;
    let apply_wait = header.apply_wait_ms * 1000;
    let staleness = header.staleness_ms * 1000;
    let disturbances = Disturbances::from_events(nemesis);
    let mut writes: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.kind.is_write() && op.answered(0)) {
        writes.entry(op.app.as_str()).or_default().push(op);
    }
    for list in writes.values_mut() {
        list.sort_by_key(|op| op.start);
    }
    let mut out = Vec::new();
    for poll in ops.iter().filter(|op| op.kind == OpKind::Poll) {
        if poll.answered(0) {
            out.extend(check_answer(poll));
            continue;
        }
        if !poll.answered(-304) || poll.end < poll.start + timeout {
            continue;
        }
        let deadline = poll.start + timeout;
        let from = poll.cursor_from.unwrap_or(0);
        let candidates = writes.get(poll.app.as_str()).map_or(&[][..], Vec::as_slice);
        let first = candidates.partition_point(|w| w.start <= from);
        let missed = candidates[first..].iter().find(|w| {
            let exact = w.node == poll.node && w.end - w.start < apply_wait && w.end < deadline;
            let healthy = w.end + staleness < deadline && disturbances.quiet(w.start, poll.end, staleness);
            (exact || healthy)
                && disturbances.undisturbed(poll.node, w.start, poll.end)
                && anchor_up(model, &poll.app, w.start, poll.end, lease)
        });
        if let Some(w) = missed {
            let how = if w.node == poll.node { "acknowledged by that node" } else { "acknowledged by another node" };
            out.push(Violation {
                rule: Rule::G,
                what: format!(
                    "poll op {} of {} on node {} with cursor {:?} (from a call ended at {from} µs) waited [{}, {}] µs \
                     and answered -304, but {:?} op {} started at {} µs and was {how} (node {}) at {} µs",
                    poll.id,
                    poll.app,
                    poll.node,
                    poll.cursor,
                    poll.start,
                    poll.end,
                    w.kind,
                    w.id,
                    w.start,
                    w.node,
                    w.end
                ),
                ops: vec![w.id, poll.id],
            });
        }
    }
    out
}

/// A poll that answered changes moved the cursor and listed instances.
fn check_answer(poll: &Op) -> Option<Violation> {
    let moved = match (poll.ts, poll.cursor) {
        (Some(ts), Some(cursor)) => ts > cursor,
        _ => false,
    };
    let listed = poll.seen.as_ref().is_some_and(|s| !s.is_empty());
    if moved && listed {
        return None;
    }
    Some(Violation {
        rule: Rule::G,
        what: format!(
            "poll op {} of {} on node {} with cursor {:?} answered latest_timestamp {:?} with {} instances",
            poll.id,
            poll.app,
            poll.node,
            poll.cursor,
            poll.ts,
            poll.seen.as_ref().map_or(0, Vec::len)
        ),
        ops: vec![poll.id],
    })
}
