//! The status page at `/` and `/ui/app`: members, leader, apps per env with counts, instances; text from
//! clients is escaped. (The headless-Chromium test is `scripts/browser/status-page.sh`.)

use crate::support::{Inst, TestNode};

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

    let index = html(&node, "/").await;
    let addr = node.url("").trim_start_matches("http://").to_string();
    assert!(index.contains(&format!("<b id=\"leader\">{addr}</b>")), "leader shown: {index}");
    assert!(index.contains("<td>Leader</td>"));
    assert!(index.contains("demo.svc</a></td><td>1</td><td>2</td>"), "1 up of 2: {index}");
    assert!(index.contains("<h3>env prod</h3>") && index.contains("goim.comet</a></td><td>1</td><td>1</td>"));
    assert!(index.contains("href=\"/ui/app?env=dev&amp;appid=demo.svc\""));

    let app = html(&node, "/ui/app?env=prod&appid=goim.comet").await;
    assert!(app.contains("<td>comet-1</td><td>up</td>"), "{app}");
    assert!(app.contains("&lt;b&gt;&amp;"), "client text is escaped: {app}");
    assert!(!app.contains("<b>&"), "no raw client markup: {app}");

    let missing = html(&node, "/ui/app?env=dev&appid=nope").await;
    assert!(missing.contains("No such app"));
}
