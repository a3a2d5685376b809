//! Test fixtures shared by the adapter's modules: settings pointing at a local server, a tool
//! conversation, and chat-completion answers.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::{OpenAiClient, OpenAiSettings};
use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, Message, Role, ToolCall, ToolSpec};

pub(super) const KEY: &str = "sk-test-very-secret-key-1234";

pub(super) fn settings(base: &str) -> OpenAiSettings {
    let mut s = OpenAiSettings::new(Url::parse(base).expect("test URL"));
    s.api_key = Some(SecretString::from(KEY));
    s.initial_backoff = Duration::from_millis(1);
    s.max_backoff = Duration::from_millis(5);
    s.max_retries = 2;
    s
}

pub(super) fn client(base: &str) -> OpenAiClient {
    OpenAiClient::new(settings(base)).expect("client")
}

pub(super) fn in_secs(s: u64) -> Instant {
    Instant::now() + Duration::from_secs(s)
}

pub(super) fn read_file_tool() -> ToolSpec {
    ToolSpec {
        name: "fs_read_file".into(),
        description: "Read a UTF-8 file under the sandbox root".into(),
        parameters: json!({
            "type": "object",
            "properties": {"path": {"type": "string", "description": "Relative path"}},
            "required": ["path"],
        }),
    }
}

pub(super) fn tool_conversation() -> Vec<Message> {
    vec![
        Message::system("You are a helpful agent."),
        Message::user("What is in hello.txt?"),
        Message {
            role: Role::Assistant,
            content: None,
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "fs_read_file".into(),
                arguments: r#"{"path":"hello.txt"}"#.into(),
            }],
            tool_call_id: None,
            images: Vec::new(),
        },
        Message::tool_result("call_1", "Hello, world!"),
    ]
}

pub(super) fn request<'a>(messages: &'a [Message], tools: &'a [ToolSpec]) -> ChatRequest<'a> {
    ChatRequest::new("gpt-4o-mini", messages, tools)
}

pub(super) fn completion(content: Value, tool_calls: Option<Value>, finish: &str) -> Value {
    let mut message = json!({"role": "assistant", "content": content});
    if let Some(calls) = tool_calls {
        message["tool_calls"] = calls;
    }
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    })
}

pub(super) fn hello() -> Value {
    completion(json!("Hello!"), None, "stop")
}

/// One "hi" from the user to `client`, with no tools.
pub(super) async fn say_hi(client: &OpenAiClient, deadline: Instant) -> Result<ChatResponse, LlmError> {
    client.complete(request(&[Message::user("hi")], &[]), deadline).await
}
