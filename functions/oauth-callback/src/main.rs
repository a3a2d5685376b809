//! The `oauth-callback` function: `GET /oauth/callback` finishes a caller's OAuth authorization.
//!
//! Thin binary: JSON logs, the endpoint's app built once per container (configs, stores, the
//! OAuth layer), then the runtime loop. The logic is `teal_core::lambda`'s and `teal_core::oauth`'s.

use teal_core::lambda::{self, Endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    teal_core::telemetry::init_lambda();
    let app = lambda::boot(Endpoint::OAuthCallback).await?;
    lambda::run(app).await
}
