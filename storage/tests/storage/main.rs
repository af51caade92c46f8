//! Integration tests of the sled stores through their public API: reopen, bad data dirs, apply and
//! snapshots, a real single-node openraft restart, and the durable-append latency figure.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod apply;
mod damage;
mod latency;
mod open_errors;
mod raft_restart;
mod reopen;
mod sled_leftovers;
mod snapshots;
