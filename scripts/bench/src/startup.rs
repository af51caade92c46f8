//! `startup`: spawn a node and time process start to `/healthz` 200 and to a successful fetch.
//!
//! The node keeps running after this tool exits; its pid is written to `--pid-file` first thing, so that
//! the calling script can stop it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Serialize;
use tokio::time::Instant;

use crate::client::{self, Expect, Url};
use crate::stats::{self, parse_duration};
use crate::BoxError;

/// `discovery-bench startup -- COMMAND ARGS...`.
#[derive(Debug, clap::Args)]
pub struct StartupArgs {
    /// Ready when this answers HTTP 200 (e.g. http://127.0.0.1:P/healthz).
    #[arg(long)]
    pub ready_url: String,
    /// Then serving when this answers `"code":0` (e.g. a fetch of a stored app).
    #[arg(long)]
    pub check_url: Option<String>,
    /// Where to write the child's pid.
    #[arg(long)]
    pub pid_file: PathBuf,
    /// The child's stdout and stderr.
    #[arg(long)]
    pub log: PathBuf,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Instances on disk (copied into the output).
    #[arg(long, default_value_t = 0)]
    pub instances: u64,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The command that starts the node.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Serialize)]
struct StartupReport {
    kind: String,
    instances: u64,
    ready_ms: f64,
    serving_ms: Option<f64>,
    pid: u32,
}

/// `discovery-bench startup`.
pub async fn run(args: StartupArgs) -> Result<(), BoxError> {
    let ready = Url::parse(&args.ready_url)?;
    let check = args.check_url.as_deref().map(Url::parse).transpose()?;
    let (program, rest) = args.command.split_first().ok_or("no command")?;
    let log = std::fs::File::create(&args.log).map_err(|e| format!("{}: {e}", args.log.display()))?;
    let started = Instant::now();
    let mut child =
        Command::new(program).args(rest).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
    let pid = child.id();
    std::fs::write(&args.pid_file, format!("{pid}\n"))?;
    let deadline = started + args.timeout;
    let probe = Duration::from_millis(500);
    let ready_ms = loop {
        if let Ok((StatusCode::OK, _)) = client::once(Method::GET, &ready, None, Bytes::new(), probe).await {
            break started.elapsed().as_secs_f64() * 1000.0;
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("{program} exited before serving: {status}").into());
        }
        if Instant::now() >= deadline {
            return Err(format!("{} not ready after {:?}", args.ready_url, args.timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let mut serving_ms = None;
    if let Some(check) = &check {
        loop {
            if let Ok((status, body)) = client::once(Method::GET, check, None, Bytes::new(), probe).await {
                if client::classify(Expect::Discovery, status, &body).is_ok() {
                    serving_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("{} not answering code 0 after {:?}", check.target, args.timeout).into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let report = StartupReport {
        kind: "startup".into(),
        instances: args.instances,
        ready_ms: stats::round3(ready_ms),
        serving_ms: serving_ms.map(stats::round3),
        pid,
    };
    eprintln!(
        "startup with {} instances: /healthz 200 after {:.0} ms, first fetch after {} ms",
        args.instances,
        report.ready_ms,
        report.serving_ms.map_or("-".into(), |v| format!("{v:.0}"))
    );
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    Ok(())
}
