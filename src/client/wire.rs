//! What the HTTP API sends and answers, as the client sees it: its own types, so that the client depends on
//! the wire contract (`../shared/spec/discovery-api.md`) and not on the server's internal structures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Instance status "up" (receives traffic).
pub const STATUS_UP: u32 = 1;
/// Instance status "waiting" (registered, no traffic: drained).
pub const STATUS_WAITING: u32 = 2;

/// Which instance: the four fields every write names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceKey {
    /// Deployment env, e.g. `prod`.
    pub env: String,
    /// Service name, e.g. `main.arch.account-service`.
    pub appid: String,
    /// Zone (IDC), e.g. `sh001`.
    pub zone: String,
    /// Host name, unique within (env, appid, zone).
    pub hostname: String,
}

impl InstanceKey {
    /// A key from its four fields.
    pub fn new(env: &str, appid: &str, zone: &str, hostname: &str) -> Self {
        Self { env: env.to_string(), appid: appid.to_string(), zone: zone.to_string(), hostname: hostname.to_string() }
    }
}

/// An instance to register.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// Identity (env, appid, zone, hostname).
    pub key: InstanceKey,
    /// Addresses, e.g. `grpc://10.0.0.5:9000`.
    pub addrs: Vec<String>,
    /// [`STATUS_UP`] or [`STATUS_WAITING`].
    pub status: u32,
    /// Free text.
    pub version: String,
    /// Metadata, sent as a JSON object of strings.
    pub metadata: BTreeMap<String, String>,
}

impl Registration {
    /// An up instance of `key` at `addrs`, no version, no metadata.
    pub fn new(key: InstanceKey, addrs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            key,
            addrs: addrs.into_iter().map(Into::into).collect(),
            status: STATUS_UP,
            version: String::new(),
            metadata: BTreeMap::new(),
        }
    }
}

/// One instance as the server answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Env.
    pub env: String,
    /// App id.
    pub appid: String,
    /// Host name.
    pub hostname: String,
    /// Addresses.
    #[serde(default)]
    pub addrs: Option<Vec<String>>,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Metadata (`null` when none).
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// 1 up, 2 waiting.
    pub status: u32,
    /// When it was registered (Unix ns).
    pub reg_timestamp: i64,
    /// When it was last set up (Unix ns).
    pub up_timestamp: i64,
    /// When it was last renewed as far as replicated state knows (Unix ns).
    pub renew_timestamp: i64,
    /// The client's own version stamp of the instance (Unix ns).
    pub dirty_timestamp: i64,
    /// When it last changed (Unix ns).
    pub latest_timestamp: i64,
}

/// The instances of one app, by zone, and the app's polling cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Zone → instances.
    pub instances: BTreeMap<String, Vec<Instance>>,
    /// The cursor to poll with next (Unix ns).
    pub latest_timestamp: i64,
}

impl InstanceInfo {
    /// Every instance, zone by zone.
    pub fn all(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values().flatten()
    }
}

/// One discovery server as `/discovery/nodes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `host:port`.
    pub addr: String,
    /// 0 up.
    pub status: u8,
    /// Its zone.
    pub zone: String,
}

/// A `set` request: the status and/or metadata of some hosts of one app in one zone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetRequest {
    /// Env.
    pub env: String,
    /// App id.
    pub appid: String,
    /// Zone.
    pub zone: String,
    /// Host names.
    pub hostnames: Vec<String>,
    /// New status for every host, if any.
    pub status: Option<u32>,
    /// Metadata to merge into every host's, if any.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// One member in `/admin/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Advertised address.
    pub addr: String,
    /// Zone.
    pub zone: String,
    /// Votes (false for learners).
    pub voter: bool,
}

/// `/admin/status`: one node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its id.
    pub id: u64,
    /// Its advertised address.
    pub addr: String,
    /// Its zone.
    pub zone: String,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub role: String,
    /// The leader it knows.
    pub leader: Option<u64>,
    /// Raft term.
    pub term: u64,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Last applied index.
    pub last_applied: Option<u64>,
    /// The members.
    pub membership: Vec<Member>,
    /// Why it cannot serve, if it cannot.
    #[serde(default)]
    pub problem: Option<String>,
    /// Every other field the server sends (disk, snapshot index, ...), as JSON.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl NodeStatus {
    /// The leader's address, if this node knows a leader that is a member.
    pub fn leader_addr(&self) -> Option<&str> {
        let leader = self.leader?;
        self.membership.iter().find(|m| m.id == leader).map(|m| m.addr.as_str())
    }
}

/// `/admin/digest`: enough to prove two replicas hold the same registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Last applied index.
    pub last_applied: Option<u64>,
    /// Hex digest of the registry.
    pub digest: String,
    /// Instances held.
    pub instances: usize,
}
