//! The Lambda exporter: [`super::metrics`] as CloudWatch Embedded Metric Format lines on stdout.
//!
//! `metrics_cloudwatch_embedded` does the work: its recorder aggregates in memory and writes one
//! EMF document per label set (no API call, no added latency: CloudWatch Logs turns the lines
//! into metrics). The runtime layer (`telemetry::runtime`) calls [`before_invocation`] and
//! [`after_invocation`]: a cold-start count before the first invocation, the collector flushed to
//! stdout after each. Every document has the
//! dimension `function` (the Lambda function name) besides its labels, and carries the
//! invocation's request id as the property `request_id` (a property is searchable in Logs
//! Insights but never a dimension). The crate's own runtime layer is not used: its `lambda`
//! feature turns on every `lambda_http` event type (ALB, WebSocket) in every function, and it
//! panics when stdout cannot be written; a metric line is never worth a failed invocation.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_cloudwatch_embedded::{Builder, Collector};

use super::metrics::{self, COLD_STARTS, NAMESPACE};

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// The collector for `function`, not installed: tests flush it to a buffer of their own.
pub fn builder(function: &str) -> Builder {
    Builder::new().cloudwatch_namespace(NAMESPACE).with_dimension("function", function.to_owned())
}

/// Installs the EMF recorder as the process's metrics recorder (once; later calls return the
/// same collector). The function name is `AWS_LAMBDA_FUNCTION_NAME`. `None` when another
/// recorder was installed first.
pub fn install() -> Option<&'static Collector> {
    if let Some(c) = COLLECTOR.get() {
        return Some(c);
    }
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".to_owned());
    match builder(&function).init() {
        Ok(collector) => {
            metrics::describe();
            Some(*COLLECTOR.get_or_init(|| collector))
        }
        Err(e) => {
            tracing::warn!(error = %e, "EMF metrics not installed");
            None
        }
    }
}

/// The installed collector, if [`install`] ran.
pub fn collector() -> Option<&'static Collector> {
    COLLECTOR.get().copied()
}

/// Whether this process has written its cold-start count.
static COLD_START_WRITTEN: AtomicBool = AtomicBool::new(false);

/// Before an invocation: its request id as the `request_id` property and, before the first one,
/// a `teal_cold_starts` count of 1.
pub(super) fn before_invocation(collector: &Collector, request_id: &str) {
    collector.set_property("request_id", request_id.to_owned());
    if !COLD_START_WRITTEN.swap(true, Ordering::Relaxed)
        && let Err(e) =
            collector.write_single(COLD_STARTS, Some(::metrics::Unit::Count), 1, std::io::stdout())
    {
        tracing::warn!(error = %e, "the cold-start metric could not be written");
    }
}

/// After an invocation: every metric recorded since the last one, to stdout.
pub(super) fn after_invocation(collector: &Collector) {
    if let Err(e) = collector.flush(std::io::stdout()) {
        tracing::warn!(error = %e, "metrics could not be written");
    }
}
