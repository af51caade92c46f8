//! `discovery-chaos run`: wait for the cluster, run the workload under the nemesis schedule, heal, settle,
//! collect the final state, check, and write everything to the output directory:
//! `schedule.json`/`schedule.txt`, `history.jsonl`, `final.json`, `verdict.json`.
//!
//! Timeline: faults for `duration` → final heal → recovery (full workload, no faults) → settle (no writes,
//! long enough for every abandoned lease to run out: lease + post-election grace + spread) → collect → stop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::check::{check, summary, Verdict};
use crate::client::Api;
use crate::collect::collect;
use crate::history::{Header, History, NodeInfo, Record, Recorder};
use crate::nemesis::Nemesis;
use crate::rng::Rng;
use crate::schedule::{self, generate, generate_zones, render, Schedule};
use crate::workload::{self, Phase, Shape};

/// What `run` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The cluster.
    pub nodes: Vec<NodeInfo>,
    /// Cluster token for the admin routes.
    pub token: String,
    /// Seed.
    pub seed: u64,
    /// Seconds of workload with faults.
    pub duration_s: u64,
    /// Output directory.
    pub out: PathBuf,
    /// The control script (`scripts/chaos/ctl.sh`).
    pub ctl: PathBuf,
    /// Replay this schedule instead of generating one.
    pub schedule: Option<PathBuf>,
    /// The nodes' `--lease`.
    pub lease: Duration,
    /// The nodes' `--poll-timeout`.
    pub poll_timeout: Duration,
    /// Rule (f) bound.
    pub recovery_bound: Duration,
    /// Rule (g) healthy-cluster bound.
    pub staleness: Duration,
    /// The workload's apps.
    pub apps: u32,
    /// The two-zone topology (nodes carry their zone and learner role; the zones schedule).
    pub zones: bool,
}

/// `node::routing::APPLY_WAIT` of the binary under test.
const APPLY_WAIT: Duration = Duration::from_secs(5);
/// Post-election grace and spread of the lessor: max(4 × election timeout (1 s), 4 s) each.
const GRACE_AND_SPREAD: Duration = Duration::from_secs(8);
/// Full workload without faults after the final heal.
const RECOVERY: Duration = Duration::from_secs(8);
/// How long to wait for the cluster before starting.
const READY_WAIT: Duration = Duration::from_secs(60);

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn load_schedule(config: &RunConfig) -> Result<Schedule, String> {
    match &config.schedule {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        None if config.zones => Ok(generate_zones(config.seed, config.duration_s)),
        None => Ok(generate(config.seed, config.nodes.len() as u32, config.duration_s)),
    }
}

async fn wait_ready(api: &Api, nodes: &[NodeInfo]) -> Result<(), String> {
    let deadline = Instant::now() + READY_WAIT;
    loop {
        let checks = nodes.iter().map(|n| api.healthy(&n.addr, Duration::from_secs(1)));
        let healthy = futures::future::join_all(checks).await;
        if healthy.iter().all(|ok| *ok) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("the cluster was not healthy within {READY_WAIT:?}: {healthy:?}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Load or generate the schedule, save it (`schedule.json`, `schedule.txt`) and print it.
fn prepare_schedule(config: &RunConfig) -> Result<Schedule, String> {
    std::fs::create_dir_all(&config.out).map_err(|e| format!("{}: {e}", config.out.display()))?;
    let schedule = load_schedule(config)?;
    write_json(&config.out.join("schedule.json"), &schedule)?;
    let rendered = render(&schedule);
    std::fs::write(config.out.join("schedule.txt"), &rendered).map_err(|e| e.to_string())?;
    print!("{rendered}");
    Ok(schedule)
}

fn header(config: &RunConfig, schedule: &Schedule, origin: Instant) -> Header {
    let quiet = format!("chaos.{}", workload::QUIET);
    let unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Header {
        seed: schedule.seed,
        nodes: config.nodes.clone(),
        env: "chaos".into(),
        zone: if config.zones { schedule::HOME_ZONE.into() } else { "z1".into() },
        apps: (0..config.apps).map(|a| format!("chaos.app{a}")).chain([quiet]).collect(),
        lease_ms: config.lease.as_millis() as u64,
        poll_timeout_ms: config.poll_timeout.as_millis() as u64,
        apply_wait_ms: APPLY_WAIT.as_millis() as u64,
        recovery_bound_ms: config.recovery_bound.as_millis() as u64,
        staleness_ms: config.staleness.as_millis() as u64,
        duration_s: schedule.duration_s,
        origin_unix_ms: unix_ms.saturating_sub(origin.elapsed().as_millis()) as u64,
    }
}

/// Stop the workload tasks (bounded), then close the history.
async fn stop_workload(
    phase: &tokio::sync::watch::Sender<Phase>,
    mut tasks: tokio::task::JoinSet<()>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<(), String> {
    let _ = phase.send(Phase::Stop);
    let stopped = tokio::time::timeout(Duration::from_secs(20), async { while tasks.join_next().await.is_some() {} });
    if stopped.await.is_err() {
        tasks.abort_all();
    }
    drop(tasks);
    writer.await.map_err(|e| e.to_string())?.map_err(|e| format!("writing the history: {e}"))
}

/// Run, then check. `Ok(verdict)` whatever the verdict; `Err` when the run itself could not be done.
pub async fn run(config: RunConfig) -> Result<Verdict, String> {
    let schedule = prepare_schedule(&config)?;
    let api = Api::new(config.nodes.iter().map(|n| n.addr.clone()).collect(), config.token.clone());
    wait_ready(&api, &config.nodes).await?;
    let origin = Instant::now();
    let history_path = config.out.join("history.jsonl");
    let (rec, writer) = Recorder::create(&history_path, origin)?;
    let header = header(&config, &schedule, origin);
    rec.record(Record::Header(header.clone()));

    let n = config.nodes.len() as u32;
    let shape = Shape { instances: 6 * n, readers: n, consistent_readers: n, pollers_per_app: 2, anchors_per_app: 2 };
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(Phase::Run);
    let rng = Rng::new(schedule.seed);
    let tasks =
        workload::spawn(&workload::Ctx::new(api.clone(), rec.clone(), header.clone(), phase_rx), shape, &rng.fork(1));
    rec.phase("faults");
    let mut nemesis = Nemesis::new(config.ctl.clone(), api.clone(), rec.clone(), config.nodes.clone(), rng.fork(2));
    for step in &schedule.steps {
        tokio::time::sleep_until(origin + Duration::from_millis(step.at_ms)).await;
        nemesis.run_step(step).await;
    }
    tokio::time::sleep_until(origin + Duration::from_secs(schedule.duration_s)).await;

    rec.phase("heal");
    nemesis.heal_all().await;
    drop(nemesis);
    tokio::time::sleep(RECOVERY).await;
    rec.phase("settle");
    let _ = phase_tx.send(Phase::Settle);
    println!("[chaos] settling for {:?} (writes stopped, renews go on)", config.lease + GRACE_AND_SPREAD);
    tokio::time::sleep(config.lease + GRACE_AND_SPREAD + Duration::from_secs(2)).await;
    rec.phase("collect");
    let final_state = collect(&api, &header, &rec).await;
    write_json(&config.out.join("final.json"), &final_state)?;
    rec.phase("stop");
    drop(rec);
    stop_workload(&phase_tx, tasks, writer).await?;

    let history = History::read(&history_path)?;
    let verdict = check(&history, Some(&final_state))?;
    write_json(&config.out.join("verdict.json"), &verdict)?;
    print!("{}", summary(&verdict, &history, 10));
    Ok(verdict)
}

/// `discovery-chaos check`: re-check saved files.
pub fn check_files(history: &Path, final_state: Option<&Path>, out: Option<&Path>) -> Result<Verdict, String> {
    let h = History::read(history)?;
    let f = final_state.map(crate::final_state::FinalState::read).transpose()?;
    let verdict = check(&h, f.as_ref())?;
    if let Some(out) = out {
        write_json(out, &verdict)?;
    }
    print!("{}", summary(&verdict, &h, 10));
    Ok(verdict)
}
