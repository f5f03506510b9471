//! poolgate proxy.
//!
//! [`convert`] is the protocol conversion layer: it translates requests, unary responses, SSE
//! streams and errors between the OpenAI Chat, OpenAI Responses, Anthropic Messages and Gemini
//! wire protocols. [`providers`] says how a call reaches an account of each provider type,
//! [`pool`] chooses accounts and keeps their health, [`server`] runs the gateway over the
//! storage layer, and [`metrics`] exports Prometheus metrics.

pub mod admin;
pub mod cli;
pub mod client_keys;
pub mod convert;
pub mod logging;
pub mod metrics;
pub mod oauth;
pub mod pool;
pub mod prompt_log;
pub mod providers;
pub mod server;
pub mod telemetry;
#[cfg(test)]
mod test_json;
pub mod usage;
