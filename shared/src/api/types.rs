//! The API's wire shapes: Teal Agents' invoke input (two forms) and `InvokeResponse`, and our
//! own `/health`, `/ready`, tool catalog and error bodies. Parsing the input ([`parse_invoke_body`])
//! is the one place a body is validated; what it returns is trusted by the rest of the code.

use serde::{Deserialize, Serialize};

use crate::agent::RunTrace;
use crate::llm::{Message, Usage};
use crate::store::SessionId;

/// What is wrong with a request's input: the 400 body's message, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(String);

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The body of `POST /{name}/{version}`: Teal's `chat_history` form or its `items` form.
#[derive(Debug, Deserialize)]
struct InvokeBody {
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    chat_history: Option<Vec<ChatHistoryItem>>,
    #[serde(default)]
    items: Option<Vec<InputItem>>,
}

#[derive(Debug, Deserialize)]
struct ChatHistoryItem {
    role: String,
    content: String,
}

#[derive(Debug, Deserialize)]
struct InputItem {
    content_type: String,
    content: String,
}

/// A body that passed validation.
#[derive(Debug, PartialEq)]
pub struct InvokeInput {
    pub session_id: Option<SessionId>,
    /// The messages this request brings.
    pub messages: Vec<Message>,
    /// `items` continue a stored session; `chat_history` carries the whole conversation itself.
    pub continues_session: bool,
}

/// Parses and validates a body; the error names the field at fault.
pub fn parse_invoke_body(bytes: &[u8]) -> Result<InvokeInput, InputError> {
    parse_body(bytes).map_err(InputError)
}

fn parse_body(bytes: &[u8]) -> Result<InvokeInput, String> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let body: InvokeBody = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" || path.is_empty() {
            format!("invalid JSON body: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })?;
    let has_history = body.chat_history.as_ref().is_some_and(|h| !h.is_empty());
    let has_items = body.items.as_ref().is_some_and(|i| !i.is_empty());
    let messages = match (has_history, has_items) {
        (true, true) => return Err("give either `chat_history` or `items`, not both".into()),
        (false, false) => return Err("body needs a non-empty `chat_history` or `items`".into()),
        (true, false) => body
            .chat_history
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, m)| match m.role.as_str() {
                "user" => Ok(Message::user(m.content)),
                "assistant" => Ok(Message::assistant(m.content)),
                other => {
                    Err(format!("chat_history[{i}].role: must be \"user\" or \"assistant\", got {other:?}"))
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        (false, true) => {
            let mut texts = Vec::new();
            for (i, item) in body.items.unwrap_or_default().into_iter().enumerate() {
                if item.content_type != "text" {
                    return Err(format!(
                        "items[{i}].content_type: only \"text\" is supported, got {:?}",
                        item.content_type
                    ));
                }
                texts.push(item.content);
            }
            vec![Message::user(texts.join("\n"))]
        }
    };
    let session_id = match &body.session_id {
        Some(id) => Some(SessionId::parse(id).map_err(|e| format!("session_id: {e}"))?),
        None => None,
    };
    Ok(InvokeInput { session_id, messages, continues_session: has_items })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_input_forms_parse() {
        let h = parse_invoke_body(
            br#"{"chat_history":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}"#,
        )
        .expect("valid");
        assert_eq!(h.messages, vec![Message::user("hi"), Message::assistant("yo")]);
        assert!(!h.continues_session);
        let i = parse_invoke_body(
            br#"{"session_id":"s-1","items":[{"content_type":"text","content":"a"},{"content_type":"text","content":"b"}]}"#,
        )
        .expect("valid");
        assert_eq!(i.messages, vec![Message::user("a\nb")]);
        assert_eq!(i.session_id.as_ref().map(SessionId::as_str), Some("s-1"));
        assert!(i.continues_session);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: [(&[u8], &str); 8] = [
            (b"{not json", "invalid JSON body: key must be a string at line 1 column 2"),
            (br#"{"chat_history":[{"role":"user","content":5}]}"#, "chat_history[0].content: invalid type: integer `5`, expected a string at line 1 column 43"),
            (br#"{"chat_history":[{"role":"user"}]}"#, "chat_history[0]: missing field `content` at line 1 column 32"),
            (br#"{"chat_history":[{"role":"system","content":"x"}]}"#, "chat_history[0].role: must be \"user\" or \"assistant\", got \"system\""),
            (br#"{"items":[{"content_type":"image","content":"x"}]}"#, "items[0].content_type: only \"text\" is supported, got \"image\""),
            (br#"{}"#, "body needs a non-empty `chat_history` or `items`"),
            (br#"{"chat_history":[{"role":"user","content":"a"}],"items":[{"content_type":"text","content":"b"}]}"#, "give either `chat_history` or `items`, not both"),
            (br#"{"session_id":"a b","items":[{"content_type":"text","content":"b"}]}"#, "session_id: must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'"),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_invoke_body(body).expect_err("invalid").to_string(),
                want,
                "body {}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
