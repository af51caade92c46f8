//! The `discovery` binary: parse flags, set up logging, build the runtime, bind the listener, run the node
//! until SIGINT or SIGTERM. Everything else lives in the library.

use std::process::ExitCode;

use discovery::cli::{Cli, Commands};
use discovery::client::commands;
use discovery::config::{Config, LogFormat};

// glibc's allocator took a fifth of a node's CPU under write load (malloc_consolidate and friends, perf);
// mimalloc does the same work in a fraction of it (BENCHMARKS.md, "What changed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_with_sources();
    if let Some(command) = cli.command {
        return run_client(command);
    }
    let (config, ignored) = match cli.server.into_config() {
        Ok(parsed) => parsed,
        Err(err) => return fail(&format!("invalid configuration: {err}")),
    };
    init_logging(config.log_format);
    match discovery::fd_limit::raise_soft_limit() {
        Ok(limit) if limit.now > limit.was => {
            tracing::info!(was = limit.was, now = limit.now, hard = limit.hard, "raised the open-file limit")
        }
        Ok(limit) => tracing::info!(soft = limit.now, hard = limit.hard, "open-file limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit"),
    }
    for key in ignored {
        tracing::warn!(key, "config file key of the original server has no effect here; ignored");
    }
    let cpus = discovery::runtime::available_cpus();
    let threads = discovery::runtime::worker_threads(config.worker_threads, cpus);
    let runtime = match discovery::runtime::build(threads) {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the runtime: {err}")),
    };
    tracing::info!(worker_threads = threads, cpus, "runtime");
    let code = runtime.block_on(run_node(config));
    // Blocking-pool work still running (a sync on a dying disk) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// A client command: a short-lived process, one thread is plenty.
fn run_client(command: Commands) -> ExitCode {
    let runtime = match discovery::runtime::build(1) {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the runtime: {err}")),
    };
    let done = runtime.block_on(async {
        match command {
            Commands::Cluster(args) => match discovery::cluster_cli::run(args).await {
                Ok(text) => commands::print_line(&text),
                Err(message) => Err(message),
            },
            Commands::Fetch(args) => commands::fetch(args).await,
            Commands::Register(args) => commands::register(args).await,
            Commands::Watch(args) => commands::watch(args).await,
        }
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) if message == commands::STDOUT_CLOSED => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

async fn run_node(config: Config) -> ExitCode {
    let socket = match config.socket_addr() {
        Ok(socket) => socket,
        Err(err) => return fail(&err.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(socket).await {
        Ok(listener) => listener,
        Err(err) => return fail(&format!("cannot listen on {}: {err}", config.addr)),
    };
    tracing::info!(id = config.id, addr = %config.addr, data_dir = %config.data_dir.display(), "starting");
    match discovery::app::run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err.to_string()),
    }
}

/// Log to stderr in `format`, at the level `RUST_LOG` asks for (default: info, openraft's own chatter off).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error"));
    // Colours only on a terminal: journald, files and log shippers get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("discovery: {message}");
    ExitCode::FAILURE
}

async fn shutdown_signal() {
    discovery::signal::interrupted().await;
    tracing::info!("shutdown signal received");
}
