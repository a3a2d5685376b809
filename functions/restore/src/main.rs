//! The `restore` function: restores a backup when invoked by hand, then checks readiness.
//!
//! Thin binary: JSON logs, the job's clients built once per container, then the runtime loop.
//! The logic is `teal_core::lambda::job`'s and `teal_core::backup`'s.

use teal_core::lambda::job::{self, Job};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    teal_core::telemetry::init_lambda();
    let app = job::boot(Job::Restore).await?;
    job::run(Job::Restore, app).await
}
