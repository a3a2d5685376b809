//! The `mcp-probe` function: every minute (EventBridge) lists each configured MCP server's tools
//! and publishes `teal_mcp_server_up` (1/0) and the latency per server, which the MCPServerDown
//! alarm watches.
//!
//! Thin binary: JSON logs and EMF, the state built once per container (configs, MCP pool,
//! secrets), then the runtime loop. The logic is `teal_core::lambda::probe`'s.

use teal_core::lambda::{self, Endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    teal_core::telemetry::init_lambda();
    let state = lambda::boot_state(Endpoint::McpProbe).await?;
    lambda::probe::run(state).await
}
