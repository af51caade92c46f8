use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::api::args::ArgRenew;
use crate::api::envelope::{Envelope, JSON_CONTENT_TYPE, STATUS_CODE_HEADER};

async fn echo(BiliParams(p): BiliParams) -> Envelope<Vec<(String, String)>> {
    Envelope::ok_data(p.pairs().to_vec())
}

async fn renew(Bind(arg): Bind<ArgRenew>) -> Envelope<String> {
    Envelope::ok_data(arg.key.hostname)
}

fn app() -> Router {
    Router::new().route("/echo", post(echo).get(echo)).route("/renew", post(renew))
}

fn request(method: &str, uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(body.into()).expect("request")
}

/// Send a request; assert the response is HTTP 200 JSON with a matching `kratos-status-code`; return the body.
async fn send(req: Request<Body>) -> Value {
    let resp = app().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], JSON_CONTENT_TYPE, "never text/plain");
    let code = resp.headers()[STATUS_CODE_HEADER].to_str().expect("ascii").to_owned();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
    assert_eq!(body["code"].to_string(), code);
    body
}

/// Pairs echoed by `/echo`.
fn pairs(body: &Value) -> Vec<(String, String)> {
    serde_json::from_value(body["data"].clone()).expect("pairs")
}

fn p(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn body_values_come_before_query_values() {
    let req = request("POST", "/echo?appid=q&zone=zq", Some(FORM), "appid=b&env=e%2Fx&appid=b2");
    let expected = vec![p("appid", "b"), p("env", "e/x"), p("appid", "b2"), p("appid", "q"), p("zone", "zq")];
    assert_eq!(pairs(&send(req).await), expected);
}

#[tokio::test]
async fn form_content_type_with_charset_is_form() {
    let req = request("POST", "/echo", Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"), "a=1");
    assert_eq!(pairs(&send(req).await), vec![p("a", "1")]);
}

#[tokio::test]
async fn body_without_content_type_is_read_as_form() {
    // brpc's cancel: no Content-Type, values written raw.
    let req = request("POST", "/echo", None, "appid=demo.svc&hostname=h1&env=prod&region=sh&zone=sh001");
    assert_eq!(pairs(&send(req).await).len(), 5);
}

#[tokio::test]
async fn other_content_types_and_get_bodies_are_ignored() {
    let req = request("POST", "/echo?q=1", Some("text/plain"), "a=1");
    assert_eq!(pairs(&send(req).await), vec![p("q", "1")]);
    let req = request("GET", "/echo?q=1", Some(FORM), "a=1");
    assert_eq!(pairs(&send(req).await), vec![p("q", "1")]);
}

#[tokio::test]
async fn json_body_matches_go_field_names_case_insensitively() {
    let body = json!({
        "AppID": "a", "ZONE": "z", "env": "e", "LatestTimestamp": 5, "dirty_timestamp": 6,
        "addrs": ["x", "y"], "metadata": {"k": "v"}, "replication": true, "gone": null, "Other": "o"
    });
    let req = request("POST", "/echo?appid=q", Some("application/json"), body.to_string());
    let mut got = pairs(&send(req).await);
    got.sort();
    let mut expected = vec![
        p("appid", "a"),
        p("zone", "z"),
        p("env", "e"),
        p("latest_timestamp", "5"),
        p("dirty_timestamp", "6"),
        p("addrs", "x"),
        p("addrs", "y"),
        p("metadata", r#"{"k":"v"}"#),
        p("replication", "true"),
        p("Other", "o"),
        p("appid", "q"),
    ];
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn bad_bodies_are_json_400() {
    let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
        (Some(FORM), b"zone=%zz".to_vec(), r#"invalid URL escape "%zz" in parameter "zone""#),
        (None, b"zone=sh%2".to_vec(), r#"invalid URL escape "%2" in parameter "zone""#),
        (Some(FORM), b"zone=\xff\xfe".to_vec(), r#"parameter "zone" is not valid UTF-8"#),
        (Some(FORM), b"zone=%C3%28".to_vec(), r#"parameter "zone" is not valid UTF-8"#),
        (Some("application/json"), b"{\"zone\":\"\xff\"}".to_vec(), "invalid JSON body"),
        (Some("application/json"), b"{\"zone\":".to_vec(), "invalid JSON body"),
        (Some("application/json"), b"[\"zone\"]".to_vec(), "JSON body must be an object"),
        (
            Some("multipart/form-data; boundary=x"),
            b"--x--".to_vec(),
            "Content-Type multipart/form-data is not supported",
        ),
        (Some("text/xml"), b"<a/>".to_vec(), "Content-Type text/xml is not supported"),
    ];
    for (ct, body, message) in cases {
        let got = send(request("POST", "/echo", ct, body)).await;
        assert_eq!((&got["code"], &got["ttl"], got.as_object().map(|o| o.len())), (&json!(-400), &json!(1), Some(3)));
        assert!(got["message"].as_str().is_some_and(|m| m.starts_with(message)), "{ct:?}: {got}");
    }
}

#[tokio::test]
async fn oversize_body_is_json_400_and_the_limit_itself_is_fine() {
    let at_limit = format!("a={}", "x".repeat(MAX_BODY_BYTES - 2));
    assert_eq!(send(request("POST", "/echo", Some(FORM), at_limit)).await["code"], 0);
    let over = format!("a={}", "x".repeat(MAX_BODY_BYTES - 1));
    let got = send(request("POST", "/echo", Some(FORM), over)).await;
    assert_eq!(got["code"], -400);
    assert!(got["message"].as_str().expect("message").contains("over 65536 bytes"), "{got}");
    // Streamed (no Content-Length) too.
    let chunks = (0..17).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 4096]));
    let streamed = Body::from_stream(futures::stream::iter(chunks));
    assert_eq!(send(request("POST", "/echo", None, streamed)).await["code"], -400);
}

#[tokio::test]
async fn bad_query_and_bad_content_type_header_are_json_400() {
    let got = send(request("GET", "/echo?zone=%ff", None, Body::empty())).await;
    assert_eq!(got, json!({"code": -400, "message": r#"parameter "zone" is not valid UTF-8"#, "ttl": 1}));
    let mut req = request("POST", "/echo", None, "a=1");
    req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_bytes(b"text/\xff").expect("obs-text"));
    assert_eq!(send(req).await, json!({"code": -400, "message": "invalid Content-Type header", "ttl": 1}));
}

#[tokio::test]
async fn bind_validates_and_answers_400_naming_the_field() {
    let ok = send(request("POST", "/renew?zone=sh001", Some(FORM), "env=dev&appid=demo.svc&hostname=host-a")).await;
    assert_eq!(ok, json!({"code": 0, "message": "0", "ttl": 1, "data": "host-a"}));
    let missing = send(request("POST", "/renew", Some(FORM), "env=dev&appid=demo.svc&hostname=host-a")).await;
    let message = "Key: 'ArgRenew.Zone' Error:Field validation for 'Zone' failed on the 'required' tag";
    assert_eq!(missing, json!({"code": -400, "message": message, "ttl": 1}));
}

#[test]
fn json_params_directly() {
    let params = json_params(br#"{"Hostname":["h1","h2"],"Status":[1,2],"set_timestamp":3}"#).expect("object");
    assert_eq!(params.values("hostname"), vec!["h1", "h2"]);
    assert_eq!(params.i64s("status"), Ok(vec![1, 2]));
    assert_eq!(params.i64("set_timestamp"), Ok(3));
}
