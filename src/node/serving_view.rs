//! Which members can serve clients, as one node judges it from its probes: the pure decision behind the
//! member list of `infra.discovery` and `/discovery/nodes` (the probing itself is `liveness`).
//!
//! Rules (time is passed in, as a `Duration` since the prober's origin):
//! - A peer is *reachable* if it answered a probe within [`Rules::window`].
//! - A peer *can serve* if it is reachable, says it serves (it has a leader, applied what it knows to be
//!   committed, has no local problem such as a dead core, a stop in progress or a full disk), and is
//!   current: a member still catching up (a restart replaying its log, a snapshot install) is left out.
//!   Current has hysteresis. To stay listed, a peer must have applied what this node knew committed one
//!   probe round earlier (a healthy follower is a heartbeat behind under load, it must not flap). To be
//!   listed again, it must have applied everything this node knew committed when it sent the probe, or
//!   have stayed current by the first rule for [`RETURN_STREAK`] rounds in a row (under a steady write
//!   load a follower is never exactly at the leader's commit index when probed).
//! - This node is *connected* while the voters it can reach, itself included, are a majority. Only a
//!   connected node judges the others: a node cut off from the majority cannot tell a dead peer from a
//!   broken link, so it keeps the list it last judged while connected and takes only itself out of it.
//!   Its clients (the Go SDK re-reads the list on every change) then move to the members that can serve.
//! - Before the first probe round has an answer from every peer or has timed out, nothing is known yet and
//!   every member is listed (as before liveness existed), so a starting node never shows an empty list.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Consecutive current answers after which a peer that was not listed is listed again.
pub const RETURN_STREAK: u32 = 2;

/// Timing of the judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// A peer not heard from for longer is unreachable.
    pub window: Duration,
}

/// What a member says about itself when probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SelfReport {
    /// Its node id.
    pub id: u64,
    /// It has a leader, is connected, has applied what it knows committed, and has no local problem.
    pub serving: bool,
    /// Its last applied log index.
    pub applied: Option<u64>,
}

/// This node's record of one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    /// When it last answered a probe.
    pub answered_at: Option<Duration>,
    /// What it said then.
    pub report: Option<SelfReport>,
    /// What this node knew to be committed when it sent the last answered probe.
    pub committed_at_send: Option<u64>,
    /// What this node knew to be committed one probe round before that.
    pub committed_before: Option<u64>,
    /// Answers in a row that were current by the staying rule (see the module doc).
    pub streak: u32,
}

impl Observation {
    /// Record an answer `report` received at `now` to a probe sent when this node knew `committed_at_send`
    /// committed, and `committed_before` one round earlier.
    pub fn record(
        &mut self,
        now: Duration,
        report: SelfReport,
        committed_at_send: Option<u64>,
        committed_before: Option<u64>,
    ) {
        let current = report.serving && applied_at_least(report.applied, committed_before);
        self.streak = if current { self.streak.saturating_add(1) } else { 0 };
        self.answered_at = Some(now);
        self.report = Some(report);
        self.committed_at_send = committed_at_send;
        self.committed_before = committed_before;
    }
}

impl Observation {
    /// A probe got no answer: a peer that comes back must earn its streak again.
    pub fn missed(&mut self) {
        self.streak = 0;
    }
}

fn applied_at_least(applied: Option<u64>, committed: Option<u64>) -> bool {
    committed.is_none_or(|c| applied.is_some_and(|a| a >= c))
}

/// The judgement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Members to list.
    pub listed: BTreeSet<u64>,
    /// This node can reach a majority of the voters.
    pub connected: bool,
}

/// What the judgement looks at.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Now.
    pub now: Duration,
    /// This node.
    pub me: u64,
    /// Every member (voters and learners).
    pub members: &'a BTreeSet<u64>,
    /// The voters.
    pub voters: &'a BTreeSet<u64>,
    /// This node serves, as far as it can tell on its own (leader known, applied, no local problem).
    pub me_serving: bool,
    /// The record of each peer (absent: never probed).
    pub peers: &'a BTreeMap<u64, Observation>,
    /// The list judged when this node was last connected (`None`: never).
    pub last_connected: Option<&'a BTreeSet<u64>>,
    /// The list of the previous verdict (`None`: none yet).
    pub previous: Option<&'a BTreeSet<u64>>,
}

impl Rules {
    fn reachable(&self, now: Duration, observation: &Observation) -> bool {
        observation.answered_at.is_some_and(|at| now.saturating_sub(at) <= self.window)
    }

    fn can_serve(&self, now: Duration, observation: &Observation, listed: bool) -> bool {
        let Some(report) = observation.report.filter(|_| self.reachable(now, observation)) else { return false };
        let current = if listed {
            applied_at_least(report.applied, observation.committed_before)
        } else {
            applied_at_least(report.applied, observation.committed_at_send) || observation.streak >= RETURN_STREAK
        };
        report.serving && current
    }

    /// Judge which members can serve.
    pub fn judge(&self, inputs: &Inputs<'_>) -> Verdict {
        let Inputs { now, me, members, voters, me_serving, peers, last_connected, previous } = *inputs;
        let reachable: BTreeSet<u64> =
            peers.iter().filter(|(_, o)| self.reachable(now, o)).map(|(id, _)| *id).chain([me]).collect();
        let reached_voters = voters.iter().filter(|v| reachable.contains(v)).count();
        let connected = voters.is_empty() || reached_voters * 2 > voters.len();
        if !connected {
            let mut listed = last_connected.cloned().unwrap_or_else(|| members.clone());
            listed.remove(&me);
            return Verdict { listed, connected };
        }
        let mut listed: BTreeSet<u64> = members
            .iter()
            .filter(|id| **id != me)
            .filter(|id| {
                let listed = previous.is_some_and(|p| p.contains(id));
                peers.get(id).is_some_and(|o| self.can_serve(now, o, listed))
            })
            .copied()
            .collect();
        if me_serving && members.contains(&me) {
            listed.insert(me);
        }
        Verdict { listed, connected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules { window: Duration::from_millis(1500) };

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn report(id: u64, serving: bool, applied: u64) -> SelfReport {
        SelfReport { id, serving, applied: Some(applied) }
    }

    fn seen(at: f64, id: u64, serving: bool, applied: u64, committed_before: u64) -> Observation {
        Observation {
            answered_at: Some(secs(at)),
            report: Some(report(id, serving, applied)),
            committed_at_send: Some(committed_before),
            committed_before: Some(committed_before),
            streak: 1,
        }
    }

    fn ids(list: &[u64]) -> BTreeSet<u64> {
        list.iter().copied().collect()
    }

    fn judge(now: f64, me_serving: bool, peers: &BTreeMap<u64, Observation>, last: Option<&BTreeSet<u64>>) -> Verdict {
        let members = ids(&[1, 2, 3]);
        RULES.judge(&Inputs {
            now: secs(now),
            me: 1,
            members: &members,
            voters: &members,
            me_serving,
            peers,
            last_connected: last,
            previous: None,
        })
    }

    #[test]
    fn every_current_reachable_member_is_listed() {
        let peers = BTreeMap::from([(2, seen(10.0, 2, true, 50, 50)), (3, seen(10.2, 3, true, 51, 50))]);
        assert_eq!(judge(10.5, true, &peers, None), Verdict { listed: ids(&[1, 2, 3]), connected: true });
    }

    #[test]
    fn a_peer_silent_past_the_window_is_dropped_and_comes_back_when_it_answers() {
        let mut peers = BTreeMap::from([(2, seen(10.0, 2, true, 50, 50)), (3, seen(10.0, 3, true, 50, 50))]);
        assert_eq!(judge(11.5, true, &peers, None).listed, ids(&[1, 2, 3]), "1.5 s is still within the window");
        peers.insert(3, seen(9.0, 3, true, 50, 50));
        assert_eq!(judge(11.5, true, &peers, None).listed, ids(&[1, 2]));
        peers.insert(2, seen(11.6, 2, true, 60, 55));
        peers.insert(3, seen(11.6, 3, true, 60, 55));
        assert_eq!(judge(11.7, true, &peers, None).listed, ids(&[1, 2, 3]));
    }

    #[test]
    fn a_member_catching_up_or_without_a_leader_is_left_out() {
        let peers = BTreeMap::from([(2, seen(10.0, 2, true, 40, 50)), (3, seen(10.0, 3, false, 50, 50))]);
        assert_eq!(judge(10.1, true, &peers, None), Verdict { listed: ids(&[1]), connected: true });
        assert_eq!(judge(10.1, false, &peers, None).listed, ids(&[]), "nor is this node when it cannot serve");
    }

    #[test]
    fn coming_back_needs_everything_committed_at_the_probe_staying_needs_the_round_before() {
        let members = ids(&[1, 2, 3]);
        let behind = Observation {
            answered_at: Some(secs(10.0)),
            report: Some(report(2, true, 55)),
            committed_at_send: Some(60),
            committed_before: Some(50),
            streak: 1,
        };
        let peers = BTreeMap::from([(2, behind), (3, seen(10.0, 3, true, 60, 60))]);
        let judge_with = |previous: &BTreeSet<u64>| {
            RULES.judge(&Inputs {
                now: secs(10.1),
                me: 1,
                members: &members,
                voters: &members,
                me_serving: true,
                peers: &peers,
                last_connected: None,
                previous: Some(previous),
            })
        };
        assert_eq!(judge_with(&ids(&[1, 3])).listed, ids(&[1, 3]), "not listed again while behind the probe");
        assert_eq!(judge_with(&ids(&[1, 2, 3])).listed, ids(&[1, 2, 3]), "a round behind keeps it listed");
    }

    #[test]
    fn a_steady_follower_a_heartbeat_behind_comes_back_after_a_streak() {
        let mut observation = Observation::default();
        let members = ids(&[1, 2]);
        let judge_at = |o: &Observation| {
            let peers = BTreeMap::from([(2, *o)]);
            RULES
                .judge(&Inputs {
                    now: secs(10.0),
                    me: 1,
                    members: &members,
                    voters: &members,
                    me_serving: true,
                    peers: &peers,
                    last_connected: None,
                    previous: Some(&ids(&[1])),
                })
                .listed
        };
        // Always a few entries behind what was committed at the probe, never behind the round before.
        observation.record(secs(9.0), report(2, true, 95), Some(100), Some(90));
        assert_eq!(judge_at(&observation), ids(&[1]));
        observation.record(secs(9.5), report(2, true, 105), Some(110), Some(100));
        assert_eq!(judge_at(&observation), ids(&[1, 2]), "two current rounds in a row");
        observation.record(secs(9.9), report(2, true, 50), Some(120), Some(110));
        assert_eq!(observation.streak, 0, "falling behind the round before resets the streak");
        observation.record(secs(10.0), report(2, true, 120), Some(120), Some(120));
        observation.missed();
        assert_eq!(observation.streak, 0, "so does a probe without an answer (a restart in between)");
    }

    #[test]
    fn a_cut_off_node_keeps_its_last_list_and_takes_only_itself_out() {
        let last = ids(&[1, 2, 3]);
        let peers = BTreeMap::from([(2, seen(1.0, 2, true, 50, 50)), (3, seen(1.0, 3, true, 50, 50))]);
        let verdict = judge(10.0, true, &peers, Some(&last));
        assert_eq!(verdict, Verdict { listed: ids(&[2, 3]), connected: false });
        // Never connected: every member but itself.
        assert_eq!(judge(10.0, true, &peers, None).listed, ids(&[2, 3]));
    }

    #[test]
    fn a_majority_with_one_dead_peer_still_judges() {
        let peers = BTreeMap::from([(2, seen(10.0, 2, true, 50, 50)), (3, seen(1.0, 3, true, 50, 50))]);
        assert_eq!(
            judge(10.2, true, &peers, Some(&ids(&[1, 2, 3]))),
            Verdict { listed: ids(&[1, 2]), connected: true }
        );
    }

    #[test]
    fn a_single_node_cluster_lists_itself_when_serving() {
        let me = ids(&[1]);
        let no_peers = BTreeMap::new();
        let inputs = |me_serving| Inputs {
            now: secs(1.0),
            me: 1,
            members: &me,
            voters: &me,
            me_serving,
            peers: &no_peers,
            last_connected: None,
            previous: None,
        };
        assert_eq!(RULES.judge(&inputs(true)), Verdict { listed: ids(&[1]), connected: true });
        assert_eq!(RULES.judge(&inputs(false)).listed, ids(&[]));
    }

    #[test]
    fn learners_do_not_count_towards_the_majority() {
        let members = ids(&[1, 2, 3, 4, 5]);
        let voters = ids(&[1, 2, 3]);
        let peers = BTreeMap::from([(4, seen(10.0, 4, true, 50, 50)), (5, seen(10.0, 5, true, 50, 50))]);
        let verdict = RULES.judge(&Inputs {
            now: secs(10.1),
            me: 1,
            members: &members,
            voters: &voters,
            me_serving: true,
            peers: &peers,
            last_connected: None,
            previous: None,
        });
        assert!(!verdict.connected, "two learners and this node are not a majority of the three voters");
    }
}
