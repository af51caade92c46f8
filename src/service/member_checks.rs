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
//! - Every refusal names the id and address: a conflict (taken, another cluster), invalid (not who it claims) or
//!   unreachable (cannot be asked); the operator route answers them 409, 400 and 502.

use std::time::Duration;

use super::membership::{ChangeRefusal, NewMember};
use serde::Deserialize;

use crate::client::wire::Member;
use crate::client::Client;
use crate::node::admin::MemberView;

/// How long the node to add may take to say who it is.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(3);

/// Refuses an id or an address that is already a member's, except the same learner again (same id and address,
/// not a voter), which an add that timed out or failed its promotion leaves behind: adding it again resumes.
pub(super) fn not_taken(members: &[MemberView], new: &NewMember) -> Result<(), ChangeRefusal> {
    for member in members {
        let role = if member.voter { "voter" } else { "learner" };
        if member.id == new.id && (member.addr != new.addr || member.voter) {
            return Err(ChangeRefusal::Conflict(format!(
                "node {} is already a member ({role} at {}); remove it first to add it at {}",
                member.id, member.addr, new.addr
            )));
        }
        if member.id != new.id && member.addr == new.addr {
            return Err(ChangeRefusal::Conflict(format!(
                "address {} is already node {}'s ({role}); it cannot also be node {}",
                new.addr, member.id, new.id
            )));
        }
    }
    Ok(())
}

/// Asks the node at `new.addr` who it is and refuses unless it is node `new.id` advertising `new.addr`, in no
/// cluster or in this node's (`me` at `my_addr`).
pub(super) async fn is_who_it_claims(
    new: &NewMember,
    token: Option<&str>,
    me: u64,
    my_addr: &str,
) -> Result<(), ChangeRefusal> {
    let found = ask_identity(&new.addr, token).await?;
    if found.id != new.id {
        return Err(ChangeRefusal::Invalid(format!(
            "the node at {} is node {}, not node {}; nothing was changed",
            new.addr, found.id, new.id
        )));
    }
    if found.addr != new.addr {
        return Err(ChangeRefusal::Invalid(format!(
            "node {} answers at {} but advertises {} (--addr); add it at {}",
            new.id, new.addr, found.addr, found.addr
        )));
    }
    let ours = found.membership.iter().any(|m| m.id == me && m.addr == my_addr);
    if !found.membership.is_empty() && !ours {
        let members: Vec<String> = found.membership.iter().map(|m| format!("{}={}", m.id, m.addr)).collect();
        return Err(ChangeRefusal::Conflict(format!(
            "node {} at {} already belongs to another cluster (members {}); start it with --join on an empty \
             data dir",
            new.id,
            new.addr,
            members.join(",")
        )));
    }
    Ok(())
}

/// The part of `/admin/status` that says who a node is (all a node in `--join` mode must answer).
#[derive(Debug, Deserialize)]
struct Identity {
    id: u64,
    addr: String,
    membership: Vec<Member>,
}

/// `GET /admin/status` of the node at `addr`, through the library's client.
async fn ask_identity(addr: &str, token: Option<&str>) -> Result<Identity, ChangeRefusal> {
    let client = Client::builder([addr])
        .cluster_token(token.map(str::to_string))
        .call_timeout(IDENTITY_TIMEOUT)
        .connect_timeout(IDENTITY_TIMEOUT)
        .build();
    let unreachable = |why: String| {
        ChangeRefusal::Unreachable(format!(
            "cannot ask the node at {addr} who it is ({why}); is it running (with --join) and does it share this \
             node's --cluster-token?"
        ))
    };
    let status = client.status_json_of(addr).await.map_err(|e| unreachable(e.to_string()))?;
    serde_json::from_value(status).map_err(|e| unreachable(format!("not a discovery node's /admin/status: {e}")))
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

    fn add(id: u64, addr: &str) -> NewMember {
        NewMember { id, addr: addr.into(), zone: "z".into(), learner: false }
    }

    #[test]
    fn a_taken_id_or_address_is_refused_naming_both() {
        let members = [member(1, "127.0.0.1:7171", true), member(2, "127.0.0.1:7272", false)];
        assert_eq!(not_taken(&members, &add(3, "127.0.0.1:7373")), Ok(()));
        let ChangeRefusal::Conflict(message) = not_taken(&members, &add(3, "127.0.0.1:7171")).expect_err("taken")
        else {
            panic!("a taken address is a conflict")
        };
        assert!(message.contains("127.0.0.1:7171") && message.contains("node 1") && message.contains("node 3"));
        let ChangeRefusal::Conflict(message) = not_taken(&members, &add(1, "127.0.0.1:7373")).expect_err("taken")
        else {
            panic!("a taken id is a conflict")
        };
        assert!(message.contains("node 1 is already a member") && message.contains("127.0.0.1:7171"), "{message}");
        assert!(not_taken(&members, &add(1, "127.0.0.1:7171")).is_err(), "a voter is not added twice");
        assert_eq!(not_taken(&members, &add(2, "127.0.0.1:7272")), Ok(()), "the same learner again resumes its add");
        assert!(not_taken(&members, &add(2, "127.0.0.1:7373")).is_err(), "a learner does not move");
    }
}
