//! The `ready` function: `GET /ready` checks every MCP server and the session store (503 on failure).
//!
//! Thin binary: JSON logs, the endpoint's app built once per container (configs, LLM client,
//! MCP connections, secrets), then the runtime loop. The logic is `teal_core::lambda`'s.

use teal_core::lambda::{self, Endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    teal_core::telemetry::init_lambda();
    let app = lambda::boot(Endpoint::Ready).await?;
    lambda::run(app).await
}
