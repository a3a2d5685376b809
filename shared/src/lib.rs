//! teal-core: everything the teal-serverless functions share to execute an agent.
//!
//! A request flows: [`api`] parses it -> [`config::Registry`] finds the agent -> [`mcp::McpPool`]
//! gives its tools (warm connections, cached catalog) -> [`agent::Run`] loops over the
//! [`llm::LlmClient`] and the tools -> [`store::SessionStore`] keeps the turn -> [`api`] answers in
//! Teal Agents' `InvokeResponse` shape. Functions and the CLI only build an [`api::AppState`] once
//! and hand requests to it.

pub mod agent;
pub mod api;
pub mod auth;
#[cfg(feature = "backup")]
pub mod backup;
pub mod bootstrap;
pub mod config;
mod error;
pub mod governance;
mod http_client;
pub mod lambda;
pub mod llm;
pub mod mcp;
pub mod oauth;
pub mod secrets;
pub mod service;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod tools;

pub use error::Error;
mod util;
