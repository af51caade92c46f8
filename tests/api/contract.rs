//! Contract tests: every endpoint and every error code, whole bodies compared with golden transcripts in
//! `golden/` (timestamps normalized, see `support::Transcript`). Besides the goldens, each test asserts the
//! spec's rules directly, so a wrongly blessed golden file cannot hide a contract break.

use serde_json::{json, Value};

use crate::support::{now_ns, Inst, TestNode, Transcript, JSON_CT};

const REGISTER: &str = "/discovery/register";
const RENEW: &str = "/discovery/renew";
const CANCEL: &str = "/discovery/cancel";
const SET: &str = "/discovery/set";
const FETCH: &str = "/discovery/fetch";
const FETCHS: &str = "/discovery/fetchs";
const POLL: &str = "/discovery/poll";
const POLLS: &str = "/discovery/polls";

/// Form pairs, repeated keys allowed.
type Form<'a> = Vec<(&'a str, &'a str)>;

/// The validator text of the original for a missing required field (spec §1.2).
fn required(arg: &str, field: &str) -> String {
    format!("Key: '{arg}.{field}' Error:Field validation for '{field}' failed on the 'required' tag")
}

fn message(reply: &crate::support::Reply) -> String {
    reply.json()["message"].as_str().expect("string message").to_owned()
}

fn assert_400(reply: &crate::support::Reply, needle: &str) {
    assert_eq!(reply.code(), -400, "{}", reply.text);
    let msg = message(reply);
    assert!(msg.contains(needle), "message {msg:?} should mention {needle:?}");
    assert_eq!(reply.json().get("data"), None, "-400 has no data key: {}", reply.text);
}

fn full_register(hostname: &str) -> Form<'_> {
    vec![
        ("region", "sh"),
        ("zone", "sh001"),
        ("env", "dev"),
        ("appid", "demo.svc"),
        ("hostname", hostname),
        ("addrs", "grpc://10.0.0.5:9000"),
        ("addrs", "http://10.0.0.5:8000"),
        ("version", "v1"),
        ("status", "1"),
        ("metadata", r#"{"weight":"10"}"#),
    ]
}

fn with<'a>(form: &[(&'a str, &'a str)], key: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<_> = form.iter().copied().filter(|(k, _)| *k != key).collect();
    out.push((key, value));
    out
}

fn without<'a>(form: &[(&'a str, &'a str)], key: &str) -> Vec<(&'a str, &'a str)> {
    form.iter().copied().filter(|(k, _)| *k != key).collect()
}

/// The one instance of (env dev, demo.svc, zone, hostname) as fetch shows it.
async fn fetched(node: &TestNode, zone: &str, hostname: &str) -> Option<Value> {
    let data = node.fetch("dev", "demo.svc").await?;
    data["instances"][zone].as_array()?.iter().find(|i| i["hostname"] == hostname).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_contract() {
    let node = TestNode::start().await;
    let mut t = Transcript::new("register", &node);
    let full = full_register("host-a");

    let ok = t.post("register: ok", REGISTER, &full).await;
    assert_eq!(ok.json(), json!({"code": 0, "message": "0", "ttl": 1}), "no data key on success");
    let stored = fetched(&node, "sh001", "host-a").await.expect("registered");
    assert_eq!(stored["addrs"], json!(["grpc://10.0.0.5:9000", "http://10.0.0.5:8000"]));
    assert_eq!(stored["metadata"], json!({"weight": "10"}));
    let reg = &stored["reg_timestamp"];
    for ts in ["up_timestamp", "renew_timestamp", "dirty_timestamp", "latest_timestamp"] {
        assert_eq!(&stored[ts], reg, "a fresh register stamps {ts} with its receive time");
    }
    t.get("fetch shows the instance", FETCH, &[("appid", "demo.svc"), ("env", "dev"), ("status", "3")]).await;

    for (param, go) in
        [("zone", "Zone"), ("env", "Env"), ("appid", "AppID"), ("hostname", "Hostname"), ("status", "Status")]
    {
        let reply = t.post(&format!("register: missing {param}"), REGISTER, &without(&full, param)).await;
        assert_eq!(reply.code(), -400);
        assert_eq!(message(&reply), required("ArgRegister", go));
        let empty = t.post(&format!("register: empty {param}"), REGISTER, &with(&full, param, "")).await;
        assert_eq!(message(&empty), required("ArgRegister", go), "empty is missing");
    }
    let no_addrs = t.post("register: missing addrs", REGISTER, &without(&full, "addrs")).await;
    assert_eq!(message(&no_addrs), required("ArgRegister", "Addrs"));
    let empty_addrs =
        t.post("register: only empty addrs", REGISTER, &with(&without(&full, "addrs"), "addrs", ",")).await;
    assert_eq!(message(&empty_addrs), required("ArgRegister", "Addrs"));

    let zero = t.post("register: status 0", REGISTER, &with(&full, "status", "0")).await;
    assert_eq!(message(&zero), required("ArgRegister", "Status"));
    for status in ["3", "-1", "x", "4294967296"] {
        let reply = t.post(&format!("register: status {status}"), REGISTER, &with(&full, "status", status)).await;
        assert_400(&reply, "status");
    }
    for bad in ["{not json", "[1,2]", r#"{"weight":10}"#, r#""text""#, "true"] {
        let reply = t.post(&format!("register: metadata {bad}"), REGISTER, &with(&full, "metadata", bad)).await;
        assert_400(&reply, "metadata");
    }
    for bad in [("dirty_timestamp", "-1"), ("latest_timestamp", "x"), ("zone", "a b"), ("appid", "é")] {
        let reply = t.post(&format!("register: {}={}", bad.0, bad.1), REGISTER, &with(&full, bad.0, bad.1)).await;
        assert_400(&reply, bad.0);
    }
    assert_eq!(node.hostnames("dev", "demo.svc").await, vec!["host-a"], "no failed register stored anything");

    // v1.0.x clients send one comma-joined value (spec §5.2).
    let joined = [
        ("zone", "sh001"),
        ("env", "dev"),
        ("appid", "demo.svc"),
        ("hostname", "host-b"),
        ("status", "2"),
        ("addrs", "grpc://10.0.0.6:9000,http://10.0.0.6:8000"),
    ];
    t.post("register: comma-joined addrs, status 2, no region/version/metadata", REGISTER, &joined).await;
    let b = fetched(&node, "sh001", "host-b").await.expect("host-b");
    assert_eq!(b["addrs"], json!(["grpc://10.0.0.6:9000", "http://10.0.0.6:8000"]), "split on the comma");
    assert_eq!((&b["status"], &b["metadata"], &b["region"]), (&json!(2), &Value::Null, &json!("")));

    // A re-register replaces the instance but keeps its up_timestamp (spec §4.1).
    let again = with(&with(&full, "version", "v2"), "metadata", "");
    t.post("register: again, new version, no metadata", REGISTER, &again).await;
    let a2 = fetched(&node, "sh001", "host-a").await.expect("host-a");
    assert_eq!(a2["up_timestamp"], stored["up_timestamp"], "up_timestamp kept");
    assert!(a2["reg_timestamp"].as_i64() > stored["reg_timestamp"].as_i64(), "reg_timestamp is the new register's");
    assert_eq!((&a2["version"], &a2["metadata"]), (&json!("v2"), &Value::Null), "fully replaced");
    t.get("fetch after the re-register", FETCH, &[("appid", "demo.svc"), ("env", "dev"), ("status", "3")]).await;

    // Issue 11: a dirty_timestamp far ahead of the server clock would pin the instance (every later register
    // "older", answered 0, changing nothing): refused, naming the parameter, and nothing stored.
    let max = i64::MAX.to_string();
    let pin = t.post("register: dirty_timestamp 2^63-1 → -400", REGISTER, &with(&full, "dirty_timestamp", &max)).await;
    assert_400(&pin, "dirty_timestamp");
    assert_eq!(fetched(&node, "sh001", "host-a").await, Some(a2.clone()), "the refused register changed nothing");
    // Not in the transcript (the values follow the clock): 11 minutes ahead is refused, 9 minutes (clock
    // skew) is accepted and honoured.
    let minute = 60_000_000_000;
    let over = (now_ns() + 11 * minute).to_string();
    assert_400(&node.post(REGISTER, &with(&full, "dirty_timestamp", &over)).await, "dirty_timestamp");
    let skew = now_ns() + 9 * minute;
    let skewed = node.post(REGISTER, &with(&full, "dirty_timestamp", &skew.to_string())).await;
    assert_eq!(skewed.code(), 0, "{}", skewed.text);
    let a3 = fetched(&node, "sh001", "host-a").await.expect("host-a");
    assert_eq!(a3["dirty_timestamp"], json!(skew));
    t.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_contract() {
    let node = TestNode::start().await;
    let mut t = Transcript::new("renew", &node);
    t.post("register host-a", REGISTER, &full_register("host-a")).await;
    let key = |host: &'static str| vec![("zone", "sh001"), ("env", "dev"), ("appid", "demo.svc"), ("hostname", host)];

    let ok = t.post("renew: ok, data is the instance", RENEW, &key("host-a")).await;
    assert_eq!(ok.code(), 0);
    assert_eq!(Some(ok.json()["data"].clone()), fetched(&node, "sh001", "host-a").await, "data = stored instance");

    let unknown_app = [("zone", "sh001"), ("env", "dev"), ("appid", "no.such.app"), ("hostname", "ghost")];
    let reply = t.post("renew: unknown app, data null", RENEW, &unknown_app).await;
    assert_eq!(reply.json(), json!({"code": -404, "message": "-404", "ttl": 1, "data": null}));
    let reply =
        t.post("renew: unknown zone of a known app, data null", RENEW, &with(&key("host-a"), "zone", "sh009")).await;
    assert_eq!(reply.json()["data"], Value::Null);
    let reply = t.post("renew: unknown env, data null", RENEW, &with(&key("host-a"), "env", "prod")).await;
    assert_eq!(reply.json()["data"], Value::Null);

    let reply = t.post("renew: unknown host in a known zone, zero-valued instance", RENEW, &key("ghost")).await;
    let zero = json!({"region": "", "zone": "", "env": "", "appid": "", "hostname": "", "addrs": null,
        "version": "", "metadata": null, "status": 0, "reg_timestamp": 0, "up_timestamp": 0,
        "renew_timestamp": 0, "dirty_timestamp": 0, "latest_timestamp": 0});
    assert_eq!(reply.json(), json!({"code": -404, "message": "-404", "ttl": 1, "data": zero}));

    // Replicated renews compare dirty timestamps (spec §2.2). host-d carries an explicit dirty timestamp.
    let d = with(&full_register("host-d"), "dirty_timestamp", "5000");
    t.post("register host-d with dirty_timestamp 5000", REGISTER, &d).await;
    let stored_d = fetched(&node, "sh001", "host-d").await.expect("host-d");
    assert_eq!(stored_d["dirty_timestamp"], json!(5000));
    let repl = |dirty: &'static str| {
        let mut form = key("host-d");
        form.extend([("replication", "true"), ("dirty_timestamp", dirty)]);
        form
    };
    let older = t.post("renew: replication, sender older → -409 with mine", RENEW, &repl("4000")).await;
    assert_eq!((older.code(), older.json()["data"]["dirty_timestamp"].clone()), (-409, json!(5000)));
    let newer = t.post("renew: replication, sender newer → -404 with mine", RENEW, &repl("6000")).await;
    assert_eq!((newer.code(), newer.json()["data"]["hostname"].clone()), (-404, json!("host-d")));
    let equal = t.post("renew: replication, equal → 0", RENEW, &repl("5000")).await;
    assert_eq!(equal.code(), 0);
    let mut no_dirty = key("host-d");
    no_dirty.push(("replication", "1"));
    let reply = t.post("renew: replication without dirty_timestamp → -409", RENEW, &no_dirty).await;
    assert_eq!(reply.code(), -409);
    let reply =
        t.post("renew: replication=false ignores dirty", RENEW, &with(&repl("1"), "replication", "false")).await;
    assert_eq!(reply.code(), 0);

    for (param, go) in [("zone", "Zone"), ("env", "Env"), ("appid", "AppID"), ("hostname", "Hostname")] {
        let reply = t.post(&format!("renew: missing {param}"), RENEW, &without(&key("host-a"), param)).await;
        assert_eq!(message(&reply), required("ArgRenew", go));
    }
    let reply = t.post("renew: negative dirty_timestamp", RENEW, &with(&key("host-a"), "dirty_timestamp", "-5")).await;
    assert_400(&reply, "dirty_timestamp");
    t.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_contract() {
    let node = TestNode::start().await;
    let mut t = Transcript::new("cancel", &node);
    t.post("register host-a", REGISTER, &full_register("host-a")).await;
    t.post("register host-b", REGISTER, &full_register("host-b")).await;
    let key = |host: &'static str| vec![("zone", "sh001"), ("env", "dev"), ("appid", "demo.svc"), ("hostname", host)];
    let before = node.cursor("dev", "demo.svc").await.expect("cursor");

    let ok = t.post("cancel: ok", CANCEL, &key("host-a")).await;
    assert_eq!(ok.json(), json!({"code": 0, "message": "0", "ttl": 1}));
    assert_eq!(node.hostnames("dev", "demo.svc").await, vec!["host-b"]);
    assert!(node.cursor("dev", "demo.svc").await.expect("cursor") > before, "cancel advances the cursor");
    let again = t.post("cancel: again → -404 without data", CANCEL, &key("host-a")).await;
    assert_eq!(again.json(), json!({"code": -404, "message": "-404", "ttl": 1}));
    let unknown = t.post("cancel: unknown app → -404", CANCEL, &with(&key("host-a"), "appid", "nope")).await;
    assert_eq!(unknown.json(), json!({"code": -404, "message": "-404", "ttl": 1}));
    for (param, go) in [("zone", "Zone"), ("env", "Env"), ("appid", "AppID"), ("hostname", "Hostname")] {
        let reply = t.post(&format!("cancel: missing {param}"), CANCEL, &without(&key("host-b"), param)).await;
        assert_eq!(message(&reply), required("ArgCancel", go));
    }
    t.post("cancel: the last instance", CANCEL, &key("host-b")).await;
    let gone = t
        .get("fetch after the app is gone → -404", FETCH, &[("appid", "demo.svc"), ("env", "dev"), ("status", "3")])
        .await;
    assert_eq!(gone.json(), json!({"code": -404, "message": "-404", "ttl": 1, "data": null}));
    t.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_contract() {
    let node = TestNode::start().await;
    let mut t = Transcript::new("set", &node);
    t.post("register host-a", REGISTER, &full_register("host-a")).await;
    t.post("register host-b", REGISTER, &with(&full_register("host-b"), "metadata", "")).await;
    let base = [("zone", "sh001"), ("env", "dev"), ("appid", "demo.svc")];
    let form = |extra: &[(&'static str, &'static str)]| {
        let mut f = base.to_vec();
        f.extend_from_slice(extra);
        f
    };
    let cursor0 = node.cursor("dev", "demo.svc").await.expect("cursor");
    let a0 = fetched(&node, "sh001", "host-a").await.expect("host-a");

    let ok = t
        .post(
            "set: both to status 2",
            SET,
            &form(&[("hostname", "host-a"), ("hostname", "host-b"), ("status", "2"), ("status", "2")]),
        )
        .await;
    assert_eq!(ok.json(), json!({"code": 0, "message": "0", "ttl": 1}));
    let a1 = fetched(&node, "sh001", "host-a").await.expect("host-a");
    let b1 = fetched(&node, "sh001", "host-b").await.expect("host-b");
    assert_eq!((a1["status"].clone(), b1["status"].clone()), (json!(2), json!(2)));
    let cursor1 = node.cursor("dev", "demo.svc").await.expect("cursor");
    assert!(cursor1 > cursor0, "set advances the app cursor (a fix over the original)");
    assert!(a1["dirty_timestamp"].as_i64() > a0["dirty_timestamp"].as_i64(), "set stamps dirty_timestamp");
    assert_eq!(a1["up_timestamp"], a0["up_timestamp"], "leaving up does not touch up_timestamp");

    let merged = t
        .post("set: metadata is merged", SET, &form(&[("hostname", "host-a"), ("metadata", r#"{"color":"red"}"#)]))
        .await;
    assert_eq!(merged.code(), 0);
    let a2 = fetched(&node, "sh001", "host-a").await.expect("host-a");
    assert_eq!(a2["metadata"], json!({"color": "red", "weight": "10"}));
    assert_eq!(a2["status"], json!(2), "status untouched without a status param");
    let up = t
        .post(
            "set: back to up with an explicit set_timestamp",
            SET,
            &form(&[("hostname", "host-a"), ("status", "1"), ("set_timestamp", "7")]),
        )
        .await;
    assert_eq!(up.code(), 0);
    let a3 = fetched(&node, "sh001", "host-a").await.expect("host-a");
    assert_eq!(
        (&a3["up_timestamp"], &a3["dirty_timestamp"], &a3["latest_timestamp"]),
        (&json!(7), &json!(7), &json!(7))
    );

    // All or nothing: one bad hostname (or status, or metadata) leaves every instance unchanged.
    let snapshot = node.fetch("dev", "demo.svc").await;
    let cases: [(&str, Form, &str); 8] = [
        (
            "set: unknown host → -400",
            form(&[("hostname", "host-b"), ("hostname", "ghost"), ("status", "1"), ("status", "1")]),
            "ghost",
        ),
        (
            "set: status count mismatch → -400",
            form(&[("hostname", "host-a"), ("hostname", "host-b"), ("status", "1")]),
            "status",
        ),
        (
            "set: metadata count mismatch → -400",
            form(&[("hostname", "host-a"), ("hostname", "host-b"), ("metadata", "{}")]),
            "metadata",
        ),
        (
            "set: bad status → -400",
            form(&[("hostname", "host-b"), ("hostname", "host-a"), ("status", "1"), ("status", "3")]),
            "status",
        ),
        (
            "set: bad metadata → -400",
            form(&[("hostname", "host-b"), ("hostname", "host-a"), ("metadata", "{}"), ("metadata", "[")]),
            "metadata",
        ),
        (
            "set: unknown zone → -400",
            vec![("zone", "sh009"), ("env", "dev"), ("appid", "demo.svc"), ("hostname", "host-a"), ("status", "1")],
            "set",
        ),
        (
            "set: unknown app → -400",
            vec![("zone", "sh001"), ("env", "dev"), ("appid", "nope"), ("hostname", "host-a"), ("status", "1")],
            "set",
        ),
        ("set: no hostname → -400", form(&[("status", "1")]), "Hostname"),
    ];
    for (title, f, needle) in cases {
        let reply = t.post(title, SET, &f).await;
        assert_400(&reply, needle);
        assert_eq!(node.fetch("dev", "demo.svc").await, snapshot, "{title}: nothing changed");
    }
    for (param, go) in [("zone", "Zone"), ("env", "Env"), ("appid", "AppID")] {
        let reply =
            t.post(&format!("set: missing {param}"), SET, &without(&form(&[("hostname", "host-a")]), param)).await;
        assert_eq!(message(&reply), required("ArgSet", go));
    }
    t.get("fetch at the end", FETCH, &[("appid", "demo.svc"), ("env", "dev"), ("status", "3")]).await;

    // Issue 11: set_timestamp becomes the instances' dirty_timestamp, so a far-future one would pin them
    // against every later register: refused like register's dirty_timestamp.
    let max = i64::MAX.to_string();
    let pin = t
        .post(
            "set: set_timestamp 2^63-1 → -400",
            SET,
            &[base.as_slice(), &[("hostname", "host-a"), ("status", "2"), ("set_timestamp", max.as_str())]].concat(),
        )
        .await;
    assert_400(&pin, "set_timestamp");
    assert_eq!(node.fetch("dev", "demo.svc").await, snapshot, "the refused set changed nothing");
    t.check();
}

/// demo.svc in dev: sh001 {host-a up, host-b waiting}, sh002 {host-c waiting}; demo.svc in prod: sh001
/// {host-p up}; other.svc in dev: sh001 {host-o up}.
async fn fetch_fixture(node: &TestNode) {
    node.register(&Inst::new("dev", "demo.svc", "host-a")).await;
    node.register(&Inst::new("dev", "demo.svc", "host-b").status(2)).await;
    node.register(&Inst::new("dev", "demo.svc", "host-c").zone("sh002").status(2)).await;
    node.register(&Inst::new("prod", "demo.svc", "host-p")).await;
    node.register(&Inst::new("dev", "other.svc", "host-o").metadata(r#"{"cluster":"c1"}"#)).await;
}

fn zone_hosts(data: &Value) -> Vec<(String, Vec<String>)> {
    let zones = data["instances"].as_object().expect("instances");
    zones
        .iter()
        .map(|(z, l)| {
            let hosts = l.as_array().expect("list").iter().map(|i| i["hostname"].as_str().expect("h").to_owned());
            (z.clone(), hosts.collect())
        })
        .collect()
}

fn zh(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    pairs.iter().map(|(z, hs)| (z.to_string(), hs.iter().map(|h| h.to_string()).collect())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_contract() {
    let node = TestNode::start().await;
    fetch_fixture(&node).await;
    let mut t = Transcript::new("fetch", &node);
    let q = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![("appid", "demo.svc"), ("env", "dev")];
        f.extend_from_slice(extra);
        f
    };
    let up = t.get("fetch: status 1 (up); the filtered-out zone stays with []", FETCH, &q(&[("status", "1")])).await;
    assert_eq!(zone_hosts(&up.json()["data"]), zh(&[("sh001", &["host-a"]), ("sh002", &[])]));
    let waiting = t.get("fetch: status 2 (waiting)", FETCH, &q(&[("status", "2")])).await;
    assert_eq!(zone_hosts(&waiting.json()["data"]), zh(&[("sh001", &["host-b"]), ("sh002", &["host-c"])]));
    let all = t.get("fetch: status 3 (both)", FETCH, &q(&[("status", "3")])).await;
    assert_eq!(zone_hosts(&all.json()["data"]), zh(&[("sh001", &["host-a", "host-b"]), ("sh002", &["host-c"])]));
    let cursor = all.json()["data"]["latest_timestamp"].clone();
    let newest = all.json()["data"]["instances"]["sh002"][0]["latest_timestamp"].clone();
    assert_eq!(cursor, newest, "the cursor is the last register's stamp (host-c registered last in dev)");
    let z = t.get("fetch: zone sh001", FETCH, &q(&[("status", "3"), ("zone", "sh001")])).await;
    assert_eq!(zone_hosts(&z.json()["data"]), zh(&[("sh001", &["host-a", "host-b"])]));
    let z = t.get("fetch: zone sh002, all filtered → []", FETCH, &q(&[("status", "1"), ("zone", "sh002")])).await;
    assert_eq!(z.json()["data"]["instances"], json!({"sh002": []}));
    let prod = t
        .get("fetch: env is part of the identity", FETCH, &[("appid", "demo.svc"), ("env", "prod"), ("status", "3")])
        .await;
    assert_eq!(zone_hosts(&prod.json()["data"]), zh(&[("sh001", &["host-p"])]));
    let first = t
        .get(
            "fetch: repeated appid → the first",
            FETCH,
            &[("appid", "other.svc"), ("appid", "demo.svc"), ("env", "dev"), ("status", "1")],
        )
        .await;
    assert_eq!(zone_hosts(&first.json()["data"]), zh(&[("sh001", &["host-o"])]));

    let null404 = json!({"code": -404, "message": "-404", "ttl": 1, "data": null});
    let r = t
        .get("fetch: unknown appid → -404 data null", FETCH, &[("appid", "nope"), ("env", "dev"), ("status", "3")])
        .await;
    assert_eq!(r.json(), null404);
    let r = t.get("fetch: unknown env → -404", FETCH, &[("appid", "demo.svc"), ("env", "uat"), ("status", "3")]).await;
    assert_eq!(r.json(), null404);
    let r = t.get("fetch: absent zone → -404", FETCH, &q(&[("status", "3"), ("zone", "sh009")])).await;
    assert_eq!(r.json(), null404);

    let r = t.get("fetch: missing status → -400", FETCH, &q(&[])).await;
    assert_eq!(message(&r), required("ArgFetch", "Status"));
    let r = t.get("fetch: status 0 → -400", FETCH, &q(&[("status", "0")])).await;
    assert_eq!(message(&r), required("ArgFetch", "Status"));
    for bad in ["4", "x", "-1"] {
        let r = t.get(&format!("fetch: status {bad} → -400"), FETCH, &q(&[("status", bad)])).await;
        assert_400(&r, "status");
    }
    let r = t.get("fetch: missing appid → -400", FETCH, &[("env", "dev"), ("status", "1")]).await;
    assert_eq!(message(&r), required("ArgFetch", "AppID"));
    let r = t.get("fetch: missing env → -400", FETCH, &[("appid", "demo.svc"), ("status", "1")]).await;
    assert_eq!(message(&r), required("ArgFetch", "Env"));

    // fetchs: unknown appids silently omitted, `{}` when none is known.
    let r = t
        .get(
            "fetchs: two known, one unknown",
            FETCHS,
            &[("appid", "demo.svc"), ("appid", "nope"), ("appid", "other.svc"), ("env", "dev"), ("status", "1")],
        )
        .await;
    let keys: Vec<String> = r.json()["data"].as_object().expect("object").keys().cloned().collect();
    assert_eq!(keys, vec!["demo.svc", "other.svc"]);
    assert_eq!(r.json()["data"]["demo.svc"], up.json()["data"], "each entry is what fetch answers");
    let r = t.get("fetchs: none known → {}", FETCHS, &[("appid", "nope"), ("env", "dev"), ("status", "1")]).await;
    assert_eq!(r.json(), json!({"code": 0, "message": "0", "ttl": 1, "data": {}}));
    let r = t.get("fetchs: missing appid → -400", FETCHS, &[("env", "dev"), ("status", "1")]).await;
    assert_eq!(message(&r), required("ArgFetchs", "AppID"));

    // fetch/all: every env and zone flattened under the appid, status not filtered.
    let r = t.get("fetch/all", "/discovery/fetch/all", &[]).await;
    let data = r.json()["data"].clone();
    let names = |appid: &str| -> Vec<(String, String)> {
        let list = data[appid].as_array().expect("list");
        list.iter().map(|i| (i["env"].as_str().expect("e").into(), i["hostname"].as_str().expect("h").into())).collect()
    };
    let pair = |e: &str, h: &str| (e.to_owned(), h.to_owned());
    assert_eq!(
        names("demo.svc"),
        vec![pair("dev", "host-a"), pair("dev", "host-b"), pair("dev", "host-c"), pair("prod", "host-p")]
    );
    assert_eq!(names("other.svc"), vec![pair("dev", "host-o")]);
    assert_eq!(data.as_object().expect("object").len(), 2, "only registered apps: {data}");
    t.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_and_polls_contract() {
    let node = TestNode::start().await;
    fetch_fixture(&node).await;
    let mut t = Transcript::new("polls", &node);
    let cursor = node.cursor("dev", "demo.svc").await.expect("cursor");
    let cursor_text = cursor.to_string();

    let r = t
        .get(
            "poll: unknown appid → map envelope -404",
            POLL,
            &[("env", "dev"), ("hostname", "c1"), ("appid", "nope"), ("latest_timestamp", "0")],
        )
        .await;
    assert_eq!(r.json(), json!({"code": -404, "message": "nope not found"}), "no ttl, no data");
    let r = t
        .get(
            "poll: cursor 0 → at once, standard envelope, up instances only",
            POLL,
            &[("env", "dev"), ("hostname", "c1"), ("appid", "demo.svc"), ("latest_timestamp", "0")],
        )
        .await;
    assert_eq!((r.code(), r.json()["ttl"].clone()), (0, json!(1)));
    assert_eq!(zone_hosts(&r.json()["data"]), zh(&[("sh001", &["host-a"]), ("sh002", &[])]));
    assert_eq!(r.json()["data"]["latest_timestamp"], json!(cursor));
    let r = t
        .get(
            "poll: timestamp count mismatch tolerated (cursor 0)",
            POLL,
            &[("env", "dev"), ("hostname", "c1"), ("appid", "demo.svc")],
        )
        .await;
    assert_eq!(r.code(), 0);
    let r = t
        .get("poll: missing hostname → -400", POLL, &[("env", "dev"), ("appid", "demo.svc"), ("latest_timestamp", "0")])
        .await;
    assert_eq!(message(&r), required("ArgPolls", "Hostname"));
    let r = t
        .get(
            "poll: current cursor → -304 after the poll timeout",
            POLL,
            &[("env", "dev"), ("hostname", "c1"), ("appid", "demo.svc"), ("latest_timestamp", &cursor_text)],
        )
        .await;
    assert_eq!(r.json(), json!({"code": -304, "message": "-304", "ttl": 1}));

    let r = t
        .get(
            "polls: one changed, one unknown → error lists it",
            POLLS,
            &[
                ("env", "dev"),
                ("hostname", "c1"),
                ("appid", "demo.svc"),
                ("appid", "nope"),
                ("latest_timestamp", "0"),
                ("latest_timestamp", "0"),
            ],
        )
        .await;
    let body = r.json();
    let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(keys, vec!["code", "message", "data", "error"], "map envelope: no ttl");
    assert_eq!(body["error"], json!({"-404": ["nope"]}));
    assert_eq!(zone_hosts(&body["data"]["demo.svc"]), zh(&[("sh001", &["host-a"]), ("sh002", &[])]));
    let r = t
        .get(
            "polls: nothing missing → {\"-404\":null}; only changed apps in data",
            POLLS,
            &[
                ("env", "dev"),
                ("hostname", "c1"),
                ("appid", "demo.svc"),
                ("appid", "other.svc"),
                ("latest_timestamp", &cursor_text),
                ("latest_timestamp", "0"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], json!({"-404": null}));
    let changed: Vec<String> = r.json()["data"].as_object().expect("data").keys().cloned().collect();
    assert_eq!(changed, vec!["other.svc"], "demo.svc is current for this client");
    let r = t
        .get(
            "polls: unknown repeated is listed once",
            POLLS,
            &[
                ("env", "dev"),
                ("hostname", "c1"),
                ("appid", "nope"),
                ("appid", "demo.svc"),
                ("appid", "nope"),
                ("latest_timestamp", "0"),
                ("latest_timestamp", "0"),
                ("latest_timestamp", "0"),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], json!({"-404": ["nope"]}));
    let r = t
        .get(
            "polls: count mismatch → -400",
            POLLS,
            &[("env", "dev"), ("hostname", "c1"), ("appid", "demo.svc"), ("appid", "nope"), ("latest_timestamp", "0")],
        )
        .await;
    assert_400(&r, "latest_timestamp");
    let r = t
        .get(
            "polls: missing env → -400",
            POLLS,
            &[("hostname", "c1"), ("appid", "demo.svc"), ("latest_timestamp", "0")],
        )
        .await;
    assert_eq!(message(&r), required("ArgPolls", "Env"));
    let r = t
        .get(
            "polls: missing hostname → -400",
            POLLS,
            &[("env", "dev"), ("appid", "demo.svc"), ("latest_timestamp", "0")],
        )
        .await;
    assert_eq!(message(&r), required("ArgPolls", "Hostname"));
    let r = t.get("polls: missing appid → -400", POLLS, &[("env", "dev"), ("hostname", "c1")]).await;
    assert_eq!(message(&r), required("ArgPolls", "AppID"));
    let r = t
        .get(
            "polls: negative cursor → -400",
            POLLS,
            &[("env", "dev"), ("hostname", "c1"), ("appid", "demo.svc"), ("latest_timestamp", "-1")],
        )
        .await;
    assert_400(&r, "latest_timestamp");
    t.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_infra_discovery_in_any_env() {
    let node = TestNode::start().await;
    let mut t = Transcript::new("nodes", &node);
    let r = t.get("nodes", "/discovery/nodes", &[]).await;
    assert_eq!(r.json()["data"], json!([{"addr": node.addr, "status": 0, "zone": node.config.zone}]));

    for env in ["dev", "prod", "an-env-nobody-uses"] {
        let title = format!("polls: infra.discovery in env {env}");
        let r = t
            .get(
                &title,
                POLLS,
                &[("env", env), ("hostname", "c1"), ("appid", "infra.discovery"), ("latest_timestamp", "0")],
            )
            .await;
        let data = &r.json()["data"]["infra.discovery"];
        let insts = data["instances"][&node.config.zone].as_array().expect("own zone").clone();
        assert_eq!(insts.len(), 1);
        assert_eq!(insts[0]["addrs"], json!([format!("http://{}", node.addr)]));
        assert_eq!((&insts[0]["env"], &insts[0]["status"]), (&json!(env), &json!(1)));
        // Issue 11: a Unix time in ns like every other cursor (it was the membership log index + 1).
        let cursor = data["latest_timestamp"].as_i64().expect("cursor");
        assert!((now_ns() - cursor).abs() < 60_000_000_000, "cursor {cursor} is not a recent time in ns");
        assert_eq!(insts[0]["latest_timestamp"], json!(cursor));
        let r = t
            .get(
                &format!("fetch: infra.discovery in env {env}"),
                FETCH,
                &[("appid", "infra.discovery"), ("env", env), ("status", "1")],
            )
            .await;
        assert_eq!(r.json()["data"], *data);
    }
    t.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_unknown_path_and_headers() {
    let node = TestNode::start().await;
    let mut t = Transcript::new("http", &node);
    for (method, path) in [
        ("GET", REGISTER),
        ("GET", RENEW),
        ("GET", CANCEL),
        ("GET", SET),
        ("POST", FETCH),
        ("POST", FETCHS),
        ("POST", "/discovery/fetch/all"),
        ("POST", POLL),
        ("POST", POLLS),
        ("DELETE", "/discovery/nodes"),
    ] {
        let r = t.raw(&format!("{method} {path} → 405"), method, path, None, "").await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.kratos, None);
    }
    for path in ["/discovery/nope", "/nope", "/discovery", "/discovery/fetch/all/x"] {
        let r = t.raw(&format!("GET {path} → 404"), "GET", path, None, "").await;
        assert_eq!(r.status, 404, "{path}");
    }
    // Headers of every business answer: success, error, map envelope.
    let cases = [
        ("GET", "/discovery/nodes", "0"),
        ("GET", "/discovery/fetch?appid=x&env=dev&status=1", "-404"),
        ("GET", "/discovery/fetch?env=dev", "-400"),
        ("GET", "/discovery/poll?env=dev&hostname=h&appid=x", "-404"),
        ("POST", "/discovery/renew?zone=z&env=dev&appid=x&hostname=h", "-404"),
    ];
    for (method, path, code) in cases {
        let r = node.raw(method, path, None, b"").await;
        assert_eq!((r.status, r.content_type.as_str(), r.kratos.as_deref()), (200, JSON_CT, Some(code)), "{path}");
    }
    t.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_encodings() {
    let node = TestNode::start().await;
    let mut t = Transcript::new("encodings", &node);
    let form_ct = Some("application/x-www-form-urlencoded");
    let body = "zone=sh001&env=dev&appid=demo.svc&hostname=h1&status=1&addrs=grpc%3A%2F%2F1.2.3.4%3A9000";
    let r = t.raw("register: form body", "POST", REGISTER, form_ct, body).await;
    assert_eq!(r.code(), 0);
    let r = t
        .raw(
            "register: params in the query string",
            "POST",
            &format!("{REGISTER}?{}", body.replace("h1", "h2")),
            None,
            "",
        )
        .await;
    assert_eq!(r.code(), 0);
    let r = t
        .raw(
            "cancel: no Content-Type (brpc) still reads the body",
            "POST",
            CANCEL,
            None,
            "zone=sh001&env=dev&appid=demo.svc&hostname=h2",
        )
        .await;
    assert_eq!(r.code(), 0);
    let r = t
        .raw(
            "register: body wins over the query (Go req.Form order)",
            "POST",
            &format!("{REGISTER}?hostname=from-query"),
            form_ct,
            &body.replace("h1", "from-body"),
        )
        .await;
    assert_eq!(r.code(), 0);
    assert_eq!(node.hostnames("dev", "demo.svc").await, vec!["from-body", "h1"]);
    let json_body = r#"{"Zone":"sh001","env":"dev","AppID":"demo.svc","hostname":"h3","status":1,"addrs":["http://1.2.3.4:80"],"metadata":{"k":"v"}}"#;
    let r = t.raw("register: JSON body", "POST", REGISTER, Some("application/json"), json_body).await;
    assert_eq!(r.code(), 0);
    let h3 = fetched(&node, "sh001", "h3").await.expect("h3");
    assert_eq!((&h3["addrs"], &h3["metadata"]), (&json!(["http://1.2.3.4:80"]), &json!({"k": "v"})));
    for (title, ct, body) in [
        ("register: JSON that is not an object → -400", "application/json", "[1]"),
        ("register: broken JSON → -400", "application/json", "{"),
        ("register: multipart → -400", "multipart/form-data; boundary=x", "--x--"),
        ("register: bad escape → -400", "application/x-www-form-urlencoded", "zone=%zz"),
        ("register: non-UTF-8 escape → -400", "application/x-www-form-urlencoded", "zone=%ff%fe"),
    ] {
        let r = t.raw(title, "POST", REGISTER, Some(ct), body).await;
        assert_eq!(r.code(), -400, "{title}: {}", r.text);
    }
    let r = t
        .raw(
            "register: unknown content type ignores the body → -400 missing zone",
            "POST",
            REGISTER,
            Some("text/plain"),
            body,
        )
        .await;
    assert_eq!(message(&r), required("ArgRegister", "Zone"));
    let r =
        t.raw("fetch: GET ignores a body", "GET", "/discovery/fetch?env=dev&status=1", form_ct, "appid=demo.svc").await;
    assert_eq!(message(&r), required("ArgFetch", "AppID"));
    t.check();
}
