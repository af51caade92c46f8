//! What the Go `naming` SDK does (spec §5.1, and the v1.0.1 differences of §5.2), played step by step
//! against a node: find the servers through `infra.discovery`, register, renew, long-poll several apps
//! with the SDK's cursor rules, re-register when a renew says -404, cancel.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use crate::support::{wait_until, Inst, TestNode, WAIT};

/// `naming.Instance` as the SDK decodes it (Go's decoder fails the whole answer on a type mismatch).
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)] // decoded like the SDK does; not every field is read back
struct SdkInstance {
    region: String,
    zone: String,
    env: String,
    appid: String,
    hostname: String,
    addrs: Vec<String>,
    version: String,
    #[serde(rename = "latest_timestamp")]
    last_ts: i64,
    metadata: Option<HashMap<String, String>>,
}

/// `naming.InstancesInfo`. `scheduler` would be a list in the bilibili client: an object breaks it.
#[derive(Debug, Clone, Deserialize)]
struct SdkInfo {
    instances: BTreeMap<String, Vec<SdkInstance>>,
    #[serde(rename = "latest_timestamp")]
    last_ts: i64,
    #[serde(default)]
    scheduler: Option<Vec<serde_json::Value>>,
}

/// The polls answer as the SDK decodes it: `message`, `ttl` and `error` are ignored.
#[derive(Debug, Deserialize)]
struct SdkPolls {
    code: i64,
    #[serde(default)]
    data: Option<HashMap<String, Option<SdkInfo>>>,
}

/// The SDK's client state (bilibili `naming` at HEAD unless `v101`).
struct Sdk {
    http: reqwest::Client,
    node: String,
    region: String,
    zone: String,
    env: String,
    host: String,
    /// v1.0.1: addrs comma-joined, no `x1-bmspy-timeout` header.
    v101: bool,
    cursors: BTreeMap<String, i64>,
    cache: BTreeMap<String, Vec<SdkInstance>>,
}

impl Sdk {
    fn new(seed: &str, zone: &str, env: &str, host: &str, v101: bool) -> Sdk {
        let http = reqwest::Client::builder().user_agent("blademaster").build().expect("client");
        Sdk {
            http,
            node: seed.to_owned(),
            region: "sh".into(),
            zone: zone.into(),
            env: env.into(),
            host: host.into(),
            v101,
            cursors: BTreeMap::new(),
            cache: BTreeMap::new(),
        }
    }

    fn request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let req = req.header("x1-bmspy-user", "sdk-test");
        if self.v101 {
            req
        } else {
            req.header("x1-bmspy-timeout", "40000")
        }
    }

    /// POST a form and return the code; HTTP status ≥ 400 or a non-JSON body is an SDK error.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> i64 {
        let req = self.http.post(format!("http://{}{path}", self.node)).form(form);
        let resp = self.request(req).send().await.expect("SDK request");
        assert!(resp.status().as_u16() < 400, "HTTP {} is an SDK error", resp.status());
        let body: serde_json::Value = resp.json().await.expect("SDK decodes JSON");
        body["code"].as_i64().expect("integer code")
    }

    fn base(&self, appid: &'static str) -> Vec<(&str, &str)> {
        vec![
            ("region", &self.region),
            ("zone", &self.zone),
            ("env", &self.env),
            ("hostname", &self.host),
            ("appid", appid),
        ]
    }

    /// `Register`: client-config identity, one `addrs` param per address (v1.0.1: one joined value),
    /// status always 1, metadata as JSON.
    async fn register(&self, appid: &'static str, addrs: &[&str], metadata: &str) -> i64 {
        let joined = addrs.join(",");
        let mut form = self.base(appid);
        form.extend([("version", "v1"), ("status", "1"), ("metadata", metadata)]);
        if self.v101 {
            form.push(("addrs", &joined));
        } else {
            form.extend(addrs.iter().map(|a| ("addrs", *a)));
        }
        self.post("/discovery/register", &form).await
    }

    async fn renew(&self, appid: &'static str) -> i64 {
        self.post("/discovery/renew", &self.base(appid)).await
    }

    async fn cancel(&self, appid: &'static str) -> i64 {
        self.post("/discovery/cancel", &self.base(appid)).await
    }

    /// The renew loop body: -404 → register again (the only recovery path after an eviction).
    async fn renew_or_reregister(&self, appid: &'static str, addrs: &[&str]) -> i64 {
        let code = self.renew(appid).await;
        if code == -404 {
            assert_eq!(self.register(appid, addrs, "").await, 0, "re-register after -404");
        }
        code
    }

    /// One `polls` round with the SDK's rules. Returns the code and the apps whose cache changed.
    async fn poll_once(&mut self, appids: &[&str]) -> (i64, Vec<String>) {
        let mut query = vec![("env", self.env.clone()), ("hostname", self.host.clone())];
        for appid in appids {
            query.push(("appid", (*appid).to_owned()));
        }
        for appid in appids {
            query.push(("latest_timestamp", self.cursors.get(*appid).copied().unwrap_or(0).to_string()));
        }
        let req = self.http.get(format!("http://{}/discovery/polls", self.node)).query(&query);
        let resp = self.request(req).send().await.expect("polls");
        assert!(resp.status().as_u16() < 400);
        let text = resp.text().await.expect("body");
        let answer: SdkPolls =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("SDK cannot decode ({e}): {text}"));
        if answer.code != 0 {
            return (answer.code, Vec::new());
        }
        let mut changed = Vec::new();
        for (appid, info) in answer.data.unwrap_or_default() {
            // A null entry crashes v1.0.1 and is an error at HEAD; so is a 0 cursor.
            let info = info.unwrap_or_else(|| panic!("null app entry for {appid}: {text}"));
            assert_ne!(info.last_ts, 0, "latest_timestamp 0 for {appid}: {text}");
            assert!(info.scheduler.is_none(), "scheduler emitted: {text}");
            let instances: Vec<SdkInstance> = info.instances.into_values().flatten().collect();
            if instances.is_empty() {
                // Ignored entirely: cursor not advanced, cache kept (spec §5.1).
                continue;
            }
            self.cursors.insert(appid.clone(), info.last_ts);
            self.cache.insert(appid.clone(), instances);
            changed.push(appid);
        }
        changed.sort();
        (0, changed)
    }

    /// Poll until a round changes something (-304 → poll again at once), bounded.
    async fn poll_until_change(&mut self, appids: &[&str]) -> Vec<String> {
        for _ in 0..20 {
            match self.poll_once(appids).await {
                (0, changed) if !changed.is_empty() => return changed,
                (0, _) | (-304, _) => continue,
                (code, _) => panic!("polls answered {code}: the SDK would switch node"),
            }
        }
        panic!("no change after 20 poll rounds");
    }

    fn hostnames(&self, appid: &str) -> Vec<String> {
        let mut hosts: Vec<String> =
            self.cache.get(appid).map(|l| l.iter().map(|i| i.hostname.clone()).collect()).unwrap_or_default();
        hosts.sort();
        hosts
    }

    /// `New`: poll `infra.discovery` in the client's env with cursor 0 until it has ≥1 instance, then use
    /// the `http://` addrs of the client's own zone as the node list.
    async fn discover_nodes(&mut self) -> Vec<String> {
        let changed = self.poll_until_change(&["infra.discovery"]).await;
        assert_eq!(changed, vec!["infra.discovery"]);
        let infra = &self.cache["infra.discovery"];
        assert!(infra.iter().all(|i| i.env == self.env), "synthesized in the client's env");
        let nodes: Vec<String> = infra
            .iter()
            .filter(|i| i.zone == self.zone)
            .flat_map(|i| i.addrs.iter())
            .filter_map(|a| a.strip_prefix("http://").map(str::to_owned))
            .collect();
        assert!(!nodes.is_empty(), "an http:// addr in the client's zone: {infra:?}");
        nodes
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_sdk_flow_works_end_to_end() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_millis(500)).await;
    // The client runs in an env nobody registered, with the node as its only seed.
    let mut sdk = Sdk::new(&node.addr, &node.config.zone, "uat", "client-host-1", false);
    let nodes = sdk.discover_nodes().await;
    assert_eq!(nodes, vec![node.addr.clone()], "the node advertises itself");
    sdk.node = nodes[0].clone();

    // Register and renew a few times.
    let addrs = ["grpc://10.0.0.9:9000", "http://10.0.0.9:8000"];
    assert_eq!(sdk.register("demo.svc", &addrs, r#"{"weight":"10","color":"red"}"#).await, 0);
    for _ in 0..3 {
        assert_eq!(sdk.renew_or_reregister("demo.svc", &addrs).await, 0);
    }
    // Another service in the same env.
    let peer = Sdk::new(&node.addr, &node.config.zone, "uat", "peer-host", false);
    assert_eq!(peer.register("other.svc", &["grpc://10.0.0.7:9000"], "").await, 0);

    // Watch several apps, one unknown, with the SDK's cursor tracking.
    let watch = ["infra.discovery", "demo.svc", "other.svc", "unknown.svc"];
    let changed = sdk.poll_until_change(&watch).await;
    assert_eq!(changed, vec!["demo.svc", "other.svc"], "every app the client has not seen (infra.discovery it has)");
    let me = &sdk.cache["demo.svc"][0];
    assert_eq!(me.addrs, addrs.map(str::to_owned).to_vec());
    assert_eq!(me.metadata.as_ref().map(|m| m["weight"].as_str()), Some("10"));
    assert_eq!(
        (me.region.as_str(), me.zone.as_str(), me.appid.as_str()),
        ("sh", node.config.zone.as_str(), "demo.svc")
    );
    assert!(me.last_ts > 0 && !me.version.is_empty());
    // Nothing new: the next rounds are -304 (poll_timeout 500 ms < the SDK's 40 s), cursors unchanged.
    let cursors = sdk.cursors.clone();
    assert_eq!(sdk.poll_once(&watch).await.0, -304);
    assert_eq!(sdk.cursors, cursors);

    // The unknown app appears while the SDK waits.
    let registry = node.state().registry.clone();
    let registrar = tokio::spawn(async move {
        wait_until(WAIT, "the SDK's poll to wait", || {
            let waiting = registry.hub().waiters() == 1;
            async move { waiting }
        })
        .await;
        assert_eq!(peer.register("unknown.svc", &["grpc://10.0.0.8:9000"], "").await, 0);
    });
    let changed = sdk.poll_until_change(&watch).await;
    registrar.await.expect("registrar");
    assert_eq!(changed, vec!["unknown.svc"]);
    assert_eq!(sdk.hostnames("unknown.svc"), vec!["peer-host"]);

    // An operator cancels the instance: the next renew is -404, the SDK registers again and is visible.
    let operator = Inst { zone: node.config.zone.clone(), ..Inst::new("uat", "demo.svc", "client-host-1") };
    assert_eq!(node.cancel(&operator).await, 0);
    assert_eq!(sdk.renew_or_reregister("demo.svc", &addrs).await, -404);
    assert_eq!(sdk.renew("demo.svc").await, 0, "registered again");
    let changed = sdk.poll_until_change(&watch).await;
    assert_eq!(changed, vec!["demo.svc"]);
    assert_eq!(sdk.hostnames("demo.svc"), vec!["client-host-1"]);

    // Shutdown: cancel.
    assert_eq!(sdk.cancel("demo.svc").await, 0);
    assert_eq!(node.fetch("uat", "demo.svc").await, None);
    assert_eq!(sdk.cancel("demo.svc").await, -404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_sdk_instance_re_registers_on_the_renew_404() {
    let node = TestNode::start_with(|c| {
        c.lease = Duration::from_secs(1);
        c.evict_interval = Duration::from_millis(100);
        c.protect_threshold = 0.0;
        c.poll_timeout = Duration::from_secs(5);
    })
    .await;
    let mut sdk = Sdk::new(&node.addr, &node.config.zone, "dev", "client-host-2", false);
    sdk.node = sdk.discover_nodes().await[0].clone();
    let addrs = ["grpc://10.0.0.3:9000"];
    assert_eq!(sdk.register("demo.svc", &addrs, "").await, 0);
    assert_eq!(sdk.poll_until_change(&["demo.svc"]).await, vec!["demo.svc"]);

    // The client stalls past its lease: evicted.
    wait_until(WAIT, "the stalled instance to be evicted", || async { node.fetch("dev", "demo.svc").await.is_none() })
        .await;
    // Its renew loop resumes: -404 → register again → visible to watchers again.
    assert_eq!(sdk.renew_or_reregister("demo.svc", &addrs).await, -404);
    assert_eq!(node.hostnames("dev", "demo.svc").await, vec!["client-host-2"]);
    let mut watcher = Sdk::new(&node.addr, &node.config.zone, "dev", "watcher", false);
    assert_eq!(watcher.poll_until_change(&["demo.svc"]).await, vec!["demo.svc"]);
    assert_eq!(watcher.hostnames("demo.svc"), vec!["client-host-2"]);
    assert_eq!(sdk.renew("demo.svc").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v101_sdk_sends_comma_joined_addrs_and_no_timeout_header() {
    let node = TestNode::start_with(|c| c.poll_timeout = Duration::from_millis(500)).await;
    let mut sdk = Sdk::new(&node.addr, &node.config.zone, "dev", "goim-comet-1", true);
    sdk.node = sdk.discover_nodes().await[0].clone();
    let addrs = ["grpc://10.0.0.4:3109", "tcp://10.0.0.4:3101", "ws://10.0.0.4:3102"];
    assert_eq!(sdk.register("goim.comet", &addrs, r#"{"weight":"10","offline":"false"}"#).await, 0);
    assert_eq!(sdk.poll_until_change(&["goim.comet", "infra.discovery"]).await, vec!["goim.comet"]);
    let comet = &sdk.cache["goim.comet"][0];
    assert_eq!(comet.addrs, addrs.map(str::to_owned).to_vec(), "split into one address each");
    // goim's comet calls Set every 10 s with status 1 and the full metadata.
    let mut form = sdk.base("goim.comet");
    form.extend([("version", "v1"), ("status", "1"), ("metadata", r#"{"weight":"10","offline":"true"}"#)]);
    assert_eq!(sdk.post("/discovery/set", &form).await, 0);
    assert_eq!(sdk.poll_until_change(&["goim.comet", "infra.discovery"]).await, vec!["goim.comet"]);
    let meta = sdk.cache["goim.comet"][0].metadata.clone().expect("metadata");
    assert_eq!(meta.get("offline").map(String::as_str), Some("true"));
    assert_eq!(sdk.renew("goim.comet").await, 0);
    assert_eq!(sdk.cancel("goim.comet").await, 0);
}
