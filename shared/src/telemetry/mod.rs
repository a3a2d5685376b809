//! Logging: JSON lines through `tracing`, one subscriber per process.
//!
//! Owns the subscriber set-up only. Secrets never reach a log line because they are
//! `SecretString`s everywhere else; nothing here filters text.

use tracing_subscriber::EnvFilter;

/// Installs a JSON subscriber filtered by `RUST_LOG` (default `info`, rmcp at `warn`). Safe to call twice: the
/// second call does nothing.
pub fn init_json_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
