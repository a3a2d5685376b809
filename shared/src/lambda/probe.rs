//! The `mcp-probe` function's runtime: every scheduled event (EventBridge, every minute) probes
//! each configured MCP server ([`crate::service::probe`]) and answers the checks; the EMF layer
//! flushes `teal_mcp_server_up` and `teal_mcp_probe_duration` per server after each event. A
//! server that is down is a result (0), never a function error: the alarm reads the metric.

use lambda_http::lambda_runtime::layers::TracingLayer;
use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;

use crate::api::SharedState;
use crate::api::types::Check;

/// What one probe answers.
#[derive(Debug, Serialize)]
pub struct ProbeAnswer {
    /// Every server listed its tools.
    pub up: bool,
    pub servers: Vec<Check>,
}

/// One probe, for the event `_event` (its content does not matter).
pub async fn handle(
    state: &SharedState,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<ProbeAnswer, Diagnostic> {
    let servers = crate::service::probe::probe(state).await;
    let up = servers.iter().all(|c| c.ok);
    tracing::info!(
        up,
        servers = servers.len(),
        down = servers.iter().filter(|c| !c.ok).count(),
        "MCP probe finished"
    );
    Ok(ProbeAnswer { up, servers })
}

/// Serves the probe's events until the runtime stops.
pub async fn run(state: SharedState) -> Result<(), lambda_runtime::Error> {
    let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let state = state.clone();
        async move { handle(&state, event).await }
    });
    lambda_runtime::Runtime::new(handler)
        .layer(TracingLayer::new())
        .layer(crate::telemetry::runtime::layer())
        .run()
        .await
}
