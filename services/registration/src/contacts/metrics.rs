//! The contact counters (registered on the service's metrics registry; the handlers count).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabels {
    pub(crate) source: String,
}

/// Counters behind the undeliverable-contacts alert (helm/.../prometheusrule).
#[derive(Clone, Default)]
pub struct ContactMetrics {
    pub(crate) undeliverable: Family<SourceLabels, Counter>,
    pub(crate) unreachable: Counter,
    pub(crate) verified: Counter,
}

impl ContactMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "registration_contacts_undeliverable",
            "Contact addresses that became undeliverable, by where the failure was learnt",
            metrics.undeliverable.clone(),
        );
        registry.register(
            "registration_accounts_unreachable",
            "Accounts marked unreachable (repeated permanent failures of their addresses)",
            metrics.unreachable.clone(),
        );
        registry.register(
            "registration_contacts_verified",
            "Contact addresses verified with the mailed code",
            metrics.verified.clone(),
        );
        metrics
    }
}
