//! `http` and `populate`: closed-loop load at a fixed concurrency.
//!
//! Each client owns one keep-alive connection and sends its next request as soon as the previous answer is
//! read. In duration mode the clients run `--warmup` then `--duration`; only answers received inside the
//! measured window count (throughput = successes in the window / window). In count mode exactly
//! `--requests` requests are sent, all measured. Both modes stop at `--max-time` whatever happens, and a
//! duration run never sends more than `--max-requests`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::client::{self, Conn, Expect, Url};
use crate::stats::{self, parse_duration, round3, CpuSnapshot, CpuUsage, LatencySummary};
use crate::template::Template;
use crate::BoxError;

/// Options shared by `http` and `populate`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOpts {
    /// Concurrent clients, one keep-alive connection each.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Measured time of a run (duration mode).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured load before the measured window of each run (duration mode).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Count mode: send exactly this many requests, all measured, no warm-up.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Hard bound on the wall time of one run, whatever the mode.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub max_time: Duration,
    /// Hard bound on the requests sent by one run in duration mode.
    #[arg(long, default_value_t = 20_000_000)]
    pub max_requests: u64,
    /// Per-request timeout (a timed-out request counts as an error and its connection is replaced).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// First request number `n` (templates).
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Runs of the same load; the run with the median throughput is reported, with every run's rate.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Pace the whole load at this many requests per second (request i starts no earlier than i / rate
    /// after the start); 0 is a closed loop (each client sends as soon as its last answer came).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// A discovery node (HOST:PORT) whose Raft last_log_index is read before and after all runs.
    #[arg(long = "raft-status")]
    pub raft_status: Vec<String>,
    /// A server process whose CPU use is measured during each run (repeatable).
    #[arg(long = "cpu-pid")]
    pub cpu_pids: Vec<u32>,
    /// A discovery node (HOST:PORT) whose Prometheus histograms (`/metrics`: batch size, commit latency,
    /// fdatasync, ...) are read at both ends of each measured window (repeatable).
    #[arg(long = "metrics")]
    pub metrics: Vec<String>,
}

/// `discovery-bench http`.
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Target URL (http://127.0.0.1:PORT/path?query, placeholders allowed); client i uses URL i mod count.
    /// Repeat the flag or separate with commas.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Request body template (`{n}`, `{n%K}`, `{n/K}`, `{b64n}`).
    #[arg(long)]
    pub body_template: Option<String>,
    /// Content type of the body (default: form encoding when there is a body).
    #[arg(long)]
    pub content_type: Option<String>,
    /// What counts as a success.
    #[arg(long, value_enum, default_value = "discovery")]
    pub expect: Expect,
    /// Name of the scenario, copied into the output.
    #[arg(long, default_value = "http")]
    pub name: String,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Load options.
    #[command(flatten)]
    pub load: LoadOpts,
}

/// `discovery-bench populate`.
#[derive(Debug, clap::Args)]
pub struct PopulateArgs {
    /// Register URL(s) (http://127.0.0.1:PORT/discovery/register); client i uses URL i mod count.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// Instances to register (hostnames `<host-prefix><n>`, n from --start).
    #[arg(long)]
    pub instances: u64,
    /// Instances per app (appids `<app-prefix><n / per-app>`).
    #[arg(long, default_value_t = 100)]
    pub per_app: u64,
    /// Prefix of the appids.
    #[arg(long, default_value = "bench.pop")]
    pub app_prefix: String,
    /// Prefix of the hostnames.
    #[arg(long, default_value = "pop")]
    pub host_prefix: String,
    /// Env of the instances.
    #[arg(long, default_value = "bench")]
    pub env: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// First instance number.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Hard bound on the wall time.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub max_time: Duration,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The register form used by every write scenario: two addresses, a version and a little metadata, about
/// 260 bytes (an instance of the Go SDK looks like this).
pub fn register_form(env: &str, appid: &str, hostname: &str) -> String {
    format!(
        "zone=z1&env={env}&appid={appid}&hostname={hostname}&status=1\
         &addrs=grpc%3A%2F%2F10.0.0.1%3A9000&addrs=http%3A%2F%2F10.0.0.1%3A8000&version=v1.2.3\
         &metadata=%7B%22weight%22%3A%2210%22%2C%22cluster%22%3A%22c1%22%2C%22color%22%3A%22blue%22%7D"
    )
}

/// One run's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunResult {
    /// Successes in the measured window.
    pub ok: u64,
    /// Failures in the measured window, by class.
    pub errors: BTreeMap<String, u64>,
    /// Sum of `errors`.
    pub error_count: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Successes per second in the window.
    pub rps: f64,
    /// Latency of the successes in the window.
    pub latency: LatencySummary,
    /// CPU used during the window.
    pub cpu: CpuUsage,
    /// Successes including the warm-up.
    pub ok_total: u64,
    /// Per node (`--metrics`), per server histogram: what it recorded during the window.
    pub server_metrics: BTreeMap<String, BTreeMap<String, HistogramDelta>>,
}

/// What one Prometheus histogram (or summary) recorded during a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistogramDelta {
    /// Observations.
    pub count: f64,
    /// Observations per second.
    pub per_second: f64,
    /// Mean observed value (seconds for latencies).
    pub mean: f64,
}

/// Raft log growth on one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftGrowth {
    /// HOST:PORT.
    pub node: String,
    /// last_log_index before the first run.
    pub before: u64,
    /// last_log_index after the last run.
    pub after: u64,
}

/// Raft log growth during a scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftDelta {
    /// Each node read.
    pub nodes: Vec<RaftGrowth>,
    /// Successful requests of all runs, warm-ups included.
    pub requests_ok: u64,
    /// Most entries added on a node, divided by `requests_ok`.
    pub entries_per_request: f64,
    /// `requests_ok` per entry added (the batching factor), when any entry was added.
    pub requests_per_entry: Option<f64>,
}

/// What `http` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpReport {
    /// Always `http`.
    pub kind: String,
    /// Scenario name.
    pub name: String,
    /// Method.
    pub method: String,
    /// URL templates.
    pub urls: Vec<String>,
    /// Body template.
    pub body_template: Option<String>,
    /// Clients.
    pub concurrency: usize,
    /// Load generator threads.
    pub threads: usize,
    /// `duration` or `count`.
    pub mode: String,
    /// Warm-up of each run (duration mode).
    pub warmup_s: f64,
    /// Requested window or count.
    pub duration_s: f64,
    /// Requested count (count mode).
    pub requests: Option<u64>,
    /// Throughput of every run, in order.
    pub runs_rps: Vec<f64>,
    /// The run with the median throughput.
    pub median: RunResult,
    /// Raft log growth, when asked for.
    pub raft: Option<RaftDelta>,
}

struct Job {
    method: Method,
    targets: Vec<(Url, Template)>,
    body: Option<Template>,
    content_type: Option<String>,
    expect: Expect,
    timeout: Duration,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    measure_until: Instant,
    stop_issuing: Instant,
    limit: u64,
    first_n: u64,
    /// Requests per second of the whole load (0: unpaced).
    rate: f64,
}

struct WorkerOut {
    hist: Histogram<u64>,
    ok: u64,
    ok_total: u64,
    errors: BTreeMap<String, u64>,
    last_done: Instant,
}

/// `discovery-bench http`.
pub async fn run_http(args: HttpArgs) -> Result<(), BoxError> {
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())?;
    let content_type = args.content_type.clone().or_else(|| args.body_template.as_ref().map(|_| client::FORM.into()));
    let job = build_job(method, &args.urls, args.body_template.as_deref(), content_type, args.expect, &args.load)?;
    let report = run_scenario(&args.name, job, &args.urls, args.body_template.clone(), &args.load).await?;
    print_summary(&report);
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    Ok(())
}

/// `discovery-bench populate`: fails when any register fails.
pub async fn run_populate(args: PopulateArgs) -> Result<(), BoxError> {
    if args.per_app == 0 {
        return Err("--per-app must be positive".into());
    }
    let body = register_form(
        &args.env,
        &format!("{}{{n/{}}}", args.app_prefix, args.per_app),
        &format!("{}{{n}}", args.host_prefix),
    );
    let load = LoadOpts {
        concurrency: args.concurrency,
        duration: Duration::ZERO,
        warmup: Duration::ZERO,
        requests: Some(args.instances),
        max_time: args.max_time,
        max_requests: args.instances,
        timeout: Duration::from_secs(30),
        start: args.start,
        repeat: 1,
        rate: 0.0,
        raft_status: Vec::new(),
        cpu_pids: Vec::new(),
        metrics: Vec::new(),
    };
    let job = build_job(Method::POST, &args.urls, Some(&body), Some(client::FORM.into()), Expect::Discovery, &load)?;
    let name = format!("populate {} instances", args.instances);
    let report = run_scenario(&name, job, &args.urls, Some(body), &load).await?;
    print_summary(&report);
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    if report.median.error_count > 0 || report.median.ok != args.instances {
        return Err(format!(
            "populate: {} of {} registers succeeded, errors {:?}",
            report.median.ok, args.instances, report.median.errors
        )
        .into());
    }
    Ok(())
}

fn build_job(
    method: Method,
    urls: &[String],
    body: Option<&str>,
    content_type: Option<String>,
    expect: Expect,
    load: &LoadOpts,
) -> Result<Job, BoxError> {
    let urls = stats::split_list(urls);
    if urls.is_empty() {
        return Err("no --url".into());
    }
    if load.concurrency == 0 {
        return Err("--concurrency must be positive".into());
    }
    let mut targets = Vec::new();
    for url in &urls {
        let parsed = Url::parse(url)?;
        let target = Template::parse(&parsed.target)?;
        targets.push((parsed, target));
    }
    let body = body.map(Template::parse).transpose()?;
    Ok(Job { method, targets, body, content_type, expect, timeout: load.timeout })
}

async fn run_scenario(
    name: &str,
    job: Job,
    urls: &[String],
    body_template: Option<String>,
    load: &LoadOpts,
) -> Result<HttpReport, BoxError> {
    let job = Arc::new(job);
    let raft_before = read_log_indexes(&load.raft_status).await?;
    let mut runs = Vec::new();
    let mut next_n = load.start;
    for _ in 0..load.repeat.max(1) {
        let (result, issued) = run_once(&job, load, next_n).await?;
        next_n += issued;
        runs.push(result);
    }
    let raft = match raft_before {
        Some(before) => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let after = read_log_indexes(&load.raft_status).await?.unwrap_or_default();
            let requests_ok: u64 = runs.iter().map(|r| r.ok_total).sum();
            let nodes: Vec<RaftGrowth> = load
                .raft_status
                .iter()
                .zip(before.iter().zip(after.iter()))
                .map(|(node, (b, a))| RaftGrowth { node: node.clone(), before: *b, after: *a })
                .collect();
            let most = nodes.iter().map(|g| g.after.saturating_sub(g.before)).max().unwrap_or(0);
            Some(RaftDelta {
                nodes,
                requests_ok,
                entries_per_request: if requests_ok == 0 { 0.0 } else { most as f64 / requests_ok as f64 },
                requests_per_entry: (most > 0).then(|| round3(requests_ok as f64 / most as f64)),
            })
        }
        None => None,
    };
    let runs_rps: Vec<f64> = runs.iter().map(|r| r.rps).collect();
    let median_rps = stats::median(&runs_rps).unwrap_or(0.0);
    let median = runs.iter().find(|r| r.rps == median_rps).cloned().unwrap_or_default();
    let count_mode = load.requests.is_some();
    Ok(HttpReport {
        kind: "http".into(),
        name: name.to_string(),
        method: job.method.to_string(),
        urls: urls.to_vec(),
        body_template,
        concurrency: load.concurrency,
        threads: tokio::runtime::Handle::current().metrics().num_workers(),
        mode: if count_mode { "count" } else { "duration" }.into(),
        warmup_s: if count_mode { 0.0 } else { load.warmup.as_secs_f64() },
        duration_s: load.duration.as_secs_f64(),
        requests: load.requests,
        runs_rps,
        median,
        raft,
    })
}

/// One run; also returns how many request numbers it used.
async fn run_once(job: &Arc<Job>, load: &LoadOpts, first_n: u64) -> Result<(RunResult, u64), BoxError> {
    let start = Instant::now();
    let hard_stop = start + load.max_time;
    let window = match load.requests {
        Some(count) => Window {
            start,
            measure_from: start,
            measure_until: hard_stop,
            stop_issuing: hard_stop,
            limit: count,
            first_n,
            rate: load.rate,
        },
        None => {
            let measure_from = (start + load.warmup).min(hard_stop);
            let measure_until = (measure_from + load.duration).min(hard_stop);
            Window {
                start,
                measure_from,
                measure_until,
                stop_issuing: measure_until,
                limit: load.max_requests,
                first_n,
                rate: load.rate,
            }
        }
    };
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(load.concurrency);
    for id in 0..load.concurrency {
        let hist = stats::histogram()?;
        workers.push(tokio::spawn(worker(id, Arc::clone(job), window, Arc::clone(&issued), hist)));
    }
    let pids = load.cpu_pids.clone();
    tokio::time::sleep_until(window.measure_from).await;
    let cpu_from = CpuSnapshot::take(&pids);
    let metrics_from = scrape_all(&load.metrics).await;
    let count_mode = load.requests.is_some();
    let mut cpu_until = None;
    let mut metrics_until = None;
    if !count_mode {
        tokio::time::sleep_until(window.measure_until).await;
        cpu_until = Some(CpuSnapshot::take(&pids));
        metrics_until = Some(scrape_all(&load.metrics).await);
    }
    let mut hist = stats::histogram()?;
    let mut result = RunResult::default();
    let mut last_done = start;
    for handle in workers {
        let out = handle.await?;
        hist.add(&out.hist)?;
        result.ok += out.ok;
        result.ok_total += out.ok_total;
        for (class, count) in out.errors {
            *result.errors.entry(class).or_default() += count;
        }
        last_done = last_done.max(out.last_done);
    }
    let cpu_until = cpu_until.unwrap_or_else(|| CpuSnapshot::take(&pids));
    result.cpu = cpu_from.usage_until(&cpu_until);
    let metrics_until = match metrics_until {
        Some(m) => m,
        None => scrape_all(&load.metrics).await,
    };
    result.error_count = result.errors.values().sum();
    let seconds = if count_mode {
        last_done.duration_since(window.start).as_secs_f64()
    } else {
        window.measure_until.duration_since(window.measure_from).as_secs_f64()
    };
    result.seconds = round3(seconds);
    result.rps = if seconds > 0.0 { (result.ok as f64 / seconds).round() } else { 0.0 };
    result.latency = LatencySummary::of(&hist);
    result.server_metrics = load
        .metrics
        .iter()
        .zip(metrics_from.iter().zip(&metrics_until))
        .map(|(node, (from, until))| (node.clone(), histogram_deltas(from, until, seconds)))
        .collect();
    let used = issued.load(Ordering::Relaxed).min(window.limit);
    Ok((result, used))
}

async fn worker(id: usize, job: Arc<Job>, window: Window, issued: Arc<AtomicU64>, hist: Histogram<u64>) -> WorkerOut {
    let (url, target) = &job.targets[id % job.targets.len()];
    let constant_target = target.is_constant().then(|| target.render(0));
    let constant_body = match &job.body {
        Some(body) if body.is_constant() => Some(Bytes::from(body.render(0))),
        _ => None,
    };
    let mut out = WorkerOut { hist, ok: 0, ok_total: 0, errors: BTreeMap::new(), last_done: window.start };
    let mut conn: Option<Conn> = None;
    let mut scratch = String::new();
    loop {
        if Instant::now() >= window.stop_issuing {
            break;
        }
        let i = issued.fetch_add(1, Ordering::Relaxed);
        if i >= window.limit {
            break;
        }
        if window.rate > 0.0 {
            let due = window.start + Duration::from_secs_f64(i as f64 / window.rate);
            if due >= window.stop_issuing {
                break;
            }
            tokio::time::sleep_until(due).await;
        }
        let n = window.first_n + i;
        let path = match &constant_target {
            Some(path) => path.clone(),
            None => target.render(n),
        };
        let body = match (&constant_body, &job.body) {
            (Some(bytes), _) => bytes.clone(),
            (None, Some(template)) => {
                scratch.clear();
                template.render_into(n, &mut scratch);
                Bytes::copy_from_slice(scratch.as_bytes())
            }
            (None, None) => Bytes::new(),
        };
        let outcome = exchange(&job, url, &path, body, &mut conn, window.stop_issuing.max(window.measure_until)).await;
        let done = Instant::now();
        out.last_done = done;
        let measured = done >= window.measure_from && done <= window.measure_until;
        match outcome {
            Ok(latency) => {
                out.ok_total += 1;
                if measured {
                    out.ok += 1;
                    stats::record(&mut out.hist, latency);
                }
            }
            Err(class) => {
                if measured {
                    *out.errors.entry(class).or_default() += 1;
                }
                if conn.is_none() {
                    // Do not spin on a server that refuses connections.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    out
}

/// One request on the client's connection (opened on demand); the latency of a success or the error class.
async fn exchange(
    job: &Job,
    url: &Url,
    path: &str,
    body: Bytes,
    conn: &mut Option<Conn>,
    deadline: Instant,
) -> Result<Duration, String> {
    let connection = match conn {
        Some(connection) => connection,
        None => {
            let bound = job.timeout.min(deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1));
            match tokio::time::timeout(bound, Conn::connect(url.addr)).await {
                Ok(Ok(connection)) => conn.insert(connection),
                Ok(Err(err)) => return Err(format!("connect: {}", short(&err.to_string()))),
                Err(_) => return Err("connect: timeout".into()),
            }
        }
    };
    let request = client::request(&job.method, &url.authority, path, job.content_type.as_deref(), body)
        .map_err(|e| format!("request: {e}"))?;
    let sent = Instant::now();
    let answer = tokio::time::timeout(job.timeout, connection.send(request)).await;
    let latency = sent.elapsed();
    match answer {
        Ok(Ok((status, body))) => client::classify(job.expect, status, &body).map(|()| latency),
        Ok(Err(err)) => {
            *conn = None;
            Err(format!("io: {}", short(&err.to_string())))
        }
        Err(_) => {
            *conn = None;
            Err("timeout".into())
        }
    }
}

fn short(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Unlabelled `_sum` and `_count` samples of each node's `/metrics` (empty for a node that does not answer).
pub async fn scrape_all(nodes: &[String]) -> Vec<BTreeMap<String, f64>> {
    let mut all = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut samples = BTreeMap::new();
        if let Ok(url) = Url::parse(&format!("http://{node}/metrics")) {
            if let Ok((_, body)) = client::once(Method::GET, &url, None, Bytes::new(), Duration::from_secs(2)).await {
                samples = parse_sums_and_counts(&String::from_utf8_lossy(&body));
            }
        }
        all.push(samples);
    }
    all
}

/// `name value` lines of the Prometheus text format whose name ends in `_sum` or `_count` (no labels).
/// Hand-written on purpose (issue 13 asked): the text-format parsers on crates.io (prometheus-parse and
/// its forks) are forks of forks made for lack of maintenance, and this reads one line shape of our own
/// server (its test below pins it).
fn parse_sums_and_counts(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| !name.contains('{') && (name.ends_with("_sum") || name.ends_with("_count")))
        .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse::<f64>().ok()?)))
        .collect()
}

/// For every histogram with observations in the window: count, rate and mean.
pub fn histogram_deltas(
    from: &BTreeMap<String, f64>,
    until: &BTreeMap<String, f64>,
    seconds: f64,
) -> BTreeMap<String, HistogramDelta> {
    let mut deltas = BTreeMap::new();
    for (name, count_after) in until {
        let Some(base) = name.strip_suffix("_count") else { continue };
        let count = count_after - from.get(name).copied().unwrap_or(0.0);
        let sum_name = format!("{base}_sum");
        let sum = until.get(&sum_name).copied().unwrap_or(0.0) - from.get(&sum_name).copied().unwrap_or(0.0);
        if count > 0.0 {
            let per_second = if seconds > 0.0 { count / seconds } else { 0.0 };
            deltas
                .insert(base.to_string(), HistogramDelta { count, per_second: round3(per_second), mean: sum / count });
        }
    }
    deltas
}

/// last_log_index of each node, or `None` when no node was given.
async fn read_log_indexes(nodes: &[String]) -> Result<Option<Vec<u64>>, BoxError> {
    if nodes.is_empty() {
        return Ok(None);
    }
    let mut indexes = Vec::new();
    for node in nodes {
        let status = client::discovery_client(node, Duration::from_secs(5))?.status_of(node).await?;
        let index = status.last_log_index.ok_or_else(|| format!("{node}: /admin/status has no last_log_index"))?;
        indexes.push(index);
    }
    Ok(Some(indexes))
}

fn print_summary(report: &HttpReport) {
    let m = &report.median;
    let runs: Vec<String> = report.runs_rps.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "{}: {:.0} ok/s over {:.1}s (runs: {}), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {} {:?}, \
         cpu server {:.2} client {} machine {}",
        report.name,
        m.rps,
        m.seconds,
        runs.join(", "),
        m.latency.p50_ms,
        m.latency.p99_ms,
        m.latency.max_ms,
        m.error_count,
        m.errors,
        m.cpu.server_cores,
        m.cpu.client_cores.map_or("?".into(), |c| format!("{c:.2}")),
        m.cpu.machine_busy_cores.map_or("?".into(), |c| format!("{c:.2}")),
    );
    if let Some(raft) = &report.raft {
        println!(
            "{}: raft log +{:?} entries for {} successful requests ({:.6} entries/request)",
            report.name,
            raft.nodes.iter().map(|g| g.after.saturating_sub(g.before)).collect::<Vec<_>>(),
            raft.requests_ok,
            raft.entries_per_request
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_deltas_from_two_scrapes() {
        let from = parse_sums_and_counts("# HELP x\nx_sum 1.0\nx_count 10\ny_count 3\nz{a=\"b\"}_count 4\n");
        let until = parse_sums_and_counts("x_sum 3.0\nx_count 20\ny_count 3\ny_sum 0\n");
        let deltas = histogram_deltas(&from, &until, 2.0);
        assert_eq!(deltas.len(), 1, "{deltas:?}");
        let x = &deltas["x"];
        assert_eq!((x.count, x.per_second, x.mean), (10.0, 5.0, 0.2));
    }
}
