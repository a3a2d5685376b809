//! The API's one error type and its exhaustive mapping to HTTP statuses.
//!
//! 4xx bodies say exactly what is wrong with the input. 5xx bodies name the upstream that
//! failed (LLM, which MCP server, the session store) and what the run did so far, but never
//! internal detail: that goes to the log with the request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::agent::{AgentError, RunTrace};
use crate::llm::LlmError;
use crate::mcp::McpError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no agent {name}/{version}")]
    AgentNotFound { name: String, version: String, known: Vec<String> },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("LLM upstream failed: {0}")]
    Llm(LlmError, Box<RunTrace>),
    /// Displays the whole cause chain, for the log; clients get the MCP error's own text.
    #[error("{}", crate::telemetry::error_chain(.0))]
    Mcp(McpError, Box<RunTrace>),
    #[error("the agent gave no final answer within {max} iteration(s) (spec.agent.max_iterations)")]
    IterationLimit { max: u32, trace: Box<RunTrace> },
    #[error("deadline reached before the agent finished")]
    Deadline(Box<RunTrace>),
    #[error("session store unavailable: {0}")]
    SessionStore(String),
    #[error("rate limit exceeded for this API key; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
}

impl ApiError {
    /// Every variant decides its status here; no catch-all arm.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::AgentNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Llm(..) | ApiError::Mcp(..) | ApiError::IterationLimit { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::SessionStore(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::AgentNotFound { .. } => "agent_not_found",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Llm(..) => "llm_upstream_failed",
            ApiError::Mcp(..) => "mcp_upstream_failed",
            ApiError::IterationLimit { .. } => "iteration_limit",
            ApiError::Deadline(_) => "deadline_exceeded",
            ApiError::SessionStore(_) => "session_store_unavailable",
            ApiError::RateLimited { .. } => "rate_limited",
        }
    }

    /// The message clients see: exact for 4xx, the upstream and the kind of failure for 5xx.
    fn public_message(&self) -> String {
        match self {
            ApiError::Llm(e, _) => format!("LLM upstream failed: {}", llm_summary(e)),
            // Client-safe by contract: the server's name and what failed, never upstream text.
            ApiError::Mcp(e, _) => e.to_string(),
            ApiError::SessionStore(_) => "session store unavailable".into(),
            other => other.to_string(),
        }
    }

    fn upstream(&self) -> Option<String> {
        match self {
            ApiError::Llm(..) => Some("llm".into()),
            ApiError::Mcp(e, _) => Some(format!("mcp:{}", e.server())),
            ApiError::SessionStore(_) => Some("session_store".into()),
            _ => None,
        }
    }

    fn trace(&self) -> Option<&RunTrace> {
        match self {
            ApiError::Llm(_, t) | ApiError::Mcp(_, t) | ApiError::Deadline(t) => Some(t),
            ApiError::IterationLimit { trace, .. } => Some(trace),
            _ => None,
        }
    }

    /// The JSON body; `request_id` ties it to the log line holding the detail.
    pub fn into_response_with_id(self, request_id: &str) -> Response {
        let status = self.status();
        let mut body = json!({
            "error": {
                "status": status.as_u16(),
                "code": self.code(),
                "message": self.public_message(),
                "request_id": request_id,
            }
        });
        if let Some(u) = self.upstream() {
            body["error"]["upstream"] = u.into();
        }
        if let Some(t) = self.trace() {
            body["error"]["progress"] = serde_json::to_value(t).unwrap_or_default();
        }
        if let ApiError::AgentNotFound { known, .. } = &self {
            body["error"]["known_agents"] = json!(known);
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        if let ApiError::RateLimited { retry_after_secs } = &self {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, (*retry_after_secs).max(1).into());
        }
        resp
    }
}

fn llm_summary(e: &LlmError) -> String {
    match e {
        LlmError::Status { status, attempts, .. } => format!("HTTP {status} after {attempts} attempt(s)"),
        other => other.to_string(),
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Llm { source: LlmError::Deadline, trace } | AgentError::Deadline { trace } => {
                ApiError::Deadline(Box::new(trace))
            }
            AgentError::Llm { source, trace } => ApiError::Llm(source, Box::new(trace)),
            AgentError::Mcp { source, trace } => ApiError::Mcp(source, Box::new(trace)),
            AgentError::IterationLimit { max, trace } => {
                ApiError::IterationLimit { max, trace: Box::new(trace) }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with_id("")
    }
}
