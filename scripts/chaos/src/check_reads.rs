//! Rules on what reads show: (a) no acknowledged register lost, (b) no resurrected cancel and nothing that
//! was never written, (d) consistent reads are linearizable.
//!
//! A read over `[rs, re]` that shows instance `h` with value `w` (the id of the write that produced it):
//! - phantom (b): `h` or `w` was never written by the workload, or the status differs from what that write
//!   set; applies to every read (local fetch, consistent fetch, poll, renew answer, final state);
//! - from the future (b): the write of `w` started after the read ended;
//! - stale (d; (b) in the final state): a later write or "not found" of `h` is known applied before `rs`
//!   (see [`crate::check_model`]); only for linearizable reads (`consistent=1`, final state).
//!
//! A linearizable read that does not show `h` is wrong (d; (a) in the final state) when the latest event
//! known applied before `rs` left `h` present (a register or set), no cancel of `h` started before `re`, and
//! no eviction was possible: the register's and renews' leases cover everything up to `re` (an observed
//! -404 counts as a possible eviction here; rule (e) judges it).
//!
//! Cursors (d): a consistent read's `latest_timestamp` is at least that of any read of the same app that
//! ended before it started (cursors grow with the log, and a node only serves committed entries).

use std::collections::BTreeMap;

use crate::check::{Rule, Violation};
use crate::check_lease::roles_at;
use crate::check_model::{Ev, Model, Timeline};
use crate::history::{Micros, Op, OpKind, Outcome, Seen, StatusSample};

/// How a read is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadClass {
    /// Local fetch, poll answer, renew answer: only phantoms.
    Local,
    /// `consistent=1`: linearizable.
    Consistent,
    /// The final state after healing and settling: linearizable, reported as (a) and (b).
    Final,
}

/// What is wrong with one instance in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Shows a hostname or value never written.
    Phantom(String),
    /// Shows a value whose write started after the read ended.
    Future(u64),
    /// Shows a value with another status than its write set.
    WrongStatus { w: u64, status: u32 },
    /// Shows a value overwritten (or removed) by an event known applied before the read.
    Stale { shown: usize, known: usize },
    /// Misses an instance that must be present. `renewed`: its register alone would have lapsed by then,
    /// so only the acknowledged renews kept it (an eviction despite them, rule (e)); else the register
    /// itself is missing (a lost write).
    Missing { known: usize, renewed: bool },
}

/// Judge an instance the read shows.
pub fn judge_present(model: &Model<'_>, seen: &Seen, rs: Micros, re: Micros, class: ReadClass) -> Option<Finding> {
    let Some(tl) = model.hosts.get(seen.h.as_str()) else {
        return Some(Finding::Phantom(format!("hostname {} was never written", seen.h)));
    };
    let Some(w) = seen.w else {
        return Some(Finding::Phantom(format!("{} has no w metadata: not a version any write produced", seen.h)));
    };
    let Some(&j) = tl.by_w.get(&w) else {
        return Some(Finding::Phantom(format!("{} shows w={w}, which no register or set of it wrote", seen.h)));
    };
    let write = tl.op(j);
    if write.start > re {
        return Some(Finding::Future(w));
    }
    if write.status.is_some_and(|s| s != seen.s) {
        return Some(Finding::WrongStatus { w, status: seen.s });
    }
    if class == ReadClass::Local {
        return None;
    }
    match tl.known(rs) {
        Some(k) if k > j => Some(Finding::Stale { shown: j, known: k }),
        _ => None,
    }
}

/// Judge an instance a linearizable read does not show.
pub fn judge_absent(tl: &Timeline<'_>, rs: Micros, re: Micros, lease: Micros) -> Option<Finding> {
    let k = tl.known(rs)?;
    match tl.events[k].1 {
        Ev::Write { kind: OpKind::Register | OpKind::Set, .. } => {}
        _ => return None,
    }
    let cancel_pending =
        tl.events[k + 1..].iter().any(|(op, ev)| op.start < re && matches!(ev, Ev::Write { kind: OpKind::Cancel, .. }));
    if cancel_pending {
        return None;
    }
    let r = tl.register_at_or_before(k)?;
    if tl.eviction_possible(r, tl.events.len(), re, lease) {
        return None;
    }
    let renewed = tl.op(r).start.saturating_add(lease) < re;
    Some(Finding::Missing { known: k, renewed })
}

/// Judge one read (all instances of its app); `shown` is what it answered.
pub fn judge_read(
    model: &Model<'_>,
    app: &str,
    shown: &[Seen],
    (rs, re): (Micros, Micros),
    class: ReadClass,
    lease: Micros,
) -> Vec<(String, Finding)> {
    let mut findings = Vec::new();
    let mut present = std::collections::BTreeSet::new();
    for seen in shown {
        present.insert(seen.h.as_str());
        if let Some(f) = judge_present(model, seen, rs, re, class) {
            findings.push((seen.h.clone(), f));
        }
    }
    if class == ReadClass::Local {
        return findings;
    }
    for host in model.hosts_of(app) {
        if present.contains(host) {
            continue;
        }
        if let Some(f) = model.hosts.get(host).and_then(|tl| judge_absent(tl, rs, re, lease)) {
            findings.push(((*host).to_string(), f));
        }
    }
    findings
}

/// The rule a finding breaks, for a read of `class`.
pub fn rule_of(finding: &Finding, class: ReadClass) -> Rule {
    match (finding, class) {
        (Finding::Phantom(_) | Finding::Future(_) | Finding::WrongStatus { .. }, _) => Rule::B,
        (Finding::Missing { .. }, ReadClass::Final) => Rule::A,
        (Finding::Stale { .. }, ReadClass::Final) => Rule::B,
        (Finding::Missing { renewed: true, .. }, _) => Rule::E,
        _ => Rule::D,
    }
}

/// Describe a finding, with the ops that prove it.
pub fn describe(model: &Model<'_>, host: &str, finding: &Finding, what: &str, read_end: Micros) -> (String, Vec<u64>) {
    let tl = model.hosts.get(host);
    let op_id = |i: usize| tl.map(|t| t.op(i).id);
    match finding {
        Finding::Phantom(text) => (format!("{what}: {text}"), vec![]),
        Finding::Future(w) => (format!("{what} shows {host} w={w}, written only after the read ended"), vec![*w]),
        Finding::WrongStatus { w, status } => {
            (format!("{what} shows {host} w={w} with status {status}, not the status that write set"), vec![*w])
        }
        Finding::Stale { shown, known } => {
            let ids: Vec<u64> = [op_id(*shown), op_id(*known)].into_iter().flatten().collect();
            let later = tl.map(|t| describe_event(t, *known)).unwrap_or_default();
            (
                format!(
                    "{what} shows {host} as written by op {:?}, but {later} was applied before the read",
                    ids.first()
                ),
                ids,
            )
        }
        Finding::Missing { known, renewed: false } => {
            let ids: Vec<u64> = op_id(*known).into_iter().collect();
            let last = tl.map(|t| describe_event(t, *known)).unwrap_or_default();
            (format!("{what} misses {host}: {last} was applied before the read, nothing removed it since, and its lease had not run out"), ids)
        }
        Finding::Missing { known, renewed: true } => {
            let ids: Vec<u64> = op_id(*known).into_iter().collect();
            let last = tl.map(|t| describe_event(t, *known)).unwrap_or_default();
            let evidence = tl.map(|t| renew_evidence(t, *known, read_end, model.statuses)).unwrap_or_default();
            (format!("{what} misses {host}: {last} was applied before the read, nothing removed it since, and {evidence}: evicted although renewed"), ids)
        }
    }
}

/// The last successful renews after event `from`: "renews answered 0 by nodes .. up to op N at T µs".
fn renew_evidence(tl: &Timeline<'_>, from: usize, before: Micros, statuses: &[StatusSample]) -> String {
    let renews: Vec<&Op> = tl.events[from..]
        .iter()
        .take_while(|(op, _)| op.start < before)
        .filter(|(_, ev)| *ev == Ev::Renewed)
        .map(|(op, _)| *op)
        .collect();
    let mut nodes: Vec<u32> = renews.iter().map(|op| op.node).collect();
    nodes.sort_unstable();
    nodes.dedup();
    match renews.last() {
        Some(last) => format!(
            "{} renews were answered 0 since (by nodes {nodes:?}), the last one op {} on node {} at [{}, {}] µs{}",
            renews.len(),
            last.id,
            last.node,
            last.start,
            last.end,
            roles_at(statuses, last.node, last.start)
        ),
        None => "it was renewed".to_string(),
    }
}

fn describe_event(tl: &Timeline<'_>, i: usize) -> String {
    let op = tl.op(i);
    let kind = match tl.events[i].1 {
        Ev::NotFound => format!("{:?} answered -404", op.kind),
        Ev::Write { certain: true, .. } => format!("{:?} acknowledged", op.kind),
        Ev::Write { certain: false, .. } => format!("{:?} of unknown outcome (seen by a read)", op.kind),
        Ev::Renewed | Ev::RenewNotFound => format!("{:?}", op.kind),
    };
    format!("op {} ({kind} on node {} at [{}, {}] µs)", op.id, op.node, op.start, op.end).to_lowercase()
}

/// Rules (b) and (d) over every read of the history.
pub fn check_reads(model: &Model<'_>, ops: &[Op], lease: Micros) -> Vec<Violation> {
    let mut out = Vec::new();
    for op in ops.iter().filter(|op| op.outcome == Outcome::Ok) {
        let Some(shown) = &op.seen else { continue };
        let class = match op.kind {
            OpKind::FetchConsistent => ReadClass::Consistent,
            OpKind::Fetch | OpKind::Poll | OpKind::Renew => ReadClass::Local,
            _ => continue,
        };
        let what = format!("{:?} op {} on node {} at [{}, {}] µs", op.kind, op.id, op.node, op.start, op.end);
        for (host, finding) in judge_read(model, &op.app, shown, (op.start, op.end), class, lease) {
            let (text, mut ids) = describe(model, &host, &finding, &what, op.end);
            ids.push(op.id);
            out.push(Violation { rule: rule_of(&finding, class), what: text, ops: ids });
        }
    }
    out.extend(check_cursors(ops));
    out
}

/// (d): a consistent read never answers a cursor older than one a read of the same app already saw.
pub fn check_cursors(ops: &[Op]) -> Vec<Violation> {
    let mut by_app: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.outcome == Outcome::Ok && op.ts.is_some() && op.kind.is_read()) {
        by_app.entry(op.app.as_str()).or_default().push(op);
    }
    let mut out = Vec::new();
    for reads in by_app.values_mut() {
        reads.sort_by_key(|op| op.end);
        // Running maximum of the cursors seen by reads ending at or before each position.
        let mut best: Vec<(Micros, i64, u64)> = Vec::with_capacity(reads.len());
        for op in reads.iter() {
            let ts = op.ts.unwrap_or(0);
            let prev = best.last().map_or((0, i64::MIN, 0), |b| *b);
            best.push(if ts > prev.1 { (op.end, ts, op.id) } else { (op.end, prev.1, prev.2) });
        }
        for op in reads.iter().filter(|op| op.kind == OpKind::FetchConsistent) {
            let before = best.partition_point(|(end, _, _)| *end < op.start);
            let Some(&(_, ts, by)) = before.checked_sub(1).and_then(|i| best.get(i)) else { continue };
            let got = op.ts.unwrap_or(0);
            if got < ts {
                out.push(Violation {
                    rule: Rule::D,
                    what: format!(
                        "consistent fetch op {} of {} on node {} answered latest_timestamp {got}, older than {ts} \
                         answered by op {by} before it started",
                        op.id, op.app, op.node
                    ),
                    ops: vec![by, op.id],
                });
            }
        }
    }
    out
}
