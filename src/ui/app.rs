//! `GET /ui/api/app?env=&appid=`: one app's instances with their lease figures and the app's recent changes;
//! `GET /ui/api/leases?env=&appid=`: the leader's lease figures of one app (what other nodes ask for).
//!
//! Invariants:
//! - Instances come from this node's applied state; lease figures only from the leader's lease table (renews
//!   are not replicated, so no other node knows them). A node that is not the leader asks it; when it
//!   cannot, the page gets the instances with `lease: null` and a note saying why.
//! - Times are Unix milliseconds; durations are milliseconds relative to when the answer was built.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ConsoleError;
use super::leader;
use crate::registry::changes::{status_text, ChangeKind};
use crate::registry::model::{Instance, InstanceKey};
use crate::service::node_facts::{unix_ms, LeaseFigures};
use crate::service::Service;

/// Which app.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct AppQuery {
    /// Env.
    #[serde(default)]
    pub env: String,
    /// Appid.
    #[serde(default)]
    pub appid: String,
}

impl AppQuery {
    fn check(&self) -> Result<(), ConsoleError> {
        for (name, value) in [("env", &self.env), ("appid", &self.appid)] {
            if value.is_empty() {
                return Err(ConsoleError::bad_request(format!("missing parameter {name:?}")));
            }
        }
        Ok(())
    }
}

/// One instance as the app page shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstanceRow {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Hostname.
    pub hostname: String,
    /// `up` or `waiting`.
    pub status: String,
    /// Addresses.
    pub addrs: Vec<String>,
    /// Version.
    pub version: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Last register, Unix ms.
    pub registered_ms: i64,
    /// Last time it became up, Unix ms (0: never).
    pub up_ms: i64,
    /// Last change, Unix ms.
    pub changed_ms: i64,
    /// Its lease on the leader (`None`: not known, see the page's `leases` note).
    pub lease: Option<LeaseFigures>,
}

/// One recent change.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChangeRow {
    /// Unix ms (leader stamp).
    pub at_ms: i64,
    /// The leader that accepted it.
    pub node: u64,
    /// `register`, `cancel`, `set` or `evict`.
    pub kind: ChangeKind,
    /// Zone.
    pub zone: String,
    /// Hostname.
    pub hostname: String,
    /// Detail.
    pub detail: String,
    /// Equal changes in a row folded into this one.
    pub repeats: u32,
}

/// Where the lease figures came from.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LeaseSource {
    /// The leader that gave them (`None`: no figures).
    pub leader: Option<u64>,
    /// Why there are none, if there are none.
    pub note: Option<String>,
}

/// The app page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AppView {
    /// Env.
    pub env: String,
    /// Appid.
    pub appid: String,
    /// The app has instances.
    pub exists: bool,
    /// When this answer was built, Unix ms.
    pub now_ms: u64,
    /// Instances by zone and hostname.
    pub instances: Vec<InstanceRow>,
    /// Where the lease figures came from.
    pub leases: LeaseSource,
    /// Recent changes, newest first.
    pub changes: Vec<ChangeRow>,
}

/// One instance's lease, by identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostLease {
    /// Zone.
    pub zone: String,
    /// Hostname.
    pub hostname: String,
    /// The lease (`None`: the leader holds none for it yet).
    pub lease: Option<LeaseFigures>,
}

/// The body of `/ui/api/leases`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeaseList {
    /// The leader that answered.
    pub leader: u64,
    /// One per instance of the app.
    pub leases: Vec<HostLease>,
}

fn ms(ns: i64) -> i64 {
    ns / 1_000_000
}

fn instances_of(state: &Service, query: &AppQuery) -> Vec<Instance> {
    state.read_registry(|registry| {
        registry
            .app(&query.env, &query.appid)
            .map(|app| app.instances().map(|s| s.instance.clone()).collect())
            .unwrap_or_default()
    })
}

/// This node's lease figures, if it keeps the leases.
fn local_leases(state: &Service, instances: &[Instance]) -> Option<LeaseList> {
    let keys: Vec<InstanceKey> = instances.iter().map(Instance::key).collect();
    let figures = state.lease_figures(&keys)?;
    let leases = instances
        .iter()
        .zip(figures)
        .map(|(i, lease)| HostLease { zone: i.zone.to_string(), hostname: i.hostname.to_string(), lease })
        .collect();
    Some(LeaseList { leader: state.config().id, leases })
}

async fn leases_from_leader(state: &Service, query: &AppQuery, instances: &[Instance]) -> Result<LeaseList, String> {
    if let Some(list) = local_leases(state, instances) {
        return Ok(list);
    }
    let (id, addr) = state.leader().ok_or_else(|| "no leader is known to this node".to_string())?;
    if id == state.config().id {
        return Err("this node is the leader but its lease table is not active yet (just elected)".into());
    }
    let path = format!(
        "/ui/api/leases?env={}&appid={}",
        super::html::url_encode(&query.env),
        super::html::url_encode(&query.appid)
    );
    leader::ask(&addr, &path).await
}

/// The app page's handler.
pub(crate) async fn app(
    State(state): State<Service>,
    Query(query): Query<AppQuery>,
) -> Result<Json<AppView>, ConsoleError> {
    query.check()?;
    let instances = instances_of(&state, &query);
    let (mut by_host, leases) = match leases_from_leader(&state, &query, &instances).await {
        Ok(list) => {
            let by_host: HashMap<(String, String), LeaseFigures> =
                list.leases.into_iter().filter_map(|h| Some(((h.zone, h.hostname), h.lease?))).collect();
            (by_host, LeaseSource { leader: Some(list.leader), note: None })
        }
        Err(note) => (HashMap::new(), LeaseSource { leader: None, note: Some(note) }),
    };
    let rows = instances
        .into_iter()
        .map(|i| InstanceRow {
            lease: by_host.remove(&(i.zone.to_string(), i.hostname.to_string())),
            region: i.region.to_string(),
            zone: i.zone.to_string(),
            hostname: i.hostname.to_string(),
            status: status_text(i.status).into_owned(),
            addrs: i.addrs.map(|a| a.to_vec()).unwrap_or_default(),
            version: i.version.to_string(),
            metadata: i.metadata.map(|m| m.to_map()).unwrap_or_default(),
            registered_ms: ms(i.reg_timestamp),
            up_ms: ms(i.up_timestamp),
            changed_ms: ms(i.latest_timestamp),
        })
        .collect::<Vec<_>>();
    let changes = state
        .changes_of(&query.env, &query.appid)
        .into_iter()
        .map(|c| ChangeRow {
            at_ms: ms(c.at_ns),
            node: c.node,
            kind: c.kind,
            zone: c.zone,
            hostname: c.hostname,
            detail: c.detail.into_owned(),
            repeats: c.repeats,
        })
        .collect();
    Ok(Json(AppView {
        exists: !rows.is_empty(),
        env: query.env,
        appid: query.appid,
        now_ms: unix_ms(),
        instances: rows,
        leases,
        changes,
    }))
}

/// The leader's lease figures of one app; 409 on a node that does not keep the leases.
pub(crate) async fn leases(
    State(state): State<Service>,
    Query(query): Query<AppQuery>,
) -> Result<Json<LeaseList>, ConsoleError> {
    query.check()?;
    let instances = instances_of(&state, &query);
    local_leases(&state, &instances).map(Json).ok_or_else(|| {
        ConsoleError::new(StatusCode::CONFLICT, "this node does not keep the leases (it is not the confirmed leader)")
    })
}
