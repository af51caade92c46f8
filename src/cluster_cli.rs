//! `discovery cluster status|add|remove`: a small client of the `/admin/*` routes.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::{ClusterAction, ClusterArgs};
use crate::node::admin::StatusView;
use crate::node::cluster_admin::{AddMember, ChangeAnswer, RemoveMember};

/// Run one cluster command; the text to print on success, or an error message.
pub async fn run(args: ClusterArgs) -> Result<String, String> {
    let admin = Admin::new(args.cluster_token.clone());
    match args.action {
        ClusterAction::Status => {
            let status: Value = admin.get(&args.server, "/admin/status").await?;
            serde_json::to_string_pretty(&status).map_err(|e| e.to_string())
        }
        ClusterAction::Add { node } => {
            let joining: StatusView = admin.get(&node, "/admin/status").await?;
            let leader = admin.leader(&args.server).await?;
            let body = AddMember { id: joining.id, addr: joining.addr.clone(), zone: joining.zone.clone() };
            admin.change(&leader, "/admin/cluster/add", &body).await
        }
        ClusterAction::Remove { node } => {
            let status: StatusView = admin.get(&args.server, "/admin/status").await?;
            let member = status
                .membership
                .iter()
                .find(|m| m.addr == node)
                .ok_or_else(|| format!("{node} is not a member of the cluster of {}", args.server))?;
            let leader = admin.leader(&args.server).await?;
            admin.change(&leader, "/admin/cluster/remove", &RemoveMember { id: member.id }).await
        }
    }
}

struct Admin {
    client: reqwest::Client,
    token: Option<String>,
}

impl Admin {
    fn new(token: Option<String>) -> Self {
        // A membership change waits for the new node to catch up: allow minutes, not seconds.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { client, token }
    }

    fn auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.header(discovery_raft::TOKEN_HEADER, token),
            None => request,
        }
    }

    async fn get<T: DeserializeOwned>(&self, addr: &str, path: &str) -> Result<T, String> {
        let response = self
            .auth(self.client.get(format!("http://{addr}{path}")))
            .send()
            .await
            .map_err(|e| format!("cannot reach {addr}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("{addr}{path} answered HTTP {status}: {}", text.trim()));
        }
        response.json().await.map_err(|e| format!("bad answer from {addr}{path}: {e}"))
    }

    /// The leader's address as `server` sees it, retried for a few seconds: right after an election or a
    /// leader's removal the members may briefly name no leader, or one that is no longer a member.
    async fn leader(&self, server: &str) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.leader_once(server).await {
                Ok(addr) => return Ok(addr),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn leader_once(&self, server: &str) -> Result<String, String> {
        let status: StatusView = self.get(server, "/admin/status").await?;
        let leader = status.leader.ok_or_else(|| format!("{server} knows no leader; retry later"))?;
        status
            .membership
            .iter()
            .find(|m| m.id == leader)
            .map(|m| m.addr.clone())
            .ok_or_else(|| format!("leader {leader} is not in the membership reported by {server}"))
    }

    async fn change<B: serde::Serialize>(&self, leader: &str, path: &str, body: &B) -> Result<String, String> {
        let response = self
            .auth(self.client.post(format!("http://{leader}{path}")).json(body))
            .send()
            .await
            .map_err(|e| format!("cannot reach the leader at {leader}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("no answer from {leader}{path} (HTTP {status}): {e}"))?;
        // Refusals of the change come as a `ChangeAnswer`; the token check and the like answer plain text.
        match serde_json::from_str::<ChangeAnswer>(&text) {
            Ok(answer) if answer.ok => Ok(answer.message),
            Ok(answer) => Err(answer.message),
            Err(_) => Err(format!("{leader}{path} answered HTTP {status}: {}", text.trim())),
        }
    }
}
