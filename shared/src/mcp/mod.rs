//! MCP client over streamable HTTP (rmcp): connection reuse, tool catalog, tool calls.
//!
//! Owns one long-lived rmcp client per distinct server (name, URL, headers, timeout) for the
//! life of the process: a Lambda container serves many invocations, so initialize happens once
//! and every later tool call is one HTTP round trip. rmcp re-initialises a session the server
//! expired (HTTP 404) and retries the call once; a client whose transport has died is replaced
//! on next use. Servers without sessions (stateless streamable HTTP) work the same way. The tool
//! catalog of each server is cached here with a TTL, and each agent's tool set (its servers'
//! catalogs through its own allow/deny) is kept until one of those catalogs changes. This module
//! must not know about the LLM: it turns MCP results into text with [`convert`], and the agent
//! loop does the rest.
//!
//! `pool` holds the clients and runs calls, `catalog` lists and caches, `tools` builds an
//! agent's tool set, `headers` renders configured headers, `error` says what failed.

mod authorize;
mod catalog;
mod connect;
pub mod convert;
mod error;
mod handler;
mod headers;
mod pool;
mod revision;
#[cfg(test)]
mod tests;
mod tools;

pub use authorize::AuthorizationNeeded;
pub use error::{AuthStep, HeaderError, McpError};
pub use pool::{McpPool, McpSettings, ToolOutcome};
pub use tools::{AgentTools, ToolRoute};
