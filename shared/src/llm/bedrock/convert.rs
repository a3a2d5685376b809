//! The pure translation between our messages and Bedrock's Converse shapes: the request's
//! system prompt, messages, tools and inference settings; the answer's text, tool uses, stop
//! reason and usage; and a streamed answer assembled from ConverseStream's events.
//!
//! No I/O and no SDK client: values in, values out. What is sent is pinned by a snapshot of the
//! request body the real SDK puts on the wire (see the adapter's tests).

use std::collections::BTreeMap;

use aws_sdk_bedrockruntime::types::{
    self as bedrock, ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseOutput,
    ConverseStreamOutput, ImageBlock, ImageFormat, ImageSource, InferenceConfiguration, StopReason,
    SystemContentBlock, TokenUsage, Tool, ToolConfiguration, ToolInputSchema, ToolResultBlock,
    ToolResultContentBlock, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Blob, Document, Number};
use base64::Engine;
use serde_json::Value;

use crate::llm::{ChatRequest, ChatResponse, LlmError, Message, Role, ToolCall, Usage};

/// Tool uses one streamed answer may assemble.
const MAX_BLOCKS: usize = 256;

/// What a Converse request carries besides the model id.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ConverseInput {
    pub system: Vec<SystemContentBlock>,
    pub messages: Vec<bedrock::Message>,
    pub tools: Option<ToolConfiguration>,
    pub inference: Option<InferenceConfiguration>,
}

fn encode_error(e: impl std::fmt::Display) -> LlmError {
    LlmError::Encode(serde::ser::Error::custom(e))
}

/// The Converse request for `req`. System messages become `system` blocks; consecutive tool
/// results go back as one user message of `toolResult` blocks; an assistant turn's tool calls
/// are `toolUse` blocks with their arguments as a JSON document (arguments that are not JSON
/// are sent as `{}`; the model sees its mistake in the tool's answer). Structured output and
/// `reasoning_effort` have no Converse equivalent here and are refused rather than ignored.
pub(super) fn converse_input(req: &ChatRequest<'_>) -> Result<ConverseInput, LlmError> {
    if req.response_format.is_some() {
        return Err(LlmError::Unsupported { what: "structured output (output_type) on Bedrock" });
    }
    if req.reasoning_effort.is_some() {
        return Err(LlmError::Unsupported { what: "reasoning_effort on Bedrock" });
    }
    let mut system = Vec::new();
    let mut messages: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();
    for m in req.messages {
        let (role, blocks) = match m.role {
            Role::System => {
                system.push(SystemContentBlock::Text(m.content.clone().unwrap_or_default()));
                continue;
            }
            Role::User => (ConversationRole::User, user_blocks(m)?),
            Role::Assistant => (ConversationRole::Assistant, assistant_blocks(m)?),
            Role::Tool => {
                let result = ToolResultBlock::builder()
                    .tool_use_id(m.tool_call_id.clone().unwrap_or_default())
                    .content(ToolResultContentBlock::Text(m.content.clone().unwrap_or_default()))
                    .build()
                    .map_err(encode_error)?;
                (ConversationRole::User, vec![ContentBlock::ToolResult(result)])
            }
        };
        // Converse wants turns to alternate: a turn of the same role joins the previous one.
        match messages.last_mut() {
            Some((last, kept)) if *last == role => kept.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let messages = messages
        .into_iter()
        .map(|(role, content)| {
            bedrock::Message::builder().role(role).set_content(Some(content)).build().map_err(encode_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tools = if req.tools.is_empty() {
        None
    } else {
        let specs = req
            .tools
            .iter()
            .map(|t| {
                ToolSpecification::builder()
                    .name(&t.name)
                    .description(&t.description)
                    .input_schema(ToolInputSchema::Json(to_document(&t.parameters)))
                    .build()
                    .map(Tool::ToolSpec)
                    .map_err(encode_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Some(ToolConfiguration::builder().set_tools(Some(specs)).build().map_err(encode_error)?)
    };
    let temperature = req.temperature.filter(|t| t.is_finite());
    let inference = (temperature.is_some() || req.max_tokens.is_some()).then(|| {
        InferenceConfiguration::builder()
            .set_temperature(temperature)
            .set_max_tokens(req.max_tokens.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .build()
    });
    Ok(ConverseInput { system, messages, tools, inference })
}

fn user_blocks(m: &Message) -> Result<Vec<ContentBlock>, LlmError> {
    let mut blocks = Vec::with_capacity(1 + m.images.len());
    if let Some(text) = m.content.as_deref().filter(|t| !t.is_empty() || m.images.is_empty()) {
        blocks.push(ContentBlock::Text(text.to_owned()));
    }
    for image in &m.images {
        blocks.push(ContentBlock::Image(image_block(image)?));
    }
    Ok(blocks)
}

/// A `data:image/…;base64,…` URI as an image block; Converse takes no image URLs.
fn image_block(uri: &str) -> Result<ImageBlock, LlmError> {
    let unsupported = LlmError::Unsupported { what: "an image that is not a base64 data: URI on Bedrock" };
    let Some((head, data)) = uri.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) else {
        return Err(unsupported);
    };
    let format = match head {
        "image/png" => ImageFormat::Png,
        "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::Webp,
        _ => {
            return Err(LlmError::Unsupported {
                what: "an image format other than png, jpeg, gif or webp on Bedrock",
            });
        }
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| unsupported)?;
    ImageBlock::builder()
        .format(format)
        .source(ImageSource::Bytes(Blob::new(bytes)))
        .build()
        .map_err(encode_error)
}

fn assistant_blocks(m: &Message) -> Result<Vec<ContentBlock>, LlmError> {
    let mut blocks = Vec::with_capacity(1 + m.tool_calls.len());
    if let Some(text) = m.content.as_deref().filter(|t| !t.is_empty()) {
        blocks.push(ContentBlock::Text(text.to_owned()));
    }
    for call in &m.tool_calls {
        let input = serde_json::from_str::<Value>(&call.arguments)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Default::default()));
        let block = ToolUseBlock::builder()
            .tool_use_id(&call.id)
            .name(&call.name)
            .input(to_document(&input))
            .build()
            .map_err(encode_error)?;
        blocks.push(ContentBlock::ToolUse(block));
    }
    if blocks.is_empty() {
        blocks.push(ContentBlock::Text(String::new()));
    }
    Ok(blocks)
}

/// Our finish reasons are OpenAI's words: `stop`, `tool_calls`, `length`, `content_filter`.
pub(super) fn finish_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence => "stop",
        StopReason::ToolUse => "tool_calls",
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => "length",
        StopReason::ContentFiltered | StopReason::GuardrailIntervened => "content_filter",
        other => other.as_str(),
    }
    .to_owned()
}

pub(super) fn usage(u: Option<&TokenUsage>) -> Usage {
    let Some(u) = u else { return Usage::default() };
    let n = |v: i32| u64::try_from(v).unwrap_or(0);
    Usage {
        prompt_tokens: n(u.input_tokens()),
        completion_tokens: n(u.output_tokens()),
        total_tokens: n(u.total_tokens()),
    }
}

/// A Converse answer: its text blocks joined, its tool uses as calls (input as JSON text).
pub(super) fn response(
    output: Option<&ConverseOutput>,
    stop: &StopReason,
    used: Option<&TokenUsage>,
) -> Result<ChatResponse, LlmError> {
    let Some(ConverseOutput::Message(message)) = output else {
        return Err(LlmError::InvalidResponse(serde::de::Error::custom(
            "the Converse answer has no message",
        )));
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in message.content() {
        match block {
            ContentBlock::Text(t) => text.push_str(t),
            ContentBlock::ToolUse(u) => tool_calls.push(ToolCall {
                id: u.tool_use_id().to_owned(),
                name: u.name().to_owned(),
                arguments: to_json(u.input()).to_string(),
            }),
            // Reasoning, citations and the like are not part of the answer we keep.
            _ => {}
        }
    }
    Ok(answer(text, tool_calls, Some(finish_reason(stop)), usage(used)))
}

fn answer(
    text: String,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
    usage: Usage,
) -> ChatResponse {
    let content = if text.is_empty() && !tool_calls.is_empty() { None } else { Some(text) };
    ChatResponse { message: Message::assistant_reply(content, tool_calls), usage, finish_reason }
}

#[derive(Debug)]
enum Block {
    Text(String),
    ToolUse { id: String, name: String, input: String },
}

/// A ConverseStream answer being assembled, block by block (by `contentBlockIndex`).
#[derive(Debug, Default)]
pub(super) struct StreamAssembler {
    blocks: BTreeMap<i32, Block>,
    stop: Option<String>,
    usage: Option<Usage>,
}

impl StreamAssembler {
    /// Takes one event; returns the text it carried, to be handed on now.
    pub(super) fn push(&mut self, event: ConverseStreamOutput) -> Result<Option<String>, LlmError> {
        match event {
            ConverseStreamOutput::ContentBlockStart(start) => {
                if let Some(ContentBlockStart::ToolUse(t)) = start.start() {
                    self.check_room(start.content_block_index())?;
                    self.blocks.insert(
                        start.content_block_index(),
                        Block::ToolUse {
                            id: t.tool_use_id().to_owned(),
                            name: t.name().to_owned(),
                            input: String::new(),
                        },
                    );
                }
                Ok(None)
            }
            ConverseStreamOutput::ContentBlockDelta(d) => {
                let index = d.content_block_index();
                match d.delta() {
                    Some(ContentBlockDelta::Text(t)) if !t.is_empty() => {
                        self.check_room(index)?;
                        match self.blocks.entry(index).or_insert_with(|| Block::Text(String::new())) {
                            Block::Text(kept) => kept.push_str(t),
                            Block::ToolUse { .. } => {
                                return Err(LlmError::InvalidResponse(serde::de::Error::custom(
                                    "text streamed into a tool use block",
                                )));
                            }
                        }
                        Ok(Some(t.clone()))
                    }
                    Some(ContentBlockDelta::ToolUse(u)) => match self.blocks.get_mut(&index) {
                        Some(Block::ToolUse { input, .. }) => {
                            input.push_str(u.input());
                            Ok(None)
                        }
                        _ => Err(LlmError::InvalidResponse(serde::de::Error::custom(
                            "tool input streamed before its tool use started",
                        ))),
                    },
                    _ => Ok(None),
                }
            }
            ConverseStreamOutput::MessageStop(stop) => {
                self.stop = Some(finish_reason(stop.stop_reason()));
                Ok(None)
            }
            ConverseStreamOutput::Metadata(m) => {
                self.usage = Some(usage(m.usage()));
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn check_room(&self, index: i32) -> Result<(), LlmError> {
        if self.blocks.contains_key(&index) || self.blocks.len() < MAX_BLOCKS {
            Ok(())
        } else {
            Err(LlmError::InvalidResponse(serde::de::Error::custom("too many content blocks in the stream")))
        }
    }

    /// Whether `messageStop` was read.
    pub(super) fn is_complete(&self) -> bool {
        self.stop.is_some()
    }

    pub(super) fn finish(self) -> ChatResponse {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in self.blocks.into_values() {
            match block {
                Block::Text(t) => text.push_str(&t),
                Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: if input.is_empty() { "{}".to_owned() } else { input },
                }),
            }
        }
        answer(text, tool_calls, self.stop, self.usage.unwrap_or_default())
    }
}

/// JSON to the SDK's document type.
pub(super) fn to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            (None, None) => Number::Float(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect()),
    }
}

/// The SDK's document type to JSON (a float that JSON cannot hold becomes `null`).
pub(super) fn to_json(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Document::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::ToolSpec;

    #[test]
    fn documents_round_trip_json() {
        let v = json!({"a": [1, -2, 2.5, "x", true, null], "b": {"c": {}}});
        assert_eq!(to_json(&to_document(&v)), v);
    }

    #[test]
    fn tool_results_join_one_user_turn_and_the_system_prompt_is_apart() {
        let messages = [
            Message::system("be brief"),
            Message::user("hi"),
            Message {
                role: Role::Assistant,
                content: None,
                tool_calls: vec![
                    ToolCall { id: "t1".into(), name: "a".into(), arguments: "{\"x\":1}".into() },
                    ToolCall { id: "t2".into(), name: "b".into(), arguments: "not json".into() },
                ],
                tool_call_id: None,
                images: Vec::new(),
            },
            Message::tool_result("t1", "one"),
            Message::tool_result("t2", "two"),
        ];
        let tools =
            [ToolSpec { name: "a".into(), description: "A".into(), parameters: json!({"type": "object"}) }];
        let input = converse_input(&ChatRequest::new("m", &messages, &tools)).expect("converts");
        assert_eq!(input.system, [SystemContentBlock::Text("be brief".into())]);
        let roles: Vec<_> = input.messages.iter().map(|m| m.role().clone()).collect();
        assert_eq!(roles, [ConversationRole::User, ConversationRole::Assistant, ConversationRole::User]);
        assert_eq!(input.messages[2].content().len(), 2, "both results in one user turn");
        let ContentBlock::ToolUse(bad) = &input.messages[1].content()[1] else { panic!("tool use") };
        assert_eq!(to_json(bad.input()), json!({}), "arguments that are not JSON go as {{}}");
        assert!(input.tools.is_some());
        assert!(input.inference.is_none());
    }

    #[test]
    fn what_converse_cannot_take_is_refused_by_name() {
        let messages = [Message::user_with_images("look", vec!["https://example.com/cat.png".into()])];
        let err = converse_input(&ChatRequest::new("m", &messages, &[])).expect_err("url image");
        assert_eq!(
            err.to_string(),
            "the LLM provider cannot take an image that is not a base64 data: URI on Bedrock"
        );
        let plain = [Message::user("hi")];
        let mut req = ChatRequest::new("m", &plain, &[]);
        req.reasoning_effort = Some("high");
        assert!(matches!(converse_input(&req), Err(LlmError::Unsupported { .. })));
    }

    #[test]
    fn stop_reasons_map_to_our_words() {
        assert_eq!(finish_reason(&StopReason::EndTurn), "stop");
        assert_eq!(finish_reason(&StopReason::ToolUse), "tool_calls");
        assert_eq!(finish_reason(&StopReason::MaxTokens), "length");
        assert_eq!(finish_reason(&StopReason::GuardrailIntervened), "content_filter");
        assert_eq!(finish_reason(&StopReason::from("something_new")), "something_new");
    }
}
