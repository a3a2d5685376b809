//! The `authorizer` function: API Gateway HTTP API Lambda authorizer (payload 2.0, simple
//! responses) checking `x-api-key` against the key set in `TA_API_KEYS_SECRET`.
//!
//! Thin binary: JSON logs, the checker built once per container (the key set is cached with
//! `TA_API_KEYS_TTL`), then the runtime loop. The logic is `teal_core::lambda::authorizer`'s.

use teal_core::lambda::authorizer;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    teal_core::telemetry::init_json_logs();
    let checker = authorizer::boot().await?;
    authorizer::run(checker).await
}
