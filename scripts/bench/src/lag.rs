//! `lag`: sample the leader's `/admin/status` and report how far each learner (read replica) lags it, in
//! entries and milliseconds, over a window (run next to a write load).
//!
//! The figures are the leader's own view: `lag_entries` is its applied index minus what it has replicated to
//! the member, `lag_ms` how long ago the leader applied the oldest entry the member is missing (about 10 ms
//! resolution: the leader's applied timeline keeps a sample at most every 10 ms).

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::client::{self};
use crate::stats::{self, parse_duration};
use crate::BoxError;

/// `discovery-bench lag`.
#[derive(Debug, clap::Args)]
pub struct LagArgs {
    /// The leader (HOST:PORT).
    #[arg(long)]
    pub node: String,
    /// Wait this long before sampling (so that a load started alongside is running).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub after: Duration,
    /// Sample for this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time between two samples.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub every: Duration,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
struct LagReport {
    kind: String,
    samples: usize,
    lag_ms_p50: Option<f64>,
    lag_ms_p99: Option<f64>,
    lag_ms_max: Option<f64>,
    lag_entries_p50: Option<f64>,
    lag_entries_p99: Option<f64>,
    lag_entries_max: Option<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// `discovery-bench lag`.
pub async fn run(args: LagArgs) -> Result<(), BoxError> {
    tokio::time::sleep(args.after).await;
    let api = client::discovery_client(&args.node, Duration::from_secs(2))?;
    let until = Instant::now() + args.duration;
    let (mut ms, mut entries) = (Vec::new(), Vec::new());
    while Instant::now() < until {
        let next = Instant::now() + args.every;
        // The raw status: the learners' lag fields are not part of the typed member.
        if let Ok(status) = api.status_json_of(&args.node).await {
            let members = status.get("membership").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
            for member in
                members.iter().filter(|m| m.get("role").and_then(serde_json::Value::as_str) == Some("learner"))
            {
                if let Some(v) = member.get("lag_ms").and_then(serde_json::Value::as_f64) {
                    ms.push(v);
                }
                if let Some(v) = member.get("lag_entries").and_then(serde_json::Value::as_f64) {
                    entries.push(v);
                }
            }
        }
        tokio::time::sleep_until(next).await;
    }
    ms.sort_by(f64::total_cmp);
    entries.sort_by(f64::total_cmp);
    let report = LagReport {
        kind: "lag".into(),
        samples: ms.len(),
        lag_ms_p50: percentile(&ms, 50.0),
        lag_ms_p99: percentile(&ms, 99.0),
        lag_ms_max: ms.last().copied(),
        lag_entries_p50: percentile(&entries, 50.0),
        lag_entries_p99: percentile(&entries, 99.0),
        lag_entries_max: entries.last().copied(),
    };
    eprintln!(
        "learner lag over {} samples: p50 {:?} ms / p99 {:?} ms / max {:?} ms; entries p50 {:?} / p99 {:?}",
        report.samples,
        report.lag_ms_p50,
        report.lag_ms_p99,
        report.lag_ms_max,
        report.lag_entries_p50,
        report.lag_entries_p99
    );
    if report.samples == 0 {
        return Err(format!("{}: no learner in /admin/status (is it the leader, with learners?)", args.node).into());
    }
    if let Some(path) = &args.json {
        stats::write_json(path, &report)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_of_a_sorted_list() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(51.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
