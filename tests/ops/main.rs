//! Operability: metrics, logs, graceful shutdown, hardening, the config file and the client commands.
//! In-process nodes (`node`) where the library is enough, the real binary (`support`) where the process
//! matters (signals, exit codes, flags).

#[path = "../support/mod.rs"]
mod support;

mod client;
mod config_file;
mod damaged_data;
mod forged_requests;
mod hardening;
mod limits_proc;
mod logs;
mod metrics;
mod node;
mod proc;
mod request_limits;
mod shutdown;
mod supervision;
