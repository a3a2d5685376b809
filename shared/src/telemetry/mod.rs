//! Logs and metrics: JSON lines through `tracing`, one subscriber per process; every metric
//! through [`metrics`], exported as EMF in Lambda ([`emf`]) or Prometheus text locally
//! (`prometheus`, feature `prometheus`).
//!
//! Owns the subscriber and exporter set-up. Secrets never reach a log line because they are
//! `SecretString`s everywhere else; nothing here filters text.

pub mod emf;
pub mod metrics;
#[cfg(feature = "prometheus")]
pub mod prometheus;

use std::sync::OnceLock;
use std::time::Instant;

use tracing_subscriber::EnvFilter;

static STARTED: OnceLock<Instant> = OnceLock::new();

/// A Lambda function's first call: JSON logs, the EMF exporter, and the start of its init
/// (for [`init_finished`]).
pub fn init_lambda() {
    STARTED.get_or_init(Instant::now);
    init_json_logs();
    emf::install();
}

/// Records the init duration (since [`init_lambda`]); call once, when the function is ready.
pub fn init_finished() {
    if let Some(started) = STARTED.get() {
        metrics::init_duration(started.elapsed());
    }
}

/// Installs a JSON subscriber filtered by `RUST_LOG` (default `info`, rmcp at `warn`). Safe to call twice: the
/// second call does nothing.
pub fn init_json_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(true)
        .with_target(false)
        .try_init();
}

/// Installs a human-readable subscriber on stderr filtered by `RUST_LOG` (default `default`),
/// for commands whose stdout is their result. Safe to call twice.
pub fn init_cli_logs(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// An error and its sources, joined by `: `, for one log field. A source whose text the outer
/// message already holds is not repeated.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_join_sources_once() {
        let e = Outer(std::io::Error::other("inner cause"));
        assert_eq!(error_chain(&e), "outer: inner cause");
        assert_eq!(error_chain(&std::io::Error::other("alone")), "alone");
    }
}
