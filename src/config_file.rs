//! `--config FILE`: node settings in TOML, one key per flag (`data_dir = "..."` for `--data-dir`), plus the
//! keys of the original server's `discovery.toml` (spec §6.1) where they mean the same thing.
//!
//! Invariants:
//! - Every key is known: an unknown key, a key in the wrong section and a value of the wrong type are refused
//!   with the key named (and its line), before anything starts.
//! - The original's keys map onto ours: `nodes` (every node of the cluster, self included) becomes `peers`
//!   with ids in list order (1, 2, ...) and, unless `id` is given, this node's id is the position of its `addr`
//!   in it; `[env] region` / `zone`, `[httpServer] addr` and `[httpServer] readTimeout` are `region`, `zone`,
//!   `addr` and `read_timeout`. Saying the same thing twice (`addr` and `[httpServer] addr`) is refused.
//! - The original's keys with no counterpart here (`[env] host` and `DeployEnv`, `[httpServer] timeout`,
//!   `writeTimeout` and `network`, `[httpClient]`, `[log]`, an empty `[zones]`, `enableprotect`, `scheduler`) are
//!   accepted so an existing file loads, and each one that is set is reported as ignored.
//! - A `[zones]` that lists other zones' nodes is refused with what to write instead ([`ZONES_GUIDANCE`]): its
//!   meaning (copy registrations to separate clusters) has no safe counterpart in one Raft cluster, and a
//!   silently ignored replication setting would leave those zones without the registrations they expect.
//! - Precedence is decided by the caller (`cli`): flags > environment > this file > defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::{parse_peers, ConfigError, LogFormat, Peer};
use crate::duration::parse_duration;

/// The settings a config file gives; `None` for what it leaves out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--id`.
    pub id: Option<u64>,
    /// `--addr`.
    pub addr: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--cluster-token`.
    pub cluster_token: Option<String>,
    /// `--zone`.
    pub zone: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--lease`.
    #[serde(default, deserialize_with = "duration")]
    pub lease: Option<Duration>,
    /// `--evict-interval`.
    #[serde(default, deserialize_with = "duration")]
    pub evict_interval: Option<Duration>,
    /// `--poll-timeout`.
    #[serde(default, deserialize_with = "duration")]
    pub poll_timeout: Option<Duration>,
    /// `--stale-after`.
    #[serde(default, deserialize_with = "duration")]
    pub stale_after: Option<Duration>,
    /// `--snapshot-chunk-size`, as a size text or a number of bytes.
    #[serde(default, deserialize_with = "size")]
    pub snapshot_chunk_size: Option<u64>,
    /// `--peers`, as the flag's text or an array of `ID=HOST:PORT[@ZONE]`.
    #[serde(default, deserialize_with = "peers")]
    pub peers: Option<BTreeMap<u64, Peer>>,
    /// `--join`.
    pub join: Option<bool>,
    /// `--snapshot-logs`.
    pub snapshot_logs: Option<u64>,
    /// `--protect-threshold`.
    pub protect_threshold: Option<f64>,
    /// `--log-format`.
    #[serde(default, deserialize_with = "log_format")]
    pub log_format: Option<LogFormat>,
    /// `--api-token`.
    pub api_token: Option<String>,
    /// `--read-timeout`.
    #[serde(default, deserialize_with = "duration")]
    pub read_timeout: Option<Duration>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--worker-threads`.
    pub worker_threads: Option<usize>,
    /// `--min-free-space`, as a size text (`"256MiB"`) or a number of bytes.
    #[serde(default, deserialize_with = "size")]
    pub min_free_space: Option<u64>,

    /// Original: every node of the cluster, self included (`["host:port", ...]`).
    pub nodes: Option<Vec<String>>,
    /// Original: `[env]`.
    pub env: Option<EnvSection>,
    /// Original: `[httpServer]`.
    #[serde(rename = "httpServer", alias = "httpserver")]
    pub http_server: Option<HttpServerSection>,
    /// Original, ignored: `[httpClient]` (the replication client of the original).
    #[serde(rename = "httpClient", alias = "httpclient")]
    pub http_client: Option<toml::Table>,
    /// Original, ignored: `[log]` (logging is `--log-format` and `RUST_LOG`).
    pub log: Option<toml::Table>,
    /// Original: `[zones]` (other zones' nodes, copied to by the original's replication). Refused when it
    /// lists anything: here one cluster spans the zones (see [`ZONES_GUIDANCE`]); an empty table loads.
    pub zones: Option<toml::Table>,
    /// Original, ignored: init-protect mode.
    pub enableprotect: Option<bool>,
    /// Original, ignored: declared but unused there too.
    pub scheduler: Option<toml::Value>,
}

/// The original's `[env]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSection {
    /// `region`.
    pub region: Option<String>,
    /// `zone`.
    pub zone: Option<String>,
    /// Ignored: the original registered itself under this hostname.
    pub host: Option<String>,
    /// Ignored: `infra.discovery` is answered in every env here.
    #[serde(rename = "DeployEnv", alias = "deployenv", alias = "deploy_env")]
    pub deploy_env: Option<String>,
}

/// The original's `[httpServer]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerSection {
    /// `addr`: listen and advertised address.
    pub addr: Option<String>,
    /// `readTimeout`: `read_timeout`.
    #[serde(default, rename = "readTimeout", alias = "readtimeout", deserialize_with = "duration")]
    pub read_timeout: Option<Duration>,
    /// Ignored: the per-request deadline (long polls use `poll_timeout`).
    pub timeout: Option<toml::Value>,
    /// Ignored.
    #[serde(rename = "writeTimeout", alias = "writetimeout")]
    pub write_timeout: Option<toml::Value>,
    /// Ignored (always TCP).
    pub network: Option<toml::Value>,
}

fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Words(String),
        Seconds(u64),
    }
    match Text::deserialize(de)? {
        Text::Words(text) => parse_duration(&text).map(Some).map_err(serde::de::Error::custom),
        Text::Seconds(secs) => Ok(Some(Duration::from_secs(secs))),
    }
}

fn size<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Words(String),
        Bytes(u64),
    }
    match Size::deserialize(de)? {
        Size::Words(text) => crate::config::parse_size(&text).map(Some).map_err(serde::de::Error::custom),
        Size::Bytes(bytes) => Ok(Some(bytes)),
    }
}

fn peers<'de, D: Deserializer<'de>>(de: D) -> Result<Option<BTreeMap<u64, Peer>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Joined(String),
        Items(Vec<String>),
    }
    let text = match List::deserialize(de)? {
        List::Joined(text) => text,
        List::Items(items) => items.join(","),
    };
    parse_peers(&text).map(Some).map_err(serde::de::Error::custom)
}

fn log_format<'de, D: Deserializer<'de>>(de: D) -> Result<Option<LogFormat>, D::Error> {
    String::deserialize(de)?.parse().map(Some).map_err(serde::de::Error::custom)
}

/// What to write instead of the original's `[zones]`.
pub const ZONES_GUIDANCE: &str = "the original copies registrations between separate clusters, one per zone; here \
one Raft cluster spans the zones, so remove [zones] and make each zone's nodes members of that one cluster, each \
started with its own `zone` (or --zone): voters spread over the zones (e.g. 2+2+1 over three sites survives the \
loss of any one site), or read replicas in the other zones (start them with --join, then `discovery cluster add \
--learner --node HOST:PORT --server ANY-MEMBER`); see the README's \"Zones\" section";

impl FileConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, format!("cannot read it: {e}")))?;
        Self::parse(&text).map_err(|message| file_error(path, message))
    }

    /// Parse TOML text; the error names the key (and its line).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut file: FileConfig = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        file.fold_original_keys()?;
        Ok(file)
    }

    /// Move the original's keys onto ours; refuse a setting given both ways.
    fn fold_original_keys(&mut self) -> Result<(), String> {
        if let Some(zones) = self.zones.as_ref().filter(|z| !z.is_empty()) {
            let listed: Vec<&str> = zones.keys().map(String::as_str).collect();
            return Err(format!("[zones] lists {}: {ZONES_GUIDANCE}", listed.join(", ")));
        }
        let env = self.env.take().unwrap_or_default();
        merge(&mut self.region, env.region, "region", "[env] region")?;
        merge(&mut self.zone, env.zone, "zone", "[env] zone")?;
        let server = self.http_server.take().unwrap_or_default();
        merge(&mut self.addr, server.addr, "addr", "[httpServer] addr")?;
        merge(&mut self.read_timeout, server.read_timeout, "read_timeout", "[httpServer] readTimeout")?;
        if self.nodes.is_some() && self.peers.is_some() {
            return Err("`nodes` and `peers` both list the cluster; keep one".to_string());
        }
        if let Some(nodes) = &self.nodes {
            let listed = nodes.iter().enumerate().map(|(i, addr)| format!("{}={addr}", i + 1)).collect::<Vec<_>>();
            self.peers = Some(parse_peers(&listed.join(",")).map_err(|e| format!("`nodes`: {e}"))?);
        }
        Ok(())
    }

    /// The original's keys that are set but have no effect here (for a warning at start).
    pub fn ignored(&self, text: &str) -> Vec<String> {
        let Ok(raw) = toml::from_str::<toml::Table>(text) else { return Vec::new() };
        let mut ignored = Vec::new();
        let mut note = |section: Option<&str>, key: &str| match section {
            Some(section) => ignored.push(format!("[{section}] {key}")),
            None => ignored.push(key.to_string()),
        };
        for (key, value) in &raw {
            match (key.to_ascii_lowercase().as_str(), value) {
                ("httpclient" | "log" | "enableprotect" | "scheduler", _) => note(None, key),
                ("env", toml::Value::Table(t)) => t
                    .keys()
                    .filter(|k| matches!(k.to_ascii_lowercase().as_str(), "host" | "deployenv" | "deploy_env"))
                    .for_each(|k| note(Some(key), k)),
                ("httpserver", toml::Value::Table(t)) => t
                    .keys()
                    .filter(|k| matches!(k.to_ascii_lowercase().as_str(), "timeout" | "writetimeout" | "network"))
                    .for_each(|k| note(Some(key), k)),
                _ => {}
            }
        }
        ignored
    }
}

fn merge<T>(ours: &mut Option<T>, original: Option<T>, key: &str, original_key: &str) -> Result<(), String> {
    match (ours.is_some(), original) {
        (true, Some(_)) => Err(format!("`{key}` and `{original_key}` are the same setting; keep one")),
        (false, Some(value)) => {
            *ours = Some(value);
            Ok(())
        }
        (_, None) => Ok(()),
    }
}

fn file_error(path: &Path, message: String) -> ConfigError {
    ConfigError::File { path: path.display().to_string(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_zones_are_refused_with_what_to_write_instead() {
        let text = "[zones]\nsh002 = [\"10.0.0.2:7171\"]\n";
        let err = FileConfig::parse(text).expect_err("a non-empty [zones] is refused");
        assert!(err.contains("sh002") && err.contains("cluster add") && err.contains("--learner"), "{err}");
        assert!(FileConfig::parse("[zones]\n").is_ok(), "an empty [zones] loads");
    }

    #[test]
    fn our_keys_parse() {
        let file = FileConfig::parse(
            r#"
            id = 2
            addr = "127.0.0.1:7272"
            lease = "30s"
            poll_timeout = 20
            peers = ["1=127.0.0.1:7171", "2=127.0.0.1:7272@sh002"]
            log_format = "json"
            "#,
        )
        .expect("valid");
        assert_eq!(file.id, Some(2));
        assert_eq!(file.lease, Some(Duration::from_secs(30)));
        assert_eq!(file.poll_timeout, Some(Duration::from_secs(20)));
        assert_eq!(file.peers.as_ref().map(BTreeMap::len), Some(2));
        assert_eq!(file.log_format, Some(LogFormat::Json));
    }

    #[test]
    fn the_original_sample_loads() {
        // bilibili/discovery cmd/discovery/discovery.toml (spec §6.1).
        let text = r#"
            nodes = ["127.0.0.1:7171"]
            [env]
            region = "sh"
            zone = "sh001"
            host = "test1"
            DeployEnv = "dev"
            [httpServer]
            addr = "127.0.0.1:7171"
            timeout = "40s"
            [httpClient]
            dial = "1s"
            keepAlive = "120s"
            timeout = "40s"
            [log]
            stdout = true
        "#;
        let file = FileConfig::parse(text).expect("the original's file loads");
        assert_eq!(file.zone.as_deref(), Some("sh001"));
        assert_eq!(file.region.as_deref(), Some("sh"));
        assert_eq!(file.addr.as_deref(), Some("127.0.0.1:7171"));
        let peers = file.peers.as_ref().expect("nodes become peers");
        assert_eq!(peers[&1].addr, "127.0.0.1:7171");
        assert_eq!(
            file.ignored(text),
            ["[env] DeployEnv", "[env] host", "httpClient", "[httpServer] timeout", "log"].map(String::from)
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = FileConfig::parse("leese = \"90s\"").expect_err("unknown");
        assert!(err.contains("leese"), "{err}");
        let err = FileConfig::parse("[httpServer]\nadress = \"x\"").expect_err("unknown in a section");
        assert!(err.contains("adress"), "{err}");
        let err = FileConfig::parse("lease = \"ten\"").expect_err("bad duration");
        assert!(err.contains("lease") && err.contains("ten"), "{err}");
        let err = FileConfig::parse("id = \"one\"").expect_err("wrong type");
        assert!(err.contains("id"), "{err}");
        let err = FileConfig::parse("addr = \"a:1\"\n[httpServer]\naddr = \"b:2\"").expect_err("twice");
        assert!(err.contains("[httpServer] addr"), "{err}");
        let err = FileConfig::parse("nodes = [\"127.0.0.1:1\"]\npeers = \"1=127.0.0.1:1\"").expect_err("twice");
        assert!(err.contains("nodes") && err.contains("peers"), "{err}");
    }
}
