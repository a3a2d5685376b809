//! `POST /tealagents/v1alpha1/resume/{request_id}` (and `/sse`): a human approves or rejects the
//! tool calls a paused run holds ([`crate::service::resume`]), with Teal's body
//! `{"action": "approve" | "reject"}`. The buffered route answers what Teal's does (the turn's
//! `TealAgentsResponse`, `RejectedToolResponse`, or a new `HitlResponse`); the SSE route sends
//! the tool calls as they run and then that answer as one event (`final-response`,
//! `rejected-response` or `hitl-response`), and ends.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};

use super::{
    Caller, Deadline, RequestFacts, RequestId, SharedState, error_body, error_response, read_body, sse_frame,
};
use crate::Error;
use crate::agent::RunEvent;
use crate::api::types::{InputError, StateContent};
use crate::service::resume::{self, Decision, RESUME_PATH, ResumeRequest};

/// `POST /tealagents/v1alpha1/resume/{request_id}` and `…/sse`
pub fn resume_router() -> Router<SharedState> {
    Router::new()
        .route(&format!("{RESUME_PATH}/{{request_id}}"), post(buffered))
        .route(&format!("{RESUME_PATH}/{{request_id}}/sse"), post(streamed))
}

async fn decide(
    state: &SharedState,
    request_id: &str,
    facts: &RequestFacts,
    req: Request,
    on_event: Option<&(dyn Fn(RunEvent) + Send + Sync)>,
) -> Result<StateContent, Error> {
    let body = read_body(req, state.settings.body_limit).await?;
    let action = serde_json::from_slice::<ResumeRequest>(&body)
        .map_err(|e| {
            Error::BadRequest(InputError::new(format!(
                "action: {e} (expected {{\"action\": \"approve\" | \"reject\"}})"
            )))
        })?
        .action;
    let decision = Decision { caller: &facts.caller, deadline: facts.deadline, on_event };
    resume::resume(state, request_id, action, &decision).await
}

async fn buffered(
    State(state): State<SharedState>,
    Path(request_id): Path<String>,
    rid: Option<Extension<RequestId>>,
    deadline: Option<Extension<Deadline>>,
    caller: Option<Extension<Caller>>,
    req: Request,
) -> Response {
    let facts = RequestFacts::new(&state, rid, deadline, caller);
    match decide(&state, &request_id, &facts, req, None).await {
        Ok(content) => Json(content).into_response(),
        Err(e) => error_response(&e, &facts.request_id),
    }
}

async fn streamed(
    State(state): State<SharedState>,
    Path(request_id): Path<String>,
    rid: Option<Extension<RequestId>>,
    deadline: Option<Extension<Deadline>>,
    caller: Option<Extension<Caller>>,
    req: Request,
) -> Response {
    let facts = RequestFacts::new(&state, rid, deadline, caller);
    let frames = std::sync::Mutex::new(Vec::new());
    let on_event = |ev: RunEvent| {
        let name = match &ev {
            RunEvent::ToolStarted { .. } => "tool-call-started",
            RunEvent::ToolFinished { .. } => "tool-call-finished",
            RunEvent::Text { .. } | RunEvent::TaskFinished { .. } => return,
        };
        frames.lock().unwrap_or_else(|p| p.into_inner()).push(sse_frame(name, &ev));
    };
    let result = decide(&state, &request_id, &facts, req, Some(&on_event)).await;
    let mut frames = frames.into_inner().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(content) => {
            let event = match &content {
                StateContent::Done(_) => "final-response",
                StateContent::Rejected(_) => "rejected-response",
                StateContent::Hitl(_) => "hitl-response",
            };
            frames.push(sse_frame(event, &content));
        }
        // What the caller can act on (403, 404, 409, 410, bad body) is a plain response.
        Err(e) if e.status().is_client_error() => return error_response(&e, &facts.request_id),
        Err(e) => frames.push(sse_frame("error", &error_body(&e, &facts.request_id))),
    }
    let mut resp = axum::body::Body::from(frames.concat()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
