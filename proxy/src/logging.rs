//! Structured logs through `tracing`; `RUST_LOG` filters, `POOLGATE_LOG_FORMAT=json` for JSON.
//! With the OpenTelemetry settings, spans are also exported ([`crate::telemetry`]).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Installs the global subscriber once (later calls are no-ops). Call inside the runtime that
/// will serve requests (the trace exporter runs on it).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("POOLGATE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `RUST_LOG` filters the log only: exported spans do not depend on the log level.
    let fmt: Box<dyn Layer<Registry> + Send + Sync> =
        if json { fmt.json().with_filter(filter).boxed() } else { fmt.with_filter(filter).boxed() };
    let _ = tracing_subscriber::registry().with(fmt).with(crate::telemetry::layer()).try_init();
}
