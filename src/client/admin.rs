//! The operator routes (`/admin/*`, `/healthz`), behind the cluster token when the cluster has one.
//!
//! Unlike the API calls, these name the node they ask (a status is one node's view), except the
//! membership changes, which find the leader themselves.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::error::ClientError;
use super::wire::{Digest, NodeStatus};
use super::Client;

/// A membership change waits for the new node to catch up (by snapshot if need be): minutes, not seconds.
pub(crate) const MEMBERSHIP_CHANGE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long to look for the leader: right after an election, or the leader's removal, members may name none.
const FIND_LEADER_FOR: Duration = Duration::from_secs(10);

#[derive(Serialize)]
struct AddMember<'a> {
    id: u64,
    addr: &'a str,
    zone: &'a str,
    learner: bool,
}

#[derive(Serialize)]
struct RemoveMember {
    id: u64,
}

impl Client {
    /// `GET /admin/status` of `node`.
    pub async fn status_of(&self, node: &str) -> Result<NodeStatus, ClientError> {
        self.admin_get(node, "/admin/status").await
    }

    /// `GET /admin/status` of `node` as raw JSON (every field, for printing).
    pub async fn status_json_of(&self, node: &str) -> Result<Value, ClientError> {
        self.admin_get(node, "/admin/status").await
    }

    /// `GET /admin/digest` of `node`.
    pub async fn digest_of(&self, node: &str) -> Result<Digest, ClientError> {
        self.admin_get(node, "/admin/digest").await
    }

    /// `GET /healthz` of `node`: `Ok` when it can serve, else the reason it gives.
    pub async fn health_of(&self, node: &str) -> Result<(), ClientError> {
        let response = self
            .http
            .get(format!("http://{node}/healthz"))
            .timeout(self.call_timeout)
            .send()
            .await
            .map_err(|e| transport(node, &e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(node, &e))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ClientError::Refused { server: node.to_string(), status: status.as_u16(), message: text.trim().into() })
        }
    }

    /// `POST /admin/snapshot` on `node`: build a snapshot now.
    pub async fn request_snapshot(&self, node: &str) -> Result<(), ClientError> {
        let request = self.admin_request(self.http.post(format!("http://{node}/admin/snapshot")));
        let response = request.timeout(self.call_timeout).send().await.map_err(|e| transport(node, &e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(node, &e))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ClientError::Refused { server: node.to_string(), status: status.as_u16(), message: text.trim().into() })
        }
    }

    /// The leader's address as the cluster of `server` knows it (retried for a few seconds).
    pub async fn leader_of(&self, server: &str) -> Result<String, ClientError> {
        let deadline = tokio::time::Instant::now() + FIND_LEADER_FOR;
        loop {
            let found = self.status_of(server).await.and_then(|status| {
                status.leader_addr().map(str::to_string).ok_or_else(|| ClientError::Refused {
                    server: server.to_string(),
                    status: 503,
                    message: "it knows no leader that is a member; retry later".into(),
                })
            });
            match found {
                Ok(addr) => return Ok(addr),
                Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Add the running node at `node` (started with `--join`) to the cluster of `server`: its id and zone
    /// are read from it; the leader adds it as a learner, waits until it caught up, then makes it a voter.
    /// With `learner`, it stays a learner (a read replica that never votes). The leader's message on success.
    pub async fn cluster_add(&self, server: &str, node: &str, learner: bool) -> Result<String, ClientError> {
        let joining = self.status_of(node).await?;
        let leader = self.leader_of(server).await?;
        let body = AddMember { id: joining.id, addr: &joining.addr, zone: &joining.zone, learner };
        self.membership_change(&leader, "/admin/cluster/add", &body).await
    }

    /// Remove the member at `node` from the cluster of `server`. The leader's message on success.
    pub async fn cluster_remove(&self, server: &str, node: &str) -> Result<String, ClientError> {
        self.change_member(server, node, "/admin/cluster/remove").await
    }

    /// Make the learner at `node` a voter once it has caught up. The leader's message on success.
    pub async fn cluster_promote(&self, server: &str, node: &str) -> Result<String, ClientError> {
        self.change_member(server, node, "/admin/cluster/promote").await
    }

    /// Make the voter at `node` a learner (a read replica). The leader's message on success.
    pub async fn cluster_demote(&self, server: &str, node: &str) -> Result<String, ClientError> {
        self.change_member(server, node, "/admin/cluster/demote").await
    }

    /// A change of the member at `node` named by its id, sent to the leader of `server`'s cluster.
    async fn change_member(&self, server: &str, node: &str, path: &str) -> Result<String, ClientError> {
        let status = self.status_of(server).await?;
        let member = status.membership.iter().find(|m| m.addr == node).ok_or_else(|| ClientError::Refused {
            server: server.to_string(),
            status: 404,
            message: format!("{node} is not a member of its cluster"),
        })?;
        let leader = self.leader_of(server).await?;
        self.membership_change(&leader, path, &RemoveMember { id: member.id }).await
    }

    async fn membership_change<B: Serialize>(&self, leader: &str, path: &str, body: &B) -> Result<String, ClientError> {
        let request = self.admin_request(self.http.post(format!("http://{leader}{path}")).json(body));
        let response = request.timeout(MEMBERSHIP_CHANGE_TIMEOUT).send().await.map_err(|e| transport(leader, &e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(leader, &e))?;
        // Refusals of the change come as `{ok, message}`; the token check and the like answer plain text.
        let answer: Option<(bool, String)> = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| Some((v.get("ok")?.as_bool()?, v.get("message")?.as_str()?.to_string())));
        match answer {
            Some((true, message)) => Ok(message),
            Some((false, message)) => {
                Err(ClientError::Refused { server: leader.to_string(), status: status.as_u16(), message })
            }
            None => Err(ClientError::Refused {
                server: leader.to_string(),
                status: status.as_u16(),
                message: text.trim().to_string(),
            }),
        }
    }

    async fn admin_get<T: DeserializeOwned>(&self, node: &str, path: &str) -> Result<T, ClientError> {
        let request = self.admin_request(self.http.get(format!("http://{node}{path}")));
        let response = request.timeout(self.call_timeout).send().await.map_err(|e| transport(node, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| transport(node, &e))?;
        if !status.is_success() {
            let message = String::from_utf8_lossy(&body).trim().to_string();
            return Err(ClientError::Refused { server: node.to_string(), status: status.as_u16(), message });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer {
            server: node.to_string(),
            status: status.as_u16(),
            reason: format!("{path}: {e}"),
        })
    }
}

fn transport(server: &str, err: &reqwest::Error) -> ClientError {
    super::transport_error(server, err)
}
