//! Property test: random requests at the router of an in-process node (`tower::ServiceExt::oneshot`, no
//! sockets). Random methods, routes, parameter sets (real names and junk, repeated, huge, negative,
//! malformed and non-UTF-8 percent escapes), bodies and content types. Whatever comes in:
//! - never an HTTP 5xx, never a panic, never a hang;
//! - on `/discovery/*`, either 404/405 (unknown path, wrong method) or HTTP 200 with the JSON content type,
//!   a JSON body with an integer `code` and the same code in `kratos-status-code`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use tower::ServiceExt;

use crate::support::{exclusive, TestNode, JSON_CT};

/// Cases per run: a few seconds in a debug build.
const CASES: u32 = 4000;

const ROUTES: &[&str] = &[
    "/discovery/register",
    "/discovery/renew",
    "/discovery/cancel",
    "/discovery/set",
    "/discovery/fetch",
    "/discovery/fetchs",
    "/discovery/fetch/all",
    "/discovery/poll",
    "/discovery/polls",
    "/discovery/nodes",
    "/discovery/",
    "/discovery/nope",
    "/discovery/fetch/all/x",
    "/healthz",
    "/admin/status",
    "/",
    "/ui/plain",
    "/ui/app",
    "/ui/api/apps",
    "/ui/api/app",
    "/ui/api/leases",
    "/ui/api/guard",
    "/ui/api/session",
    "/ui/api/action",
];

const WRITES: &[&str] =
    &["/discovery/register", "/discovery/renew", "/discovery/cancel", "/discovery/set", "/ui/api/action"];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

const PARAM_NAMES: &[&str] = &[
    "region",
    "zone",
    "env",
    "appid",
    "hostname",
    "status",
    "addrs",
    "version",
    "metadata",
    "replication",
    "latest_timestamp",
    "dirty_timestamp",
    "set_timestamp",
    "from_zone",
    "consistent",
    "callback",
    "AppID",
    "Zone",
    "action",
    "q",
    "offset",
    "limit",
];

const INTERESTING: &[&str] = &[
    "",
    "0",
    "1",
    "2",
    "3",
    "4",
    "-1",
    "+1",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "99999999999999999999999999",
    "1e3",
    "0x10",
    "true",
    "True",
    "yes",
    "dev",
    "sh001",
    "a.b0",
    "h0",
    "infra.discovery",
    "grpc://1.2.3.4:9000",
    "http://a:1,grpc://b:2",
    ",,,",
    r#"{"weight":"10"}"#,
    r#"{"weight":10}"#,
    "[1,2]",
    "null",
    "{",
    "%",
    "%zz",
    "%ff%fe",
    "a\u{0}b",
    "é",
    "waiting",
    "cancel",
];

const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/json",
    "APPLICATION/JSON",
    "multipart/form-data; boundary=x",
    "application/xml",
    "text/xml",
    "text/plain",
    "application/octet-stream",
    "garbage",
    ";;;",
];

const TIMEOUTS: &[&str] = &["", "0", "20", "21", "40", "-5", "abc", "99999999999999999999", "40000"];

/// One parameter value before encoding: text or raw bytes.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(INTERESTING).prop_map(|s| s.as_bytes().to_vec()),
        2 => any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        2 => "[ -~]{0,24}".prop_map(String::into_bytes),
        1 => "\\PC{0,12}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..24),
        1 => "[a-z0-9]{120,300}".prop_map(String::into_bytes),
    ]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(PARAM_NAMES).prop_map(|s| s.as_bytes().to_vec()),
        1 => "[a-zA-Z_%&=+]{0,10}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..6),
    ]
}

/// How a pair is written: properly percent-encoded, or raw (so `%`, `&`, `=`, `+` keep their meaning and
/// malformed escapes get through).
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Proper,
    Raw,
}

#[derive(Debug, Clone)]
struct Pairs {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    encoding: Encoding,
}

fn pairs() -> impl Strategy<Value = Pairs> {
    let base = prop_oneof![Just(false), Just(true)];
    let extras = prop_oneof![
        2 => prop::collection::vec((name(), value()), 0..2),
        1 => prop::collection::vec((name(), value()), 2..10),
    ];
    let encoding = prop_oneof![3 => Just(Encoding::Proper), 1 => Just(Encoding::Raw)];
    (base, extras, encoding, any::<bool>(), 0u8..3, 0u8..4).prop_map(
        |(with_base, extras, encoding, extras_first, app, host)| {
            // A mostly valid base for every route (unknown params are ignored), so that random
            // requests also reach the handlers' success paths and the registry fills up.
            let base: Vec<(Vec<u8>, Vec<u8>)> = if with_base {
                [
                    ("zone", "sh001".to_owned()),
                    ("env", "dev".to_owned()),
                    ("appid", format!("a.b{app}")),
                    ("hostname", format!("h{host}")),
                    ("status", "1".to_owned()),
                    ("addrs", "grpc://1.2.3.4:9000".to_owned()),
                    ("latest_timestamp", "0".to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
                .collect()
            } else {
                Vec::new()
            };
            let pairs = if extras_first { [extras, base].concat() } else { [base, extras].concat() };
            Pairs { pairs, encoding }
        },
    )
}

fn encode(bytes: &[u8], encoding: Encoding) -> String {
    let mut out = String::new();
    for &b in bytes {
        let keep = match encoding {
            Encoding::Proper => b.is_ascii_alphanumeric() || b"-._~".contains(&b),
            Encoding::Raw => b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b),
        };
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Pairs {
    fn urlencoded(&self) -> String {
        let pair = |(k, v): &(Vec<u8>, Vec<u8>)| format!("{}={}", encode(k, self.encoding), encode(v, self.encoding));
        self.pairs.iter().map(pair).collect::<Vec<_>>().join("&")
    }

    fn json(&self) -> String {
        let mut object = serde_json::Map::new();
        for (k, v) in &self.pairs {
            let key = String::from_utf8_lossy(k).into_owned();
            let text = String::from_utf8_lossy(v).into_owned();
            let value = match text.parse::<i64>() {
                Ok(n) => serde_json::json!(n),
                Err(_) => serde_json::json!(text),
            };
            match object.get_mut(&key) {
                Some(serde_json::Value::Array(items)) => items.push(value),
                Some(existing) => *existing = serde_json::json!([existing.clone(), value]),
                None => {
                    object.insert(key, value);
                }
            }
        }
        serde_json::Value::Object(object).to_string()
    }
}

#[derive(Debug, Clone)]
enum BodyKind {
    Empty,
    Form(Pairs),
    Json(Pairs),
    RandomJson(String),
    Bytes(Vec<u8>),
    Huge,
}

fn body() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        3 => Just(BodyKind::Empty),
        4 => pairs().prop_map(BodyKind::Form),
        2 => pairs().prop_map(BodyKind::Json),
        1 => prop_oneof![Just("[]".to_owned()), Just("null".to_owned()), Just("{\"a\":{\"b\":[1,{}]}}".to_owned()), "[ -~]{0,30}"].prop_map(BodyKind::RandomJson),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(BodyKind::Bytes),
        1 => Just(BodyKind::Huge),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: &'static str,
    query: Pairs,
    body: BodyKind,
    content_type: Option<&'static str>,
    timeout: Option<&'static str>,
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop_oneof![3 => Just(None), 1 => prop::sample::select(METHODS).prop_map(Some)];
    (
        method,
        prop::sample::select(ROUTES),
        pairs(),
        body(),
        prop::option::of(prop::sample::select(CONTENT_TYPES)),
        prop::option::of(prop::sample::select(TIMEOUTS)),
    )
        .prop_map(|(method, path, query, body, content_type, timeout)| Case {
            // Mostly the route's own method, so that requests get past routing.
            method: method.unwrap_or(if WRITES.contains(&path) { "POST" } else { "GET" }),
            path,
            query,
            body,
            content_type,
            timeout,
        })
}

impl Case {
    /// The request, or `None` when no HTTP client could send it (an invalid URI).
    fn request(&self) -> Option<Request<Body>> {
        let query = self.query.urlencoded();
        let uri = if query.is_empty() { self.path.to_owned() } else { format!("{}?{query}", self.path) };
        let body = match &self.body {
            BodyKind::Empty => Vec::new(),
            BodyKind::Form(p) => p.urlencoded().into_bytes(),
            BodyKind::Json(p) => p.json().into_bytes(),
            BodyKind::RandomJson(s) => s.clone().into_bytes(),
            BodyKind::Bytes(b) => b.clone(),
            BodyKind::Huge => "a=b&".repeat(20_000).into_bytes(),
        };
        let mut builder = Request::builder().method(Method::from_bytes(self.method.as_bytes()).ok()?).uri(uri);
        if let Some(ct) = self.content_type {
            builder = builder.header(header::CONTENT_TYPE, HeaderValue::from_str(ct).ok()?);
        }
        if let Some(t) = self.timeout {
            builder = builder.header("x1-bmspy-timeout", HeaderValue::from_str(t).ok()?);
        }
        builder.body(Body::from(body)).ok()
    }
}

async fn check(router: axum::Router, case: &Case) -> Result<(), TestCaseError> {
    let Some(request) = case.request() else { return Ok(()) };
    let response = tokio::time::timeout(Duration::from_secs(10), router.oneshot(request))
        .await
        .map_err(|_| TestCaseError::fail("no answer within 10 s"))?
        .map_err(|e| TestCaseError::fail(format!("router error: {e}")))?;
    let status = response.status().as_u16();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes().to_vec());
    let kratos = response.headers().get("kratos-status-code").map(|v| v.as_bytes().to_vec());
    let body = response.into_body().collect().await.map_err(|e| TestCaseError::fail(e.to_string()))?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    prop_assert!(status < 500, "HTTP {status}: {text}");
    if !case.path.starts_with("/discovery/") || case.method == "HEAD" {
        return Ok(());
    }
    prop_assert!(matches!(status, 200 | 404 | 405), "HTTP {status} on {}: {text}", case.path);
    if status != 200 {
        return Ok(());
    }
    prop_assert_eq!(content_type.as_deref(), Some(JSON_CT.as_bytes()));
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {text}")))?;
    let code = json["code"].as_i64().ok_or_else(|| TestCaseError::fail(format!("no integer code: {text}")))?;
    prop_assert!(json["message"].is_string(), "message: {}", text);
    prop_assert_eq!(kratos, Some(code.to_string().into_bytes()), "kratos-status-code of {}", text);
    prop_assert!([0, -304, -400, -404, -409, -503].contains(&code), "unexpected code {code}: {text}");
    crate::support::assert_no_scheduler(&json);
    crate::support::assert_integer_timestamps(&json);
    Ok(())
}

#[test]
fn random_requests_never_break_the_api() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let _gate = rt.block_on(exclusive());
    let node = rt.block_on(TestNode::start_with(|c| c.poll_timeout = Duration::from_millis(30)));
    let router = discovery::app::router(node.state().clone());
    let config = ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    let result = runner.run(&case(), |case| rt.block_on(check(router.clone(), &case)));
    let registered = node.state().registry.read().len();
    eprintln!("{CASES} random requests in {:?}; {registered} instances registered", started.elapsed());
    if let Err(e) = result {
        panic!("{e}");
    }
    // The node still serves after the storm.
    let healthy = rt.block_on(async {
        let response = router.clone().oneshot(Request::get("/healthz").body(Body::empty()).expect("request")).await;
        response.map(|r| r.status().as_u16())
    });
    assert_eq!(healthy.ok(), Some(200));
    rt.block_on(node.stop());
}
