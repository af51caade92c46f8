//! The API test suite of issue 3 ("done when"): in-process nodes on ephemeral ports and temp dirs, talked
//! to over loopback HTTP (or through the router with `oneshot` for fuzzing).
//!
//! - `contract`: every endpoint and error code, whole JSON bodies against golden transcripts.
//! - `polls`: long polls: immediate answers, -304, wake-ups and their latency, waiter bookkeeping.
//! - `leases`: eviction after the lease, renews, self-preservation, restart grace.
//! - `sdk`: what the Go `naming` SDK does, step by step (spec §5.1, §5.2).
//! - `batching`: concurrent writes share Raft entries, each caller gets its own outcome.
//! - `console`: the console's JSON routes, actions behind the token, and the plain HTML page.
//! - `fuzz`: random requests at every route: never 5xx, never a panic, always a JSON envelope.

mod batching;
mod console;
mod contract;
mod fuzz;
mod leases;
mod polls;
mod sdk;
mod support;
