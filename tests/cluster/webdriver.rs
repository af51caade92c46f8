//! Just enough of the W3C WebDriver protocol to drive headless Chromium through `chromedriver`: a session,
//! navigation, finding and clicking elements, typing, running a script, and screenshots.
//!
//! Chromium and its driver come from Debian (`apt-get install -y chromium chromium-driver`; `.ci/run` installs
//! them when it runs as root). Without them the browser tests are skipped with a message, unless
//! `DISCOVERY_BROWSER_TESTS=required` (set by `.ci/run` after installing), which makes a missing browser a
//! failure instead of a silent skip.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::poll_until;
use crate::process::free_port;

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait for the page lasts.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// The Chromium binary and its driver, if both are installed.
fn installed() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let driver = std::env::var_os("CHROMEDRIVER").map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    (chromium.exists() && driver.exists()).then_some((chromium, driver))
}

/// A running chromedriver with one headless Chromium session. Dropping it ends both.
pub struct Browser {
    driver: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver leads its own process group, Chromium's processes included: a test that fails before
        // `quit` leaves no browser behind.
        // `--` before the negative id: procps' `kill -9 -PID` does not read -PID as a process group (it killed
        // every process of the session, the test runner included).
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Start a browser, or `None` (after saying why) when Chromium is not installed and not required.
pub async fn start() -> Option<Browser> {
    let Some((chromium, driver)) = installed() else {
        let required = std::env::var("DISCOVERY_BROWSER_TESTS").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "DISCOVERY_BROWSER_TESTS=required but /usr/bin/chromium or /usr/bin/chromedriver is missing"
        );
        eprintln!(
            "browser test skipped: install chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
        );
        return None;
    };
    let port = free_port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let mut browser = Browser { driver: child, base: format!("http://127.0.0.1:{port}"), client };
    let status_url = format!("{}/status", browser.base);
    let ready = poll_until(Instant::now() + PAGE_WAIT, async || {
        let resp = browser.client.get(&status_url).send().await.map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if body["value"]["ready"] == true {
            Ok(())
        } else {
            Err(format!("not ready: {body}"))
        }
    })
    .await;
    ready.unwrap_or_else(|e| panic!("chromedriver did not get ready: {e}"));
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.to_string_lossy(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-proxy-server"]
        }
    }}});
    let session = browser.call("POST", "/session", Some(capabilities)).await;
    let id = session["sessionId"].as_str().expect("session id").to_string();
    browser.base = format!("{}/session/{id}", browser.base);
    Some(browser)
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = request.send().await.unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "webdriver {method} {path}: {status} {body}");
        body["value"].clone()
    }

    /// Open `url`.
    pub async fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Run `script` (a function body; `arguments` holds `args`) and return its value.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// Poll `script` until it returns something truthy; panics with `what` (and the page's text) after
    /// [`PAGE_WAIT`].
    pub async fn wait(&self, what: &str, script: &str, args: Value) -> Value {
        let shown = poll_until(Instant::now() + PAGE_WAIT, async || {
            let value = self.run(script, args.clone()).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false)) && value != json!(0) && value != json!("");
            if truthy {
                Ok(value)
            } else {
                Err(())
            }
        })
        .await;
        match shown {
            Ok(value) => value,
            Err(()) => {
                let text = self.run("return document.body.innerText", json!([])).await;
                panic!("page never showed {what}; the page says:\n{}", text.as_str().unwrap_or_default());
            }
        }
    }

    /// The first element matching `css`.
    async fn find(&self, css: &str) -> String {
        let found = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_string()
    }

    /// Click the first element matching `css` (as a user would: it must be visible and enabled).
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/click"), None).await;
    }

    /// Type `text` into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/value"), Some(json!({ "text": text }))).await;
    }

    /// Save a screenshot of the window as `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let data = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().expect("base64")).expect("png");
        std::fs::create_dir_all(dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// End the session (the driver ends on drop).
    pub async fn quit(self) {
        self.call("DELETE", "", None).await;
    }
}

/// Where screenshots are kept: `target/browser/` of the workspace.
pub fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("browser")
}
