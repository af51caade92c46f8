//! Latency histograms, CPU accounting from /proc, and the small helpers the subcommands share.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::BoxError;

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>, BoxError> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// Record `d` (saturating at the top bound).
pub fn record(hist: &mut Histogram<u64>, d: Duration) {
    hist.saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1));
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarize `hist` (microseconds).
    pub fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| round3(us as f64 / 1000.0);
        LatencySummary {
            count: hist.len(),
            mean_ms: round3(hist.mean() / 1000.0),
            p50_ms: ms(hist.value_at_quantile(0.50)),
            p90_ms: ms(hist.value_at_quantile(0.90)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            p999_ms: ms(hist.value_at_quantile(0.999)),
            max_ms: ms(hist.max()),
        }
    }
}

/// Round to 3 decimals (keeps the JSON readable).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The median of `values` (the lower middle for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[(sorted.len() - 1) / 2])
}

/// Linux USER_HZ: the unit of the tick counts in /proc/*/stat.
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a process, in ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5) are the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and total ticks of the whole machine (first line of /proc/stat).
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().sum();
    // idle and iowait are not busy.
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// CPU counters at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    servers: Vec<Option<u64>>,
    own: Option<u64>,
    machine: Option<(u64, u64)>,
}

impl CpuSnapshot {
    /// Read the counters of `pids`, of this process and of the machine.
    pub fn take(pids: &[u32]) -> Self {
        CpuSnapshot {
            at: Instant::now(),
            servers: pids.iter().map(|p| process_ticks(*p)).collect(),
            own: process_ticks(std::process::id()),
            machine: machine_ticks(),
        }
    }

    /// Cores used between `self` and `later`.
    pub fn usage_until(&self, later: &CpuSnapshot) -> CpuUsage {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-6);
        let cores = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(round3(b.saturating_sub(a) as f64 / TICKS_PER_SECOND / secs)),
            _ => None,
        };
        let per_server: Vec<Option<f64>> =
            self.servers.iter().zip(&later.servers).map(|(a, b)| cores(*a, *b)).collect();
        let servers = per_server.iter().flatten().sum::<f64>() + 0.0;
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let machine = match (self.machine, later.machine) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                Some(round3(busy1.saturating_sub(busy0) as f64 / (total1 - total0) as f64 * cpus))
            }
            _ => None,
        };
        CpuUsage {
            server_cores: round3(servers),
            per_server_cores: per_server,
            client_cores: cores(self.own, later.own),
            machine_busy_cores: machine,
        }
    }
}

/// CPU used during a measurement, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuUsage {
    /// The measured server processes together.
    pub server_cores: f64,
    /// Each measured server process.
    pub per_server_cores: Vec<Option<f64>>,
    /// This load generator.
    pub client_cores: Option<f64>,
    /// The whole machine (other engineers' builds included).
    pub machine_busy_cores: Option<f64>,
}

/// Parse `500ms`, `10s`, `2m`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?}: expected a duration like 500ms, 10s, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Write `value` as pretty JSON to `path`.
pub fn write_json<T: Serialize>(path: &std::path::Path, value: &T) -> Result<(), BoxError> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// Split comma-separated values given once or repeated (`--nodes a,b --nodes c`).
pub fn split_list(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn median_and_summary() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.0));
        assert_eq!(median(&[]), None);
        let mut h = histogram().expect("test");
        for us in 1..=1000 {
            record(&mut h, Duration::from_micros(us * 10));
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 5.0).abs() < 0.01, "{s:?}");
        assert!((s.p99_ms - 9.9).abs() < 0.02, "{s:?}");
    }

    #[test]
    fn own_cpu_is_readable() {
        assert!(process_ticks(std::process::id()).is_some());
        assert_eq!(split_list(&["a,b".into(), "c".into()]), vec!["a", "b", "c"]);
    }
}
