//! `discovery-chaos`: the workload, nemesis driver and checker behind `scripts/chaos/run.sh` (issue 5).
//!
//! - `run`: against a running cluster (started by the script in network namespaces), run many concurrent
//!   clients while the seeded nemesis schedule kills, pauses, partitions, restarts and re-members nodes
//!   (through `scripts/chaos/ctl.sh`); heal, settle, collect every node's final state, check, and write
//!   `schedule.json`, `history.jsonl`, `final.json` and `verdict.json` to the output directory.
//! - `check`: re-check a saved history (and final state) offline; same verdict, same exit code.
//! - `schedule`: print the schedule a seed gives, without running anything.
//!
//! Exit codes ([`check::Grade`]): 0 no violation, 1 a safety violation (rules (a)–(e)), 2 the run could not
//! be done (or checked nothing), 3 availability findings only (rules (f), (g)). CI fails on 1 and 2.
//! Every address it talks to must be loopback or on a directly connected subnet (see [`netguard`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod check;
mod check_avail;
mod check_lease;
mod check_model;
mod check_polls;
mod check_reads;
mod client;
mod collect;
mod final_state;
mod history;
mod nemesis;
mod netguard;
mod rng;
mod run;
mod schedule;
mod workload;

/// Chaos testing for the discovery cluster: workload, nemesis and checker.
#[derive(Debug, Parser)]
#[command(name = "discovery-chaos")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the workload and the nemesis against a running cluster, then check.
    Run {
        /// The cluster: ID=HOST:PORT,... (as the nodes' --peers).
        #[arg(long)]
        nodes: String,
        /// Cluster token (for /admin/*).
        #[arg(long, env = "CHAOS_TOKEN", hide_env_values = true)]
        token: String,
        /// Seed of the schedule and the workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds of workload with faults.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The control script.
        #[arg(long, default_value = "scripts/chaos/ctl.sh")]
        ctl: PathBuf,
        /// Replay a saved schedule.json instead of generating one from the seed.
        #[arg(long)]
        schedule: Option<PathBuf>,
        /// The nodes' --lease.
        #[arg(long, default_value = "10s", value_parser = discovery::duration::parse_duration)]
        lease: Duration,
        /// The nodes' --poll-timeout.
        #[arg(long, default_value = "5s", value_parser = discovery::duration::parse_duration)]
        poll_timeout: Duration,
        /// Rule (f): most time from a fault or heal to the next acknowledged write.
        #[arg(long, default_value = "15s", value_parser = discovery::duration::parse_duration)]
        recovery_bound: Duration,
        /// Rule (g): most replication lag assumed on a healthy cluster.
        #[arg(long, default_value = "3s", value_parser = discovery::duration::parse_duration)]
        staleness: Duration,
        /// Number of apps.
        #[arg(long, default_value_t = 4)]
        apps: u32,
        /// The two-zone topology (`run.sh --zones`): nodes 1-3 voters of zone za, 4-5 learners of zone zb;
        /// the schedule cuts, kills and pauses whole zones.
        #[arg(long)]
        zones: bool,
    },
    /// Check a saved history (and final state).
    Check {
        /// history.jsonl.
        #[arg(long)]
        history: PathBuf,
        /// final.json (rules (a), (b) and (c) on the final state need it).
        #[arg(long = "final")]
        final_state: Option<PathBuf>,
        /// Write the verdict here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the schedule of a seed.
    Schedule {
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Cluster size.
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The two-zone topology's schedule (5 nodes: 1-3 voters in za, 4-5 learners in zb).
        #[arg(long)]
        zones: bool,
    },
}

fn parse_nodes(spec: &str) -> Result<Vec<history::NodeInfo>, String> {
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (id, addr) = item.split_once('=').ok_or_else(|| format!("{item}: expected ID=HOST:PORT"))?;
            let id = id.parse().map_err(|_| format!("{item}: bad id"))?;
            Ok(history::NodeInfo { id, addr: addr.to_string(), zone: String::new(), learner: false })
        })
        .collect()
}

/// The exit code of a run or check: the verdict's grade, or 2 when there is no verdict.
fn exit_code(verdict: &Result<check::Verdict, String>) -> u8 {
    match verdict {
        Ok(v) => v.grade.exit_code(),
        Err(_) => 2,
    }
}

fn verdict_code(verdict: Result<check::Verdict, String>) -> ExitCode {
    if let Err(e) = &verdict {
        eprintln!("discovery-chaos: {e}");
    }
    ExitCode::from(exit_code(&verdict))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            nodes,
            token,
            seed,
            duration,
            out,
            ctl,
            schedule,
            lease,
            poll_timeout,
            recovery_bound,
            staleness,
            apps,
            zones,
        } => {
            let nodes = match parse_nodes(&nodes) {
                Ok(n) if zones && n.len() != 5 => {
                    return verdict_code(Err(format!("--zones needs 5 nodes, not {}", n.len())))
                }
                Ok(n) if zones => schedule::zone_layout(n),
                Ok(n) if !n.is_empty() => n,
                Ok(_) => return verdict_code(Err("no nodes".into())),
                Err(e) => return verdict_code(Err(e)),
            };
            if let Err(e) = netguard::check_targets(nodes.iter().map(|n| n.addr.as_str())) {
                return verdict_code(Err(e));
            }
            let config = run::RunConfig {
                nodes,
                token,
                seed,
                duration_s: duration,
                out,
                ctl,
                schedule,
                lease,
                poll_timeout,
                recovery_bound,
                staleness,
                apps,
                zones,
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return verdict_code(Err(format!("tokio: {e}"))),
            };
            verdict_code(runtime.block_on(run::run(config)))
        }
        Command::Check { history, final_state, out } => {
            verdict_code(run::check_files(&history, final_state.as_deref(), out.as_deref()))
        }
        Command::Schedule { seed, nodes, duration, json, zones } => {
            let s = if zones {
                schedule::generate_zones(seed, duration)
            } else {
                schedule::generate(seed, nodes, duration)
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print!("{}", schedule::render(&s));
            }
            ExitCode::SUCCESS
        }
    }
}
