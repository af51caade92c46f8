//! `GET /ui/api/cluster`: the members with role, zone, applied index, lag and health; the leader changes
//! this node saw; self-preservation with its inputs (from the leader); storage figures. `GET /ui/api/guard`:
//! the leader's lessor state (what other nodes ask for). `GET /ui/api/charts`: this node's last hour.
//!
//! Members' health comes from each member's own `/admin/status` (see `members`), so a dead member shows as
//! unreachable within the member timeout instead of stalling the page.

use std::path::Path;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::error::ConsoleError;
use super::leader;
use super::members::member_rows;
use crate::registry::lessor::LessorStatus;
use crate::service::node_facts::{dir_size, unix_ms, LeaderChange, MemberView, Sample, SAMPLE_EVERY};
use crate::service::Service;

/// This node, as the cluster page heads it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeSummary {
    /// Id.
    pub id: u64,
    /// Address.
    pub addr: String,
    /// Zone.
    pub zone: String,
    /// Raft role.
    pub role: String,
    /// Term.
    pub term: u64,
    /// Known leader.
    pub leader: Option<u64>,
    /// Last applied index.
    pub last_applied: Option<u64>,
    /// Why it cannot serve, if it cannot.
    pub problem: Option<String>,
}

/// One member row.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemberRow {
    /// This node's view of the member (role, serving, reachable, applied, lag).
    #[serde(flatten)]
    pub view: MemberView,
    /// The Raft role the member reports itself (`unreachable` if it did not answer).
    pub reported_role: String,
    /// It answered and knows a leader.
    pub healthy: bool,
    /// Health text.
    pub health: String,
}

/// Self-preservation as the leader reports it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GuardView {
    /// The node whose lessor answered (`None`: none did).
    pub from: Option<u64>,
    /// Its state: leases, and the guard's inputs (expected renews, threshold, last minute, evictions).
    pub status: Option<serde_json::Value>,
    /// Why there is no state, if there is none.
    pub note: Option<String>,
}

/// The newest snapshot file.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SnapshotFile {
    /// Last log index it covers (from Raft's metrics).
    pub index: Option<u64>,
    /// Bytes.
    pub bytes: u64,
    /// Written this long ago, ms.
    pub age_ms: u64,
}

/// Storage figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StorageView {
    /// The data dir.
    pub data_dir: String,
    /// Bytes in it.
    pub data_dir_bytes: u64,
    /// Free bytes on its disk (`None`: unknown).
    pub free_bytes: Option<u64>,
    /// `--min-free-space`.
    pub min_free_bytes: u64,
    /// Writes refused for lack of space.
    pub low_space: bool,
    /// The newest snapshot, if any.
    pub snapshot: Option<SnapshotFile>,
}

/// The cluster page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterView {
    /// This node.
    pub node: NodeSummary,
    /// Every member.
    pub members: Vec<MemberRow>,
    /// Leader changes this node saw, newest first.
    pub leader_changes: Vec<LeaderChange>,
    /// Self-preservation.
    pub guard: GuardView,
    /// This node's storage.
    pub storage: StorageView,
    /// When this answer was built, Unix ms.
    pub now_ms: u64,
}

/// The newest `snapshot-*.bin` of the data dir's snapshot directory.
fn newest_snapshot(data_dir: &Path, index: Option<u64>) -> Option<SnapshotFile> {
    let entries = std::fs::read_dir(data_dir.join("snapshots")).ok()?;
    let (modified, bytes) = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bin"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .max_by_key(|(modified, _)| *modified)?;
    let age = SystemTime::now().duration_since(modified).unwrap_or_default();
    Some(SnapshotFile { index, bytes, age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX) })
}

async fn guard_view(state: &Service) -> GuardView {
    let local = state.lease_status();
    if local.active {
        return GuardView { from: Some(state.config().id), status: serde_json::to_value(local).ok(), note: None };
    }
    let Some((id, addr)) = state.leader().filter(|(id, _)| *id != state.config().id) else {
        return GuardView { from: None, status: None, note: Some("no other leader is known to this node".into()) };
    };
    match leader::ask::<serde_json::Value>(&addr, "/ui/api/guard").await {
        Ok(status) => GuardView { from: Some(id), status: Some(status), note: None },
        Err(note) => GuardView { from: None, status: None, note: Some(note) },
    }
}

/// The cluster page's handler.
pub(crate) async fn cluster(State(state): State<Service>) -> Json<ClusterView> {
    let me = state.status();
    let (rows, guard) = tokio::join!(member_rows(&state), guard_view(&state));
    let members = me
        .membership
        .iter()
        .map(|view| {
            let reported = rows.iter().find(|r| r.id == view.id);
            MemberRow {
                view: view.clone(),
                reported_role: reported.map_or_else(|| "unknown".into(), |r| r.role.clone()),
                healthy: reported.is_some_and(|r| r.healthy),
                health: reported.map_or_else(|| "unknown".into(), |r| r.health.clone()),
            }
        })
        .collect();
    let data_dir = state.config().data_dir.clone();
    let dir = data_dir.clone();
    let snapshot_index = me.snapshot_index;
    let (data_dir_bytes, snapshot) =
        tokio::task::spawn_blocking(move || (dir_size(&dir), newest_snapshot(&dir, snapshot_index)))
            .await
            .unwrap_or((0, None));
    let disk = state.disk_status();
    Json(ClusterView {
        node: NodeSummary {
            id: me.id,
            addr: me.addr,
            zone: me.zone,
            role: me.role,
            term: me.term,
            leader: me.leader,
            last_applied: me.last_applied,
            problem: me.problem,
        },
        members,
        leader_changes: state.leader_changes(),
        guard,
        storage: StorageView {
            data_dir: data_dir.display().to_string(),
            data_dir_bytes,
            free_bytes: disk.free_bytes,
            min_free_bytes: disk.min_free_bytes,
            low_space: disk.low,
            snapshot,
        },
        now_ms: unix_ms(),
    })
}

/// The leader's lessor state; 409 on a node that does not keep the leases.
pub(crate) async fn guard(State(state): State<Service>) -> Result<Json<LessorStatus>, ConsoleError> {
    let status = state.lease_status();
    if !status.active {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            "this node does not keep the leases (it is not the confirmed leader)",
        ));
    }
    Ok(Json(status))
}

/// The charts' body.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChartsView {
    /// The node these samples are of.
    pub node: u64,
    /// Seconds between samples.
    pub every_s: u64,
    /// Oldest first.
    pub samples: Vec<Sample>,
}

/// The charts' handler.
pub(crate) async fn charts(State(state): State<Service>) -> Json<ChartsView> {
    Json(ChartsView { node: state.config().id, every_s: SAMPLE_EVERY.as_secs(), samples: state.samples() })
}
