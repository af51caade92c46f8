//! The console: its JSON routes (apps with filters, an app with lease figures and changes, the cluster,
//! charts, session and actions behind the token), the embedded page, and the plain page at `/ui/plain` and
//! `/ui/app` for browsers without JavaScript (text from clients escaped). The headless-Chromium tests are
//! `tests/cluster/console.rs`.

use serde_json::{json, Value};

use crate::support::{Inst, TestNode};

async fn get_json(node: &TestNode, path: &str) -> (u16, Value) {
    let resp = reqwest::get(node.url(path)).await.expect("console route");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

async fn act(node: &TestNode, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(node.url("/ui/api/action")).json(body);
    if let Some(token) = token {
        request = request.header("x-discovery-token", token);
    }
    let resp = request.send().await.expect("action");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn action(what: &str, hostname: &str) -> Value {
    json!({"action": what, "env": "dev", "appid": "demo.svc", "zone": "sh001", "hostname": hostname})
}

/// Status of (dev, demo.svc, `hostname`) as `fetch` answers it.
async fn fetched_status(node: &TestNode, hostname: &str) -> Option<i64> {
    let data = node.fetch("dev", "demo.svc").await?;
    data["instances"]["sh001"].as_array()?.iter().find(|i| i["hostname"] == hostname).and_then(|i| i["status"].as_i64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_json_shows_apps_leases_and_changes_and_drains_an_instance() {
    let node = TestNode::start().await;
    node.wait_active_leader().await;
    node.register(&Inst::new("dev", "demo.svc", "host-a")).await;
    node.register(&Inst::new("dev", "demo.svc", "host-b").zone("sh002").status(2)).await;
    node.register(&Inst::new("prod", "goim.comet", "comet-1").metadata(r#"{"note":"<b>&"}"#)).await;

    let (status, page) = get_json(&node, "/ui/api/apps?q=DEMO").await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["apps"][0]["appid"], "demo.svc");
    assert_eq!((page["apps"][0]["up"].as_u64(), page["apps"][0]["waiting"].as_u64()), (Some(1), Some(1)));
    assert_eq!(page["envs"], json!(["dev", "prod"]));
    let (_, none_up) = get_json(&node, "/ui/api/apps?status=none_up").await;
    assert_eq!(none_up["total"], 0, "{none_up}");
    let (status, bad) = get_json(&node, "/ui/api/apps?status=healthy").await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().is_some_and(|e| e.contains("healthy")), "{bad}");

    let (status, app) = get_json(&node, "/ui/api/app?env=dev&appid=demo.svc").await;
    assert_eq!(status, 200);
    assert_eq!(app["leases"]["leader"], 1, "the lone node keeps the leases: {app}");
    let a = &app["instances"].as_array().expect("instances").iter().find(|i| i["hostname"] == "host-a").cloned();
    let a = a.as_ref().expect("host-a listed");
    let remaining = a["lease"]["remaining_ms"].as_i64().expect("lease figures");
    assert!(remaining > 0 && remaining <= 90_000 + 60_000, "remaining {remaining}");
    assert!(a["lease"]["renewed_ago_ms"].as_i64().is_some_and(|ago| ago >= 0));
    assert_eq!(a["status"], "up");
    let kinds: Vec<&str> =
        app["changes"].as_array().expect("changes").iter().filter_map(|c| c["kind"].as_str()).collect();
    assert_eq!(kinds, ["register", "register"], "{app}");
    assert_eq!(app["changes"][0]["node"], 1);

    // Drain host-a: fetch sees it waiting, the change is listed with the leader that took it.
    let (status, done) = act(&node, None, &action("waiting", "host-a")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(fetched_status(&node, "host-a").await, Some(2));
    let (_, app) = get_json(&node, "/ui/api/app?env=dev&appid=demo.svc").await;
    assert_eq!(
        (app["changes"][0]["kind"].as_str(), app["changes"][0]["detail"].as_str()),
        (Some("set"), Some("status waiting"))
    );

    // Mistakes are 4xx naming the problem, and change nothing.
    let (status, err) = act(&node, None, &action("reboot", "host-a")).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = act(&node, None, &action("cancel", "no-such-host")).await;
    assert_eq!(status, 404, "{err}");
    let raw = reqwest::Client::new().post(node.url("/ui/api/action")).body("{oops").send().await.expect("post");
    assert_eq!(raw.status().as_u16(), 400);
    let (status, _) = get_json(&node, "/ui/api/app?env=dev").await;
    assert_eq!(status, 400);

    // Cancel: gone from fetch.
    let (status, _) = act(&node, None, &action("cancel", "host-a")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched_status(&node, "host-a").await, None);

    let (_, cluster) = get_json(&node, "/ui/api/cluster").await;
    assert_eq!(cluster["members"][0]["role"], "leader", "{cluster}");
    assert_eq!(cluster["members"][0]["healthy"], true);
    assert_eq!(cluster["leader_changes"][0]["leader"], 1);
    assert_eq!(cluster["guard"]["from"], 1);
    assert!(cluster["guard"]["status"]["guard"]["threshold"].is_u64(), "{cluster}");
    assert!(cluster["storage"]["data_dir_bytes"].as_u64().is_some_and(|b| b > 0));
    let (_, charts) = get_json(&node, "/ui/api/charts").await;
    assert_eq!(charts["every_s"], 10);
    let (_, session) = get_json(&node, "/ui/api/session").await;
    assert_eq!((session["token_required"].as_bool(), session["can_act"].as_bool()), (Some(false), Some(true)));

    // The page and its assets are in the binary.
    let page = reqwest::get(node.url("/")).await.expect("page").text().await.expect("text");
    assert!(page.contains("<script src=\"/ui/console.js\">"), "{page}");
    let script = reqwest::get(node.url("/ui/console.js")).await.expect("js");
    assert!(script.headers()["content-type"].to_str().is_ok_and(|ct| ct.starts_with("text/javascript")));
    let script = script.text().await.expect("text");
    for parses_markup in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"] {
        assert!(!script.contains(parses_markup), "data never enters the DOM as markup ({parses_markup})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cluster_token_the_console_is_read_only() {
    let node = TestNode::start_with(|c| c.cluster_token = Some("s3cret".into())).await;
    node.wait_active_leader().await;
    node.register(&Inst::new("dev", "demo.svc", "host-a")).await;

    let (_, session) = get_json(&node, "/ui/api/session").await;
    assert_eq!((session["token_required"].as_bool(), session["can_act"].as_bool()), (Some(true), Some(false)));
    assert!(session["note"].as_str().is_some_and(|n| n.contains("Read-only")), "{session}");
    let (status, err) = act(&node, None, &action("waiting", "host-a")).await;
    assert_eq!(status, 401, "{err}");
    let (status, _) = act(&node, Some("wrong"), &action("waiting", "host-a")).await;
    assert_eq!(status, 401);
    assert_eq!(fetched_status(&node, "host-a").await, Some(1), "nothing changed");

    let (status, done) = act(&node, Some("s3cret"), &action("waiting", "host-a")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(fetched_status(&node, "host-a").await, Some(2));
    // Reads stay open.
    let (status, _) = get_json(&node, "/ui/api/apps").await;
    assert_eq!(status, 200);
}

async fn html(node: &TestNode, path: &str) -> String {
    let resp = reqwest::get(node.url(path)).await.expect("page");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    resp.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_members_apps_and_instances() {
    let node = TestNode::start().await;
    node.wait_active_leader().await;
    node.register(&Inst::new("dev", "demo.svc", "host-a")).await;
    node.register(&Inst::new("dev", "demo.svc", "host-b").status(2)).await;
    node.register(&Inst::new("prod", "goim.comet", "comet-1").metadata(r#"{"note":"<b>&"}"#)).await;

    let index = html(&node, "/ui/plain").await;
    let addr = node.url("").trim_start_matches("http://").to_string();
    assert!(index.contains(&format!("<b id=\"leader\">{addr}</b>")), "leader shown: {index}");
    assert!(index.contains("<td>Leader</td>"));
    assert!(index.contains("demo.svc</a></td><td>1</td><td>2</td>"), "1 up of 2: {index}");
    assert!(index.contains("<h3>env prod</h3>") && index.contains("goim.comet</a></td><td>1</td><td>1</td>"));
    assert!(index.contains("href=\"/ui/app?env=dev&amp;appid=demo.svc\""));
    let shell = reqwest::get(node.url("/")).await.expect("console").text().await.expect("text");
    assert!(shell.contains("href=\"/ui/plain\""), "the console links the plain page for no-JS browsers");

    let app = html(&node, "/ui/app?env=prod&appid=goim.comet").await;
    assert!(app.contains("<td>comet-1</td><td>up</td>"), "{app}");
    assert!(app.contains("&lt;b&gt;&amp;"), "client text is escaped: {app}");
    assert!(!app.contains("<b>&"), "no raw client markup: {app}");

    let missing = html(&node, "/ui/app?env=dev&appid=nope").await;
    assert!(missing.contains("No such app"));
}
