//! The console in a real browser (headless Chromium through chromedriver, see `webdriver`): on a follower of
//! a 3-node cluster, search finds an app, the app page shows lease figures (which only the leader has), a
//! drain changes the instance's status as `fetch` sees it on another node, and the cluster page shows every
//! member healthy; a node with a cluster token serves a read-only console until the token is entered.
//! Screenshots are kept under `target/browser/`.
//!
//! The JSON half (a follower's app page carries the leader's lease figures) runs without a browser too.

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{self, code, fetch, register, status_of, Inst};
use crate::harness::TestCluster;
use crate::process::free_port;
use crate::webdriver::{self, artifacts};

const WAIT: Duration = Duration::from_secs(30);
const CALL: Duration = Duration::from_secs(10);

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let resp = client.get(url).timeout(CALL).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_finds_an_app_shows_leases_drains_and_shows_the_cluster() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader(WAIT).await;
    let follower = cluster.others(leader)[0];
    let base = cluster.base(follower);
    let on_follower = cluster.api(follower);
    for hostname in ["host-a", "host-b", "host-c"] {
        let reply = register(&on_follower, &Inst::new("demo.svc", hostname), CALL).await.expect("register");
        assert_eq!(code(&reply), 0, "{reply:?}");
    }
    for i in 0..60 {
        let reply = register(&on_follower, &Inst::new(&format!("other.app{i:02}"), "h"), CALL).await;
        assert_eq!(reply.map(|r| code(&r)), Ok(0));
    }

    // A follower's app page: instances from its own state, lease figures from the leader.
    let app = get_json(&cluster.client, &cluster.url(follower, "/ui/api/app?env=dev&appid=demo.svc")).await;
    assert_eq!(app["leases"]["leader"], leader, "{app}");
    let instances = app["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 3);
    assert!(instances.iter().all(|i| i["lease"]["remaining_ms"].as_i64().is_some_and(|ms| ms > 0)), "{app}");

    let Some(browser) = webdriver::start().await else { return };
    let shots = artifacts();
    browser.go(&format!("{base}/")).await;
    browser.wait("the apps list", "return document.body.dataset.loaded === 'apps'", json!([])).await;
    browser.type_into("#search", "demo").await;
    let found = browser
        .wait(
            "only demo.svc after searching for it",
            "const rows = [...document.querySelectorAll('#apps tbody tr')];
             return rows.length === 1 && rows[0].dataset.appid === 'demo.svc'
                 && rows[0].querySelector('.up-count').textContent === '3' && rows[0].dataset.appid;",
            json!([]),
        )
        .await;
    assert_eq!(found, "demo.svc");
    browser.screenshot(&shots, "console-apps-search").await;

    browser.click("#apps a.app-link").await;
    let remaining = browser
        .wait(
            "three instances with their lease figures",
            "const cells = [...document.querySelectorAll('#instances tbody td.lease-left')];
             const ms = cells.map((c) => Number(c.dataset.remainingMs));
             return cells.length === 3 && ms.every((m) => m > 0)
                 && document.getElementById('lease-note').textContent.includes('from the leader') && ms;",
            json!([]),
        )
        .await;
    assert_eq!(remaining.as_array().map(Vec::len), Some(3), "{remaining}");
    browser.screenshot(&shots, "console-app-leases").await;

    // Drain host-a through the page: a confirmation first, then the row and `fetch` on another node agree.
    browser.click("#instances tr[data-hostname='host-a'] .act-status").await;
    browser.wait("the confirmation", "return document.getElementById('confirm').open", json!([])).await;
    browser.click("#confirm-ok").await;
    browser
        .wait(
            "host-a waiting after the drain",
            "const row = document.querySelector(\"#instances tr[data-hostname='host-a']\");
             const first = document.querySelector('#changes tbody tr');
             return row && row.dataset.status === 'waiting' && first && first.dataset.kind === 'set';",
            json!([]),
        )
        .await;
    let elsewhere = cluster.others(follower)[0];
    let body = fetch(&cluster.api(elsewhere), "demo.svc", true, CALL).await.expect("fetch");
    assert_eq!(status_of(&body, "host-a"), Some(2), "fetch on node {elsewhere} sees the drain: {body:?}");
    assert_eq!(status_of(&body, "host-b"), Some(1));
    browser.screenshot(&shots, "console-app-drained").await;

    browser.click("#nav-cluster").await;
    let members = browser
        .wait(
            "every member healthy",
            "const rows = [...document.querySelectorAll('#members tbody tr')];
             return rows.length === 3 && rows.every((r) => r.querySelector('td.health').classList.contains('ok'))
                 && rows.filter((r) => r.dataset.role === 'leader').length === 1
                 && rows.map((r) => Number(r.dataset.id));",
            json!([]),
        )
        .await;
    assert_eq!(members, json!([1, 2, 3]));
    browser.screenshot(&shots, "console-cluster").await;

    browser.click("#nav-charts").await;
    browser.wait("the charts page", "return document.body.dataset.loaded === 'charts'", json!([])).await;
    browser.screenshot(&shots, "console-charts").await;
    browser.quit().await;
}

/// A lone node started with `--cluster-token`, killed on drop.
struct TokenNode {
    base: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn token_node(token: &str) -> TokenNode {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_discovery"))
        .args(["--addr", &addr, "--cluster-token", token, "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn discovery");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let started = crate::harness::poll_until(std::time::Instant::now() + WAIT, async || {
        match client.get(format!("{base}/healthz")).timeout(CALL).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("healthz {}", resp.status())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    started.unwrap_or_else(|e| panic!("node with a token did not start: {e}"));
    TokenNode { base, _child: child, _dir: dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_is_read_only_until_the_cluster_token_is_entered() {
    let Some(browser) = webdriver::start().await else { return };
    let node = token_node("s3cret").await;
    let client = api::client(&node.base);
    let reply = register(&client, &Inst::new("demo.svc", "host-a"), CALL).await.expect("register");
    assert_eq!(code(&reply), 0, "{reply:?}");

    browser.go(&format!("{}/#/app?env=dev&appid=demo.svc", node.base)).await;
    browser
        .wait(
            "a read-only console with disabled actions",
            "const button = document.querySelector('#instances .act-status');
             return button && button.disabled
                 && document.getElementById('session-note').textContent.includes('Read-only')
                 && !document.getElementById('token-form').hidden;",
            json!([]),
        )
        .await;
    browser.screenshot(&artifacts(), "console-read-only").await;

    browser.type_into("#token", "s3cret").await;
    browser.click("#token-form button").await;
    browser
        .wait(
            "actions enabled by the token",
            "const button = document.querySelector('#instances .act-status');
             return button && !button.disabled && document.getElementById('token-form').hidden;",
            json!([]),
        )
        .await;
    browser.click("#instances tr[data-hostname='host-a'] .act-status").await;
    browser.wait("the confirmation", "return document.getElementById('confirm').open", json!([])).await;
    browser.click("#confirm-ok").await;
    browser
        .wait(
            "host-a waiting",
            "const row = document.querySelector(\"#instances tr[data-hostname='host-a']\");
             return row && row.dataset.status === 'waiting';",
            json!([]),
        )
        .await;
    let body = fetch(&client, "demo.svc", false, CALL).await.expect("fetch");
    assert_eq!(status_of(&body, "host-a"), Some(2), "{body:?}");
    browser.quit().await;
}
