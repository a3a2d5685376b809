//! The Lambda exporter: [`super::metrics`] as CloudWatch Embedded Metric Format lines on stdout.
//!
//! `metrics_cloudwatch_embedded` does the work: its recorder aggregates in memory and writes one
//! EMF document per label set (no API call, no added latency: CloudWatch Logs turns the lines
//! into metrics). [`EmfLayer`] wraps the Lambda runtime: it flushes the collector to stdout after
//! each invocation and writes a cold-start count before the first one. Every document has the
//! dimension `function` (the Lambda function name) besides its labels, and carries the
//! invocation's request id as the property `request_id` (a property is searchable in Logs
//! Insights but never a dimension). The crate's own runtime layer is not used: its `lambda`
//! feature turns on every `lambda_http` event type (ALB, WebSocket) in every function, and it
//! panics when stdout cannot be written; a metric line is never worth a failed invocation.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use lambda_http::lambda_runtime::LambdaInvocation;
use lambda_http::lambda_runtime::tower::{Layer, Service};
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

/// [`EmfLayer`] around the runtime when the collector is installed.
pub fn layer() -> Option<EmfLayer> {
    collector().map(EmfLayer)
}

/// The Lambda runtime layer: the invocation's request id as the `request_id` property, a
/// `teal_cold_starts` count of 1 before the first invocation, and every metric recorded during
/// an invocation written to stdout once it has been answered.
#[derive(Clone, Copy)]
pub struct EmfLayer(pub &'static Collector);

impl std::fmt::Debug for EmfLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmfLayer")
    }
}

impl<S> Layer<S> for EmfLayer {
    type Service = EmfService<S>;

    fn layer(&self, inner: S) -> EmfService<S> {
        EmfService { collector: self.0, inner }
    }
}

/// [`EmfLayer`]'s service.
pub struct EmfService<S> {
    collector: &'static Collector,
    inner: S,
}

/// Whether this process has written its cold-start count.
static COLD_START_WRITTEN: AtomicBool = AtomicBool::new(false);

impl<S> Service<LambdaInvocation> for EmfService<S>
where
    S: Service<LambdaInvocation>,
    S::Future: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    // Not `Send`: the runtime awaits invocations in place.
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let collector = self.collector;
        collector.set_property("request_id", invocation.context.request_id.clone());
        if !COLD_START_WRITTEN.swap(true, Ordering::Relaxed)
            && let Err(e) =
                collector.write_single(COLD_STARTS, Some(::metrics::Unit::Count), 1, std::io::stdout())
        {
            tracing::warn!(error = %e, "the cold-start metric could not be written");
        }
        let done = self.inner.call(invocation);
        Box::pin(async move {
            let result = done.await;
            if let Err(e) = collector.flush(std::io::stdout()) {
                tracing::warn!(error = %e, "metrics could not be written");
            }
            result
        })
    }
}
