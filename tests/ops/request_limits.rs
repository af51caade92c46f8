//! Request lines and headers up to 1 MiB are accepted, as the original (Go's net/http) accepts them;
//! beyond that the answer is 431. Raw sockets, so the test controls every byte.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::node::TestNode;

/// Send `request` on a fresh connection and read the answer (until the server closes or 5 s pass).
async fn exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

const RENEW: &str = "zone=sh001&env=dev&appid=app&hostname=h1";

fn get(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra_headers}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_up_to_a_mebibyte_are_served_and_longer_ones_answered_431() {
    let node = TestNode::start(|_| {}).await;
    node.register("dev", "app", "h1").await;

    // A 200 KB request line (hyper alone refuses anything over 64 KiB with a bodiless 414).
    let padding = "p".repeat(200_000);
    let answer =
        exchange(&node.addr, &get(&format!("/discovery/fetch?appid=app&env=dev&status=1&pad={padding}"), "")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{}", &answer[..answer.len().min(300)]);
    assert!(answer.contains("\"code\":0") && answer.contains("\"h1\""), "{}", &answer[..answer.len().min(300)]);

    // 900 KB of headers.
    let big = format!("X-Big: {}\r\n", "b".repeat(900_000));
    let answer = exchange(&node.addr, &get("/discovery/fetch?appid=app&env=dev&status=1", &big)).await;
    assert!(answer.contains("\"code\":0"), "{}", &answer[..answer.len().min(300)]);

    // Over 1 MiB: 431, whether the overflow is in the request line or in the headers.
    let too_long = "q".repeat(1_100_000);
    let answer = exchange(&node.addr, &get(&format!("/discovery/fetch?appid=app&env=dev&pad={too_long}"), "")).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{}", &answer[..answer.len().min(300)]);
    let huge = format!("X-Big: {}\r\n", "b".repeat(1_100_000));
    let answer = exchange(&node.addr, &get("/discovery/fetch?appid=app&env=dev", &huge)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{}", &answer[..answer.len().min(300)]);

    // The node is unharmed, and keep-alive requests after a long one are served too.
    let long = format!("/discovery/fetch?appid=app&env=dev&status=1&pad={padding}");
    let pipelined = [
        format!("GET {long} HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!(
            "POST /discovery/renew HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{RENEW}",
            RENEW.len()
        ),
        format!("GET {long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ]
    .concat();
    let answer = exchange(&node.addr, pipelined.as_bytes()).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer}");
    assert_eq!(answer.matches("\"code\":0").count(), 3, "{answer}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_watching_thousands_of_apps_polls_them_in_one_request() {
    let node = TestNode::start(|_| {}).await;
    node.register("dev", "app-2999", "h1").await;
    let apps = 3000;
    let mut target = String::from("/discovery/polls?env=dev&hostname=watcher");
    for i in 0..apps {
        target.push_str(&format!("&appid=app-{i}"));
    }
    for _ in 0..apps {
        target.push_str("&latest_timestamp=0");
    }
    assert!(target.len() > 65_535, "longer than hyper's own limit: {} bytes", target.len());
    let answer = exchange(&node.addr, &get(&target, "")).await;
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {}", &answer[..answer.len().min(300)]));
    assert_eq!(json["code"], 0, "{}", &body[..body.len().min(300)]);
    assert!(json["data"]["app-2999"]["instances"]["sh001"].is_array(), "the one known app is answered");
    assert_eq!(json["error"]["-404"].as_array().map(Vec::len), Some(apps - 1), "the others are reported unknown");
    node.stop().await;
}
