//! Prometheus metrics (`GET /metrics`, text format).
//!
//! - `poolgate_requests_total{route,provider,status}`
//! - `poolgate_request_duration_seconds{route}`: until the response body ends
//! - `poolgate_time_to_first_byte_seconds{route}`: until the first body chunk (streams and unary)
//! - `poolgate_upstream_errors_total{provider,kind}`: failed upstream attempts (auth,
//!   rate_limited, server, network, timeout)
//! - `poolgate_pool_accounts{provider,state}`: accounts per pool that are usable, unhealthy
//!   (or cooling down) and disabled, read from the store's cache at scrape time
//! - `poolgate_store_degraded`, `poolgate_store_queued_writes`, `poolgate_store_queue_overflows`
//! - `poolgate_client_key_admissions_total{result}`: client-key admissions (admitted,
//!   admitted_offline, unknown, refused, limited, unavailable)
//! - `poolgate_client_key_tokens_total{direction}`: tokens of client-key answers
//! - with `CLIENT_KEY_METRICS=per-key`: `poolgate_client_key_requests_by_key_total{key}` and
//!   `poolgate_client_key_tokens_by_key_total{key,direction}` (one series per key name; a key
//!   the store does not know never makes a series)

use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub provider: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub provider: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub provider: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    pub key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyDirectionLabels {
    pub key: String,
    pub direction: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~105 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    ttfb: HistogramFamily,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub pool_accounts: Family<PoolLabels, Gauge>,
    pub store_degraded: Gauge,
    pub store_queued_writes: Gauge,
    pub store_queue_overflows: Gauge,
    key_admissions: Family<ResultLabels, Counter>,
    key_tokens: Family<DirectionLabels, Counter>,
    key_requests_by_key: Family<KeyLabels, Counter>,
    key_tokens_by_key: Family<KeyDirectionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("poolgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = HistogramFamily::new_with_constructor(latency_histogram);
        let ttfb = HistogramFamily::new_with_constructor(latency_histogram);
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let pool_accounts = Family::<PoolLabels, Gauge>::default();
        let (store_degraded, store_queued_writes, store_queue_overflows) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        r.register("requests", "Client requests by route, provider pool and status", requests.clone());
        r.register("request_duration_seconds", "Time until the response body ends", duration.clone());
        r.register("time_to_first_byte_seconds", "Time until the first response body chunk", ttfb.clone());
        r.register("upstream_errors", "Failed upstream attempts by provider pool and kind", upstream_errors.clone());
        r.register("pool_accounts", "Accounts per pool by state (usable, unhealthy, disabled)", pool_accounts.clone());
        r.register("store_degraded", "1 while Redis is unreachable and writes are queued", store_degraded.clone());
        r.register("store_queued_writes", "Writes waiting for Redis", store_queued_writes.clone());
        r.register("store_queue_overflows", "Writes dropped because the queue was full", store_queue_overflows.clone());
        let key_admissions = Family::<ResultLabels, Counter>::default();
        let key_tokens = Family::<DirectionLabels, Counter>::default();
        let key_requests_by_key = Family::<KeyLabels, Counter>::default();
        let key_tokens_by_key = Family::<KeyDirectionLabels, Counter>::default();
        r.register("client_key_admissions", "Client-key admissions by result", key_admissions.clone());
        r.register("client_key_tokens", "Tokens of client-key answers by direction", key_tokens.clone());
        r.register(
            "client_key_requests_by_key",
            "Admitted requests per client key (per-key mode)",
            key_requests_by_key.clone(),
        );
        r.register("client_key_tokens_by_key", "Tokens per client key (per-key mode)", key_tokens_by_key.clone());
        Self {
            registry: Mutex::new(r),
            requests,
            duration,
            ttfb,
            upstream_errors,
            pool_accounts,
            store_degraded,
            store_queued_writes,
            store_queue_overflows,
            key_admissions,
            key_tokens,
            key_requests_by_key,
            key_tokens_by_key,
        }
    }
}

impl Metrics {
    pub fn request(&self, route: &'static str, provider: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { route, provider: provider.to_string(), status }).inc();
    }
    pub fn duration(&self, route: &'static str, d: Duration) {
        self.duration.get_or_create(&RouteLabels { route }).observe(d.as_secs_f64());
    }
    pub fn ttfb(&self, route: &'static str, d: Duration) {
        self.ttfb.get_or_create(&RouteLabels { route }).observe(d.as_secs_f64());
    }
    pub fn upstream_error(&self, provider: &str, kind: &'static str) {
        self.upstream_errors.get_or_create(&UpstreamErrorLabels { provider: provider.to_string(), kind }).inc();
    }

    /// Counts one client-key admission by its outcome (and per key, when it carries a name).
    pub fn client_key_admission(
        &self,
        outcome: &Result<Option<crate::client_keys::Charge>, crate::client_keys::Refusal>,
    ) {
        let result = match outcome {
            Ok(Some(c)) if c.offline => "admitted_offline",
            Ok(Some(c)) => {
                if let Some(key) = &c.label {
                    self.key_requests_by_key.get_or_create(&KeyLabels { key: key.to_string() }).inc();
                }
                "admitted"
            }
            Ok(None) => return,
            Err(r) => match r.error.status {
                401 => "unknown",
                403 => "refused",
                429 => "limited",
                _ => "unavailable",
            },
        };
        self.key_admissions.get_or_create(&ResultLabels { result }).inc();
    }

    /// Adds an answered client-key request's tokens.
    pub fn client_key_tokens(&self, key: Option<&str>, (input, output): (i64, i64)) {
        for (direction, n) in [("input", input), ("output", output)] {
            let n = n.max(0) as u64;
            self.key_tokens.get_or_create(&DirectionLabels { direction }).inc_by(n);
            if let Some(key) = key {
                self.key_tokens_by_key.get_or_create(&KeyDirectionLabels { key: key.to_string(), direction }).inc_by(n);
            }
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock()) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::default();
        m.request("chat_completions", "openai-custom", 200);
        m.duration("chat_completions", Duration::from_millis(3));
        m.ttfb("chat_completions", Duration::from_millis(1));
        m.upstream_error("openai-custom", "server");
        let text = m.encode();
        for name in [
            "poolgate_requests_total{route=\"chat_completions\",provider=\"openai-custom\",status=\"200\"} 1",
            "poolgate_request_duration_seconds_bucket",
            "poolgate_time_to_first_byte_seconds_count",
            "poolgate_upstream_errors_total",
            "poolgate_store_degraded",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
