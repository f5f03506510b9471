//! poolgate proxy.
//!
//! [`convert`] is the protocol conversion layer: it translates requests, unary responses, SSE
//! streams and errors between the OpenAI Chat, OpenAI Responses, Anthropic Messages and Gemini
//! wire protocols. [`server`] runs the gateway over the storage layer.

pub mod cli;
pub mod convert;
pub mod logging;
pub mod server;
