//! The checker against hand-made histories: each breaks one rule on purpose (and a clean one breaks none).

use std::collections::BTreeMap;

use super::*;
use crate::final_state::FinalNode;
use crate::history::{Header, NemesisEvent, NodeInfo, Seen};

const APP: &str = "chaos.app0";
const MS: u64 = 1000;

fn header() -> Header {
    Header {
        seed: 1,
        nodes: (1..=3)
            .map(|id| NodeInfo { id, addr: format!("10.77.0.{id}:7100"), zone: String::new(), learner: false })
            .collect(),
        env: "chaos".into(),
        zone: "z1".into(),
        apps: vec![APP.into()],
        lease_ms: 10_000,
        poll_timeout_ms: 5_000,
        apply_wait_ms: 5_000,
        recovery_bound_ms: 15_000,
        staleness_ms: 2_000,
        duration_s: 60,
        origin_unix_ms: 0,
    }
}

/// A history under construction; times in milliseconds.
#[derive(Default)]
struct Hist {
    ops: Vec<Op>,
    nemesis: Vec<NemesisEvent>,
    phases: BTreeMap<String, Micros>,
}

impl Hist {
    fn push(&mut self, kind: OpKind, host: Option<&str>, node: u32, (s, e): (u64, u64), code: Option<i64>) -> u64 {
        let id = self.ops.len() as u64 + 1;
        let outcome = if code.is_some() { Outcome::Ok } else { Outcome::Unknown };
        let w = matches!(kind, OpKind::Register | OpKind::Set).then_some(id);
        let status = w.map(|_| 1);
        self.ops.push(Op {
            id,
            worker: 0,
            node,
            kind,
            app: APP.into(),
            host: host.map(str::to_string),
            w,
            status,
            start: s * MS,
            end: e * MS,
            outcome,
            code,
            err: None,
            seen: None,
            ts: None,
            cursor: None,
            cursor_from: None,
        });
        id
    }

    fn write(&mut self, kind: OpKind, host: &str, node: u32, t: (u64, u64), code: i64) -> u64 {
        self.push(kind, Some(host), node, t, Some(code))
    }

    /// Renews `host` on node 1 every second over `[from, to]` (ms), each taking 100 ms.
    fn renew_every_second(&mut self, host: &str, from: u64, to: u64) {
        let mut t = from;
        while t <= to {
            self.write(OpKind::Renew, host, 1, (t, t + 100), 0);
            t += 1000;
        }
    }

    fn read(&mut self, kind: OpKind, node: u32, t: (u64, u64), seen: &[(&str, u64)], ts: i64) -> u64 {
        let id = self.push(kind, None, node, t, Some(0));
        let op = self.ops.last_mut().expect("just pushed");
        op.seen = Some(seen.iter().map(|(h, w)| Seen { h: (*h).into(), w: Some(*w), s: 1 }).collect());
        op.ts = Some(ts);
        id
    }

    fn nemesis(&mut self, t: u64, step: u32, action: &str, nodes: &[u32]) {
        self.nemesis.push(NemesisEvent {
            t: t * MS,
            step,
            action: action.into(),
            nodes: nodes.to_vec(),
            detail: format!("{action} test"),
            ok: true,
        });
    }

    fn history(&self) -> History {
        History {
            header: Some(header()),
            ops: self.ops.clone(),
            nemesis: self.nemesis.clone(),
            phases: self.phases.clone(),
            statuses: Vec::new(),
        }
    }
}

/// Every node shows `seen` over `[start, end]` ms, with equal digests.
fn final_state(start: u64, end: u64, seen: &[(&str, u64)]) -> FinalState {
    let list: Vec<Seen> = seen.iter().map(|(h, w)| Seen { h: (*h).into(), w: Some(*w), s: 1 }).collect();
    FinalState {
        start: start * MS,
        end: end * MS,
        stable: true,
        nodes: (1..=3)
            .map(|id| FinalNode {
                id,
                addr: format!("10.77.0.{id}:7100"),
                reachable: true,
                member: true,
                role: if id == 1 { "Leader".into() } else { "Follower".into() },
                last_applied: Some(42),
                digest: Some("00ff".into()),
                instances: Some(list.len() as u64),
                apps: BTreeMap::from([(APP.to_string(), list.clone())]),
            })
            .collect(),
    }
}

/// The rules broken, ignoring the vacuity guard (each test builds only what its rule needs).
fn broken(h: &Hist, fin: Option<&FinalState>) -> Vec<Rule> {
    let verdict = check(&h.history(), fin).expect("checkable");
    verdict.violations.iter().map(|v| v.rule).collect()
}

/// An anchor registered at 0 and renewed every second until `until` ms.
fn with_anchor(h: &mut Hist, until: u64) -> u64 {
    let w = h.write(OpKind::Register, "anchor-app0-0", 1, (0, 100), 0);
    h.renew_every_second("anchor-app0-0", 1000, until);
    w
}

#[test]
fn a_clean_history_breaks_no_rule() {
    let mut h = Hist::default();
    let anchor = with_anchor(&mut h, 30_000);
    let a = h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.renew_every_second("c1s0g0", 2000, 30_000);
    let b = h.write(OpKind::Register, "c2s0g0", 3, (1500, 1600), 0);
    h.write(OpKind::Cancel, "c2s0g0", 1, (3000, 3100), 0);
    h.read(OpKind::FetchConsistent, 2, (4000, 4100), &[("anchor-app0-0", anchor), ("c1s0g0", a)], 10);
    h.read(OpKind::Fetch, 3, (2000, 2100), &[("anchor-app0-0", anchor), ("c1s0g0", a), ("c2s0g0", b)], 9);
    let fin = final_state(30_000, 30_500, &[("anchor-app0-0", anchor), ("c1s0g0", a)]);
    assert_eq!(broken(&h, Some(&fin)), vec![]);
}

#[test]
fn a_lost_write_is_reported_by_the_final_state_and_consistent_reads() {
    let mut h = Hist::default();
    let anchor = with_anchor(&mut h, 30_000);
    h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.renew_every_second("c1s0g0", 2000, 30_000);
    // A consistent read after the acknowledgement that misses it, and a final state without it.
    h.read(OpKind::FetchConsistent, 3, (5000, 5100), &[("anchor-app0-0", anchor)], 10);
    let fin = final_state(30_000, 30_500, &[("anchor-app0-0", anchor)]);
    let rules = broken(&h, Some(&fin));
    assert_eq!(rules.iter().filter(|r| **r == Rule::A).count(), 3, "one per node: {rules:?}");
    assert!(rules.contains(&Rule::D), "{rules:?}");
}

#[test]
fn a_write_of_unknown_outcome_may_be_there_or_not() {
    let mut h = Hist::default();
    let anchor = with_anchor(&mut h, 30_000);
    let w = h.push(OpKind::Register, Some("c1s0g0"), 2, (1000, 9000), None);
    assert_eq!(broken(&h, Some(&final_state(30_000, 30_500, &[("anchor-app0-0", anchor)]))), vec![]);
    let fin = final_state(30_000, 30_500, &[("anchor-app0-0", anchor), ("c1s0g0", w)]);
    assert_eq!(broken(&h, Some(&fin)), vec![]);
}

#[test]
fn an_instance_whose_renews_stopped_may_be_evicted() {
    let mut h = Hist::default();
    let anchor = with_anchor(&mut h, 30_000);
    h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.renew_every_second("c1s0g0", 2000, 5000);
    // Last renew started at 5 s: from 15 s on the lease may be gone.
    h.read(OpKind::FetchConsistent, 3, (16_000, 16_100), &[("anchor-app0-0", anchor)], 10);
    assert_eq!(broken(&h, Some(&final_state(30_000, 30_500, &[("anchor-app0-0", anchor)]))), vec![]);
    // But not at 12 s: renewed at 5 s, it was evicted although renewed.
    h.read(OpKind::FetchConsistent, 3, (12_000, 12_100), &[("anchor-app0-0", anchor)], 10);
    assert_eq!(broken(&h, None), vec![Rule::E]);
}

#[test]
fn a_stale_consistent_read_is_reported() {
    let mut h = Hist::default();
    let first = h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.write(OpKind::Set, "c1s0g0", 1, (2000, 2200), 0);
    // A local read may lag; a consistent one may not.
    h.read(OpKind::Fetch, 3, (3000, 3100), &[("c1s0g0", first)], 10);
    assert_eq!(broken(&h, None), vec![]);
    h.read(OpKind::FetchConsistent, 3, (3000, 3100), &[("c1s0g0", first)], 10);
    assert_eq!(broken(&h, None), vec![Rule::D]);
}

#[test]
fn a_consistent_read_older_than_an_earlier_read_is_stale() {
    let mut h = Hist::default();
    let first = h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    // The set's acknowledgement is lost (unknown), but a local read shows it applied at 4 s.
    let second = h.push(OpKind::Set, Some("c1s0g0"), 1, (2000, 9000), None);
    h.read(OpKind::Fetch, 3, (3000, 4000), &[("c1s0g0", second)], 11);
    h.read(OpKind::FetchConsistent, 2, (5000, 5100), &[("c1s0g0", first)], 10);
    let rules = broken(&h, None);
    assert_eq!(rules, vec![Rule::D, Rule::D], "stale value and older cursor");
}

#[test]
fn a_resurrected_cancel_is_reported() {
    let mut h = Hist::default();
    let anchor = with_anchor(&mut h, 30_000);
    let w = h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.renew_every_second("c1s0g0", 2000, 3000);
    h.write(OpKind::Cancel, "c1s0g0", 2, (3500, 3600), 0);
    let fin = final_state(30_000, 30_500, &[("anchor-app0-0", anchor), ("c1s0g0", w)]);
    let rules = broken(&h, Some(&fin));
    assert_eq!(rules, vec![Rule::B, Rule::B, Rule::B], "one per node");
    // Re-registered later: present is right.
    let again = h.write(OpKind::Register, "c1s0g0", 2, (4000, 4100), 0);
    h.renew_every_second("c1s0g0", 5000, 30_000);
    let fin = final_state(30_000, 30_500, &[("anchor-app0-0", anchor), ("c1s0g0", again)]);
    assert_eq!(broken(&h, Some(&fin)), vec![]);
}

#[test]
fn a_phantom_is_reported() {
    let mut h = Hist::default();
    h.read(OpKind::Fetch, 1, (1000, 1100), &[("never-registered", 77)], 5);
    assert_eq!(broken(&h, None), vec![Rule::B]);
}

#[test]
fn a_false_eviction_is_reported() {
    let mut h = Hist::default();
    h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.renew_every_second("c1s0g0", 2000, 6000);
    // Renewed at 6 s, lease 10 s: a -404 at 9 s is an eviction that should not have happened.
    h.write(OpKind::Renew, "c1s0g0", 3, (9000, 9100), -404);
    assert_eq!(broken(&h, None), vec![Rule::E]);
}

#[test]
fn an_eviction_after_a_gap_in_renews_is_legitimate() {
    let mut h = Hist::default();
    h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.renew_every_second("c1s0g0", 2000, 4000);
    // Renews failed from 4 s to 16 s (not recorded as successes): the lease ran out at 14 s.
    h.write(OpKind::Renew, "c1s0g0", 3, (16_000, 16_100), -404);
    // And a set finding it gone is consistent with that.
    h.write(OpKind::Set, "c1s0g0", 3, (16_200, 16_300), -404);
    assert_eq!(broken(&h, None), vec![]);
}

#[test]
fn a_missed_wakeup_is_reported() {
    let mut h = Hist::default();
    with_anchor(&mut h, 30_000);
    // The poller's cursor came from a poll answered at 1 s; it polls node 1 from 2 s to 7 s (timeout 5 s).
    let poll = h.push(OpKind::Poll, None, 1, (2000, 7000), Some(-304));
    h.ops[poll as usize - 1].cursor = Some(10);
    h.ops[poll as usize - 1].cursor_from = Some(1000 * MS);
    // Meanwhile node 1 acknowledged a register of that app at 3.2 s.
    h.write(OpKind::Register, "c1s0g0", 1, (3000, 3200), 0);
    h.renew_every_second("c1s0g0", 4000, 8000);
    assert_eq!(broken(&h, None), vec![Rule::G]);
}

#[test]
fn a_poll_is_not_blamed_for_writes_it_could_not_see() {
    let mut h = Hist::default();
    with_anchor(&mut h, 30_000);
    let poll = h.push(OpKind::Poll, None, 1, (2000, 7000), Some(-304));
    h.ops[poll as usize - 1].cursor = Some(10);
    h.ops[poll as usize - 1].cursor_from = Some(1000 * MS);
    // Acknowledged by node 2 while a fault was active: node 1 may have been cut off.
    h.nemesis(2500, 1, "fault", &[1]);
    h.write(OpKind::Register, "c1s0g0", 2, (3000, 3200), 0);
    h.nemesis(8000, 1, "healed", &[1]);
    // Started before the cursor was read: may be older than the cursor.
    h.write(OpKind::Register, "c2s0g0", 1, (900, 3000), 0);
    // Acknowledged by node 1 after the poll's deadline.
    h.write(OpKind::Register, "c3s0g0", 1, (6800, 7100), 0);
    assert_eq!(broken(&h, None), vec![]);
}

#[test]
fn writes_unavailable_too_long_after_a_fault_are_reported() {
    let mut h = Hist::default();
    h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.nemesis(10_000, 1, "fault", &[1]);
    h.nemesis(20_000, 1, "healed", &[1]);
    h.write(OpKind::Set, "c1s0g0", 2, (35_000, 40_000), 0);
    assert_eq!(broken(&h, None), vec![Rule::F, Rule::F], "30 s after the fault, 15 s after the heal");
}

#[test]
fn diverged_replicas_are_reported() {
    let mut h = Hist::default();
    let anchor = with_anchor(&mut h, 30_000);
    let mut fin = final_state(30_000, 30_500, &[("anchor-app0-0", anchor)]);
    fin.nodes[2].digest = Some("beef".into());
    assert_eq!(broken(&h, Some(&fin)), vec![Rule::C]);
}

#[test]
fn a_vacuous_run_does_not_pass() {
    let mut h = Hist::default();
    let verdict = check(&h.history(), None).expect("checkable");
    assert!(!verdict.ok);
    assert!(verdict.vacuous.as_deref().is_some_and(|v| v.contains("no fault injected")));
    // The final heal alone is no fault either.
    h.nemesis.push(NemesisEvent {
        t: 0,
        step: 0,
        action: "fault".into(),
        nodes: vec![],
        detail: "final-heal".into(),
        ok: true,
    });
    let verdict = check(&h.history(), None).expect("checkable");
    assert!(verdict.vacuous.as_deref().is_some_and(|v| v.contains("no fault injected")));
}

#[test]
fn a_false_eviction_names_the_deposed_leader_that_judged_it() {
    let mut h = Hist::default();
    h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.write(OpKind::Renew, "c1s0g0", 1, (3000, 3100), -404);
    let mut history = h.history();
    let sample = |t: u64, node: u32, role: &str, term: u64, leader: u32| crate::history::StatusSample {
        t: t * MS,
        node,
        role: role.into(),
        term,
        leader: Some(leader),
    };
    history.statuses = vec![sample(500, 1, "Leader", 2, 1), sample(2000, 2, "Leader", 3, 2)];
    let verdict = check(&history, None).expect("checkable");
    let what = &verdict.violations.first().expect("one violation").what;
    assert!(what.contains("[node 1 then: Leader of term 2, leader 1; newest term then: 3, leader 2]"), "{what}");
}

/// A violation of `rule` (the text and ops do not matter to the grade).
fn violation(rule: Rule) -> Violation {
    Violation { rule, what: String::new(), ops: Vec::new() }
}

#[test]
fn safety_rules_are_a_to_e() {
    let safety: Vec<Rule> = Rule::ALL.into_iter().filter(|r| r.is_safety()).collect();
    assert_eq!(safety, vec![Rule::A, Rule::B, Rule::C, Rule::D, Rule::E]);
}

#[test]
fn the_exit_code_fails_on_safety_and_vacuity_and_only_reports_availability() {
    let grade = |rules: &[Rule], vacuous: bool| {
        let violations: Vec<Violation> = rules.iter().copied().map(violation).collect();
        let g = Grade::of(&violations, vacuous);
        (g, g.exit_code())
    };
    assert_eq!(grade(&[], false), (Grade::Pass, 0));
    for safety in [Rule::A, Rule::B, Rule::C, Rule::D, Rule::E] {
        assert_eq!(grade(&[safety], false), (Grade::SafetyViolation, 1), "{safety:?}");
        assert_eq!(grade(&[Rule::F, safety, Rule::G], false), (Grade::SafetyViolation, 1), "{safety:?} with (f), (g)");
        assert_eq!(grade(&[safety], true), (Grade::SafetyViolation, 1), "a real finding outranks vacuity");
    }
    assert_eq!(grade(&[Rule::F], false), (Grade::AvailabilityOnly, 3));
    assert_eq!(grade(&[Rule::G, Rule::G, Rule::F], false), (Grade::AvailabilityOnly, 3));
    assert_eq!(grade(&[], true), (Grade::Vacuous, 2), "a run that checked nothing is not a pass");
    assert_eq!(grade(&[Rule::F], true), (Grade::Vacuous, 2));
}

#[test]
fn a_verdict_carries_its_grade() {
    // A complete run (writes, a consistent read, a poll, a fault, the final state) whose only finding is
    // that writes took 30 s to come back after a fault: graded "availability only", exit 3.
    let mut h = Hist::default();
    let anchor = with_anchor(&mut h, 52_000);
    let early = h.write(OpKind::Register, "c1s0g0", 2, (1000, 1200), 0);
    h.read(OpKind::FetchConsistent, 2, (2000, 2100), &[("anchor-app0-0", anchor), ("c1s0g0", early)], 10);
    h.nemesis(10_000, 1, "fault", &[1]);
    h.nemesis(20_000, 1, "healed", &[1]);
    let late = h.write(OpKind::Register, "c2s0g0", 2, (35_000, 40_000), 0);
    h.renew_every_second("c2s0g0", 41_000, 52_000);
    let poll = h.read(OpKind::Poll, 3, (45_000, 45_100), &[("anchor-app0-0", anchor), ("c2s0g0", late)], 20);
    h.ops[poll as usize - 1].cursor = Some(10);
    let fin = final_state(51_000, 51_500, &[("anchor-app0-0", anchor), ("c2s0g0", late)]);
    let verdict = check(&h.history(), Some(&fin)).expect("checkable");
    assert_eq!(verdict.vacuous, None);
    let rules: Vec<Rule> = verdict.violations.iter().map(|v| v.rule).collect();
    assert!(!rules.is_empty() && rules.iter().all(|r| *r == Rule::F), "{:?}", verdict.violations);
    assert!(!verdict.ok);
    assert_eq!((verdict.grade, verdict.grade.exit_code()), (Grade::AvailabilityOnly, 3));
    assert!(summary(&verdict, &h.history(), 0).contains("availability findings; exit 3"));
    // The same run whose final state lost the late register: a safety violation, exit 1.
    let lost = final_state(51_000, 51_500, &[("anchor-app0-0", anchor)]);
    let verdict = check(&h.history(), Some(&lost)).expect("checkable");
    assert_eq!((verdict.grade, verdict.grade.exit_code()), (Grade::SafetyViolation, 1), "{:?}", verdict.violations);
}
