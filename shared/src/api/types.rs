//! The API's wire shapes: Teal Agents' `InvokeResponse`, and our own `/health`, `/ready`, tool
//! catalog and error bodies. What a request body may be is [`super::input`]'s.

use serde::{Deserialize, Serialize};

use crate::agent::RunTrace;
use crate::llm::Usage;

/// What is wrong with a request's input: the 400 body's message, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(String);

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Teal's `TokenUsage`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenUsage {
    pub completion_tokens: u64,
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

impl From<Usage> for TokenUsage {
    fn from(u: Usage) -> Self {
        Self {
            completion_tokens: u.completion_tokens,
            prompt_tokens: u.prompt_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

/// Teal's `ExtraData`: a list of key/value strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExtraData {
    pub items: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// Teal's `InvokeResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvokeResponse {
    pub session_id: String,
    pub request_id: String,
    /// `name:version` of the agent that answered.
    pub source: String,
    pub token_usage: TokenUsage,
    pub output_raw: String,
    /// The structured output, when the agent has an `output_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_pydantic: Option<serde_json::Value>,
    pub extra_data: ExtraData,
}

impl InvokeResponse {
    /// Sets (or adds) one `extra_data` item.
    pub fn set_extra(&mut self, key: &str, value: &str) {
        match self.extra_data.items.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => value.clone_into(&mut kv.value),
            None => self.extra_data.items.push(KeyValue { key: key.to_owned(), value: value.to_owned() }),
        }
    }
}

/// Teal's `TaskStatus`, as a `StateResponse` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateStatus {
    Running,
    Paused,
    Completed,
    Failed,
}

/// Teal's `StateResponse`: the answer of a `tealagents/v1alpha1` agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateResponse {
    pub session_id: String,
    pub task_id: String,
    pub request_id: String,
    pub status: StateStatus,
    pub content: StateContent,
}

/// What a `StateResponse` carries (Teal's `content` union), and what a resume answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StateContent {
    Hitl(HitlResponse),
    Rejected(RejectedToolResponse),
    Done(TealAgentsResponse),
}

/// Teal's `HitlResponse`: the run stopped before tool calls a human must approve. Ours adds
/// `expires_at` (RFC 3339): undecided after it, the resume answers 410.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HitlResponse {
    pub task_id: String,
    pub session_id: String,
    pub request_id: String,
    pub message: String,
    pub approval_url: String,
    pub rejection_url: String,
    /// The held calls: `{id, name, arguments}` (arguments parsed when they are JSON).
    pub tool_calls: Vec<serde_json::Value>,
    pub expires_at: String,
}

/// Teal's `RejectedToolResponse`: a human rejected the held calls; the task is `Canceled`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RejectedToolResponse {
    pub task_id: String,
    pub session_id: String,
    pub request_id: String,
    pub message: String,
}

/// Teal's `TealAgentsResponse`: one completed turn of a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TealAgentsResponse {
    pub task_id: String,
    pub session_id: String,
    pub request_id: String,
    pub output: String,
    pub source: String,
    pub token_usage: TokenUsage,
    pub extra_data: ExtraData,
}

/// Teal's `LivenessStatus` (`/health/live`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Liveness {
    pub alive: bool,
    /// RFC 3339, UTC.
    pub timestamp: String,
}

/// The `/health` body: liveness only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_seconds: f64,
    pub agents: usize,
}

/// The `/ready` body: each check with its outcome, and the names of those that failed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub failed: Vec<String>,
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn from_checks(checks: Vec<Check>) -> Self {
        let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| c.name.clone()).collect();
        Self { status: if failed.is_empty() { "ready" } else { "not_ready" }, failed, checks }
    }

    pub fn is_ready(&self) -> bool {
        self.failed.is_empty()
    }
}

/// One readiness check: `mcp:NAME` (with its tool count), `sessions:BACKEND` or `redis`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ms: f64,
}

/// `GET /{name}/{version}/tools`: the tools an agent is offered.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToolCatalog {
    /// `name:version`.
    pub agent: String,
    pub tools: Vec<CatalogTool>,
}

/// One offered tool: its namespaced name, server, original name, description and schema.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CatalogTool {
    pub name: String,
    /// The config's agent that is offered it (`spec.agent.name` or one of `spec.agents`).
    pub agent: String,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail<'a> {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<&'a RunTrace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_agents: Option<&'a [String]>,
    /// The daily budget that refused the request (`TA_DAILY_REQUEST_BUDGET`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<&'static str>,
    /// When that budget resets (RFC 3339, the next UTC midnight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<&'a str>,
}
