//! The telemetry's Lambda runtime layer, the same around every function: before each invocation
//! the EMF request id and (before the first) the cold-start count; after it, once answered, the
//! invocation's metrics written to stdout ([`super::emf`]) and, with the OTLP exporter, its spans
//! exported (`super::otlp`). Both happen before the runtime asks for the next event, so a frozen
//! container holds nothing back. Without the EMF collector and without an exporter there is no
//! layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use lambda_http::lambda_runtime::LambdaInvocation;
use lambda_http::lambda_runtime::tower::layer::util::Identity;
use lambda_http::lambda_runtime::tower::util::{Either, option_layer};
use lambda_http::lambda_runtime::tower::{Layer, Service};
use metrics_cloudwatch_embedded::Collector;

use super::emf;

/// The layer for this process: what [`super::init_lambda`] (and the OTLP settings) installed.
pub fn layer() -> Either<TelemetryLayer, Identity> {
    let layer = TelemetryLayer { emf: emf::collector(), spans: spans_exported() };
    option_layer((layer.emf.is_some() || layer.spans).then_some(layer))
}

fn spans_exported() -> bool {
    #[cfg(feature = "otlp")]
    return super::otlp::installed();
    #[cfg(not(feature = "otlp"))]
    false
}

/// See the module.
#[derive(Clone, Copy)]
pub struct TelemetryLayer {
    emf: Option<&'static Collector>,
    spans: bool,
}

impl std::fmt::Debug for TelemetryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryLayer")
            .field("emf", &self.emf.is_some())
            .field("spans", &self.spans)
            .finish()
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = TelemetryService<S>;

    fn layer(&self, inner: S) -> TelemetryService<S> {
        TelemetryService { layer: *self, inner }
    }
}

/// [`TelemetryLayer`]'s service.
pub struct TelemetryService<S> {
    layer: TelemetryLayer,
    inner: S,
}

impl<S> Service<LambdaInvocation> for TelemetryService<S>
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
        let TelemetryLayer { emf: collector, spans } = self.layer;
        if let Some(collector) = collector {
            emf::before_invocation(collector, &invocation.context.request_id);
        }
        let done = self.inner.call(invocation);
        Box::pin(async move {
            let result = done.await;
            if let Some(collector) = collector {
                emf::after_invocation(collector);
            }
            #[cfg(feature = "otlp")]
            if spans {
                super::otlp::flush().await;
            }
            #[cfg(not(feature = "otlp"))]
            let _ = spans;
            result
        })
    }
}
