//! The `discovery` binary: parse flags, set up logging, bind the listener, run the node until SIGINT or
//! SIGTERM. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use discovery::cli::{Cli, Commands};
use discovery::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Commands::Cluster(args)) = cli.command {
        return match discovery::cluster_cli::run(args).await {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::try_from(cli.server) {
        Ok(config) => config,
        Err(err) => return fail(&format!("invalid configuration: {err}")),
    };
    let socket = match config.socket_addr() {
        Ok(socket) => socket,
        Err(err) => return fail(&err.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(socket).await {
        Ok(listener) => listener,
        Err(err) => return fail(&format!("cannot listen on {}: {err}", config.addr)),
    };
    tracing::info!(id = config.id, addr = %config.addr, data_dir = %config.data_dir.display(), "starting");
    match discovery::node::run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("discovery: {message}");
    ExitCode::FAILURE
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
