//! The real binary with chosen flags and environment, its stderr in a file, waited on with deadlines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use discovery::client::{Client, ClientError, InstanceKey, Registration};

use crate::support::free_port;

/// One `discovery` process.
pub struct Proc {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Proc {
    /// Spawn `discovery --addr <free port> --data-dir <data> <args>` with `env`; stderr to `<data>.log`.
    pub fn spawn(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let addr = format!("127.0.0.1:{}", free_port());
        Self::spawn_at(&addr, data, args, env)
    }

    /// As [`Proc::spawn`] on a given address.
    pub fn spawn_at(addr: &str, data: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Self::spawn_under(None, addr, data, args, env)
    }

    /// As [`Proc::spawn`], started with the open-file limits `soft` and `hard` (bash's `ulimit`).
    pub fn spawn_with_nofile(soft: u64, hard: u64, data: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let addr = format!("127.0.0.1:{}", free_port());
        Self::spawn_under(Some((soft, hard)), &addr, data, args, env)
    }

    fn spawn_under(nofile: Option<(u64, u64)>, addr: &str, data: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let log = data.with_extension("log");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open log");
        let binary = env!("CARGO_BIN_EXE_discovery");
        let mut command = match nofile {
            None => Command::new(binary),
            Some((soft, hard)) => {
                let mut bash = Command::new("bash");
                bash.arg("-c").arg(format!("ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\"")).arg(binary);
                bash
            }
        };
        let child = command
            .arg("--addr")
            .arg(addr)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn discovery");
        Proc { child, addr: addr.to_string(), log }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The library's client of this node alone (no failover: the test talks to the process it started).
    pub fn client(&self) -> Client {
        Client::new(&self.addr)
    }

    /// Wait until `/healthz` answers 200; panics with the log after `timeout`.
    pub async fn wait_healthy(&mut self, timeout: Duration) {
        let started = Instant::now();
        let client = Client::builder([self.addr.as_str()]).call_timeout(Duration::from_millis(500)).build();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("discovery exited early ({status}):\n{}", self.log_text());
            }
            if client.health_of(&self.addr).await.is_ok() {
                return;
            }
            assert!(started.elapsed() < timeout, "not healthy within {timeout:?}:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the log contains `needle`; panics with the log after `timeout`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(started.elapsed() < timeout, "no {needle:?} in the log within {timeout:?}:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send `signal` (e.g. `TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} failed");
    }

    /// Wait for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The instance the tests register as `host`: app `app`, env `dev`, zone `z1`, up.
pub fn registration(host: &str) -> Registration {
    Registration::new(InstanceKey::new("dev", "app", "z1", host), ["http://a:1"])
}

/// Register `host` (see [`registration`]) through `client` and assert it was acknowledged.
pub async fn register(client: &Client, host: &str) {
    if let Err(err) = client.register(&registration(host)).await {
        panic!("register {host}: {err}");
    }
}

/// The hostnames of app `app` (env `dev`, up and waiting) that `client`'s node serves, sorted; none when
/// the node does not know the app.
pub async fn hosts(client: &Client) -> Result<Vec<String>, ClientError> {
    let mut hosts: Vec<String> = match client.fetch("dev", "app", None, 3).await {
        Ok(info) => info.all().map(|i| i.hostname.clone()).collect(),
        Err(err) if err.is_not_found() => Vec::new(),
        Err(err) => return Err(err),
    };
    hosts.sort();
    Ok(hosts)
}
