//! Rule (f): after each fault, and after each heal, the majority side accepts writes again within a bound.
//!
//! Every fault of the schedule leaves a connected majority (and at most a minority dead, paused or cut),
//! and clients keep sending writes to random nodes, so some write must be acknowledged soon after the
//! fault starts. Recovery = end of the first acknowledged write that *started* after the event − the
//! event's time. Reported for every fault and heal; a violation when it exceeds the bound, or when no
//! write was acknowledged at all before writes stopped (the settle phase).

use serde::Serialize;

use crate::check::{Rule, Violation};
use crate::history::{Micros, NemesisEvent, Op};

/// Recovery after one nemesis event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Schedule step.
    pub step: u32,
    /// `fault` or `healed`.
    pub event: String,
    /// The fault (its `detail`).
    pub fault: String,
    /// When the event happened.
    pub t: Micros,
    /// Time to the first acknowledged write that started after it (None: none before writes stopped).
    pub recovery_ms: Option<u64>,
}

/// Recovery after every fault and heal, and the violations of the bound.
pub fn check_availability(
    ops: &[Op],
    nemesis: &[NemesisEvent],
    writes_end: Micros,
    bound_ms: u64,
) -> (Vec<Recovery>, Vec<Violation>) {
    let mut acked: Vec<&Op> = ops.iter().filter(|op| op.kind.is_write() && op.answered(0)).collect();
    acked.sort_by_key(|op| op.start);
    // Earliest end among writes starting at or after each position (suffix minimum).
    let mut earliest_end = vec![Micros::MAX; acked.len() + 1];
    for i in (0..acked.len()).rev() {
        earliest_end[i] = earliest_end[i + 1].min(acked[i].end);
    }
    let mut recoveries = Vec::new();
    let mut violations = Vec::new();
    let mut faults = std::collections::BTreeMap::new();
    for ev in nemesis.iter().filter(|ev| ev.action == "fault" || ev.action == "healed") {
        if ev.action == "fault" {
            faults.insert(ev.step, ev.detail.clone());
        }
        let fault = faults.get(&ev.step).cloned().unwrap_or_else(|| ev.detail.clone());
        let first = acked.partition_point(|op| op.start < ev.t);
        let end = earliest_end[first];
        let recovery_ms = (end != Micros::MAX).then(|| (end - ev.t) / 1000);
        let late = match recovery_ms {
            Some(ms) => ms > bound_ms,
            // No acknowledged write after it: a violation only if writes went on for longer than the bound.
            None => writes_end > ev.t.saturating_add(bound_ms * 1000),
        };
        if late {
            violations.push(Violation {
                rule: Rule::F,
                what: format!(
                    "step {} ({fault}): after the {} at {} µs the first acknowledged write took {} (bound {bound_ms} ms)",
                    ev.step,
                    ev.action,
                    ev.t,
                    recovery_ms.map_or_else(|| "forever".to_string(), |ms| format!("{ms} ms"))
                ),
                ops: vec![],
            });
        }
        recoveries.push(Recovery { step: ev.step, event: ev.action.clone(), fault, t: ev.t, recovery_ms });
    }
    (recoveries, violations)
}
