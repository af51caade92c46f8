//! `report`: render the result files of one `scripts/bench/run.sh` run as markdown tables (ready to paste
//! into BENCHMARKS.md) and gather them into one JSON document.
//!
//! Files are read by name (`single-fetch10.json`, `etcd-put-followers.json`, ...; see the tables below);
//! a missing file leaves its row out. Targets come from issue 7 and are reported, never enforced.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::stats::{self, median};
use crate::BoxError;

/// `discovery-bench report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Directory of result files (one run of scripts/bench/run.sh).
    #[arg(long)]
    pub dir: PathBuf,
    /// Where to write the markdown tables.
    #[arg(long)]
    pub md: PathBuf,
    /// Where to write all results as one JSON document.
    #[arg(long)]
    pub json: PathBuf,
}

/// One throughput row: file, scenario, topology, target (ok/s, p99 ms).
struct Row {
    file: &'static str,
    scenario: &'static str,
    topology: &'static str,
    min_rps: Option<f64>,
    max_p99_ms: Option<f64>,
    bound: &'static str,
}

const THROUGHPUT: &[Row] = &[
    Row {
        file: "single-fetch10",
        scenario: "fetch, 10-instance app",
        topology: "1 node",
        min_rps: Some(47_000.0),
        max_p99_ms: Some(10.0),
        bound: "CPU of the node's one runtime thread (HTTP; the encoded answer is cached) and of the load generator, about as much",
    },
    Row {
        file: "single-fetch100",
        scenario: "fetch, 100-instance app",
        topology: "1 node",
        min_rps: None,
        max_p99_ms: None,
        bound: "CPU (HTTP and writing 41 KB answers; the encoded answer is cached)",
    },
    Row {
        file: "single-fetch10-consistent",
        scenario: "fetch consistent=1, 10 instances",
        topology: "1 node",
        min_rps: None,
        max_p99_ms: None,
        bound: "CPU (a lone voter confirms leadership locally)",
    },
    Row {
        file: "single-renew",
        scenario: "renew",
        topology: "1 node",
        min_rps: Some(55_000.0),
        max_p99_ms: None,
        bound: "CPU of the node's one runtime thread (HTTP + instance clone in the answer)",
    },
    Row {
        file: "single-register",
        scenario: "register (durable)",
        topology: "1 node",
        min_rps: Some(20_000.0),
        max_p99_ms: None,
        bound: "commit cycle: one proposal in flight (append, flush + fdatasync, apply); a batch is what queued meanwhile",
    },
    Row {
        file: "single-register-256",
        scenario: "register (durable), 256 clients",
        topology: "1 node",
        min_rps: None,
        max_p99_ms: None,
        bound: "same cycle, bigger batches (+ apply CPU)",
    },
    Row {
        file: "cluster-fetch10-follower",
        scenario: "fetch, 10-instance app",
        topology: "3 nodes, one follower",
        min_rps: None,
        max_p99_ms: None,
        bound: "CPU (HTTP; the encoded answer is cached); the load generator uses about as much CPU as the server",
    },
    Row {
        file: "cluster-fetch100-follower",
        scenario: "fetch, 100-instance app",
        topology: "3 nodes, one follower",
        min_rps: None,
        max_p99_ms: None,
        bound: "CPU (HTTP and writing 41 KB answers; cached)",
    },
    Row {
        file: "cluster-fetch10-consistent-follower",
        scenario: "fetch consistent=1, 10 instances",
        topology: "3 nodes, one follower",
        min_rps: None,
        max_p99_ms: None,
        bound: "one read-index round trip to the leader per batch of waiting reads",
    },
    Row {
        file: "cluster-renew-followers",
        scenario: "renew",
        topology: "3 nodes, both followers",
        min_rps: None,
        max_p99_ms: None,
        bound: "CPU of three nodes on two cores (renews forwarded in batches, judged on the leader)",
    },
    Row {
        file: "cluster-renew-followers-256",
        scenario: "renew, 256 clients",
        topology: "3 nodes, both followers",
        min_rps: None,
        max_p99_ms: None,
        bound: "same, bigger batches",
    },
    Row {
        file: "cluster-register-leader",
        scenario: "register (durable)",
        topology: "3 nodes, leader",
        min_rps: None,
        max_p99_ms: None,
        bound: "commit cycle (not CPU: cores idle): leader flush, then the replication round trip with the follower's flush, in series",
    },
    Row {
        file: "cluster-register-followers",
        scenario: "register (durable)",
        topology: "3 nodes, both followers",
        min_rps: None,
        max_p99_ms: None,
        bound: "same cycle, plus the forwarding round trip and the follower's own apply; 64 clients fill ~30 writes per cycle",
    },
    Row {
        file: "etcd-range-follower",
        scenario: "etcd range, 10 keys, serializable",
        topology: "etcd 3 nodes, one follower",
        min_rps: None,
        max_p99_ms: None,
        bound: "CPU (gRPC gateway + MVCC read)",
    },
    Row {
        file: "etcd-put-leader",
        scenario: "etcd put, 300-byte value",
        topology: "etcd 3 nodes, leader",
        min_rps: None,
        max_p99_ms: None,
        bound: "CPU + fsync",
    },
    Row {
        file: "etcd-put-followers",
        scenario: "etcd put, 300-byte value",
        topology: "etcd 3 nodes, both followers",
        min_rps: None,
        max_p99_ms: None,
        bound: "CPU + fsync",
    },
];

/// (ours, etcd, what, minimum ratio).
const RATIOS: &[(&str, &str, &str, Option<f64>)] = &[
    (
        "cluster-register-followers",
        "etcd-put-followers",
        "register through followers / etcd put through followers",
        Some(3.0),
    ),
    ("cluster-register-leader", "etcd-put-leader", "register through the leader / etcd put to the leader", None),
    (
        "cluster-fetch10-follower",
        "etcd-range-follower",
        "fetch (10 instances) on a follower / etcd range (10 keys) on a follower",
        Some(8.0),
    ),
    (
        "cluster-fetch10-consistent-follower",
        "etcd-range-follower",
        "fetch consistent=1 on a follower / etcd serializable range on a follower",
        None,
    ),
];

/// `discovery-bench report`.
pub fn run(args: ReportArgs) -> Result<(), BoxError> {
    let results = load_dir(&args.dir)?;
    let get = |name: &str| results.get(name);
    let mut md = String::new();
    let meta = get("meta").cloned().unwrap_or(Value::Null);
    machine_section(&mut md, &meta);
    throughput_table(&mut md, &get);
    ratio_table(&mut md, &get);
    raft_table(&mut md, &get);
    inside_table(&mut md, &get);
    polls_table(&mut md, &get);
    failover_table(&mut md, &results);
    startup_table(&mut md, &get);
    footprint_table(&mut md, &results);
    scale_table(&mut md, &get);
    zones_table(&mut md, &get);
    std::fs::write(&args.md, &md).map_err(|e| format!("{}: {e}", args.md.display()))?;
    let all = json!({ "machine": machine(), "results": results });
    stats::write_json(&args.json, &all)?;
    print!("{md}");
    Ok(())
}

fn load_dir(dir: &Path) -> Result<BTreeMap<String, Value>, BoxError> {
    let mut results = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        if stem == "results" {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        results.insert(stem.to_string(), value);
    }
    Ok(results)
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu_model": model,
        "ram_gib": stats::round3(mem_kb as f64 / 1_048_576.0),
        "kernel": kernel,
    })
}

fn machine_section(md: &mut String, meta: &Value) {
    let m = machine();
    let _ = writeln!(md, "### Machine and run\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| CPUs (nproc) | {} |", m["nproc"]);
    let _ = writeln!(md, "| CPU model | {} |", m["cpu_model"].as_str().unwrap_or("?"));
    let _ = writeln!(md, "| RAM | {:.1} GiB |", m["ram_gib"].as_f64().unwrap_or(0.0));
    let _ = writeln!(md, "| kernel | {} |", m["kernel"].as_str().unwrap_or("?"));
    for (key, label) in [
        ("command", "command"),
        ("mode", "mode"),
        ("date", "date (UTC)"),
        ("git", "git HEAD"),
        ("etcd_version", "etcd"),
        ("loadavg_start", "load average at start"),
        ("loadavg_end", "load average at end"),
        ("seconds", "run time (s, build excluded)"),
        ("settings", "settings"),
    ] {
        if let Some(v) = meta.get(key) {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            let _ = writeln!(md, "| {label} | {} |", text.replace('|', "\\|"));
        }
    }
    md.push('\n');
}

fn f(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn rate(v: f64) -> String {
    let whole = v.round() as i64;
    let digits = whole.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if whole < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

fn throughput_table<'a>(md: &mut String, get: &impl Fn(&str) -> Option<&'a Value>) {
    if !THROUGHPUT.iter().any(|row| get(row.file).is_some()) {
        return;
    }
    let _ = writeln!(md, "### Throughput and latency (closed loop; the run with the median rate of its repeats)\n");
    let _ = writeln!(
        md,
        "| scenario | topology | clients | ok/s | every run | p50 ms | p99 ms | errors | server CPU | ok/s per \
         server core | client CPU | machine busy | likely bound | target |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for row in THROUGHPUT {
        let Some(r) = get(row.file) else { continue };
        let m = &r["median"];
        let rps = f(m.get("rps")).unwrap_or(0.0);
        let p99 = f(m.pointer("/latency/p99_ms"));
        let runs: Vec<String> = r["runs_rps"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).map(rate).collect())
            .unwrap_or_default();
        let mut target = Vec::new();
        if let Some(min) = row.min_rps {
            target.push(format!("≥ {} ok/s: {}", rate(min), verdict(rps >= min)));
        }
        if let Some(max) = row.max_p99_ms {
            target.push(format!("p99 ≤ {max} ms: {}", verdict(p99.is_some_and(|p| p <= max))));
        }
        let server = f(m.pointer("/cpu/server_cores"));
        let per_core = server.filter(|c| *c > 0.0).map(|c| rate(rps / c));
        let errors = m.get("error_count").and_then(Value::as_u64).unwrap_or(0);
        let error_text = if errors == 0 {
            "0".to_string()
        } else {
            format!("{errors} {}", m["errors"].to_string().replace('|', "/"))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.topology,
            r["concurrency"],
            rate(rps),
            runs.join(" / "),
            fmt_opt(f(m.pointer("/latency/p50_ms")), 2),
            fmt_opt(p99, 2),
            error_text,
            fmt_opt(server, 2),
            per_core.unwrap_or_else(|| "-".into()),
            fmt_opt(f(m.pointer("/cpu/client_cores")), 2),
            fmt_opt(f(m.pointer("/cpu/machine_busy_cores")), 2),
            row.bound,
            if target.is_empty() { "-".into() } else { target.join("; ") },
        );
    }
    let _ = writeln!(
        md,
        "\nCPU columns are cores used during the measured window (1.00 = one core busy): the measured server \
         processes together (all three nodes in cluster scenarios), this load generator, and the whole machine \
         (other work included). On a shared machine the rate per server core is the steadier figure.\n"
    );
}

fn ratio_table<'a>(md: &mut String, get: &impl Fn(&str) -> Option<&'a Value>) {
    let rows: Vec<_> = RATIOS.iter().filter(|(a, b, _, _)| get(a).is_some() && get(b).is_some()).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Side by side with etcd (same load generator, same clients)\n");
    let _ = writeln!(md, "| comparison | discovery ok/s | etcd ok/s | ratio | ratio per server core | target |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|");
    for (ours, theirs, what, min) in rows {
        let rps = |file: &str| get(file).and_then(|v| f(v.pointer("/median/rps"))).unwrap_or(0.0);
        let cores = |file: &str| get(file).and_then(|v| f(v.pointer("/median/cpu/server_cores"))).unwrap_or(0.0);
        let (a, b) = (rps(ours), rps(theirs));
        let ratio = if b > 0.0 { a / b } else { f64::NAN };
        let per_core = if b > 0.0 && cores(ours) > 0.0 && cores(theirs) > 0.0 {
            format!("{:.2}×", (a / cores(ours)) / (b / cores(theirs)))
        } else {
            "-".into()
        };
        let target = min.map_or_else(|| "-".into(), |m| format!("≥ {m}×: {}", verdict(ratio >= m)));
        let _ = writeln!(md, "| {what} | {} | {} | {ratio:.2}× | {per_core} | {target} |", rate(a), rate(b));
    }
    let _ = writeln!(
        md,
        "\nThe target applies to the plain ratio; the ratio per server core divides out CPU stolen by other work."
    );
    md.push('\n');
}

fn raft_table<'a>(md: &mut String, get: &impl Fn(&str) -> Option<&'a Value>) {
    let files = [
        "single-renew",
        "cluster-renew-followers",
        "single-register",
        "single-register-256",
        "cluster-register-leader",
        "cluster-register-followers",
    ];
    let rows: Vec<_> =
        files.iter().filter_map(|name| get(name).map(|v| (name, v))).filter(|(_, v)| v["raft"].is_object()).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Raft log entries added (last_log_index before and after, warm-ups included)\n");
    let _ = writeln!(md, "| scenario | successful requests | entries added per node | entries per request | requests per entry | target |");
    let _ = writeln!(md, "|---|---:|---|---:|---:|---|");
    for (name, v) in rows {
        let raft = &v["raft"];
        let added: Vec<String> = raft["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|n| {
                        let a = n["after"].as_u64().unwrap_or(0);
                        let b = n["before"].as_u64().unwrap_or(0);
                        format!("{}: +{}", n["node"].as_str().unwrap_or("?"), a.saturating_sub(b))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let per = f(raft.get("entries_per_request")).unwrap_or(0.0);
        let target = if name.contains("renew") { format!("0: {}", verdict(per == 0.0)) } else { "-".into() };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {per:.6} | {} | {target} |",
            rate(raft["requests_ok"].as_f64().unwrap_or(0.0)),
            added.join(", "),
            fmt_opt(f(raft.get("requests_per_entry")), 1),
        );
    }
    md.push('\n');
}

/// The server's own histograms during the write scenarios (`--metrics`): where a durable write's time goes.
fn inside_table<'a>(md: &mut String, get: &impl Fn(&str) -> Option<&'a Value>) {
    let files = [
        "single-register",
        "single-register-256",
        "cluster-register-leader",
        "cluster-register-followers",
        "cluster-polls",
    ];
    let mut lines = Vec::new();
    for file in files {
        let Some(v) = get(file) else { continue };
        let metrics = v.pointer("/median/server_metrics").or_else(|| v.get("server_metrics"));
        let Some(nodes) = metrics.and_then(Value::as_object) else { continue };
        for (node, hists) in nodes {
            let mean = |name: &str| f(hists.pointer(&format!("/{name}/mean")));
            let rate = |name: &str| f(hists.pointer(&format!("/{name}/per_second")));
            let ms = |x: Option<f64>| x.map(|v| v * 1000.0);
            if hists.as_object().is_none_or(serde_json::Map::is_empty) {
                continue;
            }
            lines.push(format!(
                "| {file} | {node} | {} | {} | {} | {} | {} | {} | {} |",
                fmt_opt(rate("discovery_raft_proposal_batch_size"), 0),
                fmt_opt(mean("discovery_raft_proposal_batch_size"), 1),
                fmt_opt(ms(mean("discovery_raft_commit_latency_seconds")), 2),
                fmt_opt(rate("discovery_storage_fdatasync_seconds"), 0),
                fmt_opt(ms(mean("discovery_storage_fdatasync_seconds")), 2),
                fmt_opt(ms(mean("discovery_storage_flush_seconds")), 2),
                fmt_opt(ms(mean("discovery_longpoll_wake_latency_seconds")), 2),
            ));
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Inside the server during the measured window (its own /metrics histograms)\n");
    let _ = writeln!(
        md,
        "| scenario | node | proposals/s | writes per proposal | commit latency ms | fdatasync/s | fdatasync ms \
         | sled flush ms | long-poll wake ms |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for line in lines {
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(
        md,
        "\nMeans over the window. Commit latency is `client_write` to its answer on the leader (append, fsync, \
         replication, apply); fdatasync and flush are each log append's durability calls.\n"
    );
}

fn polls_table<'a>(md: &mut String, get: &impl Fn(&str) -> Option<&'a Value>) {
    let Some(p) = get("cluster-polls") else { return };
    let _ = writeln!(md, "### Long polls (3 nodes, waiters spread evenly, writes to the leader)\n");
    let _ = writeln!(
        md,
        "| waiters | rounds | answers | p50 ms after ack | p99 ms after ack | max ms | answered before the ack \
         | p50 / p99 ms after the write was sent | write ack p50 ms | errors | target p99 ≤ 50 ms |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|");
    let p99 = f(p.pointer("/latency/p99_ms"));
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} |",
        p["waiters"],
        p["rounds"],
        p.pointer("/latency/count").unwrap_or(&Value::Null),
        fmt_opt(f(p.pointer("/latency/p50_ms")), 2),
        fmt_opt(p99, 2),
        fmt_opt(f(p.pointer("/latency/max_ms")), 2),
        p["answered_before_ack"],
        fmt_opt(f(p.pointer("/since_write_sent/p50_ms")), 2),
        fmt_opt(f(p.pointer("/since_write_sent/p99_ms")), 2),
        fmt_opt(f(p.pointer("/write_ack/p50_ms")), 2),
        p["errors"].to_string().replace('|', "/"),
        verdict(p99.is_some_and(|v| v <= 50.0)),
    );
    md.push('\n');
}

fn failover_table(md: &mut String, results: &BTreeMap<String, Value>) {
    let trials: Vec<&Value> = results.iter().filter(|(k, _)| k.starts_with("failover-")).map(|(_, v)| v).collect();
    if trials.is_empty() {
        return;
    }
    let times: Vec<f64> = trials.iter().filter_map(|t| f(t.get("first_write_ms"))).collect();
    let med = median(&times);
    let _ = writeln!(md, "### Failover: leader killed with SIGKILL, to the first acknowledged write\n");
    let _ = writeln!(md, "| trials | each (ms) | median (ms) | target ≤ 3,000 ms |");
    let _ = writeln!(md, "|---:|---|---:|---|");
    let each: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} |\n",
        times.len(),
        each.join(", "),
        fmt_opt(med, 0),
        verdict(med.is_some_and(|m| m <= 3000.0))
    );
}

fn startup_table<'a>(md: &mut String, get: &impl Fn(&str) -> Option<&'a Value>) {
    let rows: Vec<_> =
        [("startup-single-100k", "1 node, restarted"), ("startup-follower-100k", "3 nodes, a follower restarted")]
            .into_iter()
            .filter_map(|(file, what)| get(file).map(|v| (what, v)))
            .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Restart: process start to serving\n");
    let _ = writeln!(
        md,
        "| node | instances on disk | /healthz 200 (ms) | first successful fetch (ms) | target ≤ 2,000 ms |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---|");
    for (what, v) in rows {
        let serving = f(v.get("serving_ms")).or(f(v.get("ready_ms")));
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {} | {} |",
            rate(v["instances"].as_f64().unwrap_or(0.0)),
            fmt_opt(f(v.get("ready_ms")), 0),
            fmt_opt(f(v.get("serving_ms")), 0),
            verdict(serving.is_some_and(|s| s <= 2000.0)),
        );
    }
    md.push('\n');
}

fn footprint_table(md: &mut String, results: &BTreeMap<String, Value>) {
    let rows: Vec<(&String, &Value)> = results.iter().filter(|(k, _)| k.starts_with("footprint-")).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Memory and disk\n");
    let _ = writeln!(
        md,
        "| measurement | instances | node | RSS MB | peak RSS MB | data dir MB (apparent / allocated) | target RSS |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---|---|");
    let mut sorted = rows;
    sorted.sort_by_key(|(_, v)| v["instances"].as_u64().unwrap_or(0));
    for (_, v) in sorted {
        let instances = v["instances"].as_u64().unwrap_or(0);
        let limit = match instances {
            10_000 => Some(50.0),
            100_000 => Some(250.0),
            _ => None,
        };
        for node in v["nodes"].as_array().into_iter().flatten() {
            let rss = f(node.get("rss_mb"));
            let target =
                limit.map_or_else(|| "-".into(), |l| format!("≤ {l} MB: {}", verdict(rss.is_some_and(|r| r <= l))));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} / {} | {} |",
                v["name"].as_str().unwrap_or("?"),
                rate(instances as f64),
                node["node"].as_str().unwrap_or("?"),
                fmt_opt(rss, 1),
                fmt_opt(f(node.get("peak_rss_mb")), 1),
                fmt_opt(f(node.get("data_dir_mb")), 1),
                fmt_opt(f(node.get("data_dir_allocated_mb")), 1),
                target
            );
        }
    }
    md.push('\n');
}

/// Issue 12: N instances on three nodes, each figure against its target.
/// Issue 14: read replicas' lag under a paced write load, and their read throughput beside a follower's.
fn zones_table<'a>(md: &mut String, get: &impl Fn(&str) -> Option<&'a Value>) {
    let Some(lag) = get("zones-lag") else { return };
    let rps = |name: &str| get(name).and_then(|v| f(v["median"].get("rps")));
    let p99 = |name: &str| get(name).and_then(|v| f(v["median"]["latency"].get("p99_ms")));
    let cpu = |name: &str| get(name).and_then(|v| f(v["median"]["cpu"].get("server_cores")));
    let _ = writeln!(md, "### Zones: read replicas (3 voters + 2 learners)\n");
    let _ = writeln!(md, "| figure | measured |");
    let _ = writeln!(md, "|---|---|");
    let writes = get("zones-register-10k");
    let _ = writeln!(
        md,
        "| registers/s on the leader (paced at 10,000/s) / errors | {} / {} |",
        fmt_opt(rps("zones-register-10k"), 0),
        writes.and_then(|w| w["median"]["error_count"].as_u64()).unwrap_or(0)
    );
    let _ = writeln!(
        md,
        "| learner replication lag p50 / p99 / max (ms, {} samples) | {} / {} / {} |",
        lag["samples"].as_u64().unwrap_or(0),
        fmt_opt(f(lag.get("lag_ms_p50")), 0),
        fmt_opt(f(lag.get("lag_ms_p99")), 0),
        fmt_opt(f(lag.get("lag_ms_max")), 0)
    );
    let _ = writeln!(
        md,
        "| learner lag in entries p50 / p99 / max | {} / {} / {} |",
        fmt_opt(f(lag.get("lag_entries_p50")), 0),
        fmt_opt(f(lag.get("lag_entries_p99")), 0),
        fmt_opt(f(lag.get("lag_entries_max")), 0)
    );
    for (what, learner, follower) in [
        ("fetch of a 100-instance app", "zones-fetch100-learner", "zones-fetch100-follower"),
        ("polls answered at once", "zones-polls-learner", "zones-polls-follower"),
    ] {
        let _ = writeln!(
            md,
            "| {what}: learner / follower (ok/s; p99 ms) | {} / {} ({} / {}) |",
            fmt_opt(rps(learner), 0),
            fmt_opt(rps(follower), 0),
            fmt_opt(p99(learner), 2),
            fmt_opt(p99(follower), 2)
        );
    }
    let _ = writeln!(
        md,
        "| fetch over 3 nodes / over 3 nodes + 2 learners (ok/s in all; CPU cores used) | {} / {} ({} / {}) |",
        fmt_opt(rps("zones-fetch100-3nodes"), 0),
        fmt_opt(rps("zones-fetch100-5nodes"), 0),
        fmt_opt(cpu("zones-fetch100-3nodes"), 2),
        fmt_opt(cpu("zones-fetch100-5nodes"), 2)
    );
    let _ = writeln!(md);
}

fn scale_table<'a>(md: &mut String, get: &impl Fn(&str) -> Option<&'a Value>) {
    let Some(populate) = get("scale-populate") else { return };
    let run = &populate["median"];
    let instances = populate["requests"].as_f64().unwrap_or(0.0);
    let latency = |v: &Value, q: &str| f(v["median"]["latency"].get(q));
    let errors = |v: &Value| v["median"]["error_count"].as_u64().unwrap_or(0);
    let _ = writeln!(md, "### Scale: {} instances on three nodes\n", rate(instances));
    let _ = writeln!(md, "| figure | measured | target |");
    let _ = writeln!(md, "|---|---|---|");
    let rps = f(run.get("rps"));
    let row = |md: &mut String, what: &str, value: String, target: String| {
        let _ = writeln!(md, "| {what} | {value} | {target} |");
    };
    row(
        md,
        "registers/s (128 clients, through all three nodes)",
        fmt_opt(rps, 0),
        format!("≥ 20,000: {}", verdict(rps.is_some_and(|r| r >= 20_000.0))),
    );
    row(md, "failed registers", errors(populate).to_string(), format!("0: {}", verdict(errors(populate) == 0)));
    row(
        md,
        "register latency p50 / p99 / p99.9 / max (ms)",
        ["p50_ms", "p99_ms", "p999_ms", "max_ms"].map(|q| fmt_opt(latency(populate, q), 1)).join(" / "),
        "-".into(),
    );
    if let Some(footprint) = get("scale-footprint") {
        for node in footprint["nodes"].as_array().into_iter().flatten() {
            let rss = f(node.get("rss_mb"));
            row(
                md,
                &format!("RSS / data dir of {} (MB)", node["node"].as_str().unwrap_or("?")),
                format!("{} / {}", fmt_opt(rss, 0), fmt_opt(f(node.get("data_dir_mb")), 0)),
                format!("RSS ≤ 512 MB: {}", verdict(rss.is_some_and(|r| r <= 512.0))),
            );
        }
    }
    if let Some(snapshot) = get("scale-snapshot") {
        let bytes = snapshot["snapshot_bytes"].as_f64();
        row(
            md,
            "snapshot of the whole registry: build time (ms) / size (MB)",
            format!("{} / {}", fmt_opt(f(snapshot.get("build_ms")), 0), fmt_opt(bytes.map(|b| b / 1e6), 1)),
            "-".into(),
        );
    }
    if let Some(writes) = get("scale-writes-during-snapshot") {
        let (p999, max) = (latency(writes, "p999_ms"), latency(writes, "max_ms"));
        row(
            md,
            "writes while that snapshot is built: p99.9 / max (ms), errors",
            format!("{} / {}, {}", fmt_opt(p999, 1), fmt_opt(max, 1), errors(writes)),
            format!(
                "p99.9 ≤ 50, max ≤ 250, no error: {}",
                verdict(p999.is_some_and(|p| p <= 50.0) && max.is_some_and(|m| m <= 250.0) && errors(writes) == 0)
            ),
        );
    }
    if let Some(join) = get("scale-join") {
        let add = f(join.get("add_ms"));
        row(
            md,
            "a 4th node joins: cluster add returns / equal digests (s)",
            format!(
                "{} / {}",
                fmt_opt(add.map(|a| a / 1000.0), 1),
                fmt_opt(f(join.get("converged_ms")).map(|c| c / 1000.0), 1)
            ),
            format!("≤ 60 s: {}", verdict(add.is_some_and(|a| a <= 60_000.0))),
        );
    }
    if let Some(startup) = get("scale-startup-follower") {
        let serving = f(startup.get("serving_ms")).or(f(startup.get("ready_ms")));
        row(
            md,
            "follower restart to serving (ms)",
            fmt_opt(serving, 0),
            format!("≤ 3,000 ms: {}", verdict(serving.is_some_and(|s| s <= 3000.0))),
        );
    }
    if let Some(fetch) = get("scale-fetch100-follower") {
        let base = get("cluster-fetch100-follower").and_then(|v| f(v["median"].get("rps")));
        let here = f(fetch["median"].get("rps"));
        row(
            md,
            "fetch of a 100-instance app on a follower (ok/s; with 100,000 instances in the base run)",
            format!(
                "{} (base: {}) p99 {} ms",
                fmt_opt(here, 0),
                fmt_opt(base, 0),
                fmt_opt(latency(fetch, "p99_ms"), 2)
            ),
            "as fast as with 100,000".into(),
        );
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_get_thousands_separators() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(999.4), "999");
        assert_eq!(rate(47_000.0), "47,000");
        assert_eq!(rate(1_234_567.0), "1,234,567");
    }

    #[test]
    fn a_directory_of_results_renders() {
        let dir = tempdir();
        let fetch = json!({"concurrency": 64, "runs_rps": [50000.0],
            "median": {"rps": 50000.0, "error_count": 0, "latency": {"p50_ms": 1.0, "p99_ms": 5.0}, "cpu": {}}});
        let etcd = json!({"concurrency": 64, "runs_rps": [5000.0], "median": {"rps": 5000.0, "latency": {}}});
        std::fs::write(dir.join("cluster-fetch10-follower.json"), fetch.to_string()).expect("test");
        std::fs::write(dir.join("single-fetch10.json"), fetch.to_string()).expect("test");
        std::fs::write(dir.join("etcd-range-follower.json"), etcd.to_string()).expect("test");
        std::fs::write(dir.join("failover-1.json"), json!({"first_write_ms": 1500.0}).to_string()).expect("test");
        let args = ReportArgs { dir: dir.clone(), md: dir.join("tables.md"), json: dir.join("results.json") };
        run(args).expect("test");
        let md = std::fs::read_to_string(dir.join("tables.md")).expect("test");
        assert!(md.contains("| fetch, 10-instance app | 1 node | 64 | 50,000 |"), "{md}");
        assert!(md.contains("10.00×"), "{md}");
        assert!(md.contains("| 1 | 1500 | 1500 | met |"), "{md}");
        std::fs::remove_dir_all(dir).expect("test");
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("discovery-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test");
        dir
    }
}
