//! The members table: this node's view of the membership, completed by each member's own `/admin/status`.

use std::time::Duration;

use futures::future::join_all;

use crate::client::Client;
use crate::service::node_facts::StatusView;
use crate::service::Service;

/// How long the page waits for another member's status.
const MEMBER_TIMEOUT: Duration = Duration::from_millis(500);

/// One row of the members table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberRow {
    /// Node id.
    pub id: u64,
    /// Advertised address.
    pub addr: String,
    /// Zone.
    pub zone: String,
    /// Role as the member reports it (or "unreachable").
    pub role: String,
    /// Its last applied index, if it answered.
    pub applied: Option<u64>,
    /// Healthy: it answered and knows a leader.
    pub healthy: bool,
    /// Health text.
    pub health: String,
}

/// Every member of this node's membership with its own view of itself.
pub(crate) async fn member_rows(state: &Service) -> Vec<MemberRow> {
    let me = state.status();
    let client = Client::builder(me.membership.iter().map(|m| m.addr.clone()))
        .cluster_token(state.config().cluster_token.clone())
        .call_timeout(MEMBER_TIMEOUT)
        .connect_timeout(MEMBER_TIMEOUT)
        .build();
    let asks = me.membership.iter().map(|m| {
        let (client, me) = (&client, &me);
        async move {
            let view = if m.id == me.id { Some(me.clone()) } else { ask(client, &m.addr).await };
            row(m.id, &m.addr, &m.zone, view)
        }
    });
    join_all(asks).await
}

/// `/admin/status` of the member at `addr`, as it reports itself (the library's client, the cluster token).
async fn ask(client: &Client, addr: &str) -> Option<StatusView> {
    serde_json::from_value(client.status_json_of(addr).await.ok()?).ok()
}

fn row(id: u64, addr: &str, zone: &str, view: Option<StatusView>) -> MemberRow {
    match view {
        Some(v) => MemberRow {
            id,
            addr: addr.to_string(),
            zone: zone.to_string(),
            role: v.role.clone(),
            applied: v.last_applied,
            healthy: v.leader.is_some(),
            health: if v.leader.is_some() { "ok".into() } else { "no leader".into() },
        },
        None => MemberRow {
            id,
            addr: addr.to_string(),
            zone: zone.to_string(),
            role: "unreachable".into(),
            applied: None,
            healthy: false,
            health: "unreachable".into(),
        },
    }
}
