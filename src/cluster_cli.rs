//! `discovery cluster status|add|remove|promote|demote`: the operator routes through the library client
//! ([`crate::client::Client`]'s admin calls).

use crate::cli::{ClusterAction, ClusterArgs};
use crate::client::Client;

/// Run one cluster command; the text to print on success, or an error message.
pub async fn run(args: ClusterArgs) -> Result<String, String> {
    let client = Client::builder([args.server.clone()]).cluster_token(args.cluster_token.clone()).build();
    let done = match args.action {
        ClusterAction::Status => client
            .status_json_of(&args.server)
            .await
            .map(|status| serde_json::to_string_pretty(&status).unwrap_or_else(|_| status.to_string())),
        ClusterAction::Add { node, learner } => client.cluster_add(&args.server, &node, learner).await,
        ClusterAction::Promote { node } => client.cluster_promote(&args.server, &node).await,
        ClusterAction::Demote { node } => client.cluster_demote(&args.server, &node).await,
        ClusterAction::Remove { node } => client.cluster_remove(&args.server, &node).await,
    };
    done.map_err(|e| e.to_string())
}
