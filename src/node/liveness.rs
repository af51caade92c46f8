//! Liveness: every member probes every other member twice a second and judges which can serve clients
//! (`serving_view`), so `infra.discovery` and `/discovery/nodes` list only members a client can use.
//!
//! Why probes between members and not the leader's replication progress: a leader change must not blind
//! the cluster (a new leader has no history), and each node must be able to tell its own clients the
//! truth as it sees it. The probe is one small internal request (`POST /internal/liveness`, behind the
//! cluster token) answered with the member's [`SelfReport`].
//!
//! Invariants:
//! - A member that stops answering is dropped from every surviving node's list within
//!   [`WINDOW`] + [`PROBE_EVERY`] (2 s; the bound is 3 s). One that comes back is listed again at
//!   the first probe that finds it current.
//! - Each change of the listed set, and each membership change, moves the `infra.discovery` cursor to
//!   `max(now in Unix ns, previous + 1)` (`membership::InfraCursor`) and wakes its long polls, so SDKs
//!   re-read the node list.
//! - A node cut off from the majority never declares the majority dead: it keeps its last connected list
//!   and takes only itself out (see `serving_view`).
//! - Until the first verdict, every member is listed (nothing is known yet).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::serving_view::{Inputs, Observation, Rules, SelfReport, Verdict};
use super::AppState;
use crate::registry::infra::INFRA_APPID;

/// Path of the probe.
pub const LIVENESS_PATH: &str = "/internal/liveness";
/// How often every peer is probed.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// A peer silent for longer is unreachable.
pub const WINDOW: Duration = Duration::from_millis(1500);

/// What this node knows of the others, and the list it serves to clients.
#[derive(Debug)]
pub struct Liveness {
    origin: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    peers: BTreeMap<u64, Observation>,
    /// What this node knew to be committed when the previous probe round started.
    committed_last_round: Option<u64>,
    verdict: Option<Verdict>,
    last_connected: Option<BTreeSet<u64>>,
    /// The first of the rounds since then that found this node out of contact with the leader (`None`: the
    /// last round found it in contact; see [`Liveness::out_of_contact_for`]).
    contact_lost_at: Option<Duration>,
    /// When a round last found it in contact (`None`: never since start).
    last_contact: Option<Duration>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self { origin: Instant::now(), inner: Mutex::default() }
    }
}

impl Liveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The members to list to clients; `None` before the first verdict (list every member).
    pub fn listed(&self) -> Option<BTreeSet<u64>> {
        self.lock().verdict.as_ref().map(|v| v.listed.clone())
    }

    /// What the last probes of `id` found: whether it answered within the window, and its last report.
    pub fn observation(&self, id: u64) -> Option<(bool, Option<SelfReport>)> {
        let inner = self.lock();
        let now = self.now();
        inner.peers.get(&id).map(|o| (o.answered_at.is_some_and(|at| now.saturating_sub(at) <= WINDOW), o.report))
    }

    /// Zones cut off from this node: zones (other than `my_zone`) that have members, every one of which this
    /// node has probed and found unreachable. A member never probed yet counts as reachable (nothing known).
    pub fn unreachable_zones<'a>(
        &self,
        my_zone: &str,
        members: impl IntoIterator<Item = (u64, &'a str)>,
    ) -> BTreeSet<String> {
        let inner = self.lock();
        let now = self.now();
        let mut reachable_zones = BTreeSet::new();
        let mut zones = BTreeSet::new();
        for (id, zone) in members {
            zones.insert(zone.to_string());
            let unreachable =
                inner.peers.get(&id).is_some_and(|o| o.answered_at.is_none_or(|at| now.saturating_sub(at) > WINDOW));
            if !unreachable {
                reachable_zones.insert(zone.to_string());
            }
        }
        zones.into_iter().filter(|z| z != my_zone && !reachable_zones.contains(z)).collect()
    }

    /// Whether `id` is listed to clients (every member is, before the first verdict).
    pub fn is_listed(&self, id: u64) -> bool {
        self.lock().verdict.as_ref().is_none_or(|v| v.listed.contains(&id))
    }

    /// How long this node has been out of contact with the leader: it cannot reach a majority of the voters,
    /// or it cannot reach the leader it knows (or knows none), and every round for a whole [`WINDOW`] found
    /// so. `None` while in contact, and before that. Measured from the last round that found it in contact.
    pub fn out_of_contact_for(&self) -> Option<Duration> {
        let inner = self.lock();
        let now = self.now();
        // One round is not enough: a round right after a membership change judges peers not probed yet.
        let lost_at = inner.contact_lost_at.filter(|at| now.saturating_sub(*at) >= WINDOW)?;
        Some(now.saturating_sub(inner.last_contact.unwrap_or(lost_at).min(lost_at)))
    }

    /// This node reaches a majority of the voters (true until judged otherwise).
    pub fn connected(&self) -> bool {
        self.lock().verdict.as_ref().is_none_or(|v| v.connected)
    }
}

/// This node's own view of itself: it can serve (no local problem, a leader known, everything it knows
/// committed applied; connectedness is added by the caller), and its applied and committed indexes.
async fn own_state(state: &AppState) -> (bool, Option<u64>, Option<u64>) {
    let metrics = state.raft.metrics().borrow().clone();
    let answered = super::admin::committed_index(state).await;
    let committed = answered.clone().ok().flatten();
    let serving = answered.is_ok()
        && metrics.running_state.is_ok()
        && super::admin::local_problem(state).is_none()
        && metrics.current_leader.is_some()
        && super::admin::applies_within(state, committed, super::admin::APPLY_LAG).await;
    let applied = state.raft.metrics().borrow().last_applied.map(|l| l.index);
    (serving, applied, committed)
}

/// The probe's answer: this node's [`SelfReport`].
pub fn liveness_routes() -> Router<AppState> {
    Router::new().route(LIVENESS_PATH, post(report))
}

async fn report(State(state): State<AppState>) -> Response {
    let (serving, applied, _) = own_state(&state).await;
    let report = SelfReport { id: state.config.id, serving: serving && state.liveness.connected(), applied };
    match discovery_raft::codec::encode(&report) {
        Ok(bytes) => bytes.into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Probe the peers every [`PROBE_EVERY`] and publish the verdict, until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let rules = Rules { window: WINDOW };
    let mut ticker = tokio::time::interval(PROBE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut metrics = state.raft.metrics();
    let mut seen = None;
    loop {
        // A probe round on every tick; between ticks, a change of this node's own role (a leader found or
        // lost, a role or membership change) is judged at once from what the last round saw. Metrics change
        // with every applied entry; only these changes count.
        let probe = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => true,
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                let role = {
                    let m = metrics.borrow_and_update();
                    (m.current_leader, m.state, *m.membership_config.log_id())
                };
                if seen.as_ref() == Some(&role) {
                    continue;
                }
                seen = Some(role);
                false
            }
        };
        round(&state, &rules, probe).await;
    }
}

/// One round: ask every peer (when `probe`), judge, publish.
async fn round(state: &AppState, rules: &Rules, probe: bool) {
    // Nothing is judged before the first probe round: until then every member is listed.
    if !probe && state.liveness.lock().verdict.is_none() {
        return;
    }
    let (me_serving, _, committed) = own_state(state).await;
    let (me, members, voters, peers, leader) = {
        let metrics = state.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let members: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let peers: Vec<(u64, String)> =
            membership.nodes().filter(|(id, _)| **id != metrics.id).map(|(id, n)| (*id, n.addr.clone())).collect();
        (metrics.id, members, voters, peers, metrics.current_leader)
    };
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let peers = if probe { peers } else { Vec::new() };
    let probes = peers.iter().map(|(id, addr)| async move {
        let answer: Result<SelfReport, _> = state.forwarder.call(addr, LIVENESS_PATH, &(), deadline).await;
        (*id, answer.ok().filter(|report| report.id == *id))
    });
    let answers = futures::future::join_all(probes).await;
    let now = state.liveness.now();
    let changed = {
        let mut inner = state.liveness.lock();
        let committed_before = inner.committed_last_round;
        if probe {
            inner.committed_last_round = committed;
        }
        inner.peers.retain(|id, _| members.contains(id));
        for (id, answer) in answers {
            let observation = inner.peers.entry(id).or_default();
            match answer {
                Some(report) => observation.record(now, report, committed, committed_before),
                None => observation.missed(),
            }
        }
        let verdict = rules.judge(&Inputs {
            now,
            me,
            members: &members,
            voters: &voters,
            me_serving,
            peers: &inner.peers,
            last_connected: inner.last_connected.as_ref(),
            previous: inner.verdict.as_ref().map(|v| &v.listed),
        });
        if verdict.connected {
            inner.last_connected = Some(verdict.listed.clone());
        }
        let leader_reached = leader.is_some_and(|leader| {
            leader == me
                || inner
                    .peers
                    .get(&leader)
                    .and_then(|o| o.answered_at)
                    .is_some_and(|at| now.saturating_sub(at) <= WINDOW)
        });
        if verdict.connected && leader_reached {
            inner.last_contact = Some(now);
            inner.contact_lost_at = None;
        } else if inner.contact_lost_at.is_none() {
            inner.contact_lost_at = Some(now);
        }
        tracing::trace!(me_serving, ?committed, peers = ?inner.peers, ?verdict, "liveness round");
        let changed = inner.verdict.as_ref().map(|v| &v.listed) != Some(&verdict.listed);
        if changed {
            tracing::info!(listed = ?verdict.listed, connected = verdict.connected, "members serving clients changed");
        }
        inner.verdict = Some(verdict);
        changed
    };
    if changed {
        // Stamp the new list before waking the pollers, so the cursor is the time this node judged it.
        state.registry.infra_cursor().stamped(&state.raft, &state.liveness, |_, _| ());
        state.registry.hub().notify_appid(INFRA_APPID);
    }
}
