//! `discovery fetch`, `discovery register` and `discovery watch`: the client commands, printing JSON on stdout.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;

use super::{Client, ClientError, InstanceKey, Poll, Registration};
use crate::config::DEFAULT_ADDR;
use crate::duration::parse_duration;
use crate::signal::interrupted;

/// The error of a command whose stdout was closed by its reader (`discovery cluster status | head`): the
/// binary exits 0 without a message, as Unix tools do on SIGPIPE.
pub const STDOUT_CLOSED: &str = "stdout closed";

/// Print one line on stdout; a closed stdout ends the command quietly ([`STDOUT_CLOSED`]) instead of the
/// panic of `println!`.
pub fn print_line(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(STDOUT_CLOSED.to_string()),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

/// How long `watch` waits before asking again after an error or an unknown app.
const RETRY: Duration = Duration::from_secs(1);

/// The server to talk to.
#[derive(Debug, Clone, Args)]
pub struct ServerOpt {
    /// Any nodes of the cluster (HOST:PORT, comma-separated): a node that cannot be reached is skipped.
    #[arg(long, env = "DISCOVERY_SERVER", default_value = DEFAULT_ADDR)]
    pub server: String,
    /// The write-API token, if the server has one (`--api-token`).
    #[arg(long, env = "DISCOVERY_API_TOKEN", value_name = "T", hide_env_values = true)]
    pub api_token: Option<String>,
}

impl ServerOpt {
    fn client(&self) -> Client {
        let nodes = self.server.split(',').map(str::trim).filter(|s| !s.is_empty());
        Client::builder(nodes).api_token(self.api_token.clone()).build()
    }
}

/// `discovery fetch`
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// Service name.
    #[arg(long)]
    pub appid: String,
    /// Deploy env.
    #[arg(long)]
    pub env: String,
    /// Only this zone.
    #[arg(long)]
    pub zone: Option<String>,
    /// 1: up instances, 2: waiting, 3: both.
    #[arg(long, default_value_t = 3)]
    pub status: u32,
    /// Server.
    #[command(flatten)]
    pub server: ServerOpt,
}

/// `discovery register`
#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    /// Service name.
    #[arg(long)]
    pub appid: String,
    /// Deploy env.
    #[arg(long)]
    pub env: String,
    /// Zone of the instance.
    #[arg(long)]
    pub zone: String,
    /// Instance id within (appid, env, zone).
    #[arg(long)]
    pub hostname: String,
    /// Addresses (comma-separated or repeated), e.g. grpc://10.0.0.5:9000.
    #[arg(long, required = true, value_delimiter = ',')]
    pub addrs: Vec<String>,
    /// 1 (up) or 2 (waiting).
    #[arg(long, default_value_t = 1)]
    pub status: u32,
    /// Version text.
    #[arg(long, default_value = "")]
    pub version: String,
    /// Metadata entries KEY=VALUE (repeatable).
    #[arg(long, value_parser = parse_pair, value_name = "KEY=VALUE")]
    pub metadata: Vec<(String, String)>,
    /// Time between renews (the SDKs use 30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub renew_interval: Duration,
    /// Server.
    #[command(flatten)]
    pub server: ServerOpt,
}

/// `discovery watch`
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Service name.
    #[arg(long)]
    pub appid: String,
    /// Deploy env.
    #[arg(long)]
    pub env: String,
    /// Only print this zone's instances.
    #[arg(long)]
    pub zone: Option<String>,
    /// The hostname the poll is made as (the original requires one).
    #[arg(long, default_value = "discovery-watch")]
    pub hostname: String,
    /// Stop after this many changes (default: until SIGINT).
    #[arg(long)]
    pub count: Option<u64>,
    /// Server.
    #[command(flatten)]
    pub server: ServerOpt,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// Print the app's instances as JSON.
pub async fn fetch(args: FetchArgs) -> Result<(), String> {
    let info = args.server.client().fetch(&args.env, &args.appid, args.zone.as_deref(), args.status).await;
    let info = info.map_err(|e| e.to_string())?;
    print_line(&serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?)?;
    Ok(())
}

/// Register, renew every `renew_interval` (registering again if the server forgot the instance) until
/// SIGINT or SIGTERM, then cancel.
pub async fn register(args: RegisterArgs) -> Result<(), String> {
    let client = args.server.client();
    let key = InstanceKey { env: args.env, appid: args.appid, zone: args.zone, hostname: args.hostname };
    let registration = Registration {
        key: key.clone(),
        addrs: args.addrs,
        status: args.status,
        version: args.version,
        metadata: args.metadata.into_iter().collect::<BTreeMap<_, _>>(),
    };
    client.register(&registration).await.map_err(|e| e.to_string())?;
    print_line(&format!("registered {}/{} {} {} on {}", key.env, key.appid, key.zone, key.hostname, client.server()))?;
    let stop = interrupted();
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + args.renew_interval, args.renew_interval);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => match client.renew(&key).await {
                Ok(()) => {}
                Err(e) if e.code() == Some(-404) => {
                    eprintln!("discovery: the server forgot the instance; registering again");
                    if let Err(e) = client.register(&registration).await {
                        eprintln!("discovery: register failed: {e}");
                    }
                }
                Err(e) => eprintln!("discovery: renew failed: {e}"),
            },
        }
    }
    client.cancel(&key).await.map_err(|e| format!("cancel failed: {e}"))?;
    print_line(&format!("cancelled {}/{} {} {}", key.env, key.appid, key.zone, key.hostname))?;
    Ok(())
}

/// Long-poll the app and print each new state as one JSON line, until SIGINT or `count` changes.
pub async fn watch(args: WatchArgs) -> Result<(), String> {
    let client = args.server.client();
    let stop = interrupted();
    tokio::pin!(stop);
    let (mut cursor, mut seen) = (0_i64, 0_u64);
    while args.count.is_none_or(|count| seen < count) {
        let poll = client.poll(&args.env, &args.appid, &args.hostname, cursor);
        let outcome = tokio::select! {
            _ = &mut stop => return Ok(()),
            outcome = poll => outcome,
        };
        let retry = match outcome {
            Ok(Poll::Changed(mut info)) => {
                cursor = info.latest_timestamp;
                seen += 1;
                if let Some(zone) = &args.zone {
                    info.instances.retain(|z, _| z == zone);
                }
                print_line(&serde_json::to_string(&info).map_err(|e| e.to_string())?)?;
                false
            }
            Ok(Poll::NotModified) => false,
            Ok(Poll::Unknown) => true,
            Err(e @ ClientError::Code { .. }) => return Err(e.to_string()),
            Err(e) => {
                eprintln!("discovery: {e}; retrying");
                true
            }
        };
        if retry {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
    Ok(())
}
