//! `POST /{name}/{version}/sse`: one agent run streamed as Server-Sent Events.
//!
//! The body is an axum streaming body, so the same route serves `teal serve` and the Lambda
//! function that runs under `lambda_http::run_with_streaming_response`. Events, in order:
//! `tool-call-started` / `tool-call-finished` per tool call as they happen, then either
//! `partial-response` (the whole answer, in Teal's `PartialResponse` shape) and
//! `final-response` (Teal's `InvokeResponse`), or one `error` event carrying the same JSON
//! body a buffered request would have had. Mistakes the client can fix before anything runs
//! (unknown agent, invalid body, body too large) are plain 4xx JSON responses, not streams.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use serde_json::json;
use tokio::sync::mpsc;

use super::{ApiError, Deadline, RequestId, SharedState, find_agent, request_id, types};
use crate::agent::RunEvent;

/// `POST /{name}/{version}/sse`
pub fn stream_router() -> Router<SharedState> {
    Router::new().route("/{name}/{version}/sse", post(stream)).layer(DefaultBodyLimit::disable())
}

/// One SSE frame. `data` is single-line JSON, so it needs no `data:` continuation lines.
pub fn sse_frame(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// Aborts the run when the response stream is dropped (the client went away).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn stream(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
    rid: Option<Extension<RequestId>>,
    deadline: Option<Extension<Deadline>>,
    caller: Option<Extension<super::Caller>>,
    req: Request,
) -> Response {
    let rid = request_id(rid);
    let caller = super::caller_id(caller);
    let no_cache = super::no_cache(req.headers());
    let deadline = super::run_deadline(&state, deadline);
    let body = match super::read_body(req, state.settings.body_limit).await {
        Ok(b) => b,
        Err(e) => return e.into_response_with_id(&rid),
    };
    let precheck = find_agent(&state, &name, &version)
        .and_then(|_| types::parse_invoke_body(&body).map_err(ApiError::BadRequest));
    if let Err(e) = precheck {
        return e.into_response_with_id(&rid);
    }

    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let run_rid = rid.clone();
    let run = tokio::spawn(async move {
        let events = tx.clone();
        let on_event = move |ev: RunEvent| {
            let name = match ev {
                RunEvent::ToolStarted { .. } => "tool-call-started",
                RunEvent::ToolFinished { .. } => "tool-call-finished",
            };
            let _ = events.send(sse_frame(name, &serde_json::to_value(&ev).unwrap_or_default()));
        };
        let opts = super::InvokeOptions { request_id: &run_rid, caller: &caller, no_cache };
        let result =
            super::invoke_agent_with_events(&state, &name, &version, &opts, &body, deadline, &on_event).await;
        match result {
            Ok((resp, _cache)) => {
                let partial = json!({
                    "session_id": resp.session_id,
                    "request_id": resp.request_id,
                    "source": resp.source,
                    "output_partial": resp.output_raw,
                });
                let _ = tx.send(sse_frame("partial-response", &partial));
                let _ =
                    tx.send(sse_frame("final-response", &serde_json::to_value(&resp).unwrap_or_default()));
            }
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(agent = %name, version = %version, error = %e, "streamed invoke failed");
                }
                let resp = e.into_response_with_id(&run_rid);
                let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let _ = tx.send(sse_frame("error", &body));
            }
        }
    });
    let guard = AbortOnDrop(run);
    let frames = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|frame| (Ok::<_, Infallible>(frame), (rx, guard)))
    });
    let mut resp = Body::from_stream(frames).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&rid) {
        headers.insert("x-request-id", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_and_one_data_line() {
        let f = sse_frame("final-response", &json!({"output_raw": "a\nb"}));
        assert_eq!(&f[..], b"event: final-response\ndata: {\"output_raw\":\"a\\nb\"}\n\n");
    }
}
