//! Rule (e): no instance is evicted while its renews succeed within the lease.
//!
//! For each call that found an instance absent — a renew answered -404 (the leader's verdict), or a set or
//! cancel answered -404 (apply's) — take the instance's latest acknowledged register before it. If no
//! cancel, no unknown write and no earlier -404 lies between them, the instance can only have gone by
//! eviction, which is legitimate only in a gap of its lease coverage (see [`crate::check_model`]): each
//! successful register or renew over `[start, end]` protects `[end, start + lease]`. A -404 whose whole
//! window since the register is covered is a false eviction (or a leader that forgot the instance).

use std::collections::BTreeMap;

use crate::check::{Rule, Violation};
use crate::check_model::{Ev, Model, Timeline};
use crate::history::{Micros, OpKind, StatusSample};

/// What the status samples say about `node` at `t`: its own view and the cluster's newest term, e.g.
/// " [node 1 then: Leader of term 2, leader 1; newest term then: 3, leader 3]" (a deposed leader that does
/// not know it yet). Empty without samples.
pub fn roles_at(statuses: &[StatusSample], node: u32, t: Micros) -> String {
    let upto = statuses.partition_point(|s| s.t <= t);
    let mut latest: BTreeMap<u32, &StatusSample> = BTreeMap::new();
    for s in &statuses[..upto] {
        latest.insert(s.node, s);
    }
    let Some(own) = latest.get(&node) else { return String::new() };
    let leader = |s: &StatusSample| s.leader.map_or_else(|| "unknown".to_string(), |l| l.to_string());
    let newest = latest.values().max_by_key(|s| (s.term, s.role == "Leader"));
    let newest = newest.map_or(String::new(), |s| format!("; newest term then: {}, leader {}", s.term, leader(s)));
    format!(" [node {node} then: {} of term {}, leader {}{newest}]", own.role, own.term, leader(own))
}

/// Rule (e) over every instance.
pub fn check_evictions(model: &Model<'_>, lease: Micros, statuses: &[StatusSample]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (host, tl) in &model.hosts {
        for (i, (op, ev)) in tl.events.iter().enumerate() {
            if !matches!(ev, Ev::RenewNotFound | Ev::NotFound) {
                continue;
            }
            let Some(r) = registered_since(tl, i) else { continue };
            if tl.eviction_possible(r, i, op.end, lease) {
                continue;
            }
            let evidence = tl.lease_evidence(r, i);
            let last = evidence.last().map_or(tl.op(r), |o| *o);
            // The register, the last successful renew, and the -404 (the full evidence is in the history).
            let mut ops = vec![tl.op(r).id, last.id, op.id];
            ops.dedup();
            out.push(Violation {
                rule: Rule::E,
                what: format!(
                    "{host}: {:?} op {} on node {} answered -404 at [{}, {}] µs, but register op {} was \
                     acknowledged at {} µs and renew/register op {} (started {} µs, node {}) succeeded less \
                     than the lease ({} ms) before, with no gap in between{}",
                    op.kind,
                    op.id,
                    op.node,
                    op.start,
                    op.end,
                    tl.op(r).id,
                    tl.op(r).end,
                    last.id,
                    last.start,
                    last.node,
                    lease / 1000,
                    roles_at(statuses, op.node, op.start)
                ),
                ops,
            });
        }
    }
    out
}

/// The acknowledged register that event `i` should still see: the latest register before `i`, if it was
/// acknowledged and nothing between them (cancel, unknown write, earlier -404) explains an absence.
fn registered_since(tl: &Timeline<'_>, i: usize) -> Option<usize> {
    for j in (0..i).rev() {
        match tl.events[j].1 {
            Ev::Write { kind: OpKind::Register, certain: true } => return Some(j),
            Ev::Write { kind: OpKind::Set, certain: true } | Ev::Renewed => {}
            _ => return None,
        }
    }
    None
}
