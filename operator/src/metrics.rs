//! Prometheus metrics (OpenMetrics text at `/metrics`): reconciles, failures by reason,
//! reconcile duration, and whether this replica leads.

use std::sync::atomic::AtomicI64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub controller: String,
    pub reason: String,
}

/// The operator's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub failures: Family<FailureLabels, Counter>,
    pub duration: Family<ControllerLabels, Histogram>,
    pub leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("poolgate_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_failures", "Reconciles that failed, by reason", failures.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration", duration.clone());
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        Self { registry, reconciles, failures, duration, leader }
    }
}

impl Metrics {
    /// Counts a reconcile and times it until the guard drops.
    pub fn start(&self, controller: &str) -> ReconcileTimer<'_> {
        let labels = ControllerLabels { controller: controller.into() };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer { metrics: self, labels, start: Instant::now() }
    }

    pub fn failure(&self, controller: &str, reason: &str) {
        self.failures.get_or_create(&FailureLabels { controller: controller.into(), reason: reason.into() }).inc();
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Observes the reconcile duration on drop.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    labels: ControllerLabels,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.duration.get_or_create(&self.labels).observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reconciles_failures_and_durations() {
        let m = Metrics::default();
        drop(m.start("providerpool"));
        m.failure("providerpool", "RedisUnreachable");
        let text = m.encode();
        assert!(text.contains("poolgate_operator_reconciles_total{controller=\"providerpool\"} 1"), "{text}");
        assert!(text.contains("reason=\"RedisUnreachable\""));
        assert!(text.contains("poolgate_operator_reconcile_duration_seconds_count{controller=\"providerpool\"} 1"));
    }
}
