//! The one error a request can end with, gathered from every layer, and its exhaustive mapping
//! to an HTTP status.
//!
//! Each layer keeps its own error type ([`LlmError`], [`ToolError`], [`StoreError`], the input's
//! [`InputError`]); this enum holds them as they are, so the cause chain reaches the log. Every
//! classification here (`status`, `code`, `upstream`, `trace`) is a `match` without a catch-all
//! arm: a new variant does not compile until someone decides each of them. 4xx messages say
//! exactly what is wrong with the input; 5xx messages ([`Error::public_message`]) name the
//! upstream and the kind of failure, never its detail: that goes to the log with the request id.
//! Rendering to an HTTP response is the API's (`api::error`).

use axum::http::StatusCode;

use crate::agent::{AgentError, OutputError, RunTrace};
use crate::api::BodyError;
use crate::api::types::InputError;
use crate::llm::LlmError;
use crate::store::{StoreError, TaskStoreError};
use crate::tools::ToolError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    BadRequest(#[from] InputError),
    #[error("no agent {name}/{version}")]
    AgentNotFound { name: String, version: String, known: Vec<String> },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body is not JSON by its `Content-Type`.
    #[error("the request body must be JSON: send `Content-Type: application/json` (got {})", given.as_deref().map_or_else(|| "none".to_owned(), |g| format!("`{g}`")))]
    UnsupportedMediaType { given: Option<String> },
    /// The body could not be read: malformed, too slow, or the client left.
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("LLM upstream failed")]
    Llm(#[source] LlmError, Box<RunTrace>),
    /// An MCP server or remote plugin could not be called.
    #[error("tool upstream failed")]
    Tool(#[source] Box<ToolError>, Box<RunTrace>),
    /// The answer did not match the agent's output type, even after one repair.
    #[error("the answer does not match the output type {type_name}: {source}")]
    Output {
        type_name: String,
        #[source]
        source: OutputError,
        trace: Box<RunTrace>,
    },
    /// The deployment cannot serve this agent as configured (the detail is in the log).
    #[error("the agent is misconfigured for this deployment: {0}")]
    Misconfigured(String),
    /// A run budget (`spec.agent.max_tool_calls`, `max_tokens_total`) ended the run.
    #[error("the run reached its budget spec.agent.{budget} = {limit} before a final answer")]
    Budget { budget: &'static str, limit: u64, trace: Box<RunTrace> },
    #[error("the agent gave no final answer within {max} iteration(s) (spec.agent.max_iterations)")]
    IterationLimit { max: u32, trace: Box<RunTrace> },
    #[error("deadline reached before the agent finished")]
    Deadline(Box<RunTrace>),
    #[error("session store unavailable")]
    SessionStore(#[source] StoreError),
    #[error("rate limit exceeded for this API key; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A daily budget of the caller is used up until the UTC day ends.
    #[error(
        "the daily {} budget of this API key is used up ({} = {limit} {} per UTC day, {used} used); it resets at {resets_at}",
        budget.unit().trim_end_matches('s'), budget.variable(), budget.unit()
    )]
    OverBudget {
        budget: crate::store::DailyBudget,
        limit: u64,
        used: u64,
        /// RFC 3339, the next UTC midnight.
        resets_at: String,
        retry_after_secs: u64,
    },
    /// The caller may not do this (another user's task).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the state of what it names (a paused task).
    #[error("{0}")]
    Conflict(String),
    #[error("task store failed")]
    TaskStore(#[source] TaskStoreError),
    /// The caller must authorize MCP servers first (OAuth): answered as Teal's
    /// `AuthChallengeResponse`, with 200 as Teal does; nothing ran.
    #[error("authorization required for MCP servers")]
    AuthChallenge(Box<crate::mcp::AuthorizationNeeded>),
    /// The run waits for a human to approve tool calls: a task answers Teal's `HitlResponse`
    /// (200, `status: Paused`); nothing failed.
    #[error("waiting for human approval of tool calls")]
    Paused(Box<crate::agent::PausedRun>),
    /// What the request names does not exist (a paused run's request id).
    #[error("{0}")]
    NotFound(String),
    /// What the request names existed but has expired (an undecided paused run).
    #[error("{0}")]
    Gone(String),
    /// The agent is switched off (`teal disable`): before the run, or between two of its steps
    /// (then with what it did so far).
    #[error("{0}")]
    Disabled(crate::governance::Disabled, Option<Box<RunTrace>>),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::AgentNotFound { .. } => StatusCode::NOT_FOUND,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Body(e) => match e {
                BodyError::Malformed(_) | BodyError::Aborted => StatusCode::BAD_REQUEST,
                BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
            },
            Error::Llm(..)
            | Error::Tool(..)
            | Error::IterationLimit { .. }
            | Error::Budget { .. }
            | Error::Output { .. } => StatusCode::BAD_GATEWAY,
            Error::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::SessionStore(_) | Error::Disabled(..) => StatusCode::SERVICE_UNAVAILABLE,
            Error::RateLimited { .. } | Error::OverBudget { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TaskStore(e) => match e {
                TaskStoreError::Conflict { .. } | TaskStoreError::AlreadyExists(_) => StatusCode::CONFLICT,
                TaskStoreError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                TaskStoreError::NotFound(_) => StatusCode::NOT_FOUND,
                TaskStoreError::Json { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                TaskStoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            Error::AuthChallenge(_) | Error::Paused(_) => StatusCode::OK,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Gone(_) => StatusCode::GONE,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::AgentNotFound { .. } => "agent_not_found",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType { .. } => "unsupported_media_type",
            Error::Body(BodyError::Malformed(_)) => "malformed_body",
            Error::Body(BodyError::TimedOut) => "body_timeout",
            Error::Body(BodyError::Aborted) => "client_aborted",
            Error::Llm(..) => "llm_upstream_failed",
            // `mcp_upstream_failed`, or what kind: `mcp_auth_failed`, `mcp_input_required`.
            Error::Tool(e, _) => match &**e {
                ToolError::Mcp(e) => e.code(),
                ToolError::Plugin(_) | ToolError::PluginHeader { .. } => "plugin_upstream_failed",
            },
            Error::Output { .. } => "output_schema_mismatch",
            Error::Misconfigured(_) => "misconfigured",
            Error::IterationLimit { .. } => "iteration_limit",
            Error::Budget { .. } => "budget_exceeded",
            Error::Deadline(_) => "deadline_exceeded",
            Error::SessionStore(_) => "session_store_unavailable",
            Error::RateLimited { .. } => "rate_limited",
            Error::OverBudget { .. } => "daily_budget_exceeded",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::TaskStore(TaskStoreError::Unavailable(_)) => "task_store_unavailable",
            Error::TaskStore(_) => "task_store_error",
            Error::AuthChallenge(_) => "mcp_authorization_required",
            Error::Paused(_) => "approval_required",
            Error::NotFound(_) => "not_found",
            Error::Gone(_) => "expired",
            Error::Disabled(..) => "agent_disabled",
        }
    }

    /// What the client is told: exact for 4xx, the upstream and the kind of failure for 5xx.
    pub fn public_message(&self) -> String {
        match self {
            Error::Llm(e, _) => format!("LLM upstream failed: {}", llm_summary(e)),
            // Its message names the server or plugin and the kind of failure only.
            Error::Tool(e, _) => e.to_string(),
            // The framing problem is named; what the client sent is not echoed.
            Error::Body(BodyError::Malformed(_)) => {
                "the request body is malformed (invalid framing)".to_owned()
            }
            Error::BadRequest(_)
            | Error::AgentNotFound { .. }
            | Error::PayloadTooLarge { .. }
            | Error::UnsupportedMediaType { .. }
            | Error::Body(BodyError::TimedOut | BodyError::Aborted)
            | Error::IterationLimit { .. }
            | Error::Budget { .. }
            | Error::Deadline(_)
            | Error::SessionStore(_)
            | Error::RateLimited { .. }
            | Error::OverBudget { .. }
            | Error::Forbidden(_)
            | Error::Conflict(_)
            | Error::AuthChallenge(_)
            | Error::Paused(_)
            | Error::NotFound(_)
            | Error::Gone(_)
            | Error::Disabled(..)
            | Error::Output { .. } => self.to_string(),
            Error::TaskStore(e) => match e {
                // What the client can act on is said; backend detail stays in the log.
                TaskStoreError::Conflict { .. }
                | TaskStoreError::AlreadyExists(_)
                | TaskStoreError::TooLarge { .. }
                | TaskStoreError::NotFound(_) => e.to_string(),
                TaskStoreError::Json { .. } | TaskStoreError::Unavailable(_) => {
                    "task store unavailable".to_owned()
                }
            },
            Error::Misconfigured(_) => "the agent is misconfigured for this deployment".to_owned(),
        }
    }

    /// Which upstream failed, for the 5xx body: `llm`, `mcp:NAME`, `session_store`.
    pub fn upstream(&self) -> Option<String> {
        match self {
            Error::Llm(..) => Some("llm".into()),
            Error::Tool(e, _) => Some(e.upstream()),
            Error::Output { .. } => Some("llm".into()),
            Error::SessionStore(_) => Some("session_store".into()),
            Error::TaskStore(_) => Some("task_store".into()),
            // The model kept asking for tools.
            Error::IterationLimit { .. } | Error::Budget { .. } => Some("llm".into()),
            // What the run was waiting for when time ran out.
            Error::Deadline(t) => Some(t.waiting_on.clone().unwrap_or_else(|| "llm".into())),
            Error::BadRequest(_)
            | Error::AgentNotFound { .. }
            | Error::PayloadTooLarge { .. }
            | Error::UnsupportedMediaType { .. }
            | Error::Body(_)
            | Error::RateLimited { .. }
            | Error::OverBudget { .. }
            | Error::Forbidden(_)
            | Error::Conflict(_)
            | Error::AuthChallenge(_)
            | Error::Paused(_)
            | Error::NotFound(_)
            | Error::Gone(_)
            | Error::Disabled(..)
            | Error::Misconfigured(_) => None,
        }
    }

    /// What the run did before it failed, when a run had started.
    pub fn trace(&self) -> Option<&RunTrace> {
        match self {
            Error::Llm(_, t) | Error::Tool(_, t) | Error::Deadline(t) => Some(t),
            Error::Disabled(_, t) => t.as_deref(),
            Error::IterationLimit { trace, .. }
            | Error::Output { trace, .. }
            | Error::Budget { trace, .. } => Some(trace),
            Error::BadRequest(_)
            | Error::AgentNotFound { .. }
            | Error::PayloadTooLarge { .. }
            | Error::UnsupportedMediaType { .. }
            | Error::Body(_)
            | Error::SessionStore(_)
            | Error::RateLimited { .. }
            | Error::OverBudget { .. }
            | Error::Forbidden(_)
            | Error::Conflict(_)
            | Error::TaskStore(_)
            | Error::AuthChallenge(_)
            | Error::Paused(_)
            | Error::NotFound(_)
            | Error::Gone(_)
            | Error::Misconfigured(_) => None,
        }
    }
}

impl From<crate::mcp::McpError> for Error {
    /// A caller who must authorize first gets the challenge; any other MCP failure is a tool
    /// upstream failure (before any run, so with an empty trace).
    fn from(e: crate::mcp::McpError) -> Self {
        match e {
            crate::mcp::McpError::AuthorizationRequired(needed) => Error::AuthChallenge(needed),
            other => Error::Tool(Box::new(other.into()), Box::default()),
        }
    }
}

/// The kind of LLM failure, without anything the upstream said.
fn llm_summary(e: &LlmError) -> String {
    match e {
        LlmError::RateLimited { attempts } => format!("rate limited (HTTP 429) after {attempts} attempt(s)"),
        LlmError::Status { status, attempts, .. } => format!("HTTP {status} after {attempts} attempt(s)"),
        LlmError::Unauthorized { status } => format!("the API key was rejected (HTTP {status})"),
        LlmError::Connect { attempts, .. } => format!("unreachable after {attempts} attempt(s)"),
        LlmError::Timeout { attempts } => format!("timed out after {attempts} attempt(s)"),
        LlmError::InvalidResponse(_) => "the answer is not a valid chat completion".into(),
        LlmError::Encode(_) => "the request could not be encoded".into(),
        LlmError::Deadline => "request deadline reached while waiting for the LLM".into(),
        LlmError::Unsupported { what } => format!("the provider cannot take {what}"),
        LlmError::KeyUnavailable { .. } => "the agent's LLM key could not be read".into(),
        LlmError::StreamCut { attempts, .. } => format!("the stream broke off after {attempts} attempt(s)"),
        LlmError::StreamCutMidAnswer { .. } => {
            "the stream broke off after part of the answer was sent (not retried)".into()
        }
    }
}

impl From<AgentError> for Error {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Llm { source: LlmError::Deadline, trace } | AgentError::Deadline { trace } => {
                Error::Deadline(Box::new(trace))
            }
            AgentError::Llm { source, trace } => Error::Llm(source, Box::new(trace)),
            AgentError::Paused(paused) => Error::Paused(paused),
            AgentError::Tool { source, trace } => Error::Tool(Box::new(source), Box::new(trace)),
            AgentError::Disabled { disabled, trace } => Error::Disabled(disabled, Some(Box::new(trace))),
            AgentError::Budget { budget, limit, trace } => {
                Error::Budget { budget, limit, trace: Box::new(trace) }
            }
            AgentError::IterationLimit { max, trace } => {
                Error::IterationLimit { max, trace: Box::new(trace) }
            }
            AgentError::Instructions { task, source, .. } => Error::BadRequest(InputError::new(format!(
                "the instructions of task `{task}` cannot be rendered with this input: {source}"
            ))),
            AgentError::Output { type_name, source, trace } => {
                Error::Output { type_name, source, trace: Box::new(trace) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Error> {
        let t = || Box::new(RunTrace::default());
        vec![
            Error::BadRequest(InputError::new("items[0].content: missing")),
            Error::AgentNotFound { name: "a".into(), version: "1".into(), known: vec![] },
            Error::PayloadTooLarge { limit: 10 },
            Error::Llm(LlmError::Status { status: 500, body: "Bearer sk-leak".into(), attempts: 3 }, t()),
            Error::Tool(
                Box::new(ToolError::Mcp(crate::mcp::McpError::Protocol {
                    server: "fs".into(),
                    source: rmcp::service::ServiceError::UnexpectedResponse,
                })),
                t(),
            ),
            Error::IterationLimit { max: 3, trace: t() },
            Error::Deadline(t()),
            Error::SessionStore(StoreError::Unavailable("redis 10.0.0.9 refused".into())),
            Error::RateLimited { retry_after_secs: 2 },
        ]
    }

    #[test]
    fn every_variant_has_a_status_and_5xx_messages_hold_no_upstream_detail() {
        let statuses: Vec<u16> = all().iter().map(|e| e.status().as_u16()).collect();
        assert_eq!(statuses, [400, 404, 413, 502, 502, 502, 504, 503, 429]);
        for e in all() {
            let m = e.public_message();
            for leak in ["sk-leak", "10.0.0.9"] {
                assert!(!m.contains(leak), "{} leaks {leak}: {m}", e.code());
            }
        }
        assert_eq!(all()[3].public_message(), "LLM upstream failed: HTTP 500 after 3 attempt(s)");
        assert_eq!(all()[4].upstream().as_deref(), Some("mcp:fs"));
        assert_eq!(all()[5].upstream().as_deref(), Some("llm"), "iteration_limit");
        assert_eq!(all()[6].upstream().as_deref(), Some("llm"), "a deadline names what it waited for");
        assert_eq!(all()[0].public_message(), "items[0].content: missing");
    }

    #[test]
    fn the_cause_chain_is_kept_for_the_log() {
        let e = &all()[7];
        let chain = crate::telemetry::error_chain(e);
        assert!(chain.contains("redis 10.0.0.9 refused"), "{chain}");
    }
}
