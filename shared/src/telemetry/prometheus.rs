//! The local exporter: [`super::metrics`] as Prometheus text, for `teal serve`'s `GET /metrics`.
//!
//! `metrics-exporter-prometheus` keeps the values and renders them (counters get `_total`,
//! units their suffix: `teal_requests_total`, `teal_request_duration_seconds`, histograms with
//! the buckets below). Its own HTTP listener is not built: the route is ours, on the API's
//! listener, and also refreshes the peak-memory gauge before rendering.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::metrics;

/// Seconds: LLM calls and runs take up to minutes, cache hits and tool calls milliseconds.
const BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's metrics recorder (once). `None` when
/// another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Some(h);
    }
    let builder = PrometheusBuilder::new().with_recommended_naming(true);
    // Only fails for an empty bucket list.
    let builder = builder.set_buckets(&BUCKETS).ok()?;
    match builder.install_recorder() {
        Ok(handle) => {
            metrics::describe();
            Some(HANDLE.get_or_init(|| handle))
        }
        Err(e) => {
            tracing::warn!(error = %e, "Prometheus metrics not installed");
            None
        }
    }
}

/// `GET /metrics` in the Prometheus text format (404 when no Prometheus recorder is installed).
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new().route("/metrics", get(render))
}

async fn render() -> axum::response::Response {
    let Some(handle) = HANDLE.get() else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    metrics::max_rss();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}
