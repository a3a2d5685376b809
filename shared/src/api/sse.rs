//! `POST /{name}/{version}/sse`: one agent run streamed as Server-Sent Events.
//!
//! The body is an axum streaming body, so the same route serves `teal serve` and the Lambda
//! function that runs under `lambda_http::run_with_streaming_response`. Events, in order:
//! `tool-call-started` / `tool-call-finished` per tool call as they happen, one
//! `partial-response` (Teal's `PartialResponse`) per piece of answer text as the LLM streams it,
//! then `final-response` (Teal's `InvokeResponse`); or one `error` event carrying the same JSON
//! body a buffered request would have had. An answer that was not streamed (a cache hit,
//! structured output, a task turn) comes as one `partial-response` holding all of it. Mistakes the client can fix before anything runs
//! (unknown agent, invalid body, body too large) are plain 4xx JSON responses, not streams.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Caller, Deadline, RequestFacts, RequestId, SharedState, error_body, error_response, read_body};
use crate::agent::RunEvent;
use crate::service::invoke::{self, Answer, Invoked};
use crate::store::SessionId;

/// `POST /{name}/{version}/sse`
pub fn stream_router() -> Router<SharedState> {
    Router::new().route("/{name}/{version}/sse", post(stream)).layer(DefaultBodyLimit::disable())
}

/// One SSE frame. `data` is single-line JSON, so it needs no `data:` continuation lines.
pub fn sse_frame(event: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

/// Teal's `PartialResponse`: the answer so far.
#[derive(Serialize)]
struct PartialResponse<'a> {
    session_id: &'a str,
    request_id: &'a str,
    source: &'a str,
    output_partial: &'a str,
}

/// Teal's `IntermediateTaskResponse`: a Sequential task other than the last, finished.
#[derive(Serialize)]
struct IntermediateTaskResponse<'a> {
    task_no: u32,
    task_name: &'a str,
    response: TaskResponse<'a>,
}

#[derive(Serialize)]
struct TaskResponse<'a> {
    request_id: &'a str,
    source: &'a str,
    token_usage: super::types::TokenUsage,
    output_raw: &'a str,
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
    caller: Option<Extension<Caller>>,
    req: Request,
) -> Response {
    let facts = Arc::new(RequestFacts::new(&state, rid, deadline, caller));
    let no_cache = super::no_cache(req.headers());
    let body = match read_body(req, state.settings.body_limit).await {
        Ok(b) => b,
        Err(e) => return error_response(&e, &facts.request_id),
    };
    // What the client can fix is a plain 4xx, before any stream starts.
    let mut prepared = match invoke::prepare(&state, &name, &version, &facts.caller, &body).await {
        Ok(p) => p,
        Err(e) => return super::tag_agent(&state, &name, &version, error_response(&e, &facts.request_id)),
    };
    let tag = super::AgentTag(prepared.agent.clone());
    // Chosen now, so the partial responses streamed during the run can name it.
    let session_id = prepared.input.session_id.get_or_insert_with(SessionId::generate).as_str().to_owned();

    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let run_facts = facts.clone();
    // The run acts for the request's caller (its per-user OAuth tokens) in its own task too.
    let run = tokio::spawn(crate::oauth::caller::carry(async move {
        let events = tx.clone();
        let source = format!("{name}:{version}");
        let event_rid = run_facts.request_id.clone();
        let streamed = AtomicBool::new(false);
        let on_event = |ev: RunEvent| {
            let frame = match &ev {
                RunEvent::Text { text } => {
                    streamed.store(true, Ordering::Relaxed);
                    sse_frame(
                        "partial-response",
                        &PartialResponse {
                            session_id: &session_id,
                            request_id: &event_rid,
                            source: &source,
                            output_partial: text,
                        },
                    )
                }
                RunEvent::ToolStarted { .. } => sse_frame("tool-call-started", &ev),
                RunEvent::ToolFinished { .. } => sse_frame("tool-call-finished", &ev),
                RunEvent::TaskFinished { task_no, task_name, output, usage } => sse_frame(
                    "intermediate-task-response",
                    &IntermediateTaskResponse {
                        task_no: *task_no,
                        task_name,
                        response: TaskResponse {
                            request_id: &event_rid,
                            source: &source,
                            token_usage: (*usage).into(),
                            output_raw: output,
                        },
                    },
                ),
            };
            let _ = events.send(frame);
        };
        let opts = invoke::InvokeOptions {
            request_id: &run_facts.request_id,
            caller: &run_facts.caller,
            no_cache,
            deadline: run_facts.deadline,
            on_event: Some(&on_event),
        };
        match invoke::answer(&state, prepared, &body, &opts).await {
            Ok(Answer::State(response)) => {
                let _ = tx.send(sse_frame("final-response", &response));
            }
            Ok(Answer::Invoke(Invoked { response, .. })) => {
                if !streamed.load(Ordering::Relaxed) {
                    let partial = PartialResponse {
                        session_id: &response.session_id,
                        request_id: &response.request_id,
                        source: &response.source,
                        output_partial: &response.output_raw,
                    };
                    let _ = tx.send(sse_frame("partial-response", &partial));
                }
                let _ = tx.send(sse_frame("final-response", &response));
            }
            Err(crate::Error::AuthChallenge(needed)) => {
                let body = super::error::auth_challenge_body(&needed, &run_facts.request_id);
                let _ = tx.send(sse_frame("auth-challenge", &body));
            }
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(code = e.code(), error = %crate::telemetry::error_chain(&e), "streamed invoke failed");
                }
                let _ = tx.send(sse_frame("error", &error_body(&e, &run_facts.request_id)));
            }
        }
    }));
    let guard = AbortOnDrop(run);
    let frames = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|frame| (Ok::<_, Infallible>(frame), (rx, guard)))
    });
    let mut resp = Body::from_stream(frames).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp.extensions_mut().insert(tag);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_and_one_data_line() {
        let f = sse_frame("final-response", &serde_json::json!({"output_raw": "a\nb"}));
        assert_eq!(&f[..], b"event: final-response\ndata: {\"output_raw\":\"a\\nb\"}\n\n");
    }
}
