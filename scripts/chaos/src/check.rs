//! The checker: reads a history and the final state, applies rules (a)–(g), and gives a verdict.
//!
//! | rule | what | where |
//! |---|---|---|
//! | a | every acknowledged, never-cancelled, kept-renewed register is on every node at the end | [`crate::check_reads`] (final state) |
//! | b | nothing resurrected (acknowledged cancel absent unless re-registered), nothing never written | [`crate::check_reads`] |
//! | c | every node reachable, a voter (learners: a learner), with the same digest, applied index and instances | [`crate::final_state`] |
//! | d | `consistent=1` reads are linearizable (values and cursors) | [`crate::check_reads`] |
//! | e | no eviction while renews succeeded within the lease | [`crate::check_lease`] |
//! | f | writes acknowledged again within a bound after every fault and heal | [`crate::check_avail`] |
//! | g | long polls miss no change they were due | [`crate::check_polls`] |
//!
//! The verdict also refuses a vacuous run (no acknowledged write, consistent read, poll or fault): chaos that
//! checks nothing is not a pass.
//!
//! Rules (a)–(e) are *safety*: a violation means the registry lost, invented, diverged or misreported
//! state, whatever the timing. (f) and (g) are *availability* findings: they depend on timing (a shared,
//! loaded machine can miss their bounds) and are reported without failing CI. The [`Grade`] of a verdict is
//! the exit code of `discovery-chaos run`/`check` and of `scripts/chaos/run.sh`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check_avail::{check_availability, Recovery};
use crate::check_lease::check_evictions;
use crate::check_model::Model;
use crate::check_polls::check_polls;
use crate::check_reads::{check_reads, describe, judge_read, rule_of, ReadClass};
use crate::final_state::{check_converged, FinalState};
use crate::history::{History, Micros, Op, OpKind, Outcome};

/// The rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Rule {
    /// Lost acknowledged register.
    #[serde(rename = "a_lost_register")]
    A,
    /// Resurrected cancel, phantom or wrong value.
    #[serde(rename = "b_resurrected_or_phantom")]
    B,
    /// Replicas diverged.
    #[serde(rename = "c_diverged")]
    C,
    /// Non-linearizable consistent read.
    #[serde(rename = "d_stale_consistent_read")]
    D,
    /// False eviction.
    #[serde(rename = "e_false_eviction")]
    E,
    /// Writes unavailable past the bound.
    #[serde(rename = "f_unavailable")]
    F,
    /// Missed long-poll wake-up.
    #[serde(rename = "g_missed_wakeup")]
    G,
}

impl Rule {
    /// Every rule, in order.
    pub const ALL: [Rule; 7] = [Rule::A, Rule::B, Rule::C, Rule::D, Rule::E, Rule::F, Rule::G];

    /// A safety rule ((a)–(e)); the others ((f), (g)) are availability findings.
    pub fn is_safety(self) -> bool {
        match self {
            Rule::A | Rule::B | Rule::C | Rule::D | Rule::E => true,
            Rule::F | Rule::G => false,
        }
    }

    /// One line of the summary.
    pub fn title(self) -> &'static str {
        match self {
            Rule::A => "(a) acknowledged registers lost",
            Rule::B => "(b) resurrected cancels, phantoms",
            Rule::C => "(c) replicas diverged",
            Rule::D => "(d) non-linearizable consistent reads",
            Rule::E => "(e) false evictions",
            Rule::F => "(f) writes unavailable past the bound",
            Rule::G => "(g) missed long-poll wake-ups",
        }
    }
}

/// What a verdict means, most serious first; also the process exit code ([`Grade::exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// At least one safety rule ((a)–(e)) broken: exit 1, fails CI.
    SafetyViolation,
    /// The run checked nothing (no acknowledged write, consistent read, poll, fault or final state), so it
    /// proves nothing: exit 2, as a run that could not be done.
    Vacuous,
    /// Only availability findings ((f), (g)): exit 3, reported, CI goes on.
    AvailabilityOnly,
    /// No violation: exit 0.
    Pass,
}

impl Grade {
    /// The grade of `violations` and a vacuity reason: a safety violation outranks vacuity (it is a real
    /// finding whatever else the run missed), vacuity outranks availability findings.
    pub fn of(violations: &[Violation], vacuous: bool) -> Grade {
        if violations.iter().any(|v| v.rule.is_safety()) {
            Grade::SafetyViolation
        } else if vacuous {
            Grade::Vacuous
        } else if !violations.is_empty() {
            Grade::AvailabilityOnly
        } else {
            Grade::Pass
        }
    }

    /// Exit code: 0 pass, 1 safety violation, 2 vacuous (as "the run could not be done"), 3 availability
    /// findings only. `scripts/chaos/run.sh` adds 77 (cannot run here) and maps anything else to 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Grade::Pass => 0,
            Grade::SafetyViolation => 1,
            Grade::Vacuous => 2,
            Grade::AvailabilityOnly => 3,
        }
    }

    /// The summary's headline.
    fn headline(self) -> &'static str {
        match self {
            Grade::Pass => "PASS",
            Grade::SafetyViolation => "FAIL: safety violated",
            Grade::Vacuous => "FAIL: vacuous run",
            Grade::AvailabilityOnly => "PASS on safety, availability findings",
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which.
    pub rule: Rule,
    /// What happened, with times and nodes.
    pub what: String,
    /// The ops that prove it (ids in `history.jsonl`).
    pub ops: Vec<u64>,
}

/// Counts of what the run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Per op kind: outcome → count (`ok`, `fail`, `unknown`, and `ok:<code>` for non-zero answers).
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Instances (hostnames) the workload wrote.
    pub instances: usize,
    /// Nemesis faults started, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Nemesis actions that failed.
    pub failed_actions: u64,
}

/// The verdict of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// No violation and not vacuous.
    pub ok: bool,
    /// What the verdict means (and the exit code).
    pub grade: Grade,
    /// Why the run proves nothing, if it does not.
    pub vacuous: Option<String>,
    /// Violations per rule.
    pub counts: BTreeMap<Rule, usize>,
    /// Every violation.
    pub violations: Vec<Violation>,
    /// Recovery after each fault and heal.
    pub recovery: Vec<Recovery>,
    /// Largest recovery, ms.
    pub recovery_max_ms: Option<u64>,
    /// Median recovery after faults, ms.
    pub recovery_p50_ms: Option<u64>,
    /// What the run did.
    pub stats: Stats,
    /// Parameters of the rules.
    pub params: BTreeMap<String, u64>,
}

/// Check a history and (if collected) the final state.
pub fn check(history: &History, final_state: Option<&FinalState>) -> Result<Verdict, String> {
    let header = history.header.as_ref().ok_or("the history has no header line")?;
    let lease = header.lease_ms * 1000;
    let model = Model::build(&history.ops, &history.statuses);
    let mut violations = check_reads(&model, &history.ops, lease);
    if let Some(state) = final_state {
        violations.extend(check_final_reads(&model, state, lease));
        violations.extend(check_converged(state));
    }
    violations.extend(check_evictions(&model, lease, &history.statuses));
    // Writes stop when the settle phase starts (or, in a partial history, at the last write sent).
    let last_write = history.ops.iter().filter(|op| op.kind.is_write()).map(|op| op.start).max().unwrap_or(0);
    let writes_end = history.phases.get("settle").copied().unwrap_or(last_write);
    let (recovery, unavailable) =
        check_availability(&history.ops, &history.nemesis, writes_end, header.recovery_bound_ms);
    violations.extend(unavailable);
    violations.extend(check_polls(&model, &history.ops, &history.nemesis, header));
    violations.sort_by(|a, b| (a.rule, &a.ops).cmp(&(b.rule, &b.ops)));

    let mut counts: BTreeMap<Rule, usize> = Rule::ALL.iter().map(|r| (*r, 0)).collect();
    for v in &violations {
        *counts.entry(v.rule).or_default() += 1;
    }
    let stats = stats(history, &model);
    let vacuous = vacuous(&stats, final_state.is_some());
    let after_faults: Vec<u64> = recovery.iter().filter(|r| r.event == "fault").filter_map(|r| r.recovery_ms).collect();
    let params = BTreeMap::from([
        ("lease_ms".to_string(), header.lease_ms),
        ("poll_timeout_ms".to_string(), header.poll_timeout_ms),
        ("apply_wait_ms".to_string(), header.apply_wait_ms),
        ("recovery_bound_ms".to_string(), header.recovery_bound_ms),
        ("staleness_ms".to_string(), header.staleness_ms),
        ("seed".to_string(), header.seed),
        ("nodes".to_string(), header.nodes.len() as u64),
        ("duration_s".to_string(), header.duration_s),
        ("origin_unix_ms".to_string(), header.origin_unix_ms),
    ]);
    Ok(Verdict {
        ok: violations.is_empty() && vacuous.is_none(),
        grade: Grade::of(&violations, vacuous.is_some()),
        vacuous,
        counts,
        recovery_max_ms: recovery.iter().filter_map(|r| r.recovery_ms).max(),
        recovery_p50_ms: median(after_faults),
        recovery,
        violations,
        stats,
        params,
    })
}

/// Rules (a) and (b) on the final state: a linearizable read of every node over the collection window.
fn check_final_reads(model: &Model<'_>, state: &FinalState, lease: Micros) -> Vec<Violation> {
    let mut out = Vec::new();
    for node in state.nodes.iter().filter(|n| n.reachable) {
        for app in model.apps.keys() {
            let shown = node.apps.get(*app).map_or(&[][..], Vec::as_slice);
            let what = format!("final state of node {}", node.id);
            for (host, finding) in judge_read(model, app, shown, (state.start, state.end), ReadClass::Final, lease) {
                let (text, ops) = describe(model, &host, &finding, &what, state.end);
                out.push(Violation { rule: rule_of(&finding, ReadClass::Final), what: text, ops });
            }
        }
    }
    out
}

fn stats(history: &History, model: &Model<'_>) -> Stats {
    let mut stats = Stats { instances: model.hosts.len(), ..Stats::default() };
    for op in &history.ops {
        let outcome = match (op.outcome, op.code) {
            (Outcome::Ok, Some(0) | None) => "ok".to_string(),
            (Outcome::Ok, Some(code)) => format!("ok:{code}"),
            (Outcome::Fail, _) => "fail".to_string(),
            (Outcome::Unknown, _) => "unknown".to_string(),
        };
        let kind = serde_json::to_value(op.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        *stats.ops.entry(kind).or_default().entry(outcome).or_default() += 1;
    }
    for ev in &history.nemesis {
        if ev.action == "fault" {
            let kind = ev.detail.split_whitespace().next().unwrap_or("?").to_string();
            *stats.faults.entry(kind).or_default() += 1;
        }
        if !ev.ok {
            stats.failed_actions += 1;
        }
    }
    stats
}

/// The detail of the last step's fault event (healing everything), which is not a fault.
const FINAL_HEAL: &str = "final-heal";

fn count(stats: &Stats, kind: OpKind, outcome: &str) -> u64 {
    let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    stats.ops.get(&kind).and_then(|m| m.get(outcome)).copied().unwrap_or(0)
}

fn vacuous(stats: &Stats, has_final: bool) -> Option<String> {
    let acked_writes = count(stats, OpKind::Register, "ok") + count(stats, OpKind::Set, "ok");
    let polls = count(stats, OpKind::Poll, "ok") + count(stats, OpKind::Poll, "ok:-304");
    let reasons: Vec<&str> = [
        (acked_writes == 0, "no acknowledged write"),
        (count(stats, OpKind::FetchConsistent, "ok") == 0, "no consistent read answered"),
        (polls == 0, "no long poll answered"),
        (stats.faults.keys().all(|k| k == FINAL_HEAL), "no fault injected"),
        (!has_final, "no final state collected"),
    ]
    .into_iter()
    .filter_map(|(bad, why)| bad.then_some(why))
    .collect();
    (!reasons.is_empty()).then(|| reasons.join(", "))
}

fn median(mut xs: Vec<u64>) -> Option<u64> {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied()
}

/// The human summary of a verdict; `history` is used to print the ops behind the first violations.
pub fn summary(verdict: &Verdict, history: &History, show: usize) -> String {
    let mut s = String::new();
    let p = |k: &str| verdict.params.get(k).copied().unwrap_or(0);
    let safety = verdict.violations.iter().filter(|v| v.rule.is_safety()).count();
    s.push_str(&format!(
        "== chaos verdict: {} ({} safety violations, {} availability findings; exit {}) seed {} nodes {} duration {} s\n",
        verdict.grade.headline(),
        safety,
        verdict.violations.len() - safety,
        verdict.grade.exit_code(),
        p("seed"),
        p("nodes"),
        p("duration_s")
    ));
    if let Some(why) = &verdict.vacuous {
        s.push_str(&format!("   VACUOUS: {why}\n"));
    }
    for (kind, outcomes) in &verdict.stats.ops {
        let parts: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        s.push_str(&format!("   {kind:<17} {}\n", parts.join(", ")));
    }
    let faults: Vec<String> = verdict.stats.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
    s.push_str(&format!(
        "   instances {}; faults: {}; failed nemesis actions {}\n",
        verdict.stats.instances,
        faults.join(", "),
        verdict.stats.failed_actions
    ));
    s.push_str(&format!(
        "   writes acknowledged again after a fault or heal: max {} ms, median after faults {} ms (bound {} ms)\n",
        verdict.recovery_max_ms.map_or("-".into(), |v| v.to_string()),
        verdict.recovery_p50_ms.map_or("-".into(), |v| v.to_string()),
        p("recovery_bound_ms")
    ));
    for rule in Rule::ALL {
        let kind = if rule.is_safety() { "safety" } else { "availability" };
        let n = verdict.counts.get(&rule).copied().unwrap_or(0);
        s.push_str(&format!("   {:<44} {n:<6} {kind}\n", rule.title()));
    }
    let by_id: BTreeMap<u64, &Op> = history.ops.iter().map(|op| (op.id, op)).collect();
    for v in verdict.violations.iter().take(show) {
        s.push_str(&format!("-- {:?}: {}\n", v.rule, v.what));
        for id in &v.ops {
            if let Some(line) = by_id.get(id).and_then(|op| serde_json::to_string(op).ok()) {
                s.push_str(&format!("     {line}\n"));
            }
        }
    }
    if verdict.violations.len() > show {
        s.push_str(&format!("   ... {} more in verdict.json\n", verdict.violations.len() - show));
    }
    s
}

#[cfg(test)]
mod tests;
