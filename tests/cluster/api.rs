//! The bilibili/discovery calls the tests make, as free functions over a client and a node's base URL
//! (`http://host:port`) so that workload tasks can use them without borrowing the cluster.

use std::collections::BTreeSet;
use std::time::Duration;

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

    fn key(&self) -> Vec<(&'static str, String)> {
        vec![
            ("zone", ZONE.to_string()),
            ("env", ENV.to_string()),
            ("appid", self.appid.clone()),
            ("hostname", self.hostname.clone()),
        ]
    }
}

/// The `code` of an envelope (`i64::MIN` when there is none).
pub fn code(body: &Value) -> i64 {
    body.get("code").and_then(Value::as_i64).unwrap_or(i64::MIN)
}

async fn post(
    client: &reqwest::Client,
    url: String,
    form: &[(&str, String)],
    timeout: Duration,
) -> Result<Value, String> {
    let resp = client.post(url).form(form).timeout(timeout).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|_| format!("HTTP {status}, not JSON: {text:?}"))
}

/// `POST /discovery/register` (status 1, one address). `Err` is a transport failure or timeout.
pub async fn register(client: &reqwest::Client, base: &str, inst: &Inst, timeout: Duration) -> Result<Value, String> {
    let mut form = inst.key();
    form.push(("status", "1".to_string()));
    form.push(("addrs", format!("grpc://10.0.0.1:{}", 9000 + inst.hostname.len())));
    post(client, format!("{base}/discovery/register"), &form, timeout).await
}

/// `POST /discovery/renew`.
pub async fn renew(client: &reqwest::Client, base: &str, inst: &Inst, timeout: Duration) -> Result<Value, String> {
    post(client, format!("{base}/discovery/renew"), &inst.key(), timeout).await
}

/// `POST /discovery/cancel`.
pub async fn cancel(client: &reqwest::Client, base: &str, inst: &Inst, timeout: Duration) -> Result<Value, String> {
    post(client, format!("{base}/discovery/cancel"), &inst.key(), timeout).await
}

/// `POST /discovery/set` of one instance's status (1 up, 2 waiting).
pub async fn set_status(
    client: &reqwest::Client,
    base: &str,
    inst: &Inst,
    status: u8,
    timeout: Duration,
) -> Result<Value, String> {
    let mut form = inst.key();
    form.push(("status", status.to_string()));
    post(client, format!("{base}/discovery/set"), &form, timeout).await
}

/// `GET /discovery/fetch?appid&env&status=3[&consistent=1]`.
pub async fn fetch(
    client: &reqwest::Client,
    base: &str,
    appid: &str,
    consistent: bool,
    timeout: Duration,
) -> Result<Value, String> {
    let mut url = format!("{base}/discovery/fetch?appid={appid}&env={ENV}&status=3");
    if consistent {
        url.push_str("&consistent=1");
    }
    let resp = client.get(url).timeout(timeout).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|_| format!("HTTP {status}, not JSON: {text:?}"))
}

/// Host names in a fetch answer, over every zone.
pub fn hostnames(body: &Value) -> BTreeSet<String> {
    let Some(zones) = body.pointer("/data/instances").and_then(Value::as_object) else { return BTreeSet::new() };
    zones
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|i| i.get("hostname").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// `data.latest_timestamp` of a fetch answer.
pub fn latest_timestamp(body: &Value) -> Option<i64> {
    body.pointer("/data/latest_timestamp").and_then(Value::as_i64)
}

/// The hosts of `appid` on one node (plain fetch); panics unless it answers code 0.
pub async fn hosts_on(client: &reqwest::Client, base: &str, appid: &str) -> BTreeSet<String> {
    let body = fetch(client, base, appid, false, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("fetch {appid} on {base}: {e}"));
    assert_eq!(code(&body), 0, "fetch {appid} on {base} answered {body}");
    hostnames(&body)
}

/// The `status` of `hostname` in a fetch answer.
pub fn status_of(body: &Value, hostname: &str) -> Option<i64> {
    let zones = body.pointer("/data/instances").and_then(Value::as_object)?;
    zones
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .find(|i| i.get("hostname").and_then(Value::as_str) == Some(hostname))
        .and_then(|i| i.get("status").and_then(Value::as_i64))
}
