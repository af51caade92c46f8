//! `discovery-bench`: the load generator and the measuring tools behind `scripts/bench/run.sh` (issue 7).
//!
//! Every subcommand talks HTTP/1.1 to loopback addresses only, keeps its connections alive, is bounded in
//! both time and request count, and can write its figures as JSON for `discovery-bench report`.
//!
//! - `http`: closed-loop load at a fixed concurrency for a fixed duration (after a warm-up) or a fixed
//!   count, with per-request templates (`{n}`, `{n%K}`, `{n/K}`, `{b64n}`) and latency percentiles.
//! - `populate`: register N distinct instances, K per app (a count-mode `http` with a built-in body).
//! - `polls`: long-poll waiters spread over nodes; time from a write's acknowledgement to every answer.
//! - `failover`: kill -9 the leader, then time the first successful write through the survivors.
//! - `startup`: spawn a node and time process start to `/healthz` 200 and to a successful fetch.
//! - `footprint`: VmRSS of processes and the size of their data directories.
//! - `snapshot`: ask a node for a snapshot now and time it (next to a write load: what it costs the writes).
//! - `join`: add a `--join` node with `discovery cluster add`, time it until every digest is equal.
//! - `wait`, `leader`, `free-ports`: plumbing for the run script.
//! - `report`: turn a directory of result files into markdown tables and one JSON document.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The same allocator as the server, so that the load generator takes as little of the shared cores as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod client;
mod cluster;
mod failover;
mod footprint;
mod join;
mod lag;
mod load;
mod polls;
mod report;
mod snapshot;
mod startup;
mod stats;
mod template;

/// Errors of this tool: a message for the operator.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Load generator and measuring tools for discovery (and etcd, side by side).
#[derive(Debug, Parser)]
#[command(name = "discovery-bench", version, about)]
struct Cli {
    /// Tokio worker threads of the load generator (it shares the machine with the servers it measures).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Closed-loop HTTP load: fixed concurrency, fixed duration (after a warm-up) or fixed count.
    Http(load::HttpArgs),
    /// Register N distinct instances, K per app.
    Populate(load::PopulateArgs),
    /// Long polls: time from a write's acknowledgement to every waiter's answer.
    Polls(polls::PollsArgs),
    /// Kill -9 the leader and time the first successful write.
    Failover(failover::FailoverArgs),
    /// Spawn a node and time process start to serving.
    Startup(startup::StartupArgs),
    /// Resident memory of processes and the size of their data directories.
    Footprint(footprint::FootprintArgs),
    /// Ask a node for a snapshot now and time it.
    Snapshot(snapshot::SnapshotArgs),
    /// Add a `--join` node with `discovery cluster add` and time it until every digest is equal.
    Join(join::JoinArgs),
    /// Sample the leader's view of its learners' replication lag while a load runs.
    Lag(lag::LagArgs),
    /// Wait until every node is healthy and agrees on a leader; print the leader's index.
    Wait(cluster::WaitArgs),
    /// Print the index (0-based, in --nodes order) of the current leader.
    Leader(cluster::LeaderArgs),
    /// Print N currently free loopback TCP ports.
    FreePorts(cluster::FreePortsArgs),
    /// Render a directory of result files as markdown tables and one JSON document.
    Report(report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Report(args) = cli.command {
        return finish(report::run(args));
    }
    if let Command::FreePorts(args) = cli.command {
        return finish(cluster::free_ports(args));
    }
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => return finish(Err(err.into())),
        };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Http(args) => load::run_http(args).await,
            Command::Populate(args) => load::run_populate(args).await,
            Command::Polls(args) => polls::run(args).await,
            Command::Failover(args) => failover::run(args).await,
            Command::Startup(args) => startup::run(args).await,
            Command::Footprint(args) => footprint::run(args).await,
            Command::Snapshot(args) => snapshot::run(args).await,
            Command::Join(args) => join::run(args).await,
            Command::Lag(args) => lag::run(args).await,
            Command::Wait(args) => cluster::wait(args).await,
            Command::Leader(args) => cluster::leader(args).await,
            Command::FreePorts(_) | Command::Report(_) => Ok(()),
        }
    });
    // Do not wait for connection tasks still parked on idle keep-alive sockets.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    finish(result)
}

fn finish(result: Result<(), BoxError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("discovery-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
