//! The `stream` function: `POST /{name}/{version}/sse` streams a run as Server-Sent Events (response streaming, behind an API Gateway REST API).
//!
//! Thin binary: JSON logs, the endpoint's app built once per container (configs, LLM client,
//! MCP connections, secrets), then the runtime loop. The logic is `teal_core::lambda`'s.

use teal_core::lambda::{self, Endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    teal_core::telemetry::init_json_logs();
    let app = lambda::boot(Endpoint::Stream).await?;
    lambda_http::run_with_streaming_response(app).await
}
