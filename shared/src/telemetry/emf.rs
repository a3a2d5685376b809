//! The Lambda exporter: [`super::metrics`] as CloudWatch Embedded Metric Format lines on stdout.
//!
//! `metrics_cloudwatch_embedded` does the work: its recorder aggregates in memory and its
//! runtime layer writes one EMF document per label set after each invocation (no API call, no
//! added latency: CloudWatch Logs turns the lines into metrics), plus a cold-start count on the
//! first one. Every document has the dimension `function` (the Lambda function name) besides its
//! labels, and carries the invocation's request id as the property `request_id` (a property is
//! searchable in Logs Insights but never a dimension). This module only installs it and hands
//! the collector to the runtime; it must not write EMF itself.

use std::sync::OnceLock;

use metrics_cloudwatch_embedded::{Builder, Collector};

use super::metrics::{self, COLD_STARTS, NAMESPACE};

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// The collector for `function`, not installed: tests flush it to a buffer of their own.
pub fn builder(function: &str) -> Builder {
    Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("function", function.to_owned())
        .lambda_cold_start_metric(COLD_STARTS)
        .with_lambda_request_id("request_id")
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
