//! The nemesis schedule: a pure function of (seed, nodes, duration), printed and saved with every run so a
//! failing run can be replayed exactly (`discovery-chaos run --schedule schedule.json`).
//!
//! Faults come one at a time (each is healed before the next starts) and never take the majority away:
//! at most a minority is killed or paused, and every partition leaves a connected majority. Kinds cycle
//! through a seeded shuffle of all kinds, so a long run exercises every kind many times and a short run a
//! seeded selection. "Leader" targets are resolved when the step runs (and recorded in the history).

use serde::{Deserialize, Serialize};

use crate::history::NodeInfo;
use crate::rng::Rng;

/// A node chosen by id, or whoever leads when the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The leader at the time.
    Leader,
    /// This node.
    Node(u32),
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// kill -9 one node, restart it after the hold.
    Kill {
        /// Who.
        target: Target,
    },
    /// kill -9 a minority at once, restart them after the hold.
    KillMinority {
        /// Who.
        nodes: Vec<u32>,
    },
    /// SIGSTOP one node, SIGCONT after the hold.
    Pause {
        /// Who.
        target: Target,
    },
    /// SIGSTOP a minority, SIGCONT after the hold.
    PauseMinority {
        /// Who.
        nodes: Vec<u32>,
    },
    /// SIGTERM (graceful stop) and restart at once: a short unavailability of one node.
    Restart {
        /// Who.
        target: Target,
    },
    /// Cut one node (the leader) off from every other node, both ways; clients still reach it.
    Isolate {
        /// Who.
        target: Target,
    },
    /// Cut a minority from the majority, both ways.
    Split {
        /// The minority side.
        minority: Vec<u32>,
    },
    /// Two halves that cannot talk to each other, both connected to one hub node.
    Bridge {
        /// Hub (sees everyone).
        hub: u32,
        /// One half.
        left: Vec<u32>,
        /// The other half.
        right: Vec<u32>,
    },
    /// One-way cut: the target hears no peer (`inbound`), or no peer hears the target.
    OneWay {
        /// Who.
        target: Target,
        /// Drop what the target receives (else what it sends).
        inbound: bool,
    },
    /// `--zones`: demote a voter to a learner (`discovery cluster demote`), promote it back after the hold.
    Demote {
        /// Who (a voter, or the leader).
        target: Target,
    },
    /// `--zones`: promote a learner to a voter (`discovery cluster promote`), demote it back after the hold.
    Promote {
        /// Who (a learner).
        node: u32,
    },
    /// Remove a member (`discovery cluster remove`), stop it, optionally wipe its data, then after the
    /// hold start it with `--join` and add it back (`discovery cluster add`).
    Membership {
        /// Who.
        target: Target,
        /// Wipe its data dir before re-adding (a replacement node with the same id and address).
        wipe: bool,
    },
}

impl Fault {
    /// A short name (first word of the history's fault detail).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::KillMinority { .. } => "kill-minority",
            Fault::Pause { .. } => "pause",
            Fault::PauseMinority { .. } => "pause-minority",
            Fault::Restart { .. } => "restart",
            Fault::Isolate { .. } => "isolate",
            Fault::Split { .. } => "split",
            Fault::Bridge { .. } => "bridge",
            Fault::OneWay { .. } => "one-way",
            Fault::Membership { .. } => "membership",
            Fault::Demote { .. } => "demote",
            Fault::Promote { .. } => "promote",
        }
    }
}

/// One step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// 1-based.
    pub n: u32,
    /// Start, ms after the workload started (later if the previous step overran).
    pub at_ms: u64,
    /// How long the fault is held before healing.
    pub hold_ms: u64,
    /// What.
    pub fault: Fault,
}

/// A whole schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Seed it was generated from.
    pub seed: u64,
    /// Cluster size.
    pub nodes: u32,
    /// Workload duration with faults, seconds.
    pub duration_s: u64,
    /// The steps, in time order.
    pub steps: Vec<Step>,
    /// Generated for the two-zone topology (`generate_zones`).
    #[serde(default)]
    pub zones: bool,
}

/// Number of kinds the generator cycles through.
const KINDS: u64 = 10;

/// Generate the schedule for (seed, nodes, duration).
pub fn generate(seed: u64, nodes: u32, duration_s: u64) -> Schedule {
    let mut rng = Rng::new(seed).fork(0x5eed);
    let ids: Vec<u32> = (1..=nodes).collect();
    let end_ms = duration_s * 1000;
    let mut steps = Vec::new();
    let mut t = 4000;
    let mut deck: Vec<u64> = Vec::new();
    loop {
        if deck.is_empty() {
            deck = (0..KINDS).collect();
            rng.shuffle(&mut deck);
        }
        let Some(kind) = deck.pop() else { break };
        let fault = make(kind, &ids, &mut rng);
        // Now and then a fault outlasts the lease plus the post-election grace (10 s + 4–8 s with the run
        // script's settings): whatever a stale leader told clients meanwhile is then put to the test.
        let long = rng.chance(0.25);
        let hold_ms = match fault {
            Fault::Restart { .. } => 0,
            Fault::Membership { .. } => rng.range(4000, 12_000),
            _ if long => rng.range(16_000, 26_000),
            _ => rng.range(3000, 12_000),
        };
        if t + hold_ms + 2000 > end_ms {
            break;
        }
        steps.push(Step { n: steps.len() as u32 + 1, at_ms: t, hold_ms, fault });
        t += hold_ms + rng.range(3000, 7000);
    }
    Schedule { seed, nodes, duration_s, steps, zones: false }
}

/// The zone of the voters in the `--zones` topology (and of the instances registered through them).
pub const HOME_ZONE: &str = "za";
/// The zone of the read replicas (learners) in the `--zones` topology.
pub const REMOTE_ZONE: &str = "zb";
/// The voters of the `--zones` topology.
pub const ZONE_VOTERS: [u32; 3] = [1, 2, 3];
/// The learners of the `--zones` topology.
pub const ZONE_LEARNERS: [u32; 2] = [4, 5];
/// Number of kinds the zones generator cycles through.
const ZONE_KINDS: u64 = 9;

/// Give the five nodes of the `--zones` topology their zone and role.
pub fn zone_layout(mut nodes: Vec<NodeInfo>) -> Vec<NodeInfo> {
    for n in &mut nodes {
        n.learner = ZONE_LEARNERS.contains(&n.id);
        n.zone = if n.learner { REMOTE_ZONE } else { HOME_ZONE }.to_string();
    }
    nodes
}

/// The schedule of the `--zones` topology (voters 1-3 in za, learners 4-5 in zb), a pure function of
/// (seed, duration): cut zone zb from za both ways, kill or pause the whole of zb, kill or pause one voter
/// (the leader half the time), cut one voter off, isolate the leader, demote a voter (promote it back),
/// promote a learner (demote it back). The voters keep a majority through
/// every fault (at most one voter is taken), and each fault is healed before the next, as in `generate`.
pub fn generate_zones(seed: u64, duration_s: u64) -> Schedule {
    let mut rng = Rng::new(seed).fork(0x2035);
    let end_ms = duration_s * 1000;
    let mut steps = Vec::new();
    let mut t = 4000;
    let mut deck: Vec<u64> = Vec::new();
    loop {
        let first = deck.is_empty() && steps.is_empty();
        if deck.is_empty() {
            deck = (1..ZONE_KINDS).collect();
            rng.shuffle(&mut deck);
            // Every run starts with the zone cut: even a short run puts its one defining fault to the test.
            if first {
                deck.push(0);
            } else {
                deck.insert(rng.range(0, deck.len() as u64) as usize, 0);
            }
        }
        let Some(kind) = deck.pop() else { break };
        let fault = make_zone(kind, &mut rng);
        // The first cut, and now and then another fault, outlasts the lease plus the grace: the zone's
        // instances must not be evicted for renews that could not cross it.
        let long = first || rng.chance(0.3);
        let hold_ms = if long { rng.range(16_000, 26_000) } else { rng.range(3000, 12_000) };
        if t + hold_ms + 2000 > end_ms {
            break;
        }
        steps.push(Step { n: steps.len() as u32 + 1, at_ms: t, hold_ms, fault });
        t += hold_ms + rng.range(3000, 7000);
    }
    Schedule { seed, nodes: 5, duration_s, steps, zones: true }
}

fn voter(rng: &mut Rng) -> Target {
    if rng.chance(0.5) {
        Target::Leader
    } else {
        Target::Node(rng.pick(&ZONE_VOTERS).copied().unwrap_or(1))
    }
}

fn make_zone(kind: u64, rng: &mut Rng) -> Fault {
    match kind {
        0 => Fault::Split { minority: ZONE_LEARNERS.to_vec() },
        1 => Fault::KillMinority { nodes: ZONE_LEARNERS.to_vec() },
        2 => Fault::PauseMinority { nodes: ZONE_LEARNERS.to_vec() },
        3 => Fault::Kill { target: voter(rng) },
        4 => Fault::Pause { target: voter(rng) },
        5 => Fault::Split { minority: vec![rng.pick(&ZONE_VOTERS).copied().unwrap_or(1)] },
        6 => Fault::Demote { target: voter(rng) },
        7 => Fault::Promote { node: rng.pick(&ZONE_LEARNERS).copied().unwrap_or(4) },
        _ => Fault::Isolate { target: Target::Leader },
    }
}

fn target(rng: &mut Rng, ids: &[u32]) -> Target {
    if rng.chance(0.5) {
        Target::Leader
    } else {
        Target::Node(rng.pick(ids).copied().unwrap_or(1))
    }
}

/// `k` distinct random nodes.
fn some(rng: &mut Rng, ids: &[u32], k: usize) -> Vec<u32> {
    let mut all = ids.to_vec();
    rng.shuffle(&mut all);
    all.truncate(k);
    all.sort_unstable();
    all
}

fn make(kind: u64, ids: &[u32], rng: &mut Rng) -> Fault {
    let minority = (ids.len() - 1) / 2;
    match kind {
        0 => Fault::Kill { target: target(rng, ids) },
        1 => Fault::KillMinority { nodes: some(rng, ids, minority.max(1)) },
        2 => Fault::Pause { target: target(rng, ids) },
        3 => Fault::PauseMinority { nodes: some(rng, ids, minority.max(1)) },
        4 => Fault::Restart { target: target(rng, ids) },
        5 => Fault::Isolate { target: Target::Leader },
        6 => {
            let k = usize::try_from(rng.range(1, minority as u64)).unwrap_or(1);
            Fault::Split { minority: some(rng, ids, k) }
        }
        7 => {
            let mut all = ids.to_vec();
            rng.shuffle(&mut all);
            let hub = all[0];
            let rest = &all[1..];
            let (left, right) = rest.split_at(rest.len() / 2);
            let (mut left, mut right) = (left.to_vec(), right.to_vec());
            left.sort_unstable();
            right.sort_unstable();
            Fault::Bridge { hub, left, right }
        }
        8 => Fault::OneWay { target: target(rng, ids), inbound: rng.chance(0.5) },
        _ => Fault::Membership { target: target(rng, ids), wipe: rng.chance(0.5) },
    }
}

/// One line per step, for the console and `schedule.txt`.
pub fn render(schedule: &Schedule) -> String {
    let mut s = format!(
        "schedule: seed {} nodes {} duration {} s, {} steps\n",
        schedule.seed,
        schedule.nodes,
        schedule.duration_s,
        schedule.steps.len()
    );
    for step in &schedule.steps {
        let fault = serde_json::to_string(&step.fault).unwrap_or_default();
        s.push_str(&format!(
            "  #{:<3} at {:>7.1} s hold {:>5.1} s  {fault}\n",
            step.n,
            step.at_ms as f64 / 1000.0,
            step.hold_ms as f64 / 1000.0
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(generate(42, 5, 600), generate(42, 5, 600));
        assert_ne!(generate(42, 5, 600), generate(43, 5, 600));
    }

    #[test]
    fn a_long_run_covers_every_kind_and_steps_fit_the_duration() {
        let s = generate(7, 5, 1800);
        let kinds: std::collections::BTreeSet<&str> = s.steps.iter().map(|st| st.fault.name()).collect();
        assert_eq!(kinds.len() as u64, KINDS, "{kinds:?}");
        for w in s.steps.windows(2) {
            assert!(w[0].at_ms + w[0].hold_ms < w[1].at_ms, "one fault at a time");
        }
        let last = s.steps.last().expect("steps");
        assert!(last.at_ms + last.hold_ms <= 1800 * 1000);
    }

    #[test]
    fn faults_never_take_the_majority() {
        for seed in 0..50 {
            for nodes in [3u32, 5] {
                for step in generate(seed, nodes, 300).steps {
                    let majority = nodes as usize / 2 + 1;
                    match &step.fault {
                        Fault::KillMinority { nodes: ns } | Fault::PauseMinority { nodes: ns } => {
                            assert!(ns.len() < majority)
                        }
                        Fault::Split { minority } => assert!(!minority.is_empty() && minority.len() < majority),
                        Fault::Bridge { hub, left, right } => {
                            assert!(left.len() + 1 >= majority || right.len() + 1 >= majority);
                            assert!(!left.contains(hub) && !right.contains(hub));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    #[test]
    fn the_zones_schedule_takes_at_most_one_voter_and_covers_every_kind() {
        assert_eq!(generate_zones(7, 600), generate_zones(7, 600));
        for seed in 0..20 {
            let first = &generate_zones(seed, 60).steps[0];
            assert_eq!(first.fault, Fault::Split { minority: vec![4, 5] }, "seed {seed}");
            assert!(first.hold_ms >= 16_000, "the first cut outlasts the lease");
        }
        let s = generate_zones(7, 1800);
        assert!(s.zones && s.nodes == 5);
        let mut names = std::collections::BTreeSet::new();
        for step in &s.steps {
            names.insert(serde_json::to_string(&step.fault).expect("json"));
            match &step.fault {
                Fault::KillMinority { nodes } | Fault::PauseMinority { nodes } => assert_eq!(nodes, &[4, 5]),
                Fault::Split { minority } => {
                    assert!(minority == &[4, 5] || (minority.len() == 1 && minority[0] <= 3), "{minority:?}")
                }
                Fault::Kill { target: Target::Node(n) } | Fault::Pause { target: Target::Node(n) } => {
                    assert!(*n <= 3)
                }
                Fault::Demote { target: Target::Node(n) } => assert!(*n <= 3),
                Fault::Promote { node } => assert!(ZONE_LEARNERS.contains(node)),
                Fault::Kill { .. }
                | Fault::Pause { .. }
                | Fault::Demote { .. }
                | Fault::Isolate { target: Target::Leader } => {}
                other => panic!("not a zones fault: {other:?}"),
            }
        }
        assert!(names.len() >= ZONE_KINDS as usize, "{names:?}");
    }

    #[test]
    fn a_schedule_round_trips_through_json() {
        let s = generate(3, 3, 120);
        let text = serde_json::to_string(&s).expect("serialize");
        assert_eq!(serde_json::from_str::<Schedule>(&text).expect("parse"), s);
    }
}
