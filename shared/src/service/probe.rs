//! The MCP probe: each distinct configured MCP server listed the way a client lists it (an
//! uncached `tools/list`), concurrently, its verdict recorded as `teal_mcp_server_up` (1/0) and
//! its latency as `teal_mcp_probe_duration` per server. The scheduled `mcp-probe` function runs
//! it every minute (the MCPServerDown alarm watches it); `/ready` and `teal serve` run the same.

use std::collections::HashSet;
use std::time::Instant;

use futures::future::join_all;

use crate::api::types::Check;
use crate::service::AppState;
use crate::telemetry::{error_chain, metrics};

/// Probes every distinct MCP server (by name and URL) of every agent; one check each.
pub async fn probe(state: &AppState) -> Vec<Check> {
    let registry = state.registry();
    let mut seen = HashSet::new();
    let servers: Vec<_> = registry
        .iter()
        .flat_map(|agent| agent.mcp_servers())
        .filter(|s| seen.insert((s.name.as_str(), s.url.as_str())))
        .collect();
    join_all(servers.iter().map(|s| async move {
        let started = Instant::now();
        let result = state.mcp.check(s).await;
        let elapsed = started.elapsed();
        metrics::mcp_probe(&s.name, result.is_ok(), elapsed);
        let name = format!("mcp:{}", s.name);
        let ms = elapsed.as_secs_f64() * 1000.0;
        match result {
            Ok(tools) => Check { name, ok: true, tools: Some(tools), error: None, ms },
            Err(e) => {
                let error = error_chain(&e);
                tracing::warn!(server = %s.name, error = %error, "MCP server check failed");
                Check { name, ok: false, tools: None, error: Some(error), ms }
            }
        }
    }))
    .await
}
