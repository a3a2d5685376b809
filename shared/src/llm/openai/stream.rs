//! The pure translation of a streamed chat completion: each SSE `data` field (one
//! `chat.completion.chunk`) in, the text delta it carries out, and at the end the whole answer.
//!
//! Owns the chunk's wire shape and the assembly: text appended in order, tool calls assembled
//! by their `index` (the id and name arrive in the first delta of a call, the arguments as text
//! fragments over many), the usage from the last chunk (`stream_options.include_usage`), the
//! finish reason. No I/O: the SSE framing is the parser crate's, the retries are
//! [`super::client`]'s. Every input is bounded: at most [`MAX_TOOL_CALLS`] calls, and the
//! caller bounds the bytes.

use serde::Deserialize;
use serde_json::Value;

use super::wire::WireUsage;
use crate::llm::{ChatResponse, LlmError, Message, ToolCall, Usage};

/// Tool calls one answer may assemble; an index past it is an invalid answer.
pub(super) const MAX_TOOL_CALLS: usize = 128;

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireDeltaCall>>,
}

#[derive(Deserialize)]
struct WireDeltaCall {
    /// Which call this fragment belongs to; servers that leave it out send one fragment per
    /// call, in order.
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireDeltaFunction>,
}

#[derive(Deserialize)]
struct WireDeltaFunction {
    #[serde(default)]
    name: Option<String>,
    /// A fragment of JSON text; some servers send the whole arguments as an object.
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// One streamed answer being assembled.
#[derive(Debug, Default)]
pub(super) struct Assembler {
    content: String,
    refusal: String,
    /// By index; a gap (an index never sent) is dropped at the end.
    calls: Vec<Option<PartialCall>>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    done: bool,
}

fn invalid(why: &str) -> LlmError {
    LlmError::InvalidResponse(serde::de::Error::custom(why))
}

impl Assembler {
    /// Takes one SSE `data` field. Returns the answer text it carried (content, or a refusal),
    /// to be handed on now; `[DONE]` marks the end.
    pub(super) fn push(&mut self, data: &str) -> Result<Option<String>, LlmError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(LlmError::InvalidResponse)?;
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        let mut text: Option<String> = None;
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
            let Some(delta) = choice.delta else { continue };
            for (piece, kept) in [(delta.content, &mut self.content), (delta.refusal, &mut self.refusal)] {
                if let Some(piece) = piece.filter(|p| !p.is_empty()) {
                    kept.push_str(&piece);
                    match &mut text {
                        Some(t) => t.push_str(&piece),
                        None => text = Some(piece),
                    }
                }
            }
            for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                self.push_call(position, call)?;
            }
        }
        Ok(text)
    }

    fn push_call(&mut self, position: usize, call: WireDeltaCall) -> Result<(), LlmError> {
        let index = call.index.unwrap_or(self.calls.len().max(position));
        if index >= MAX_TOOL_CALLS {
            return Err(invalid("a streamed tool call index is out of range"));
        }
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, || None);
        }
        let slot = self.calls[index].get_or_insert_with(PartialCall::default);
        if let Some(id) = call.id.filter(|id| !id.is_empty()) {
            slot.id = id;
        }
        if let Some(function) = call.function {
            if let Some(name) = function.name {
                slot.name.push_str(&name);
            }
            match function.arguments {
                Value::Null => {}
                Value::String(fragment) => slot.arguments.push_str(&fragment),
                whole => slot.arguments.push_str(&whole.to_string()),
            }
        }
        Ok(())
    }

    /// Whether `[DONE]` was read: nothing follows.
    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the server said the answer is whole: `[DONE]`, or a finish reason.
    pub(super) fn is_complete(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }

    /// The whole answer, as [`super::parse_response`] would give it for the same answer
    /// unstreamed: a refusal stands in for missing text, empty arguments become `{}`, a
    /// missing call id becomes `call_{i}`, usage is zero when the server sent none.
    pub(super) fn finish(self) -> ChatResponse {
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: if c.id.is_empty() { format!("call_{i}") } else { c.id },
                name: c.name,
                arguments: if c.arguments.is_empty() { "{}".to_owned() } else { c.arguments },
            })
            .collect();
        let content = match (self.content.is_empty(), self.refusal.is_empty()) {
            (false, _) => Some(self.content),
            (true, false) => Some(self.refusal),
            (true, true) if tool_calls.is_empty() => Some(String::new()),
            (true, true) => None,
        };
        ChatResponse {
            message: Message::assistant_reply(content, tool_calls),
            usage: self.usage.unwrap_or_default(),
            finish_reason: self.finish_reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chunk(delta: Value, finish: Option<&str>) -> String {
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string()
    }

    #[test]
    fn text_deltas_are_handed_on_in_order_and_the_usage_comes_from_the_last_chunk() {
        let mut a = Assembler::default();
        assert_eq!(a.push(&chunk(json!({"role": "assistant", "content": ""}), None)).expect("ok"), None);
        assert_eq!(a.push(&chunk(json!({"content": "Hel"}), None)).expect("ok").as_deref(), Some("Hel"));
        assert_eq!(a.push(&chunk(json!({"content": "lo"}), None)).expect("ok").as_deref(), Some("lo"));
        assert!(!a.is_complete());
        a.push(&chunk(json!({}), Some("stop"))).expect("ok");
        let usage =
            json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}});
        a.push(&usage.to_string()).expect("ok");
        a.push("[DONE]").expect("ok");
        assert!(a.is_complete());
        let r = a.finish();
        assert_eq!(r.message, Message::assistant("Hello"));
        assert_eq!(r.usage, Usage { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn a_tool_call_split_over_many_deltas_is_assembled_by_index() {
        let mut a = Assembler::default();
        let first = json!({"tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "fs_read_file", "arguments": ""}},
        ]});
        a.push(&chunk(first, None)).expect("ok");
        // The second call starts while the first's arguments are still coming.
        let second = json!({"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "fs_list_directory", "arguments": "{\"pa"}},
        ]});
        a.push(&chunk(second, None)).expect("ok");
        for piece in ["{\"pa", "th\":", "\"hello", ".txt\"}"] {
            let d = json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
            assert_eq!(a.push(&chunk(d, None)).expect("ok"), None, "tool deltas are not text");
        }
        let d = json!({"tool_calls": [{"index": 1, "function": {"arguments": "th\":\".\"}"}}]});
        a.push(&chunk(d, Some("tool_calls"))).expect("ok");
        let r = a.finish();
        assert_eq!(r.message.content, None);
        assert_eq!(
            r.message.tool_calls,
            vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "fs_read_file".into(),
                    arguments: r#"{"path":"hello.txt"}"#.into()
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "fs_list_directory".into(),
                    arguments: r#"{"path":"."}"#.into()
                },
            ]
        );
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.usage, Usage::default(), "no usage chunk: zero");
    }

    #[test]
    fn servers_without_indexes_ids_or_string_arguments_are_tolerated() {
        let mut a = Assembler::default();
        let d = json!({"tool_calls": [
            {"function": {"name": "a", "arguments": {"x": 1}}},
            {"function": {"name": "b"}},
        ]});
        a.push(&chunk(d, Some("tool_calls"))).expect("ok");
        let r = a.finish();
        assert_eq!(
            r.message.tool_calls,
            vec![
                ToolCall { id: "call_0".into(), name: "a".into(), arguments: r#"{"x":1}"#.into() },
                ToolCall { id: "call_1".into(), name: "b".into(), arguments: "{}".into() },
            ]
        );
    }

    #[test]
    fn a_refusal_is_text_and_other_choices_are_ignored() {
        let mut a = Assembler::default();
        let other = json!({"choices": [{"index": 1, "delta": {"content": "other"}}]});
        assert_eq!(a.push(&other.to_string()).expect("ok"), None);
        assert_eq!(
            a.push(&chunk(json!({"refusal": "No."}), Some("stop"))).expect("ok").as_deref(),
            Some("No.")
        );
        assert_eq!(a.finish().message.content.as_deref(), Some("No."));
    }

    #[test]
    fn bad_chunks_and_out_of_range_indexes_are_invalid_answers() {
        let mut a = Assembler::default();
        assert!(matches!(a.push("{not json"), Err(LlmError::InvalidResponse(_))));
        let d = json!({"tool_calls": [{"index": MAX_TOOL_CALLS, "function": {"name": "x"}}]});
        assert!(matches!(a.push(&chunk(d, None)), Err(LlmError::InvalidResponse(_))));
    }
}
