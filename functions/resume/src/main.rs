//! The `resume` function: `POST /tealagents/v1alpha1/resume/{request_id}` (and `/sse`) applies a
//! human's decision on a run paused for approval, and goes on with it when approved.
//!
//! Thin binary: JSON logs, the endpoint's app built once per container, then the runtime loop.
//! The logic is `teal_core::service::resume`'s.

use teal_core::lambda::{self, Endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    teal_core::telemetry::init_json_logs();
    let app = lambda::boot(Endpoint::Resume).await?;
    lambda::run(app).await
}
