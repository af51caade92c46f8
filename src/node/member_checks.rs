//! What `POST /admin/cluster/add` checks before it touches the membership: the id and the address are not
//! taken, and the node at the address is the one claimed.
//!
//! Invariants:
//! - No two members share an id or an address: a second member at an existing member's address would have the
//!   leader replicate to one process under two ids (and a typo would do exactly that).
//! - The node at `addr` is asked who it is (`GET /admin/status`, with the cluster token), and must answer the
//!   claimed id and advertise that very address; a node that cannot be asked is not added.
//! - It must be in no cluster (empty membership: started with `--join`) or already in this one (a learner that an
//!   earlier add left behind): a node that initialized a cluster of its own would refuse this leader's log.
//! - Every refusal is a 4xx (409 taken, 400 not who it claims, 502 cannot be asked) naming the id and address.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;

use super::admin::MemberView;
use super::cluster_admin::AddMember;

/// How long the node to add may take to say who it is.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(3);

/// A refusal: the status to answer and the message for the operator.
pub type Refusal = (StatusCode, String);

/// Refuses an id or an address that is already a member's, except the same learner again (same id and address,
/// not a voter), which an add that timed out or failed its promotion leaves behind: adding it again resumes.
pub fn not_taken(members: &[MemberView], req: &AddMember) -> Result<(), Refusal> {
    let conflict = |message: String| Err((StatusCode::CONFLICT, message));
    for member in members {
        let role = if member.voter { "voter" } else { "learner" };
        if member.id == req.id && (member.addr != req.addr || member.voter) {
            return conflict(format!(
                "node {} is already a member ({role} at {}); remove it first to add it at {}",
                member.id, member.addr, req.addr
            ));
        }
        if member.id != req.id && member.addr == req.addr {
            return conflict(format!(
                "address {} is already node {}'s ({role}); it cannot also be node {}",
                req.addr, member.id, req.id
            ));
        }
    }
    Ok(())
}

/// The part of `/admin/status` that says who a node is.
#[derive(Debug, Deserialize)]
struct Identity {
    id: u64,
    addr: String,
    membership: Vec<MemberView>,
}

/// Asks the node at `req.addr` who it is and refuses unless it is node `req.id` advertising `req.addr`, in no
/// cluster or in this node's (`me` at `my_addr`).
pub async fn is_who_it_claims(req: &AddMember, token: Option<&str>, me: u64, my_addr: &str) -> Result<(), Refusal> {
    let found = ask_identity(&req.addr, token).await?;
    if found.id != req.id {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("the node at {} is node {}, not node {}; nothing was changed", req.addr, found.id, req.id),
        ));
    }
    if found.addr != req.addr {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "node {} answers at {} but advertises {} (--addr); add it at {}",
                req.id, req.addr, found.addr, found.addr
            ),
        ));
    }
    let ours = found.membership.iter().any(|m| m.id == me && m.addr == my_addr);
    if !found.membership.is_empty() && !ours {
        let members: Vec<String> = found.membership.iter().map(|m| format!("{}={}", m.id, m.addr)).collect();
        return Err((
            StatusCode::CONFLICT,
            format!(
                "node {} at {} already belongs to another cluster (members {}); start it with --join on an empty \
                 data dir",
                req.id,
                req.addr,
                members.join(",")
            ),
        ));
    }
    Ok(())
}

async fn ask_identity(addr: &str, token: Option<&str>) -> Result<Identity, Refusal> {
    let unreachable = |why: String| {
        (
            StatusCode::BAD_GATEWAY,
            format!("cannot ask the node at {addr} who it is ({why}); is it running (with --join) and does it share this node's --cluster-token?"),
        )
    };
    let client = reqwest::Client::builder()
        .timeout(IDENTITY_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| unreachable(format!("no HTTP client: {e}")))?;
    let mut request = client.get(format!("http://{addr}/admin/status"));
    if let Some(token) = token {
        request = request.header(discovery_raft::TOKEN_HEADER, token);
    }
    let response = request.send().await.map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(unreachable(format!("GET /admin/status answered HTTP {status}")));
    }
    response.json().await.map_err(|e| unreachable(format!("not a discovery node's /admin/status: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, addr: &str, voter: bool) -> MemberView {
        MemberView {
            id,
            addr: addr.into(),
            zone: "z".into(),
            voter,
            role: String::new(),
            serving: true,
            reachable: true,
            applied: None,
            lag_entries: None,
            lag_ms: None,
        }
    }

    fn add(id: u64, addr: &str) -> AddMember {
        AddMember { id, addr: addr.into(), zone: "z".into(), learner: false }
    }

    #[test]
    fn a_taken_id_or_address_is_refused_naming_both() {
        let members = [member(1, "127.0.0.1:7171", true), member(2, "127.0.0.1:7272", false)];
        assert_eq!(not_taken(&members, &add(3, "127.0.0.1:7373")), Ok(()));
        let (status, message) = not_taken(&members, &add(3, "127.0.0.1:7171")).expect_err("address taken");
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(message.contains("127.0.0.1:7171") && message.contains("node 1") && message.contains("node 3"));
        let (status, message) = not_taken(&members, &add(1, "127.0.0.1:7373")).expect_err("id taken");
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(message.contains("node 1 is already a member") && message.contains("127.0.0.1:7171"), "{message}");
        assert!(not_taken(&members, &add(1, "127.0.0.1:7171")).is_err(), "a voter is not added twice");
        assert_eq!(not_taken(&members, &add(2, "127.0.0.1:7272")), Ok(()), "the same learner again resumes its add");
        assert!(not_taken(&members, &add(2, "127.0.0.1:7373")).is_err(), "a learner does not move");
    }
}
