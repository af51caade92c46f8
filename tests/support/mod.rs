//! Test support: run the real `discovery` binary on an ephemeral port with a temp data dir, and wait on
//! observable state (HTTP answers) with deadlines instead of fixed sleeps.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port: bind port 0, read the port, release it. The caller retries if it was taken in
/// between (see [`NodeProc::start`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind an ephemeral port")
}

/// Where a node started on `data_dir` writes its stderr.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.with_extension("log")
}

/// One `discovery` process.
pub struct NodeProc {
    child: Option<Child>,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Extra flags it was started with (kept for restarts).
    pub args: Vec<String>,
}

impl NodeProc {
    /// Start the binary on a fresh ephemeral port and wait until `/healthz` answers 200.
    pub async fn start(data_dir: &Path, args: &[&str]) -> NodeProc {
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut node = NodeProc::spawn(&addr, data_dir, args);
            if node.wait_healthy(Duration::from_secs(20)).await.is_ok() {
                return node;
            }
            // The port may have been taken between probing and binding: try another one.
            node.kill9();
        }
        panic!("discovery did not become healthy");
    }

    /// Spawn without waiting.
    pub fn spawn(addr: &str, data_dir: &Path, args: &[&str]) -> NodeProc {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        // stderr goes to a file beside the data dir: a pipe nobody reads could fill and block the node.
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(log_path(data_dir)).expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_discovery"))
            .arg("--addr")
            .arg(addr)
            .arg("--data-dir")
            .arg(data_dir)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn discovery");
        NodeProc { child: Some(child), addr: addr.to_string(), data_dir: data_dir.to_path_buf(), args }
    }

    /// Start again on the same address and data dir.
    pub fn respawn(&mut self) {
        self.kill9();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut fresh = NodeProc::spawn(&self.addr, &self.data_dir, &args);
        self.child = fresh.child.take();
    }

    /// What the node wrote to stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(&self.data_dir)).unwrap_or_default()
    }

    /// `http://<addr>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Poll `/healthz` until 200 or the deadline; returns how long it took.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let client =
            discovery::client::Client::builder([self.addr.as_str()]).call_timeout(Duration::from_millis(500)).build();
        while started.elapsed() < timeout {
            if let Some(status) = self.try_wait() {
                return Err(format!("discovery exited early: {status}"));
            }
            if client.health_of(&self.addr).await.is_ok() {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err("not healthy before the deadline".to_string())
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Run the binary to completion (for start-up failures): exit status and stderr.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_discovery"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn discovery");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("discovery {args:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
