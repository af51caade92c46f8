//! [`Watcher`]: the changes of a set of apps, through long polls, as the Go SDK follows them.
//!
//! Invariants:
//! - One `polls` request at a time carries every watched app with its cursor; each changed app is reported
//!   once per change, in the order the server answered.
//! - On a failure (no answer, or any code but 0 and -304) the watcher moves to the next node, resets every
//!   cursor to 0 (cursors of different nodes are not comparable, spec §3.5) and waits [`Watcher::backoff`]
//!   before polling again: never a tight loop.
//! - With [`Watcher::follow_nodes`], `infra.discovery` is watched too and the client's node list follows it
//!   (the members that can serve), as the SDK's does.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::error::ClientError;
use super::wire::InstanceInfo;
use super::Client;

/// The app under which the discovery servers list themselves.
const INFRA_APPID: &str = "infra.discovery";

/// One change of a watched app.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The app.
    pub appid: String,
    /// Its instances and cursor now.
    pub info: InstanceInfo,
}

/// Follows a set of apps.
#[derive(Debug)]
pub struct Watcher {
    client: Client,
    env: String,
    hostname: String,
    cursors: BTreeMap<String, i64>,
    watched: Vec<String>,
    follow_nodes: bool,
    backoff: Duration,
    pending: VecDeque<Change>,
    failures: u64,
}

impl Watcher {
    /// Watch `appids` in `env`, polling as `hostname` (the poller's name, for the server's logs).
    pub fn new(client: Client, env: &str, hostname: &str, appids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let watched: Vec<String> = appids.into_iter().map(Into::into).collect();
        Self {
            client,
            env: env.to_string(),
            hostname: hostname.to_string(),
            cursors: watched.iter().map(|a| (a.clone(), 0)).collect(),
            watched,
            follow_nodes: false,
            backoff: Duration::from_secs(1),
            pending: VecDeque::new(),
            failures: 0,
        }
    }

    /// Keep the client's node list equal to the servers `infra.discovery` lists.
    pub fn follow_nodes(mut self, on: bool) -> Self {
        self.follow_nodes = on;
        if on {
            self.cursors.entry(INFRA_APPID.to_string()).or_insert(0);
        }
        self
    }

    /// Wait after a failure before polling again (default 1 s, as the Go SDK).
    pub fn backoff(mut self, wait: Duration) -> Self {
        self.backoff = wait;
        self
    }

    /// Failed polls so far (each moved the watcher to the next node).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The next change of a watched app. Errors are returned (after the move to the next node and the
    /// backoff), so a caller can count or log them; calling `next` again goes on watching.
    pub async fn next(&mut self) -> Result<Change, ClientError> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Ok(change);
            }
            let apps: Vec<(String, i64)> = self.cursors.iter().map(|(a, c)| (a.clone(), *c)).collect();
            match self.client.polls(&self.env, &self.hostname, &apps).await {
                Ok(answer) if answer.not_modified => {}
                Ok(answer) => self.absorb(answer.changed),
                Err(err) => {
                    self.failures += 1;
                    self.client.next_node();
                    self.cursors.values_mut().for_each(|c| *c = 0);
                    tokio::time::sleep(self.backoff).await;
                    return Err(err);
                }
            }
        }
    }

    fn absorb(&mut self, changed: BTreeMap<String, InstanceInfo>) {
        for (appid, info) in changed {
            if !self.cursors.contains_key(&appid) {
                continue;
            }
            // An app whose answer holds no instance is not a change (the SDK ignores it too).
            if info.all().next().is_none() {
                continue;
            }
            self.cursors.insert(appid.clone(), info.latest_timestamp);
            if appid == INFRA_APPID && self.follow_nodes {
                let nodes: Vec<String> = info
                    .all()
                    .filter_map(|i| i.addrs.as_ref()?.first())
                    .map(|a| a.trim_start_matches("http://").to_string())
                    .collect();
                self.client.set_nodes(nodes);
            }
            if self.watched.contains(&appid) {
                self.pending.push_back(Change { appid, info });
            }
        }
    }
}
