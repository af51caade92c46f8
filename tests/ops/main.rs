//! Operability: metrics, logs, graceful shutdown, hardening, the config file and the client commands.
//! In-process nodes (`node`) where the library is enough, the real binary (`support`) where the process
//! matters (signals, exit codes, flags).

#[path = "../support/mod.rs"]
mod support;

mod client;
mod config_file;
mod damaged_data;
mod hardening;
mod logs;
mod metrics;
mod node;
mod proc;
mod shutdown;
