//! `polls`: long-poll waiters spread over the nodes; time from a write's acknowledgement to each answer.
//!
//! Each waiter owns a keep-alive connection to one node (round-robin over `--nodes`). A round: every waiter
//! sends `/discovery/polls` with its cursor, the coordinator waits until every request is out plus
//! `--settle`, registers one new instance of the app through `--write-node`, takes the time of the
//! acknowledgement, and every waiter reports when its answer arrived; the answer's cursor is the next
//! round's. An answer that arrives before the write was sent is counted as an error; one that arrives
//! between the write and its acknowledgement counts as 0 ms (and is counted). Because waking many polls
//! on the leader can delay the write's own answer, the time from the write being *sent* is reported too.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::{self, Conn, Expect, Url};
use crate::load::{histogram_deltas, register_form, scrape_all, HistogramDelta};
use crate::stats::{self, parse_duration, LatencySummary};
use crate::BoxError;

/// `discovery-bench polls`.
#[derive(Debug, clap::Args)]
pub struct PollsArgs {
    /// Nodes (HOST:PORT) the waiters are spread over, round-robin. Repeat or comma-separate.
    #[arg(long = "nodes", required = true)]
    pub nodes: Vec<String>,
    /// Node (HOST:PORT) that receives the writes.
    #[arg(long)]
    pub write_node: String,
    /// Long polls waiting at once.
    #[arg(long, default_value_t = 1000)]
    pub waiters: usize,
    /// Writes (each answered by every waiter).
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Env of the watched app.
    #[arg(long, default_value = "bench")]
    pub env: String,
    /// The watched app.
    #[arg(long, default_value = "bench.poll")]
    pub appid: String,
    /// Pause between the last poll sent and the write, so that every poll is waiting on its node.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Longest wait for the answers of one round (and for the polls to be sent).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub round_timeout: Duration,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct RoundReport {
    round: u32,
    answered: usize,
    missing: usize,
    write_ack_ms: f64,
    p50_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct NodeReport {
    node: String,
    latency: LatencySummary,
}

#[derive(Debug, Serialize)]
struct PollsReport {
    kind: String,
    name: String,
    waiters: usize,
    rounds: u32,
    nodes: Vec<String>,
    write_node: String,
    latency: LatencySummary,
    since_write_sent: LatencySummary,
    write_ack: LatencySummary,
    per_node: Vec<NodeReport>,
    per_round: Vec<RoundReport>,
    errors: BTreeMap<String, u64>,
    answered_before_ack: u64,
    /// Per node: the server histograms observed during the rounds (e.g. long-poll wake latency).
    server_metrics: BTreeMap<String, BTreeMap<String, HistogramDelta>>,
}

struct Answer {
    waiter: usize,
    at: Instant,
    outcome: Result<i64, String>,
}

/// `discovery-bench polls`.
pub async fn run(args: PollsArgs) -> Result<(), BoxError> {
    let nodes = stats::split_list(&args.nodes);
    if nodes.is_empty() || args.waiters == 0 {
        return Err("need --nodes and --waiters > 0".into());
    }
    let write_url = Url::parse(&format!("http://{}/discovery/register", args.write_node))?;
    let mut writer = Conn::connect(write_url.addr).await?;
    let write = |hostname: String| {
        client::request(
            &Method::POST,
            &write_url.authority,
            &write_url.target,
            Some(client::FORM),
            Bytes::from(register_form(&args.env, &args.appid, &hostname)),
        )
    };
    let (status, body) = writer.send(write("poll-base".into())?).await?;
    client::classify(Expect::Discovery, status, &body).map_err(|e| format!("initial register: {e}"))?;
    let cursor = consistent_cursor(&nodes, &args.env, &args.appid).await?;

    let (round_tx, round_rx) = watch::channel(None::<u32>);
    let (answer_tx, mut answer_rx) = mpsc::unbounded_channel::<Answer>();
    let armed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(args.waiters);
    for waiter in 0..args.waiters {
        let node = &nodes[waiter % nodes.len()];
        let url = Url::parse(&format!("http://{node}/discovery/polls"))?;
        let conn = Conn::connect(url.addr).await.map_err(|e| format!("waiter {waiter} to {node}: {e}"))?;
        let spec =
            WaiterSpec { waiter, url, env: args.env.clone(), appid: args.appid.clone(), rounds: args.rounds, cursor };
        tasks.push(tokio::spawn(waiter_loop(spec, conn, round_rx.clone(), Arc::clone(&armed), answer_tx.clone())));
    }
    drop(answer_tx);

    let mut all = stats::histogram()?;
    let mut since_sent = stats::histogram()?;
    let mut write_ack = stats::histogram()?;
    let mut per_node: Vec<_> = nodes.iter().map(|_| stats::histogram()).collect::<Result<_, _>>()?;
    let mut per_round = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut answered_before_ack = 0;
    let metrics_from = scrape_all(&nodes).await;
    let rounds_started = Instant::now();
    for round in 0..args.rounds {
        armed.store(0, Ordering::SeqCst);
        round_tx.send_replace(Some(round));
        let arm_deadline = Instant::now() + args.round_timeout;
        while armed.load(Ordering::SeqCst) < args.waiters && Instant::now() < arm_deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(args.settle).await;
        // Anything already answered was not woken by our write.
        while let Ok(early) = answer_rx.try_recv() {
            let class = match early.outcome {
                Ok(_) => "answered before the write".to_string(),
                Err(e) => e,
            };
            *errors.entry(class).or_default() += 1;
        }
        let write_sent = Instant::now();
        let (status, body) = writer.send(write(format!("poll-r{round}"))?).await?;
        let ack = Instant::now();
        stats::record(&mut write_ack, ack.duration_since(write_sent));
        client::classify(Expect::Discovery, status, &body).map_err(|e| format!("round {round} write: {e}"))?;
        let mut round_hist = stats::histogram()?;
        let mut answered = 0;
        let answers_deadline = ack + args.round_timeout;
        while answered < args.waiters {
            let next = tokio::time::timeout_at(answers_deadline, answer_rx.recv()).await;
            let Ok(Some(answer)) = next else { break };
            answered += 1;
            match answer.outcome {
                Ok(_) => {
                    let latency = answer.at.saturating_duration_since(ack);
                    if answer.at < ack {
                        answered_before_ack += 1;
                    }
                    stats::record(&mut all, latency);
                    stats::record(&mut since_sent, answer.at.saturating_duration_since(write_sent));
                    stats::record(&mut round_hist, latency);
                    stats::record(&mut per_node[answer.waiter % nodes.len()], latency);
                }
                Err(class) => *errors.entry(class).or_default() += 1,
            }
        }
        let summary = LatencySummary::of(&round_hist);
        let missing = args.waiters - answered;
        println!(
            "polls round {round}: write acknowledged in {:.2} ms; {answered} answers, p50 {:.2} ms, last {:.2} ms \
             after the acknowledgement; {missing} missing",
            ack.duration_since(write_sent).as_secs_f64() * 1000.0,
            summary.p50_ms,
            summary.max_ms
        );
        per_round.push(RoundReport {
            round,
            answered,
            missing,
            write_ack_ms: stats::round3(ack.duration_since(write_sent).as_secs_f64() * 1000.0),
            p50_ms: summary.p50_ms,
            max_ms: summary.max_ms,
        });
        if missing > 0 {
            *errors.entry("no answer within the round timeout".into()).or_default() += missing as u64;
            break;
        }
    }
    let rounds_seconds = rounds_started.elapsed().as_secs_f64();
    let metrics_until = scrape_all(&nodes).await;
    let server_metrics = nodes
        .iter()
        .zip(metrics_from.iter().zip(&metrics_until))
        .map(|(node, (from, until))| (node.clone(), histogram_deltas(from, until, rounds_seconds)))
        .collect();
    round_tx.send_replace(None);
    for task in tasks {
        task.abort();
    }
    let report = PollsReport {
        kind: "polls".into(),
        name: "long polls".into(),
        waiters: args.waiters,
        rounds: args.rounds,
        write_node: args.write_node.clone(),
        latency: LatencySummary::of(&all),
        since_write_sent: LatencySummary::of(&since_sent),
        write_ack: LatencySummary::of(&write_ack),
        per_node: nodes
            .iter()
            .zip(&per_node)
            .map(|(node, hist)| NodeReport { node: node.clone(), latency: LatencySummary::of(hist) })
            .collect(),
        nodes,
        per_round,
        errors,
        answered_before_ack,
        server_metrics,
    };
    println!(
        "polls: {} answers, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms after the write's acknowledgement \
         ({} before it); p50 {:.2} ms, p99 {:.2} ms after the write was sent; errors {:?}",
        report.latency.count,
        report.latency.p50_ms,
        report.latency.p99_ms,
        report.latency.max_ms,
        report.answered_before_ack,
        report.since_write_sent.p50_ms,
        report.since_write_sent.p99_ms,
        report.errors
    );
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    Ok(())
}

/// The app's cursor, read linearizably on every node (they must agree).
async fn consistent_cursor(nodes: &[String], env: &str, appid: &str) -> Result<i64, BoxError> {
    let mut cursors = Vec::new();
    for node in nodes {
        let api = client::discovery_client(node, Duration::from_secs(5))?;
        let info = api.fetch_consistent(env, appid, None, 1).await?;
        cursors.push(info.latest_timestamp);
    }
    cursors.dedup();
    match cursors.as_slice() {
        [cursor] => Ok(*cursor),
        _ => Err(format!("nodes disagree on the cursor of {appid}: {cursors:?}").into()),
    }
}

struct WaiterSpec {
    waiter: usize,
    url: Url,
    env: String,
    appid: String,
    rounds: u32,
    cursor: i64,
}

async fn waiter_loop(
    spec: WaiterSpec,
    mut conn: Conn,
    mut rounds: watch::Receiver<Option<u32>>,
    armed: Arc<AtomicUsize>,
    answers: mpsc::UnboundedSender<Answer>,
) {
    let mut cursor = spec.cursor;
    let mut done = 0;
    while done < spec.rounds {
        if rounds.changed().await.is_err() {
            return;
        }
        let Some(round) = *rounds.borrow_and_update() else { return };
        done = round + 1;
        let target = format!(
            "/discovery/polls?env={}&hostname=waiter-{}&appid={}&latest_timestamp={cursor}",
            spec.env, spec.waiter, spec.appid
        );
        let (at, outcome) = match poll_once(&mut conn, &spec, &target, &armed).await {
            Ok((at, status, body)) => (at, new_cursor(&spec.appid, status, &body)),
            Err(class) => (Instant::now(), Err(class)),
        };
        if let Ok(next) = &outcome {
            cursor = *next;
        }
        if answers.send(Answer { waiter: spec.waiter, at, outcome }).is_err() {
            return;
        }
    }
}

/// Send one poll and read the whole answer; the instant the answer was complete comes with it.
async fn poll_once(
    conn: &mut Conn,
    spec: &WaiterSpec,
    target: &str,
    armed: &AtomicUsize,
) -> Result<(Instant, StatusCode, Bytes), String> {
    let mut request = client::request(&Method::GET, &spec.url.authority, target, None, Bytes::new())
        .map_err(|e| format!("request: {e}"))?;
    // kratos' deadline header: the node answers -304 after 25 s at the latest.
    request.headers_mut().insert("x1-bmspy-timeout", hyper::header::HeaderValue::from_static("25000"));
    // The request is handed to the connection task when `send` is first polled; count it as armed then.
    let send = conn.send(request);
    tokio::pin!(send);
    let first = futures::poll!(&mut send);
    armed.fetch_add(1, Ordering::SeqCst);
    let (status, body) = match first {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => match tokio::time::timeout(Duration::from_secs(30), send).await {
            Ok(result) => result,
            Err(_) => return Err("poll timeout".into()),
        },
    }
    .map_err(|e| format!("io: {e}"))?;
    Ok((Instant::now(), status, body))
}

/// Only what the waiter needs of a polls answer; the instances are skipped without being built.
#[derive(Deserialize)]
struct PollsAnswer {
    data: HashMap<String, AppCursor>,
}

#[derive(Deserialize)]
struct AppCursor {
    latest_timestamp: i64,
}

/// The app's new cursor from a polls answer.
fn new_cursor(appid: &str, status: StatusCode, body: &[u8]) -> Result<i64, String> {
    client::classify(Expect::Discovery, status, body)?;
    let answer: PollsAnswer = serde_json::from_slice(body).map_err(|e| format!("bad answer: {e}"))?;
    answer.data.get(appid).map(|app| app.latest_timestamp).ok_or_else(|| "answer without the app".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_read_from_a_polls_answer() {
        let body =
            br#"{"code":0,"message":"0","data":{"a.b":{"instances":{"z1":[{"hostname":"h","latest_timestamp":1}]},
            "latest_timestamp":42}},"error":{"-404":null}}"#;
        assert_eq!(new_cursor("a.b", StatusCode::OK, body), Ok(42));
        assert!(new_cursor("other", StatusCode::OK, body).is_err());
        assert!(new_cursor("a.b", StatusCode::OK, br#"{"code":-304,"message":"-304"}"#).is_err());
    }
}
