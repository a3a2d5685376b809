//! The pure wire translation of the chat-completions API: our [`ChatRequest`] to the request
//! body, the answer's bytes to a [`ChatResponse`].
//!
//! Owns the wire shape and nothing else: no I/O, no retries, no settings. Golden-tested with
//! insta; a change to what is sent shows up as a snapshot diff.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llm::{ChatRequest, ChatResponse, LlmError, Message, Role, ToolCall, Usage};

/// The chat-completions request body, borrowing every string and schema from the
/// [`ChatRequest`] it is built from: building it copies no message text and no tool schema.
///
/// Serialised once per call, straight to bytes; its keys go out in field order.
#[derive(Debug, Serialize)]
pub struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    /// serde_json writes an `f32` in its shortest form: `0.2`, not `0.20000000298023224`.
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    /// `true` for a streamed call (server-sent events), left out otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    /// `{"include_usage": true}` with `stream`: the last chunk carries the usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// `{"type": "json_schema", "json_schema": {"name", "schema", "strict": false}}`. Not strict:
/// strict mode refuses schemas that leave `additionalProperties` open, which pydantic's do;
/// the answer is validated here instead.
#[derive(Debug, Serialize)]
struct WireResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: WireJsonSchema<'a>,
}

#[derive(Debug, Serialize)]
struct WireJsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

/// Text alone, or text and images as content parts.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    /// Sent as `null` when `None`.
    Text(Option<&'a str>),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImageUrl<'a> },
}

#[derive(Debug, Serialize)]
struct WireImageUrl<'a> {
    url: &'a str,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

/// The one kind of tool and of tool call the API knows: `"type": "function"`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Function,
}

#[derive(Debug, Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: Kind,
    function: WireCall<'a>,
}

#[derive(Debug, Serialize)]
struct WireCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: Kind,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// The chat-completions request body for `req`, in the OpenAI wire shape.
///
/// Assistant tool calls become `{id, type: "function", function: {name, arguments}}`; tool
/// results carry `tool_call_id`; `tools` is present only when non-empty; `temperature` only
/// when set and finite, `max_tokens` only when set. An assistant turn with tool calls and no
/// text sends `content: null`; any other missing content is sent as `""`.
pub fn request_body<'a>(req: &ChatRequest<'a>) -> WireRequest<'a> {
    WireRequest {
        model: req.model,
        messages: req.messages.iter().map(wire_message).collect(),
        tools: req
            .tools
            .iter()
            .map(|t| WireTool {
                kind: Kind::Function,
                function: WireFunction {
                    name: &t.name,
                    description: &t.description,
                    parameters: &t.parameters,
                },
            })
            .collect(),
        temperature: req.temperature.filter(|t| t.is_finite()),
        max_tokens: req.max_tokens,
        reasoning_effort: req.reasoning_effort,
        response_format: req.response_format.map(|f| WireResponseFormat {
            kind: "json_schema",
            json_schema: WireJsonSchema { name: &f.name, schema: &f.schema, strict: false },
        }),
        stream: false,
        stream_options: None,
    }
}

/// The body of one call, serialised once: every attempt sends these same [`Bytes`] (a clone is
/// a reference count, not a copy). A streamed call adds `stream: true` and
/// `stream_options: {"include_usage": true}`.
pub(super) fn encode(req: &ChatRequest<'_>, stream: bool) -> Result<Bytes, serde_json::Error> {
    let mut body = request_body(req);
    if stream {
        body.stream = true;
        body.stream_options = Some(StreamOptions { include_usage: true });
    }
    serde_json::to_vec(&body).map(Bytes::from)
}

fn wire_message(m: &Message) -> WireMessage<'_> {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let content = match (&m.content, m.tool_calls.is_empty()) {
        (Some(text), _) => Some(text.as_str()),
        (None, false) => None,
        (None, true) => Some(""),
    };
    let tool_calls = m
        .tool_calls
        .iter()
        .map(|c| WireToolCall {
            id: &c.id,
            kind: Kind::Function,
            function: WireCall { name: &c.name, arguments: &c.arguments },
        })
        .collect();
    let content = if m.images.is_empty() {
        WireContent::Text(content)
    } else {
        let text = content.filter(|t| !t.is_empty()).map(|text| WirePart::Text { text });
        let images = m.images.iter().map(|url| WirePart::ImageUrl { image_url: WireImageUrl { url } });
        WireContent::Parts(text.into_iter().chain(images).collect())
    };
    WireMessage { role, content, tool_calls, tool_call_id: m.tool_call_id.as_deref() }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireReply,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireReply {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireReplyCall>>,
}

#[derive(Deserialize)]
struct WireReplyCall {
    #[serde(default)]
    id: Option<String>,
    function: WireReplyFunction,
}

#[derive(Deserialize)]
struct WireReplyFunction {
    name: String,
    /// A JSON text per the spec; some servers send an object instead.
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    /// A missing total is the sum of the two counts.
    fn from(u: WireUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens.unwrap_or(u.prompt_tokens + u.completion_tokens),
        }
    }
}

/// Parses a chat-completions answer: the first choice's message (content may be null; a
/// refusal stands in for missing content), its tool calls, the usage (zero when absent) and
/// the finish reason.
///
/// A body that is not such an answer is [`LlmError::InvalidResponse`] holding the
/// `serde_json::Error` (an answer without choices is one too): the cause is for the log, and
/// no part of the body reaches the error's message.
///
/// Tolerates what compatible servers do differently: arguments sent as a JSON object are
/// re-serialised to text, missing arguments become `{}`, a missing call id becomes `call_{i}`.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, LlmError> {
    let wire: WireResponse = serde_json::from_slice(body).map_err(LlmError::InvalidResponse)?;
    let Some(choice) = wire.choices.into_iter().next() else {
        return Err(LlmError::InvalidResponse(serde::de::Error::custom("the answer has no choices")));
    };
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: c.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{i}")),
            name: c.function.name,
            arguments: match c.function.arguments {
                Value::String(s) => s,
                Value::Null => "{}".to_owned(),
                other => other.to_string(),
            },
        })
        .collect();
    let usage = wire.usage.map(Usage::from).unwrap_or_default();
    Ok(ChatResponse {
        message: Message::assistant_reply(choice.message.content.or(choice.message.refusal), tool_calls),
        usage,
        finish_reason: choice.finish_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::openai::fixtures::*;
    use serde_json::json;

    fn snapshot_settings() -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        // Same snapshot file names whichever crate compiles this module.
        s.set_prepend_module_to_snapshot(false);
        // Same key order whether or not some crate turns on serde_json's `preserve_order`.
        s.set_sort_maps(true);
        s
    }

    /// What goes on the wire, read back: the snapshots show the bytes sent, not the structs.
    fn sent(req: &ChatRequest<'_>) -> Value {
        serde_json::from_slice(&encode(req, false).expect("encodes")).expect("valid JSON")
    }

    #[test]
    fn request_body_with_tools_and_a_tool_result() {
        let messages = tool_conversation();
        let tools = [read_file_tool()];
        let mut req = request(&messages, &tools);
        req.temperature = Some(0.2);
        req.max_tokens = Some(512);
        snapshot_settings()
            .bind(|| insta::assert_json_snapshot!("openai_request_body_with_tools", sent(&req)));
    }

    #[test]
    fn request_body_without_tools_or_options() {
        let messages = [Message::user("Hello")];
        let body = sent(&request(&messages, &[]));
        snapshot_settings().bind(|| insta::assert_json_snapshot!("openai_request_body_minimal", body));
    }

    #[test]
    fn the_body_is_compact_json_in_field_order_with_a_short_temperature() {
        let messages = [Message::user("Hello")];
        let mut req = request(&messages, &[]);
        req.temperature = Some(0.2);
        req.max_tokens = Some(512);
        assert_eq!(
            encode(&req, false).expect("encodes"),
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"temperature":0.2,"max_tokens":512}"#
        );
    }

    #[test]
    fn a_temperature_that_is_not_finite_is_left_out() {
        let messages = [Message::user("Hello")];
        for t in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut req = request(&messages, &[]);
            req.temperature = Some(t);
            assert_eq!(sent(&req).get("temperature"), None, "{t}");
        }
    }

    #[test]
    fn the_body_borrows_the_messages_and_schemas_instead_of_copying_them() {
        let messages = tool_conversation();
        let tools = [read_file_tool()];
        let req = request(&messages, &tools);
        let body = request_body(&req);
        assert!(std::ptr::eq(body.tools[0].function.parameters, &tools[0].parameters));
        let (WireContent::Text(Some(sent)), Some(kept)) =
            (&body.messages[1].content, messages[1].content.as_deref())
        else {
            panic!("the user message has text");
        };
        assert!(std::ptr::eq(*sent, kept));
    }

    #[test]
    fn parse_a_tool_call_answer() {
        let body = completion(
            Value::Null,
            Some(json!([{
                "id": "call_abc",
                "type": "function",
                "function": {"name": "fs_read_file", "arguments": "{\"path\":\"hello.txt\"}"},
            }])),
            "tool_calls",
        );
        let r = parse_response(body.to_string().as_bytes()).expect("valid");
        assert_eq!(r.message.role, Role::Assistant);
        assert_eq!(r.message.content, None);
        assert_eq!(
            r.message.tool_calls,
            vec![ToolCall {
                id: "call_abc".into(),
                name: "fs_read_file".into(),
                arguments: r#"{"path":"hello.txt"}"#.into()
            }]
        );
        assert_eq!(r.usage, Usage { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 });
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn parse_without_usage_gives_zero_usage() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]});
        let r = parse_response(body.to_string().as_bytes()).expect("valid");
        assert_eq!(r.message, Message::assistant("hi"));
        assert_eq!(r.usage, Usage::default());
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn parse_tolerates_object_arguments_and_missing_ids() {
        let body = json!({"choices": [{"message": {"content": "", "tool_calls": [
            {"function": {"name": "a", "arguments": {"x": 1}}},
            {"id": "", "function": {"name": "b"}},
        ]}}]});
        let r = parse_response(body.to_string().as_bytes()).expect("valid");
        assert_eq!(
            r.message.tool_calls,
            vec![
                ToolCall { id: "call_0".into(), name: "a".into(), arguments: r#"{"x":1}"#.into() },
                ToolCall { id: "call_1".into(), name: "b".into(), arguments: "{}".into() },
            ]
        );
        assert_eq!(r.finish_reason, None);
    }

    #[test]
    fn parse_rejects_invalid_json_and_answers_without_choices() {
        assert!(matches!(parse_response(b"<html>oops</html>"), Err(LlmError::InvalidResponse(_))));
        assert!(matches!(parse_response(br#"{"choices": []}"#), Err(LlmError::InvalidResponse(_))));
        assert!(matches!(
            parse_response(br#"{"error": {"message": "x"}}"#),
            Err(LlmError::InvalidResponse(_))
        ));
    }

    #[test]
    fn an_invalid_answer_keeps_the_parse_error_as_its_cause_and_no_body_text() {
        for body in
            [&b"<html>upstream secret page</html>"[..], br#"{"choices": "upstream secret"}"#, br#"{}"#]
        {
            let err = parse_response(body).expect_err("invalid");
            assert_eq!(err.to_string(), "LLM answer is not a valid chat completion");
            let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
            assert!(!cause.is_empty(), "{err:?}");
        }
        let err = parse_response(br#"{"choices": []}"#).expect_err("no choices");
        assert_eq!(
            crate::telemetry::error_chain(&err),
            "LLM answer is not a valid chat completion: the answer has no choices"
        );
    }
}
