//! What the registry costs per instance: builds a registry of N instances in the benchmark's register form
//! (100 per app, two addresses, a version, three metadata pairs), then prints the process's resident memory
//! before and after, per instance, and the snapshot's size; then seeds a leader's lease table from it (as a
//! new leader does) and prints what the leases add.
//!
//! `cargo run --release --example footprint -- 1000000`

use std::collections::BTreeMap;

use std::time::Duration;

use discovery::registry::command::{Batch, Command, RegisterArgs};
use discovery::registry::lease::LeaseTable;
use discovery::registry::model::InstanceKey;
use discovery::registry::Registry;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn register_key(i: u64) -> InstanceKey {
    InstanceKey {
        env: "bench".into(),
        appid: format!("bench.s{}", i / 100),
        zone: "z1".into(),
        hostname: format!("s-{i}"),
    }
}

fn register(i: u64) -> Command {
    let metadata: BTreeMap<String, String> = [("weight", "10"), ("cluster", "c1"), ("color", "blue")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Command::Register(RegisterArgs {
        region: String::new(),
        key: register_key(i),
        addrs: vec!["grpc://10.0.0.1:9000".into(), "http://10.0.0.1:8000".into()],
        version: "v1.2.3".into(),
        metadata: Some(metadata),
        status: 1,
        dirty_timestamp: 0,
    })
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let before = rss_kib();
    let mut registry = Registry::new();
    for chunk in 0..n.div_ceil(512) {
        let commands = (chunk * 512..((chunk + 1) * 512).min(n)).map(register).collect();
        registry.apply(chunk + 1, &Batch { stamp_ns: 1_000 + chunk as i64, commands });
    }
    let after = rss_kib();
    let bytes = bincode::serde::encode_to_vec(&registry, bincode::config::standard()).map(|b| b.len()).unwrap_or(0);
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!(
        "{n} instances: RSS {} MiB -> {} MiB, {per:.0} bytes per instance; snapshot {} MiB ({:.0} bytes per instance)",
        before / 1024,
        after / 1024,
        bytes / (1 << 20),
        bytes as f64 / n as f64
    );
    assert_eq!(registry.len() as u64, n);

    let mut leases = LeaseTable::new(Duration::from_secs(90));
    let promoting = std::time::Instant::now();
    leases.promote(Duration::ZERO, Duration::from_secs(10), Duration::from_secs(30), registry.leases());
    let promoted_in = promoting.elapsed();
    let with_leases = rss_kib();
    println!(
        "lease table (leader only): RSS {} MiB -> {} MiB, {:.0} bytes per instance; seeded in {promoted_in:.2?}",
        after / 1024,
        with_leases / 1024,
        (with_leases.saturating_sub(after) * 1024) as f64 / n as f64
    );
    assert_eq!(leases.len() as u64, n);

    // Steady state: every instance renews (three rounds, as clients do every 30 s within a lease).
    let keys: Vec<InstanceKey> = (0..n).map(register_key).collect();
    let with_keys = rss_kib();
    for round in 1..=3u64 {
        for key in &keys {
            leases.renew(key, Duration::from_secs(round * 30));
        }
    }
    let renewed = rss_kib();
    println!(
        "after 3 renew rounds: lease table {:+.0} bytes per instance (the probe keys excluded)",
        (renewed as f64 - with_keys as f64) * 1024.0 / n as f64
    );
}
