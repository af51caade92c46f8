//! The bilibili/discovery calls the tests make, through the library's client (`discovery::client::Client`)
//! rather than hand-written HTTP: one client per node ([`client`], [`crate::harness::TestCluster::api`]), so
//! that every call goes to the node the test names (a client of one node never fails over), and free
//! functions over it so that workload tasks can use them without borrowing the cluster.
//!
//! The writes and [`fetch`] go through the client's envelope layer (`post_envelope`, `get_envelope`): the
//! tests judge the answer themselves (code 0, -404, -500 and how fast it came) and read its `data`. `Err` is
//! a transport failure, a timeout or an answer that is not an envelope. [`hosts_on`] uses the typed fetch;
//! the background writers and renewers use the typed `register` / `renew` ([`Inst::registration`],
//! [`Inst::key`]).

use std::collections::BTreeSet;
use std::time::Duration;

use discovery::client::{Client, ClientError, InstanceKey, Registration, Reply};
use serde_json::Value;

/// Env of every test instance.
pub const ENV: &str = "dev";
/// Zone of every test instance.
pub const ZONE: &str = "sh001";

/// One instance's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Inst {
    /// App id.
    pub appid: String,
    /// Host name (unique per app).
    pub hostname: String,
}

impl Inst {
    /// Instance `hostname` of `appid` in [`ENV`] / [`ZONE`].
    pub fn new(appid: &str, hostname: impl Into<String>) -> Self {
        Self { appid: appid.to_string(), hostname: hostname.into() }
    }

    /// Its key (env, appid, zone, hostname).
    pub fn key(&self) -> InstanceKey {
        InstanceKey::new(ENV, &self.appid, ZONE, &self.hostname)
    }

    /// Its registration: up, one address.
    pub fn registration(&self) -> Registration {
        Registration::new(self.key(), [self.addr()])
    }

    fn addr(&self) -> String {
        format!("grpc://10.0.0.1:{}", 9000 + self.hostname.len())
    }

    fn form(&self) -> Vec<(&'static str, String)> {
        vec![
            ("zone", ZONE.to_string()),
            ("env", ENV.to_string()),
            ("appid", self.appid.clone()),
            ("hostname", self.hostname.clone()),
        ]
    }
}

/// A client of the one node at `target` (`host:port` or `http://host:port`): connect timeout 1 s, calls
/// 10 s. Build it once per node and clone it (clones share the connection pool).
pub fn client(target: &str) -> Client {
    client_with(target, Duration::from_secs(10))
}

/// [`client`] whose typed calls time out after `call_timeout`.
pub fn client_with(target: &str, call_timeout: Duration) -> Client {
    let addr = target.strip_prefix("http://").unwrap_or(target);
    Client::builder([addr]).connect_timeout(Duration::from_secs(1)).call_timeout(call_timeout).build()
}

/// `POST /discovery/register` (status 1, one address).
pub async fn register(client: &Client, inst: &Inst, timeout: Duration) -> Result<Reply, ClientError> {
    let mut form = inst.form();
    form.push(("status", "1".to_string()));
    form.push(("addrs", inst.addr()));
    client.post_envelope("/discovery/register", &form, timeout).await
}

/// `POST /discovery/renew`.
pub async fn renew(client: &Client, inst: &Inst, timeout: Duration) -> Result<Reply, ClientError> {
    client.post_envelope("/discovery/renew", &inst.form(), timeout).await
}

/// `POST /discovery/cancel`.
pub async fn cancel(client: &Client, inst: &Inst, timeout: Duration) -> Result<Reply, ClientError> {
    client.post_envelope("/discovery/cancel", &inst.form(), timeout).await
}

/// `POST /discovery/set` of one instance's status (1 up, 2 waiting).
pub async fn set_status(client: &Client, inst: &Inst, status: u8, timeout: Duration) -> Result<Reply, ClientError> {
    let mut form = inst.form();
    form.push(("status", status.to_string()));
    client.post_envelope("/discovery/set", &form, timeout).await
}

/// `GET /discovery/fetch?appid&env&status=3[&consistent=1]`.
pub async fn fetch(client: &Client, appid: &str, consistent: bool, timeout: Duration) -> Result<Reply, ClientError> {
    let mut query = vec![("appid", appid.to_string()), ("env", ENV.to_string()), ("status", "3".to_string())];
    if consistent {
        query.push(("consistent", "1".to_string()));
    }
    client.get_envelope("/discovery/fetch", &query, timeout).await
}

/// The `code` of an answer.
pub fn code(reply: &Reply) -> i64 {
    reply.code
}

/// Host names in a fetch answer, over every zone.
pub fn hostnames(reply: &Reply) -> BTreeSet<String> {
    reply.data.as_ref().map(hosts_in).unwrap_or_default()
}

/// Host names in one app's `data` (`{"instances": {zone: [instance]}, "latest_timestamp"}`), over every zone.
pub fn hosts_in(data: &Value) -> BTreeSet<String> {
    instances(data).filter_map(|i| i.get("hostname").and_then(Value::as_str).map(str::to_string)).collect()
}

fn instances(data: &Value) -> impl Iterator<Item = &Value> {
    let zones = data.get("instances").and_then(Value::as_object);
    zones.into_iter().flat_map(|zones| zones.values()).filter_map(Value::as_array).flatten()
}

/// `data.latest_timestamp` of a fetch answer.
pub fn latest_timestamp(reply: &Reply) -> Option<i64> {
    reply.data.as_ref()?.get("latest_timestamp").and_then(Value::as_i64)
}

/// The hosts of `appid` on the client's node (plain fetch, status 3); panics unless it answers code 0.
pub async fn hosts_on(client: &Client, appid: &str) -> BTreeSet<String> {
    let info =
        client.fetch(ENV, appid, None, 3).await.unwrap_or_else(|e| panic!("fetch {appid} on {}: {e}", client.server()));
    info.all().map(|i| i.hostname.clone()).collect()
}

/// The `status` of `hostname` in a fetch answer.
pub fn status_of(reply: &Reply, hostname: &str) -> Option<i64> {
    instances(reply.data.as_ref()?)
        .find(|i| i.get("hostname").and_then(Value::as_str) == Some(hostname))
        .and_then(|i| i.get("status").and_then(Value::as_i64))
}
