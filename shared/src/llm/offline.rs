//! The deterministic offline model: the default when no LLM is configured, and the model the
//! end-to-end tests drive.
//!
//! It owns a small, documented set of answers (see [`OfflineModel`]) that let a user or a test
//! exercise the whole agent loop, tool calls included, without a network or a key. It must stay
//! pure: no network, no clock, no randomness; the same conversation always gets the same answer.

use std::time::Instant;

use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, Message, Role, ToolCall, ToolSpec, Usage};

/// How many characters of the user's text the summary answer quotes.
const QUOTE_CHARS: usize = 200;

/// A deterministic stand-in for an LLM. It answers in one of three ways, checked in order:
///
/// 1. **Tool results.** When the conversation ends with `Tool` messages (one or more after the
///    last assistant turn), it answers with their texts joined by `\n`; finish reason `"stop"`.
/// 2. **Tool call.** When the conversation ends with a user message whose text (leading
///    whitespace ignored) starts with the name of one of `request.tools` followed by the end of
///    the text or whitespace, it calls that tool (the longest matching name wins). The rest of the
///    text, trimmed, is the arguments: `{}` when empty, else it must be a JSON object and is
///    passed on exactly as written. The answer is an assistant message with no text and one
///    call, id `offline-call-{n}` where `n` is 1 + the number of earlier assistant turns with
///    tool calls; finish reason `"tool_calls"`. If the arguments are not a JSON object, it
///    answers instead with the text
///    `[offline model] The arguments for {tool} are not a JSON object ({why}). Write them as
///    one, e.g. {example}` (finish reason `"stop"`).
/// 3. **Summary.** Otherwise it answers (finish reason `"stop"`):
///    `[offline model] You said: "{text}". {n} message(s) so far. Tools available: {names}. To
///    call one, start your message with its name, e.g. {example}`
///    where `{text}` is the last user message's first 200 characters (`…` appended when cut),
///    `{n}` counts every message of the request, `{names}` is the tool names joined by `, `, and
///    `{example}` is the first tool's name followed by a JSON object naming its first required
///    parameter (else its alphabetically first parameter, else none), e.g.
///    `fs_read_file {"path": "..."}`. Without tools the text ends with `Tools available: none.`
///
/// Usage: `prompt_tokens` counts whitespace-separated words across every message's text and
/// tool-call names and arguments, `completion_tokens` the same over the answer, and
/// `total_tokens` their sum. The deadline is ignored: the answer is immediate.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineModel;

impl OfflineModel {
    /// The answer to `request`, as documented on [`OfflineModel`].
    pub fn answer(&self, request: &ChatRequest<'_>) -> ChatResponse {
        let message = answer_message(request);
        let finish_reason = if message.tool_calls.is_empty() { "stop" } else { "tool_calls" };
        let prompt_tokens = request.messages.iter().map(words).sum();
        let completion_tokens = words(&message);
        ChatResponse {
            message,
            usage: Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: prompt_tokens + completion_tokens,
            },
            finish_reason: Some(finish_reason.to_owned()),
        }
    }
}

#[async_trait::async_trait]
impl LlmClient for OfflineModel {
    async fn complete(&self, request: ChatRequest<'_>, _deadline: Instant) -> Result<ChatResponse, LlmError> {
        Ok(self.answer(&request))
    }

    fn describe(&self) -> String {
        "offline (deterministic, no network)".to_owned()
    }
}

fn answer_message(request: &ChatRequest<'_>) -> Message {
    let messages = request.messages;

    // 1. Trailing tool results.
    let trailing_tools = messages.iter().rev().take_while(|m| m.role == Role::Tool).count();
    if trailing_tools > 0 {
        let texts: Vec<&str> = messages[messages.len() - trailing_tools..]
            .iter()
            .map(|m| m.content.as_deref().unwrap_or(""))
            .collect();
        return Message::assistant(texts.join("\n"));
    }

    // 2. A user turn that names a tool.
    if let Some(text) = messages.last().filter(|m| m.role == Role::User).and_then(|m| m.content.as_deref())
        && let Some((tool, rest)) = match_tool(text.trim_start(), request.tools)
    {
        let arguments = rest.trim();
        let arguments = if arguments.is_empty() { "{}" } else { arguments };
        return match serde_json::from_str::<serde_json::Value>(arguments) {
            Ok(serde_json::Value::Object(_)) => {
                let prior_calls =
                    messages.iter().filter(|m| m.role == Role::Assistant && !m.tool_calls.is_empty()).count();
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: format!("offline-call-{}", prior_calls + 1),
                        name: tool.name.clone(),
                        arguments: arguments.to_owned(),
                    }],
                    tool_call_id: None,
                    images: Vec::new(),
                }
            }
            Ok(other) => not_an_object(tool, json_kind(&other)),
            Err(e) => not_an_object(tool, &format!("invalid JSON: {e}")),
        };
    }

    // 3. Summary.
    let last_user =
        messages.iter().rev().find(|m| m.role == Role::User).and_then(|m| m.content.as_deref()).unwrap_or("");
    let mut quote: String = last_user.chars().take(QUOTE_CHARS).collect();
    if last_user.chars().nth(QUOTE_CHARS).is_some() {
        quote.push('…');
    }
    let mut text = format!("[offline model] You said: \"{quote}\". {} message(s) so far. ", messages.len());
    match request.tools.first() {
        None => text.push_str("Tools available: none."),
        Some(first) => {
            let names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
            text.push_str(&format!(
                "Tools available: {}. To call one, start your message with its name, e.g. {}",
                names.join(", "),
                example_call(first)
            ));
        }
    }
    Message::assistant(text)
}

/// The tool whose name starts `text` (then end of text or whitespace), longest name first, and
/// the text after the name.
fn match_tool<'t, 's>(text: &'t str, tools: &'s [ToolSpec]) -> Option<(&'s ToolSpec, &'t str)> {
    tools
        .iter()
        .filter(|t| !t.name.is_empty())
        .filter_map(|t| {
            let rest = text.strip_prefix(t.name.as_str())?;
            (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some((t, rest))
        })
        .max_by_key(|(t, _)| t.name.len())
}

fn not_an_object(tool: &ToolSpec, why: &str) -> Message {
    Message::assistant(format!(
        "[offline model] The arguments for {} are not a JSON object ({why}). Write them as one, e.g. {}",
        tool.name,
        example_call(tool)
    ))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "got null",
        serde_json::Value::Bool(_) => "got a boolean",
        serde_json::Value::Number(_) => "got a number",
        serde_json::Value::String(_) => "got a string",
        serde_json::Value::Array(_) => "got an array",
        serde_json::Value::Object(_) => "got an object",
    }
}

/// `name {"param": "..."}` for the first required parameter, else the alphabetically first
/// property (independent of the JSON map's key order), else `name {}`.
fn example_call(tool: &ToolSpec) -> String {
    let schema = &tool.parameters;
    let required =
        schema.get("required").and_then(|r| r.as_array()).and_then(|r| r.iter().find_map(|v| v.as_str()));
    let first_property = || {
        schema.get("properties").and_then(|p| p.as_object()).and_then(|p| p.keys().min()).map(String::as_str)
    };
    match required.or_else(first_property) {
        Some(param) => format!("{} {{{}: \"...\"}}", tool.name, serde_json::Value::from(param)),
        None => format!("{} {{}}", tool.name),
    }
}

/// Whitespace-separated words of a message's text and tool calls.
fn words(m: &Message) -> u64 {
    let text = m.content.as_deref().map_or(0, |t| t.split_whitespace().count());
    let calls: usize = m
        .tool_calls
        .iter()
        .map(|c| c.name.split_whitespace().count() + c.arguments.split_whitespace().count())
        .sum();
    u64::try_from(text + calls).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "fs_read_file".into(),
                description: "Read a file".into(),
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
            },
            ToolSpec {
                name: "fs".into(),
                description: "A tool whose name prefixes another".into(),
                parameters: json!({"type": "object", "properties": {"b": {}, "a": {}}}),
            },
            ToolSpec {
                name: "fs_read_file_lines".into(),
                description: "Read some lines".into(),
                parameters: json!({"type": "object"}),
            },
        ]
    }

    fn ask(messages: &[Message], tools: &[ToolSpec]) -> ChatResponse {
        OfflineModel.answer(&ChatRequest::new("offline", messages, tools))
    }

    fn call(id: &str, name: &str, arguments: &str) -> Message {
        Message {
            role: Role::Assistant,
            content: None,
            tool_calls: vec![ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }],
            tool_call_id: None,
            images: Vec::new(),
        }
    }

    #[test]
    fn trailing_tool_results_are_echoed_joined_by_newlines() {
        let messages = [
            Message::user("fs_read_file {\"path\": \"a\"}"),
            call("offline-call-1", "fs_read_file", "{\"path\": \"a\"}"),
            Message::tool_result("offline-call-1", "first"),
            Message::tool_result("offline-call-1", "second"),
        ];
        let r = ask(&messages, &tools());
        assert_eq!(r.message, Message::assistant("first\nsecond"));
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn a_user_message_naming_a_tool_calls_it_with_the_json_object() {
        let r = ask(&[Message::user("  fs_read_file {\"path\": \"hello.txt\"}  ")], &tools());
        assert_eq!(r.message, call("offline-call-1", "fs_read_file", "{\"path\": \"hello.txt\"}"));
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn the_longest_matching_tool_name_wins_and_arguments_default_to_an_empty_object() {
        let r = ask(&[Message::user("fs_read_file_lines")], &tools());
        assert_eq!(r.message.tool_calls[0].name, "fs_read_file_lines");
        assert_eq!(r.message.tool_calls[0].arguments, "{}");

        let r = ask(&[Message::user("fs\t{}")], &tools());
        assert_eq!(r.message.tool_calls[0].name, "fs");
    }

    #[test]
    fn a_tool_name_must_be_followed_by_whitespace_or_the_end() {
        let r = ask(&[Message::user("fs_read_filex {}")], &tools());
        assert!(r.message.tool_calls.is_empty());
        assert!(r.message.content.as_deref().is_some_and(|t| t.starts_with("[offline model] You said:")));
    }

    #[test]
    fn the_call_id_counts_earlier_tool_call_turns() {
        let messages = [
            Message::user("fs {}"),
            call("offline-call-1", "fs", "{}"),
            Message::tool_result("offline-call-1", "ok"),
            Message::assistant("ok"),
            Message::user("fs_read_file {\"path\": \"b\"}"),
        ];
        assert_eq!(ask(&messages, &tools()).message.tool_calls[0].id, "offline-call-2");
    }

    #[test]
    fn arguments_that_are_not_a_json_object_get_an_explanation() {
        let r = ask(&[Message::user("fs_read_file [1, 2]")], &tools());
        assert!(r.message.tool_calls.is_empty());
        assert_eq!(
            r.message.content.as_deref(),
            Some(
                "[offline model] The arguments for fs_read_file are not a JSON object (got an array). \
                 Write them as one, e.g. fs_read_file {\"path\": \"...\"}"
            )
        );
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));

        let r = ask(&[Message::user("fs_read_file path=a")], &tools());
        assert!(r.message.content.as_deref().is_some_and(|t| t.contains("(invalid JSON: ")));
    }

    #[test]
    fn otherwise_it_summarises_the_conversation() {
        let messages = [Message::system("be brief"), Message::user("hello there")];
        let r = ask(&messages, &tools());
        assert_eq!(
            r.message.content.as_deref(),
            Some(
                "[offline model] You said: \"hello there\". 2 message(s) so far. Tools available: fs_read_file, fs, \
                 fs_read_file_lines. To call one, start your message with its name, e.g. fs_read_file {\"path\": \"...\"}"
            )
        );
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage, Usage { prompt_tokens: 4, completion_tokens: 28, total_tokens: 32 });
    }

    #[test]
    fn the_summary_says_none_without_tools_and_cuts_long_text() {
        let long = "x".repeat(250);
        let r = ask(&[Message::user(long)], &[]);
        let expected = format!(
            "[offline model] You said: \"{}…\". 1 message(s) so far. Tools available: none.",
            "x".repeat(200)
        );
        assert_eq!(r.message.content, Some(expected));
    }

    #[test]
    fn the_example_uses_the_alphabetically_first_property_without_required() {
        let tools = tools();
        assert_eq!(example_call(&tools[1]), "fs {\"a\": \"...\"}");
        assert_eq!(example_call(&tools[2]), "fs_read_file_lines {}");
    }

    #[test]
    fn after_an_assistant_answer_it_summarises_instead_of_calling_again() {
        let messages = [Message::user("fs {}"), Message::assistant("done")];
        assert!(ask(&messages, &tools()).message.tool_calls.is_empty());
    }

    #[tokio::test]
    async fn the_port_answers_and_describes_itself() {
        let model = OfflineModel;
        let messages = [Message::user("hi")];
        let request = ChatRequest::new("m", &messages, &[]);
        let a = model.complete(request, Instant::now()).await.expect("offline never fails");
        let b = model.complete(request, Instant::now()).await.expect("offline never fails");
        assert_eq!(a, b);
        assert_eq!(model.describe(), "offline (deterministic, no network)");
    }
}
