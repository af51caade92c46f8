//! The history of a chaos run: one JSON object per line (`history.jsonl`), written while the run goes and
//! read back by the checker, so `discovery-chaos check` on the files reproduces the run's verdict.
//!
//! Every time is in microseconds since the workload's origin (one monotonic clock for the workload, the
//! nemesis and the final-state collection; the nodes run on the same machine, so leases measured by the
//! leader and intervals measured here are comparable).
//!
//! Record kinds (`"type"`): `header` (run parameters, first line), `op` (one client call), `nemesis`
//! (one fault action), `status` (a node's role, term or leader changed, sampled every 500 ms), `phase`
//! (faults / heal / settle / collect / stop).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Microseconds since the run's origin.
pub type Micros = u64;

/// One node of the cluster under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id (1-based).
    pub id: u32,
    /// `HOST:PORT`.
    pub addr: String,
    /// Its zone (`--zones` topology; empty otherwise: every node in the header's zone).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    /// A read replica (openraft learner): never a voter, never re-added as one by the nemesis.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learner: bool,
}

/// Run parameters the checker needs (first line of the history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Seed of the schedule and the workload.
    pub seed: u64,
    /// The cluster.
    pub nodes: Vec<NodeInfo>,
    /// The env every instance is registered in.
    pub env: String,
    /// The zone every instance is registered in.
    pub zone: String,
    /// The apps of the workload.
    pub apps: Vec<String>,
    /// The nodes' `--lease`.
    pub lease_ms: u64,
    /// The nodes' `--poll-timeout`.
    pub poll_timeout_ms: u64,
    /// How long a forwarding node waits to apply its own acknowledged write (`node::routing::APPLY_WAIT`):
    /// a forwarded write acknowledged faster than this was applied on the acknowledging node.
    pub apply_wait_ms: u64,
    /// Rule (f): most time from a fault to the next acknowledged write.
    pub recovery_bound_ms: u64,
    /// Rule (g), healthy cluster: most time for a write acknowledged elsewhere to reach a polled node.
    pub staleness_ms: u64,
    /// Workload duration with faults, seconds.
    pub duration_s: u64,
    /// Wall-clock time of the origin (ms since the Unix epoch), to match history times with node logs.
    #[serde(default)]
    pub origin_unix_ms: u64,
}

/// What a call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `POST /discovery/register`.
    Register,
    /// `POST /discovery/renew`.
    Renew,
    /// `POST /discovery/set`.
    Set,
    /// `POST /discovery/cancel`.
    Cancel,
    /// `GET /discovery/fetch` from the node's local state.
    Fetch,
    /// `GET /discovery/fetch?consistent=1`.
    FetchConsistent,
    /// `GET /discovery/polls`.
    Poll,
}

impl OpKind {
    /// Register, set or cancel: a replicated write.
    pub fn is_write(self) -> bool {
        matches!(self, OpKind::Register | OpKind::Set | OpKind::Cancel)
    }

    /// A call that answers instances (fetch, consistent fetch, poll).
    pub fn is_read(self) -> bool {
        matches!(self, OpKind::Fetch | OpKind::FetchConsistent | OpKind::Poll)
    }
}

/// Whether the call's effect is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A definite answer (its `code` says which: 0, -304, -404).
    Ok,
    /// Certainly had no effect (connection refused, -400).
    Fail,
    /// May or may not have taken effect, now or later (timeout, -500, connection lost after sending).
    Unknown,
}

/// One instance as a read saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Hostname.
    pub h: String,
    /// The `w` metadata value: the id of the write that produced this version (None: no such key).
    pub w: Option<u64>,
    /// Status (1 up, 2 waiting).
    pub s: u32,
}

/// One client call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Unique, increasing in issue order.
    pub id: u64,
    /// The workload task that issued it (each instance has exactly one writer task).
    pub worker: u32,
    /// The node it was sent to.
    pub node: u32,
    /// What.
    pub kind: OpKind,
    /// App.
    pub app: String,
    /// Instance hostname (writes and renews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Value written: register and set put `w` into the metadata (the op's own id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<u64>,
    /// Status written by register and set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// Sent.
    pub start: Micros,
    /// Answer received (or gave up).
    pub end: Micros,
    /// Ok / fail / unknown.
    pub outcome: Outcome,
    /// Business code of a definite answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// Error text of a failed or unknown call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    /// Instances answered (fetch: every instance of the app; poll: the up ones; renew: the renewed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Vec<Seen>>,
    /// The app's `latest_timestamp` in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// Poll: the cursor sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
    /// Poll: when the call that answered that cursor ended (0 for the initial cursor 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_from: Option<Micros>,
}

impl Op {
    /// A definite answer with this code.
    pub fn answered(&self, code: i64) -> bool {
        self.outcome == Outcome::Ok && self.code == Some(code)
    }
}

/// One nemesis action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisEvent {
    /// When it completed.
    pub t: Micros,
    /// Schedule step (0 for the final heal).
    pub step: u32,
    /// `fault` (a step starts; `detail` names it), `healed` (the step is over), or an action: `kill`,
    /// `term`, `start`, `stop`, `cont`, `cut`, `heal_net`, `remove`, `add`, `wipe`.
    pub action: String,
    /// Nodes acted on.
    pub nodes: Vec<u32>,
    /// Free text (fault kind, cut edges, command output on failure).
    pub detail: String,
    /// The action succeeded.
    pub ok: bool,
}

/// A node's Raft view as `/admin/status` reported it (recorded when it changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSample {
    /// When the answer came.
    pub t: Micros,
    /// The node.
    pub node: u32,
    /// `Leader`, `Follower`, `Candidate`, `Learner`.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows.
    pub leader: Option<u32>,
}

/// A history line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// Run parameters.
    Header(Header),
    /// A client call.
    Op(Op),
    /// A nemesis action.
    Nemesis(NemesisEvent),
    /// A node's role, term or leader changed.
    Status(StatusSample),
    /// A phase of the run begins.
    Phase {
        /// When.
        t: Micros,
        /// `faults`, `heal`, `settle`, `collect`, `stop`.
        name: String,
    },
}

/// A parsed history.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Run parameters (None if the file had no header: the checker refuses it).
    pub header: Option<Header>,
    /// Calls, sorted by id.
    pub ops: Vec<Op>,
    /// Nemesis actions, in time order.
    pub nemesis: Vec<NemesisEvent>,
    /// Phase starts: name → time.
    pub phases: BTreeMap<String, Micros>,
    /// Role/term/leader changes of the nodes, in time order.
    pub statuses: Vec<StatusSample>,
}

impl History {
    /// Build from records (any order).
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Self {
        let mut h = History::default();
        for record in records {
            match record {
                Record::Header(header) => h.header = Some(header),
                Record::Op(op) => h.ops.push(op),
                Record::Nemesis(ev) => h.nemesis.push(ev),
                Record::Status(st) => h.statuses.push(st),
                Record::Phase { t, name } => {
                    h.phases.insert(name, t);
                }
            }
        }
        h.ops.sort_by_key(|op| op.id);
        h.nemesis.sort_by_key(|ev| ev.t);
        h.statuses.sort_by_key(|st| st.t);
        h
    }

    /// Read `history.jsonl`.
    pub fn read(path: &Path) -> Result<Self, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut records = Vec::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let record: Record =
                serde_json::from_str(&line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            records.push(record);
        }
        Ok(Self::from_records(records))
    }
}

/// Appends records to `history.jsonl` from any task (a channel into one writer task).
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
    origin: tokio::time::Instant,
}

impl Recorder {
    /// A recorder writing to `path`, and the writer task (await it after dropping every recorder).
    pub fn create(
        path: &Path,
        origin: tokio::time::Instant,
    ) -> Result<(Self, tokio::task::JoinHandle<std::io::Result<()>>), String> {
        let file = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
        let writer = tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufWriter::new(file);
            while let Some(record) = rx.blocking_recv() {
                serde_json::to_writer(&mut out, &record)?;
                out.write_all(b"\n")?;
            }
            out.flush()
        });
        Ok((Self { tx, origin }, writer))
    }

    /// Microseconds since the origin.
    pub fn now(&self) -> Micros {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Append one record (dropped silently once the writer stopped, which only happens at the end).
    pub fn record(&self, record: Record) {
        let _ = self.tx.send(record);
    }

    /// Append a phase marker.
    pub fn phase(&self, name: &str) {
        self.record(Record::Phase { t: self.now(), name: name.to_string() });
    }
}
