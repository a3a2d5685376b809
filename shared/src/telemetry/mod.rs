//! Logs, metrics and traces: JSON lines through `tracing`, one subscriber per process; every
//! metric through [`metrics`], exported as EMF in Lambda ([`emf`]) or Prometheus text locally
//! (`prometheus`, feature `prometheus`); the spans over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`otlp`, feature `otlp`: without the variable nothing of
//! it is built).
//!
//! Owns the subscriber and exporter set-up. Secrets never reach a log line because they are
//! `SecretString`s everywhere else; nothing here filters text.

pub mod emf;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;
pub mod runtime;

use std::sync::OnceLock;
use std::time::Instant;

use tracing_subscriber::EnvFilter;

use crate::settings::Env;

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

/// Installs a JSON subscriber filtered by `RUST_LOG` (default `info`, rmcp at `warn`), with
/// OTLP trace export when the process environment configures it. Safe to call twice: the second
/// call does nothing.
pub fn init_json_logs() {
    init_json_logs_from(&Env::process());
}

/// [`init_json_logs`] with the OTLP settings read from `env` (`RUST_LOG` is still the
/// process's). Settings that do not read (or a build without the `otlp` feature) give plain JSON
/// logs: the start fails on them with the variable named ([`crate::settings::Settings::read`]).
pub fn init_json_logs_from(env: &Env) {
    #[cfg(feature = "otlp")]
    if let Ok(Some(settings)) = crate::settings::otlp::read(env) {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        match otlp::layer(&settings) {
            Ok(Some(traces)) => {
                let _ = tracing_subscriber::registry()
                    .with(json_layer().with_filter(log_filter()))
                    .with(traces.with_filter(span_filter()))
                    .try_init();
                tracing::info!(endpoint = %settings.endpoint, service = %settings.service_name, "exporting spans over OTLP");
                return;
            }
            Ok(None) => return,
            Err(e) => {
                init_plain_json_logs();
                tracing::error!(error = %error_chain(&e), "spans are not exported");
                return;
            }
        }
    }
    let _ = env;
    init_plain_json_logs();
}

fn init_plain_json_logs() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry().with(json_layer().with_filter(log_filter())).try_init();
}

fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"))
}

/// The JSON log lines: each with the span it is in and the list of spans above it.
fn json_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(true).with_target(false)
}

/// What is exported: spans and their events at `info` and above, never a client library's
/// own debug spans (the exporter's HTTP client would otherwise trace its own exports), rmcp's
/// at `warn` as in the logs.
#[cfg(feature = "otlp")]
fn span_filter() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("rmcp", tracing::Level::WARN)
}

/// Joins a request's span to the caller's trace (`traceparent`, else an X-Ray header) when
/// spans are exported; nothing otherwise.
pub fn join_caller_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    #[cfg(feature = "otlp")]
    otlp::join_caller_trace(span, headers);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, headers);
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
