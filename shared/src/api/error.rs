//! Rendering a [`crate::Error`] as an HTTP response: the JSON [`ErrorBody`] with the request id
//! (the log line with the same id holds the detail), `Retry-After` on 429.

use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};

use super::types::{ErrorBody, ErrorDetail};
use crate::Error;

/// The JSON body of `error`; `request_id` ties it to the log line holding the detail.
pub fn error_body<'a>(error: &'a Error, request_id: &'a str) -> ErrorBody<'a> {
    ErrorBody {
        error: ErrorDetail {
            status: error.status().as_u16(),
            code: error.code(),
            message: error.public_message(),
            request_id,
            upstream: error.upstream(),
            progress: error.trace(),
            known_agents: if let Error::AgentNotFound { known, .. } = error { Some(known) } else { None },
            budget: if let Error::OverBudget { budget, .. } = error { Some(budget.variable()) } else { None },
            resets_at: if let Error::OverBudget { resets_at, .. } = error { Some(resets_at) } else { None },
        },
    }
}

/// Teal's `AuthChallengeResponse`: the servers to authorize and where to resume. The run never
/// started, so its task and session ids are new.
pub fn auth_challenge_body(needed: &crate::mcp::AuthorizationNeeded, request_id: &str) -> serde_json::Value {
    serde_json::json!({
        "task_id": uuid::Uuid::new_v4().to_string(),
        "session_id": uuid::Uuid::new_v4().to_string(),
        "request_id": request_id,
        "message": format!("Authentication required for {} MCP server(s).", needed.challenges.len()),
        "auth_challenges": needed.challenges,
        "resume_url": needed.resume_url,
    })
}

/// The response for `error`. 5xx are logged here with their cause chain.
pub fn error_response(error: &Error, request_id: &str) -> Response {
    if let Error::AuthChallenge(needed) = error {
        return (error.status(), axum::Json(auth_challenge_body(needed, request_id))).into_response();
    }
    let status = error.status();
    if status.is_server_error() {
        tracing::warn!(code = error.code(), error = %crate::telemetry::error_chain(error), "request failed");
    }
    let mut resp = (status, axum::Json(error_body(error, request_id))).into_response();
    if let Error::RateLimited { retry_after_secs } | Error::OverBudget { retry_after_secs, .. } = error {
        resp.headers_mut().insert(RETRY_AFTER, (*retry_after_secs).max(1).into());
    }
    resp
}

/// An error that is the route's, not a use case's (404, 405): the same body shape.
pub fn route_error(
    status: axum::http::StatusCode,
    code: &'static str,
    message: &str,
    request_id: &str,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            status: status.as_u16(),
            code,
            message: message.to_owned(),
            request_id,
            upstream: None,
            progress: None,
            known_agents: None,
            budget: None,
            resets_at: None,
        },
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        error_response(&self, "")
    }
}
