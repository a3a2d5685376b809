//! OTLP/HTTP trace export (feature `otlp`): the run's `tracing` spans (the request, and the
//! OpenTelemetry GenAI `invoke_agent` / `chat` / `execute_tool` spans) as OTLP protobuf to the
//! collector `OTEL_EXPORTER_OTLP_ENDPOINT` names ([`crate::settings::otlp`] reads it).
//!
//! Built only when that variable is set: otherwise no layer, no client, no buffer exists.
//! `tracing-opentelemetry` turns spans into OpenTelemetry spans and `opentelemetry-otlp` encodes
//! and sends them over the reqwest client the process already links. Finished spans wait in a
//! bounded buffer ([`Buffer`]) and go out in one request when [`flush`] runs: after every Lambda
//! invocation (`telemetry::runtime`, before the runtime asks for the next event, so a frozen
//! container holds nothing back), every few seconds under `teal serve` ([`spawn_flusher`]). The export is
//! async on the caller's runtime (the SDK's batch processor exports from a thread of its own,
//! where an async client has no runtime), bounded by the export timeout; a failure is a log line,
//! never the request's failure. Header values (a backend's API key) are only handed to the
//! exporter: never logged. Must not install anything by itself: [`super::init_json_logs_from`]
//! composes [`layer`] with the JSON logs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanExporter as _, SpanProcessor};
use secrecy::ExposeSecret;
use tracing_subscriber::registry::LookupSpan;

use crate::settings::OtlpSettings;

/// Finished spans held between flushes; beyond it spans are dropped (and counted in the log).
const MAX_BUFFERED: usize = 8192;

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("the OTLP HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    #[error("the OTLP exporter could not be built")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// Finished spans waiting for [`flush`].
#[derive(Default)]
struct Pending {
    spans: Mutex<Vec<SpanData>>,
    dropped: AtomicUsize,
}

/// The span processor: keeps finished spans for [`flush`] (no thread, no timer of its own).
#[derive(Clone)]
struct Buffer(Arc<Pending>);

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("otlp::Buffer")
    }
}

impl SpanProcessor for Buffer {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        let mut spans = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
        if spans.len() < MAX_BUFFERED {
            spans.push(span);
        } else {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Exporting is async ([`flush`]); the SDK's blocking flush has nothing to do.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The installed exporter.
struct Export {
    pending: Arc<Pending>,
    exporter: tokio::sync::Mutex<opentelemetry_otlp::SpanExporter>,
    timeout: Duration,
    endpoint: String,
    /// Kept for the life of the process (the tracer holds it too).
    _provider: SdkTracerProvider,
}

static EXPORT: OnceLock<Export> = OnceLock::new();

/// The `tracing` layer that records spans for export to `settings`' collector, and installs
/// the exporter [`flush`] uses. Once per process: `None` when an exporter is already installed.
pub fn layer<S>(settings: &OtlpSettings) -> Result<Option<impl tracing_subscriber::Layer<S>>, OtlpError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if EXPORT.get().is_some() {
        return Ok(None);
    }
    let client =
        crate::http_client::builder().timeout(settings.timeout).build().map_err(OtlpError::Client)?;
    let headers: HashMap<String, String> =
        settings.headers.iter().map(|(k, v)| (k.clone(), v.expose_secret().to_owned())).collect();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .with_headers(headers)
        .build()
        .map_err(OtlpError::Exporter)?;
    let resource = Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attributes(
            settings.resource.iter().map(|(k, v)| opentelemetry::KeyValue::new(k.clone(), v.clone())),
        )
        .build();
    exporter.set_resource(&resource);
    let pending = Arc::new(Pending::default());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Buffer(pending.clone()))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("teal");
    let installed = Export {
        pending,
        exporter: tokio::sync::Mutex::new(exporter),
        timeout: settings.timeout,
        endpoint: settings.endpoint.clone(),
        _provider: provider,
    };
    if EXPORT.set(installed).is_err() {
        return Ok(None);
    }
    Ok(Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false),
    ))
}

/// Whether an exporter is installed.
pub fn installed() -> bool {
    EXPORT.get().is_some()
}

/// Makes `span` (a request's) a child of the caller's trace when `headers` carry a valid W3C
/// `traceparent` (with its `tracestate`), else of an AWS X-Ray trace in `x-amzn-trace-id`
/// (`Root=1-…-…;Parent=…;Sampled=…`, as API Gateway forwards it with active tracing). Nothing
/// without an exporter or a valid header: the request then starts a trace of its own.
pub fn join_caller_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !installed() {
        return;
    }
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let mut cx = propagator.extract(&Headers(headers));
    if !cx.span().span_context().is_valid()
        && let Some(parent) =
            headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok()).and_then(xray_parent)
    {
        cx = opentelemetry::Context::new().with_remote_span_context(parent);
    }
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The span context an X-Ray trace header names: `Root=1-{8 hex}-{24 hex}` is the 128-bit trace
/// id, `Parent={16 hex}` the span id, `Sampled=1` the sampled flag. `None` when either is
/// missing or malformed.
fn xray_parent(header: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let (mut trace, mut parent, mut sampled) = (None, None, false);
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("Root", v)) => {
                let mut pieces = v.split('-');
                let (Some("1"), Some(time), Some(rest), None) =
                    (pieces.next(), pieces.next(), pieces.next(), pieces.next())
                else {
                    return None;
                };
                if time.len() != 8 || rest.len() != 24 {
                    return None;
                }
                trace = TraceId::from_hex(&format!("{time}{rest}")).ok();
            }
            Some(("Parent", v)) if v.len() == 16 => parent = SpanId::from_hex(v).ok(),
            Some(("Sampled", v)) => sampled = v == "1",
            _ => {}
        }
    }
    let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let context = SpanContext::new(trace?, parent?, flags, true, TraceState::default());
    context.is_valid().then_some(context)
}

/// The request's headers as the propagator reads them.
struct Headers<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Sends every finished span to the collector in one request, within the export timeout. A
/// failure (collector down, timeout) is logged and the spans are dropped: telemetry never fails
/// or holds up the work it describes for longer than the timeout.
pub async fn flush() {
    let Some(export) = EXPORT.get() else { return };
    let batch = std::mem::take(&mut *export.pending.spans.lock().unwrap_or_else(PoisonError::into_inner));
    let dropped = export.pending.dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        tracing::warn!(dropped, max = MAX_BUFFERED, "spans dropped: the export buffer was full");
    }
    if batch.is_empty() {
        return;
    }
    let spans = batch.len();
    let exporter = export.exporter.lock().await;
    match tokio::time::timeout(export.timeout, exporter.export(batch)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, spans, endpoint = %export.endpoint, "spans not exported");
        }
        Err(_) => tracing::warn!(
            spans,
            endpoint = %export.endpoint,
            timeout_ms = export.timeout.as_millis() as u64,
            "span export timed out"
        ),
    }
}

/// Flushes every `every` until the process ends (`teal serve`); `None` without an exporter.
pub fn spawn_flusher(every: Duration) -> Option<tokio::task::JoinHandle<()>> {
    installed().then(|| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                flush().await;
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::xray_parent;

    #[test]
    fn an_xray_header_names_the_trace_and_parent_and_a_malformed_one_nothing() {
        let cx = xray_parent("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
            .expect("a valid header");
        assert_eq!(cx.trace_id().to_string(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(cx.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(cx.is_sampled() && cx.is_remote());
        let unsampled =
            xray_parent("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0");
        assert!(!unsampled.expect("valid").is_sampled());
        for bad in [
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3f;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz",
            "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
        ] {
            assert!(xray_parent(bad).is_none(), "{bad}");
        }
    }
}
