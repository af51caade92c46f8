//! The workload: concurrent clients calling random (or sticky) nodes, every call recorded in the history.
//!
//! - Instance workers own one instance slot each: register, renew about once a second, now and then set
//!   (new `w`, status up or waiting) or cancel (then register again later). A write of unknown outcome
//!   retires the hostname (the next generation gets a fresh one), so each hostname has one writer and at
//!   most one unknown write, its last. A renew answered -404 makes the worker register again, as the SDK does.
//! - Anchor workers: two per app, register and renew only, so every app always has up instances.
//! - Readers: local fetches and `consistent=1` fetches of random apps on random nodes.
//! - Pollers: long polls per app, carrying the cursor of their last answer.
//!
//! Phases: `Run` (everything), `Settle` (no more writes: renews, reads and polls only, so the final state can
//! be collected while live instances keep their leases), `Stop`. Every loop ends at `Stop` and also after a
//! global op budget, so the load is bounded in time and count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::check_model::ANCHOR_PREFIX;
use crate::client::{instances_of, seen_of, Answer, Api, Call};
use crate::history::{Header, Op, OpKind, Outcome, Record, Recorder, StatusSample};
use crate::rng::Rng;

/// Apps whose name contains this change rarely (see [`spawn`]).
pub const QUIET: &str = "quiet";
/// Most calls of one run, whatever its duration.
pub const OP_BUDGET: u64 = 5_000_000;
/// How often an instance is renewed.
const RENEW_EVERY: Duration = Duration::from_millis(1000);
/// Client timeouts: a write may take the leader budget (2 s) plus the apply wait (5 s).
const WRITE_TIMEOUT: Duration = Duration::from_secs(8);
const RENEW_TIMEOUT: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
const CONSISTENT_TIMEOUT: Duration = Duration::from_secs(9);

/// What the workload is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Everything.
    Run,
    /// Renews, reads and polls; no writes.
    Settle,
    /// Stop.
    Stop,
}

/// Sizes of the workload.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Instance workers.
    pub instances: u32,
    /// Local readers.
    pub readers: u32,
    /// Consistent readers.
    pub consistent_readers: u32,
    /// Pollers per app.
    pub pollers_per_app: u32,
    /// Anchors per app.
    pub anchors_per_app: u32,
}

/// Shared by every workload task.
pub struct Ctx {
    api: Api,
    rec: Recorder,
    header: Header,
    phase: watch::Receiver<Phase>,
    ids: AtomicU64,
}

impl Ctx {
    /// The shared context.
    pub fn new(api: Api, rec: Recorder, header: Header, phase: watch::Receiver<Phase>) -> Arc<Self> {
        Arc::new(Self { api, rec, header, phase, ids: AtomicU64::new(1) })
    }

    fn phase(&self) -> Phase {
        let phase = *self.phase.borrow();
        if self.ids.load(Ordering::Relaxed) > OP_BUDGET {
            return Phase::Stop;
        }
        phase
    }

    fn addr(&self, node: u32) -> &str {
        self.header.nodes.iter().find(|n| n.id == node).map_or("", |n| n.addr.as_str())
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Sleep, waking early when the phase changes to `Stop`.
    async fn pause(&self, d: Duration) {
        let mut phase = self.phase.clone();
        let _ = tokio::time::timeout(d, phase.wait_for(|p| *p == Phase::Stop)).await;
    }
}

/// Start every workload task.
pub fn spawn(ctx: &Arc<Ctx>, shape: Shape, rng: &Rng) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let apps = ctx.header.apps.clone();
    let mut worker = 0u32;
    let mut next = || {
        worker += 1;
        worker
    };
    for (a, app) in apps.iter().enumerate() {
        for i in 0..shape.anchors_per_app {
            let w = next();
            let base = format!("{ANCHOR_PREFIX}a{a}-{i}");
            let slot = Slot::new(Arc::clone(ctx), w, app.clone(), base, true, rng.fork(u64::from(w)));
            tasks.spawn(slot.run());
        }
    }
    // Busy apps change every fraction of a second; a quiet app changes every few seconds, so its long polls
    // actually wait, and a change that lands during a wait must wake them (rule g).
    let (quiet, busy): (Vec<String>, Vec<String>) = apps.iter().cloned().partition(|a| a.contains(QUIET));
    for i in 0..shape.instances {
        let w = next();
        let mut r = rng.fork(u64::from(w));
        let app = r.pick(&busy).cloned().unwrap_or_default();
        let slot = Slot::new(Arc::clone(ctx), w, app, format!("c{i}"), false, r);
        tasks.spawn(slot.run());
    }
    for (i, app) in quiet.iter().enumerate() {
        let w = next();
        let mut slot = Slot::new(Arc::clone(ctx), w, app.clone(), format!("q{i}"), false, rng.fork(u64::from(w)));
        slot.write_chance = 0.02;
        tasks.spawn(slot.run());
    }
    for consistent in [false, true] {
        let n = if consistent { shape.consistent_readers } else { shape.readers };
        for _ in 0..n {
            let w = next();
            tasks.spawn(reader(Arc::clone(ctx), w, consistent, rng.fork(u64::from(w))));
        }
    }
    tasks.spawn(sample_statuses(Arc::clone(ctx)));
    for app in &apps {
        for _ in 0..shape.pollers_per_app {
            let w = next();
            tasks.spawn(poller(Arc::clone(ctx), w, app.clone(), rng.fork(u64::from(w))));
        }
    }
    tasks
}

/// Picks nodes: random per call, or sticky (one node until it fails twice in a row), as SDKs do. A client
/// of a zone (`--zones` topology) talks to its zone's nodes, and to every node after two failures in a row
/// there, until a call succeeds (the Go SDK's zone preference with fallback).
struct NodePicker {
    nodes: Vec<u32>,
    /// The client's own zone's nodes (empty: no preference).
    local: Vec<u32>,
    sticky: Option<u32>,
    failures: u32,
}

impl NodePicker {
    fn new(nodes: Vec<u32>, local: Vec<u32>, sticky: bool, rng: &mut Rng) -> Self {
        let from = if local.is_empty() { &nodes } else { &local };
        let first = if sticky { rng.pick(from).copied() } else { None };
        Self { nodes, local, sticky: first, failures: 0 }
    }

    /// Where to choose from now: the local zone until it failed twice in a row, then everyone.
    fn candidates(&self) -> &[u32] {
        if self.local.is_empty() || self.failures >= 2 {
            &self.nodes
        } else {
            &self.local
        }
    }

    fn pick(&self, rng: &mut Rng) -> u32 {
        self.sticky.or_else(|| rng.pick(self.candidates()).copied()).unwrap_or(1)
    }

    fn report(&mut self, ok: bool, rng: &mut Rng) {
        if ok {
            if !self.local.is_empty() && self.failures >= 2 {
                // Back home once a call succeeds: the SDK retries its own zone first.
                self.sticky = self.sticky.map(|_| rng.pick(&self.local).copied().unwrap_or(1));
            }
            self.failures = 0;
            return;
        }
        self.failures += 1;
        if self.sticky.is_some() && self.failures >= 2 {
            self.sticky = rng.pick(&self.nodes).copied();
            if self.local.is_empty() {
                self.failures = 0;
            }
        }
    }
}

/// Where an instance slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Not registered (never, or cancelled): register when the dice say so.
    Empty,
    /// Registered: renew, set, cancel.
    Present,
    /// Found gone (-404): register again at once.
    Gone,
}

/// One instance slot's worker.
struct Slot {
    ctx: Arc<Ctx>,
    worker: u32,
    app: String,
    base: String,
    /// The zone the instance registers in.
    zone: String,
    generation: u32,
    anchor: bool,
    /// Chance per iteration (every 150–450 ms) of a set or cancel while registered.
    write_chance: f64,
    state: SlotState,
    nodes: NodePicker,
    rng: Rng,
}

impl Slot {
    fn new(ctx: Arc<Ctx>, worker: u32, app: String, base: String, anchor: bool, mut rng: Rng) -> Self {
        let ids: Vec<u32> = ctx.header.nodes.iter().map(|n| n.id).collect();
        let sticky = rng.chance(0.5);
        // Two-zone topology: every other instance lives in the learners' zone and talks to its nodes first.
        let remote: Vec<u32> = ctx.header.nodes.iter().filter(|n| n.learner).map(|n| n.id).collect();
        let in_remote = !remote.is_empty() && worker.is_multiple_of(2);
        let zone = if in_remote {
            ctx.header.nodes.iter().find(|n| n.learner).map_or_else(String::new, |n| n.zone.clone())
        } else {
            ctx.header.zone.clone()
        };
        let local = if in_remote {
            remote
        } else if ctx.header.nodes.iter().any(|n| n.learner) {
            ctx.header.nodes.iter().filter(|n| !n.learner).map(|n| n.id).collect()
        } else {
            Vec::new()
        };
        let nodes = NodePicker::new(ids, local, sticky, &mut rng);
        let write_chance = if anchor { 0.0 } else { 0.25 };
        let state = SlotState::Empty;
        Self { ctx, worker, app, base, zone, generation: 0, anchor, write_chance, state, nodes, rng }
    }

    fn host(&self) -> String {
        format!("{}g{}", self.base, self.generation)
    }

    async fn run(mut self) {
        let mut last_renew = tokio::time::Instant::now();
        loop {
            let phase = self.ctx.phase();
            if phase == Phase::Stop {
                return;
            }
            let writes = phase == Phase::Run;
            let state = self.state;
            match state {
                SlotState::Empty | SlotState::Gone if writes && self.wants_register() => {
                    self.register().await;
                    last_renew = tokio::time::Instant::now();
                }
                SlotState::Present if last_renew.elapsed() >= RENEW_EVERY => {
                    last_renew = tokio::time::Instant::now();
                    self.renew().await;
                }
                SlotState::Present if writes && self.rng.chance(self.write_chance) => {
                    if self.rng.chance(0.7) {
                        self.set().await;
                    } else {
                        self.cancel().await;
                    }
                }
                _ => {}
            }
            let nap = Duration::from_millis(self.rng.range(150, 450));
            self.ctx.pause(nap).await;
        }
    }

    /// Register now? At once when found gone, always for anchors, else now and then (after a cancel).
    fn wants_register(&mut self) -> bool {
        self.state == SlotState::Gone || self.anchor || self.rng.chance(0.3_f64.min(self.write_chance * 4.0))
    }

    /// Issue one call on this slot's instance and record it.
    async fn call(
        &mut self,
        kind: OpKind,
        form: Vec<(&'static str, String)>,
        w: Option<u64>,
        status: Option<u32>,
    ) -> Op {
        let node = self.nodes.pick(&mut self.rng);
        let id = w.unwrap_or_else(|| self.ctx.next_id());
        let (path, call, timeout) = match kind {
            OpKind::Register => ("/discovery/register", Call::Write, WRITE_TIMEOUT),
            OpKind::Set => ("/discovery/set", Call::Write, WRITE_TIMEOUT),
            OpKind::Cancel => ("/discovery/cancel", Call::Write, WRITE_TIMEOUT),
            _ => ("/discovery/renew", Call::Renew, RENEW_TIMEOUT),
        };
        let mut full = self.key_form();
        full.extend(form);
        let start = self.ctx.rec.now();
        let answer = self.ctx.api.post(self.ctx.addr(node), path, &full, call, timeout).await;
        let end = self.ctx.rec.now();
        self.nodes.report(answer.outcome == Outcome::Ok, &mut self.rng);
        let seen = (kind == OpKind::Renew && answer.code == Some(0))
            .then(|| answer.data.as_ref().and_then(seen_of).into_iter().collect());
        let op = op_of(self.worker, node, kind, &self.app, Some(self.host()), (start, end), answer, seen);
        let op = Op { id, w, status, ..op };
        self.ctx.rec.record(Record::Op(op.clone()));
        op
    }

    fn key_form(&self) -> Vec<(&'static str, String)> {
        let h = &self.ctx.header;
        vec![
            ("zone", self.zone.clone()),
            ("env", h.env.clone()),
            ("appid", self.app.clone()),
            ("hostname", self.host()),
        ]
    }

    /// After a write: retire the hostname if its outcome is unknown.
    fn settle_write(&mut self, op: &Op, on_ok: SlotState, on_not_found: SlotState) {
        match (op.outcome, op.code) {
            (Outcome::Ok, Some(0)) => self.state = on_ok,
            (Outcome::Ok, Some(-404)) => self.state = on_not_found,
            (Outcome::Unknown, _) => {
                self.generation += 1;
                self.state = SlotState::Empty;
            }
            _ => {}
        }
    }

    async fn register(&mut self) {
        let w = self.ctx.next_id();
        let status = if !self.anchor && self.rng.chance(0.1) { 2 } else { 1 };
        let form = vec![
            ("status", status.to_string()),
            ("addrs", format!("grpc://{}.chaos.invalid:9000", self.host())),
            ("metadata", format!("{{\"w\":\"{w}\"}}")),
            ("version", "chaos".to_string()),
        ];
        let op = self.call(OpKind::Register, form, Some(w), Some(status)).await;
        let stay = self.state;
        self.settle_write(&op, SlotState::Present, stay);
    }

    async fn renew(&mut self) {
        let op = self.call(OpKind::Renew, vec![], None, None).await;
        if op.answered(-404) && self.ctx.phase() == Phase::Run {
            self.state = SlotState::Gone;
        }
    }

    async fn set(&mut self) {
        let w = self.ctx.next_id();
        let status = if self.rng.chance(0.8) { 1 } else { 2 };
        let form = vec![("status", status.to_string()), ("metadata", format!("{{\"w\":\"{w}\"}}"))];
        let op = self.call(OpKind::Set, form, Some(w), Some(status)).await;
        self.settle_write(&op, SlotState::Present, SlotState::Gone);
    }

    async fn cancel(&mut self) {
        let op = self.call(OpKind::Cancel, vec![], None, None).await;
        self.settle_write(&op, SlotState::Empty, SlotState::Empty);
    }
}

/// Build an op record from an answer (id, w and status are filled in by the caller where needed).
#[allow(clippy::too_many_arguments)]
fn op_of(
    worker: u32,
    node: u32,
    kind: OpKind,
    app: &str,
    host: Option<String>,
    (start, end): (u64, u64),
    answer: Answer,
    seen: Option<Vec<crate::history::Seen>>,
) -> Op {
    Op {
        id: 0,
        worker,
        node,
        kind,
        app: app.to_string(),
        host,
        w: None,
        status: None,
        start,
        end,
        outcome: answer.outcome,
        code: answer.code,
        err: answer.err,
        seen,
        ts: None,
        cursor: None,
        cursor_from: None,
    }
}

async fn reader(ctx: Arc<Ctx>, worker: u32, consistent: bool, mut rng: Rng) {
    let ids: Vec<u32> = ctx.header.nodes.iter().map(|n| n.id).collect();
    while ctx.phase() != Phase::Stop {
        let node = rng.pick(&ids).copied().unwrap_or(1);
        let app = rng.pick(&ctx.header.apps).cloned().unwrap_or_default();
        let mut query = vec![("appid", app.clone()), ("env", ctx.header.env.clone()), ("status", "3".to_string())];
        let (kind, timeout) = if consistent {
            query.push(("consistent", "1".to_string()));
            (OpKind::FetchConsistent, CONSISTENT_TIMEOUT)
        } else {
            (OpKind::Fetch, FETCH_TIMEOUT)
        };
        let id = ctx.next_id();
        let start = ctx.rec.now();
        let answer = ctx.api.get(ctx.addr(node), "/discovery/fetch", &query, Call::Read, timeout).await;
        let end = ctx.rec.now();
        let (seen, ts) = match (answer.outcome, answer.code, &answer.data) {
            (Outcome::Ok, Some(0), Some(data)) => {
                let (seen, ts) = instances_of(data);
                (Some(seen), ts)
            }
            // The app does not exist (yet, or any more): no instance at all.
            (Outcome::Ok, Some(-404), _) => (Some(Vec::new()), None),
            _ => (None, None),
        };
        let op = Op { id, ts, ..op_of(worker, node, kind, &app, None, (start, end), answer, seen) };
        ctx.rec.record(Record::Op(op));
        ctx.pause(Duration::from_millis(rng.range(100, 400))).await;
    }
}

async fn poller(ctx: Arc<Ctx>, worker: u32, app: String, mut rng: Rng) {
    let ids: Vec<u32> = ctx.header.nodes.iter().map(|n| n.id).collect();
    let timeout = Duration::from_millis(ctx.header.poll_timeout_ms) + Duration::from_secs(3);
    let (mut cursor, mut cursor_from) = (0i64, 0u64);
    let hostname = format!("poller-{worker}");
    while ctx.phase() != Phase::Stop {
        let node = rng.pick(&ids).copied().unwrap_or(1);
        let query = vec![
            ("env", ctx.header.env.clone()),
            ("appid", app.clone()),
            ("latest_timestamp", cursor.to_string()),
            ("hostname", hostname.clone()),
        ];
        let id = ctx.next_id();
        let start = ctx.rec.now();
        let answer = ctx.api.get(ctx.addr(node), "/discovery/polls", &query, Call::Poll, timeout).await;
        let end = ctx.rec.now();
        let info = answer.data.as_ref().and_then(|d| d.get(&app)).cloned().unwrap_or(Value::Null);
        let answered = answer.outcome == Outcome::Ok && answer.code == Some(0);
        let (seen, ts) = if answered {
            let (seen, ts) = instances_of(&info);
            (Some(seen), ts)
        } else {
            (None, None)
        };
        let base = op_of(worker, node, OpKind::Poll, &app, None, (start, end), answer, seen);
        let op = Op { id, ts, cursor: Some(cursor), cursor_from: Some(cursor_from), ..base };
        ctx.rec.record(Record::Op(op));
        match ts {
            Some(ts) if answered => {
                cursor = ts.max(cursor);
                cursor_from = end;
            }
            _ if answered => {}
            _ => ctx.pause(Duration::from_millis(rng.range(100, 300))).await,
        }
    }
}

/// Record each node's role, term and leader whenever they change (for diagnosing violations: who thought
/// it led when). Not a checked property.
async fn sample_statuses(ctx: Arc<Ctx>) {
    let mut last: std::collections::BTreeMap<u32, (String, u64, Option<u32>)> = Default::default();
    while ctx.phase() != Phase::Stop {
        let queries = ctx.header.nodes.iter().map(|n| {
            let api = ctx.api.clone();
            let addr = n.addr.clone();
            async move { (n.id, api.status(&addr, Duration::from_millis(500)).await) }
        });
        for (node, status) in futures::future::join_all(queries).await {
            let Some(status) = status else { continue };
            let (role, term) = (status.role, status.term);
            let leader = status.leader.and_then(|l| u32::try_from(l).ok());
            let now = (role, term, leader);
            if last.get(&node) != Some(&now) {
                let (role, term, leader) = now.clone();
                ctx.rec.record(Record::Status(StatusSample { t: ctx.rec.now(), node, role, term, leader }));
                last.insert(node, now);
            }
        }
        ctx.pause(Duration::from_millis(500)).await;
    }
}
