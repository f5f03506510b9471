//! poolgate proxy.
//!
//! [`convert`] is the protocol conversion layer: it translates requests, unary responses, SSE
//! streams and errors between the OpenAI Chat, OpenAI Responses, Anthropic Messages and Gemini
//! wire protocols. The HTTP server, routing and pool selection live elsewhere.

pub mod convert;
