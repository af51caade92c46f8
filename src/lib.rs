//! `discovery`: a service registry that speaks the bilibili/discovery HTTP API and keeps its state in a Raft
//! state machine (openraft) persisted in sled.
//!
//! # Layout
//! - `registry`: the domain (instances, cursors, commands, deterministic apply, leases, self-preservation).
//! - `api`: the HTTP API of bilibili/discovery (binding, envelope, error codes, handlers).
//! - `client`: a client of the HTTP API, and the `fetch`, `register` and `watch` commands built on it.
//! - `node`: wiring: storage, Raft, the write proposer, the lessor task, long-poll notification, routes.
//! - `config`, `config_file`, `cli`, `duration`: the validated configuration, the `--config` file and the
//!   command line that build it.
//! - `ui`: the console at `/` (an embedded single page over JSON routes under `/ui/api`) and the plain page.
//! - `raft_types`: the openraft type configuration (entries carry `registry::command::Batch`).
//! - `runtime`: the tokio runtime a node runs on (`--worker-threads`).
//! - `fd_limit`: the open-file limit, raised at start, and the client connections it leaves room for.

#![warn(missing_docs, unreachable_pub)]

pub(crate) mod api;
pub mod app;
pub mod cli;
pub mod client;
pub mod cluster_cli;
pub mod config;
pub mod config_file;
pub mod duration;
pub mod fd_limit;
pub mod node;
pub mod raft_types;
pub mod registry;
pub mod runtime;
pub(crate) mod service;
pub mod signal;
pub(crate) mod ui;
