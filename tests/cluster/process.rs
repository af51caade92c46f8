//! One `discovery` process of a test cluster, and the other things the harness runs: the `kill` command
//! for SIGSTOP/SIGCONT (the workspace forbids `unsafe`, so no `libc::kill`), the binary's client
//! commands, and the HTTP client.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One `discovery` process (possibly stopped).
pub struct NodeProc {
    /// Advertised and listen address.
    pub addr: String,
    /// Its sled data dir.
    pub data_dir: PathBuf,
    /// Its stderr, appended across restarts.
    pub log: PathBuf,
    /// Every flag it is started with.
    pub args: Vec<String>,
    /// The running process, if any.
    pub child: Option<Child>,
    /// Stopped with SIGSTOP.
    pub paused: bool,
    /// A member of the cluster (founding, or added and not removed).
    pub member: bool,
}

impl NodeProc {
    pub fn spawn(&mut self) {
        self.kill9();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open node log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_discovery"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("DISCOVERY_")) {
            cmd.env_remove(key);
        }
        // stderr goes to a file: a pipe nobody reads could fill up and block the node.
        let child = cmd
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("CLUSTER_TEST_LOG").unwrap_or_else(|_| "warn,discovery_raft::receive=info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn discovery");
        self.child = Some(child);
        self.paused = false;
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    pub fn pid(&self, id: u64) -> String {
        self.child.as_ref().map(|c| c.id().to_string()).unwrap_or_else(|| panic!("node {id} is not running"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn note(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = writeln!(f, "==== harness: {line}");
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A free loopback port: bind port 0, read it, release it (a clash is handled by retrying the start).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind an ephemeral port")
}

/// Send `sig` (`-STOP`, `-CONT`) to `pid` with the `kill` command.
pub fn signal(pid: &str, sig: &str) {
    let status = Command::new("kill").arg(sig).arg(pid).status().expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Run `discovery <args>` as a client command: its stdout on success, stderr otherwise.
pub async fn run_cli(args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_discovery"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("DISCOVERY_")) {
        cmd.env_remove(key);
    }
    cmd.args(args).env("RUST_LOG", "warn").stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|e| format!("cannot run: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{}: {stderr}{stdout}", out.status))
    }
}

/// The harness' HTTP client: short timeouts, never a proxy, small pool.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}
