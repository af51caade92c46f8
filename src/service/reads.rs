//! Reads: this node's applied state, optionally after a read index (consistent reads).

use super::{Refusal, Service};
use crate::registry::infra::Membership;
use crate::registry::view::View;
use crate::registry::Registry;

impl Service {
    /// Waits until this node's state reflects every write acknowledged anywhere before the call.
    pub async fn linearize(&self) -> Result<(), Refusal> {
        self.node.linearize().await.map_err(Refusal::from)
    }

    /// `f` of the client view (registry and `infra.discovery`), under the registry's read lock.
    pub fn read<R>(&self, f: impl FnOnce(View<'_>) -> R) -> R {
        let membership = self.node.served_membership();
        let registry = self.node.registry.read();
        f(View::new(&registry, &membership))
    }

    /// `f` of the registry alone (no membership is computed), under its read lock.
    pub fn read_registry<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        f(&self.node.registry.read())
    }

    /// The members that serve clients (what `infra.discovery` lists).
    pub fn members(&self) -> Membership {
        self.node.served_membership()
    }
}
