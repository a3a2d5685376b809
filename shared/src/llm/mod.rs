//! The LLM port: one chat-completion call with tool calling, as the agent loop needs it.
//!
//! Owns the provider-neutral message types, the [`LlmClient`] trait, the error type with its
//! retry policy, and the closed set of adapters ([`Llm`]): the OpenAI-compatible HTTP adapter
//! (OpenAI, Azure OpenAI, Ollama, vLLM) and the deterministic offline model. It must not know
//! about MCP, HTTP routes or configs: the loop hands it messages and tool specs.

use std::time::Instant;

use serde::{Deserialize, Serialize};

#[cfg(feature = "bedrock")]
pub mod bedrock;
pub mod offline;
pub mod openai;
pub mod price;
mod providers;
pub mod retry;
mod rotating;

#[cfg(feature = "bedrock")]
pub use bedrock::BedrockClient;
pub use offline::OfflineModel;
pub use openai::{ClientError, OpenAiClient, OpenAiSettings};
pub use price::{Cost, ModelPrices, Price};
pub use providers::{BedrockSettings, Endpoint, Provider, Providers};
pub use rotating::{KeyError, RotatingKeyLlm};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One message of a conversation, in the provider-neutral shape the loop keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    /// Text content; `None` for an assistant turn that only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls requested by an assistant turn (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `Tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Images a user message carries, as `data:` URIs (or https URLs), after its text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

impl Message {
    pub fn system(text: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
        }
    }
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
        }
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
        }
    }
    /// The model's reply: its text (if any) and the tool calls it asked for.
    pub fn assistant_reply(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self { role: Role::Assistant, content, tool_calls, tool_call_id: None, images: Vec::new() }
    }
    pub fn tool_result(call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            role: Role::Tool,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
            images: Vec::new(),
        }
    }
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id, echoed back in the `Tool` message that answers it.
    pub id: String,
    /// Namespaced tool name (`{server}_{tool}`).
    pub name: String,
    /// The arguments exactly as the model sent them: a JSON text that may be invalid.
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: serde_json::Value,
}

/// Token usage, summed over a run with `+=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.prompt_tokens += rhs.prompt_tokens;
        self.completion_tokens += rhs.completion_tokens;
        self.total_tokens += rhs.total_tokens;
    }
}

/// One chat-completion call.
#[derive(Debug, Clone, Copy)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// `reasoning_effort` for models that take it.
    pub reasoning_effort: Option<&'a str>,
    /// Structured output: the answer must be JSON valid against this schema.
    pub response_format: Option<&'a ResponseFormat>,
    /// The agent's own provider (`spec.agent.provider`); `None`: chosen by the model name.
    pub endpoint: Option<&'a Endpoint>,
}

impl<'a> ChatRequest<'a> {
    /// A request with no sampling settings, reasoning effort or structured output.
    pub fn new(model: &'a str, messages: &'a [Message], tools: &'a [ToolSpec]) -> Self {
        Self {
            model,
            messages,
            tools,
            temperature: None,
            max_tokens: None,
            reasoning_effort: None,
            response_format: None,
            endpoint: None,
        }
    }
}

/// A JSON Schema the answer must follow (OpenAI's `response_format: json_schema`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFormat {
    /// `[A-Za-z0-9_-]{1,64}`: the type's name, sanitised.
    pub name: String,
    pub schema: std::sync::Arc<serde_json::Value>,
}

impl Message {
    /// A user message with its text and images.
    pub fn user_with_images(text: impl Into<String>, images: Vec<String>) -> Self {
        Self { images, ..Self::user(text) }
    }
}

/// The model's answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// Always `Role::Assistant`: text, tool calls, or both.
    pub message: Message,
    pub usage: Usage,
    pub finish_reason: Option<String>,
}

/// Why a call failed after retries.
///
/// No variant's `Display` holds text from the upstream or a key, so it may reach a client. What
/// the upstream said is for the log only: the cause chain (read it with
/// [`crate::telemetry::error_chain`]) and the scrubbed error body ([`LlmError::upstream_body`]).
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM rate limited (HTTP 429) after {attempts} attempt(s)")]
    RateLimited { attempts: u32 },
    /// `body` is the start of the upstream's error body, scrubbed of the API key and of
    /// anything that looks like a token or key; it is not part of the message.
    #[error("LLM answered HTTP {status} after {attempts} attempt(s)")]
    Status { status: u16, body: String, attempts: u32 },
    #[error("LLM rejected the API key (HTTP {status})")]
    Unauthorized { status: u16 },
    /// The transport failed (connect, TLS, a broken answer body), or the SDK's dispatch did.
    #[error("LLM unreachable after {attempts} attempt(s)")]
    Connect {
        #[source]
        source: BoxError,
        attempts: u32,
    },
    #[error("LLM call timed out after {attempts} attempt(s)")]
    Timeout { attempts: u32 },
    #[error("LLM answer is not a valid chat completion")]
    InvalidResponse(#[source] serde_json::Error),
    #[error("the LLM request could not be encoded")]
    Encode(#[source] serde_json::Error),
    #[error("request deadline reached while waiting for the LLM")]
    Deadline,
    /// The key secret an agent's `provider.api_key_secret` names could not be read.
    #[error("the LLM key secret {secret} could not be read")]
    KeyUnavailable { secret: String },
    /// The provider cannot take something the request holds (e.g. an image by URL on Bedrock).
    #[error("the LLM provider cannot take {what}")]
    Unsupported { what: &'static str },
    /// A streamed answer broke off before any of its text had been handed on; retried like a
    /// connection error. `source` is the transport or parse error, if there was one (a stream
    /// may also just end early).
    #[error("LLM stream broke off after {attempts} attempt(s)")]
    StreamCut {
        attempts: u32,
        #[source]
        source: Option<BoxError>,
    },
    /// A streamed answer broke off after part of its text had been handed on. Never retried:
    /// a second answer would repeat or contradict what the client already has.
    #[error("LLM stream broke off after part of the answer was sent")]
    StreamCutMidAnswer {
        #[source]
        source: Option<BoxError>,
    },
}

/// The cause of a broken stream: a transport error, an SSE framing error or the SDK's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a streaming call hands each piece of answer text as it arrives.
pub type TextSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

impl LlmError {
    /// The upstream's error body, already scrubbed, for a log field of its own. Never shown to
    /// a client.
    pub fn upstream_body(&self) -> Option<&str> {
        match self {
            LlmError::Status { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// The port the agent loop calls. Implementations retry transient failures themselves, never
/// past `deadline`.
#[async_trait::async_trait]
pub trait LlmClient: Send + Sync {
    async fn complete(&self, request: ChatRequest<'_>, deadline: Instant) -> Result<ChatResponse, LlmError>;
    /// The same call, streamed: each piece of answer text goes to `on_text` as it arrives, and
    /// the whole answer (text, tool calls assembled, usage) is returned at the end. Failures
    /// before the first piece of text are retried as in [`LlmClient::complete`]; once text has
    /// been handed on, a failure is [`LlmError::StreamCutMidAnswer`], never a retry.
    ///
    /// The default calls [`LlmClient::complete`] and hands on its text in one piece.
    async fn stream(
        &self,
        request: ChatRequest<'_>,
        deadline: Instant,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let answer = self.complete(request, deadline).await?;
        if let Some(text) = answer.message.content.as_deref().filter(|t| !t.is_empty()) {
            on_text(text);
        }
        Ok(answer)
    }
    /// A short human description, e.g. `openai-compatible at https://api.openai.com/v1` or `offline`.
    fn describe(&self) -> String;
}

/// The closed set of adapters, chosen once at start-up.
#[derive(Debug)]
pub enum Llm {
    OpenAi(OpenAiClient),
    Offline(OfflineModel),
}

#[async_trait::async_trait]
impl LlmClient for Llm {
    async fn complete(&self, request: ChatRequest<'_>, deadline: Instant) -> Result<ChatResponse, LlmError> {
        match self {
            Llm::OpenAi(c) => c.complete(request, deadline).await,
            Llm::Offline(m) => m.complete(request, deadline).await,
        }
    }
    async fn stream(
        &self,
        request: ChatRequest<'_>,
        deadline: Instant,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        match self {
            Llm::OpenAi(c) => c.stream(request, deadline, on_text).await,
            Llm::Offline(m) => m.stream(request, deadline, on_text).await,
        }
    }
    fn describe(&self) -> String {
        match self {
            Llm::OpenAi(c) => c.describe(),
            Llm::Offline(m) => m.describe(),
        }
    }
}
