//! The OpenAI-compatible chat-completions adapter: OpenAI, Azure OpenAI, Ollama, vLLM.
//!
//! Five parts, kept apart: the connection settings ([`OpenAiSettings`], filled once from the
//! environment by [`crate::settings`]), the pure wire translation ([`request_body`] and
//! [`parse_response`], golden-tested with insta), the retry policy's arithmetic (backoff,
//! `Retry-After`, the deadline), the rule for what is kept of an upstream error body (scrubbed
//! of keys and tokens, for the log only), and the HTTP call with its retry loop
//! ([`OpenAiClient`], one pooled `reqwest::Client` for the life of the process).
//!
//! Retries cover HTTP 429/500/502/503/504, connection errors and per-attempt timeouts, with
//! full-jitter exponential backoff that honours `Retry-After`. It must never sleep past the
//! caller's deadline, never retry a 401/403 or another 4xx, and never print the API key: the key
//! lives in a `SecretString` and in a header value marked sensitive, and is not logged.

mod client;
mod redact;
mod settings;
mod stream;
mod wire;

#[cfg(test)]
mod fixtures;

pub use client::OpenAiClient;
pub use settings::{ClientError, DEFAULT_BASE_URL, OpenAiSettings};
pub use wire::{WireRequest, parse_response, request_body};
