//! MCP client over streamable HTTP (rmcp): connection reuse, tool catalog, tool calls.
//!
//! Owns one long-lived rmcp client per distinct server (URL + headers) for the life of the
//! process: a Lambda container serves many invocations, so initialize happens once and every
//! later tool call is one HTTP round trip. rmcp re-initialises a session the server expired
//! (HTTP 404) and retries the call once; a client whose transport has died is replaced on next
//! use. Servers without sessions (stateless streamable HTTP) work the same way. The tool
//! catalog of each server is cached here with a TTL. This module must not know about the LLM:
//! it turns MCP results into text with [`convert`], and the agent loop does the rest.

pub mod convert;
mod pool;
#[cfg(test)]
mod tests;

pub use pool::{AgentTools, McpPool, McpSettings, ToolOutcome, ToolRoute};

/// Why an MCP operation failed. Tool-level failures (`isError`) are not errors here: they are
/// results that go back to the LLM.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP server '{server}' is unreachable: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("MCP server '{server}' did not answer within {timeout_ms} ms")]
    Timeout { server: String, timeout_ms: u128 },
    #[error("MCP server '{server}' failed: {detail}")]
    Protocol { server: String, detail: String },
    #[error("MCP server '{server}' needs secret {secret}: {detail}")]
    Secret { server: String, secret: String, detail: String },
}

impl McpError {
    /// The server's configured name, for the 502 body and the logs.
    pub fn server(&self) -> &str {
        match self {
            McpError::Unreachable { server, .. }
            | McpError::Timeout { server, .. }
            | McpError::Protocol { server, .. }
            | McpError::Secret { server, .. } => server,
        }
    }
}
