//! What a request body may be, per the agent's input type, and its one validation.
//!
//! Teal's built-in input types: `chat_history` of `{role, content}` (`BaseInput`), with
//! `user_context` (`…WithUserContext`), or with messages carrying `items` of text and images
//! (`BaseMultiModalInput…`; an image item's `content` is a `data:image/…;base64,…` URI, as
//! Teal passes it on). A custom type (`input_type` + its JSON Schema) is validated against the
//! schema and its fields fill a Sequential config's task templates; `embedded_image`
//! (`{format, data}`, Teal's `BaseEmbeddedImage`) goes with the first task. Our extension on
//! top: `items` (+ `session_id`) continues a stored session. Unknown fields are ignored, as
//! Teal's input models ignore them. Errors name the field: `chat_history[0].role: …`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::types::InputError;
use crate::config::InputType;
use crate::llm::Message;
use crate::store::{SessionId, TaskId};

/// A body that passed validation.
#[derive(Debug, PartialEq)]
pub struct InvokeInput {
    pub session_id: Option<SessionId>,
    /// The messages this request brings (what is kept in the session).
    pub messages: Vec<Message>,
    /// `items` continue a stored session; `chat_history` carries the whole conversation itself.
    pub continues_session: bool,
    /// `user_context` told to a Chat agent before the conversation (never stored).
    pub context: Option<Message>,
    /// Every field but `chat_history`, for a Sequential config's task templates.
    pub fields: Map<String, Value>,
    /// `embedded_image` as a `data:` URI.
    pub image: Option<String>,
    /// `tealagents/v1alpha1`: the task this message continues.
    pub task_id: Option<TaskId>,
}

#[derive(Debug, Deserialize)]
struct Body {
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    chat_history: Option<Vec<HistoryMessage>>,
    #[serde(default)]
    items: Option<Vec<Item>>,
    #[serde(default)]
    user_context: Option<BTreeMap<String, String>>,
    #[serde(default)]
    embedded_image: Option<EmbeddedImage>,
}

#[derive(Debug, Deserialize)]
struct HistoryMessage {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    items: Option<Vec<Item>>,
}

#[derive(Debug, Deserialize)]
struct Item {
    content_type: String,
    content: String,
}

#[derive(Debug, Deserialize)]
struct EmbeddedImage {
    format: String,
    data: String,
}

/// Parses and validates a body for an agent whose input type is `input`.
pub fn parse_invoke_body(bytes: &[u8], input: &InputType) -> Result<InvokeInput, InputError> {
    parse(bytes, input).map_err(InputError::new)
}

fn parse(bytes: &[u8], input: &InputType) -> Result<InvokeInput, String> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let body: Body = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" || path.is_empty() {
            format!("invalid JSON body: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })?;
    let fields = match input {
        InputType::Custom(t) => {
            let value: Value =
                serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON body: {e}"))?;
            if let Some(e) = t.validator.iter_errors(&value).next() {
                let at = e.instance_path().to_string();
                let at = at.trim_start_matches('/').replace('/', ".");
                return Err(if at.is_empty() { format!("{}: {e}", t.name) } else { format!("{at}: {e}") });
            }
            match value {
                Value::Object(mut map) => {
                    map.remove("chat_history");
                    map
                }
                _ => return Err(format!("the body must be a JSON object ({})", t.name)),
            }
        }
        // Teal's templates see every field of a built-in input too (`user_context`, …).
        _ => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(mut map)) => {
                map.remove("chat_history");
                map
            }
            _ => Map::new(),
        },
    };
    let multimodal =
        matches!(input, InputType::BaseMultiModalInput | InputType::BaseMultiModalInputWithUserContext);
    let has_history = body.chat_history.as_ref().is_some_and(|h| !h.is_empty());
    let has_items = body.items.as_ref().is_some_and(|i| !i.is_empty());
    let messages = match (has_history, has_items) {
        (true, true) => return Err("give either `chat_history` or `items`, not both".into()),
        // A custom type's fields are the request: its history may be empty.
        (false, false) if matches!(input, InputType::Custom(_)) => Vec::new(),
        (false, false) => return Err("body needs a non-empty `chat_history` or `items`".into()),
        (true, false) => history(body.chat_history.unwrap_or_default(), multimodal, input)?,
        (false, true) => vec![item_message(body.items.unwrap_or_default(), "items", true)?],
    };
    let session_id = match &body.session_id {
        Some(id) => Some(SessionId::parse(id).map_err(|e| format!("session_id: {e}"))?),
        None => None,
    };
    let context = match (input.has_user_context(), body.user_context) {
        (true, Some(ctx)) if !ctx.is_empty() => Some(context_message(&ctx)),
        _ => None,
    };
    let image = match body.embedded_image {
        Some(img) => Some(data_uri(&img)?),
        None => None,
    };
    let task_id = match &body.task_id {
        Some(id) if matches!(input, InputType::UserMessage) => {
            Some(TaskId::parse(id).map_err(|e| format!("task_id: {e}"))?)
        }
        _ => None,
    };
    Ok(InvokeInput { session_id, messages, continues_session: has_items, context, fields, image, task_id })
}

fn history(list: Vec<HistoryMessage>, multimodal: bool, input: &InputType) -> Result<Vec<Message>, String> {
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.into_iter().enumerate() {
        let at = format!("chat_history[{i}]");
        let user = match m.role.as_str() {
            "user" => true,
            "assistant" => false,
            other => return Err(format!("{at}.role: must be \"user\" or \"assistant\", got {other:?}")),
        };
        let message = match (m.content, m.items) {
            (Some(_), Some(_)) => return Err(format!("{at}: give either `content` or `items`, not both")),
            (Some(text), None) if user => Message::user(text),
            (Some(text), None) => Message::assistant(text),
            (None, Some(items)) if multimodal => item_message(items, &format!("{at}.items"), user)?,
            (None, Some(_)) => {
                return Err(format!(
                    "{at}.items: {} takes `content` text; use BaseMultiModalInput for items",
                    input.name()
                ));
            }
            (None, None) => return Err(format!("{at}: missing field `content`")),
        };
        out.push(message);
    }
    Ok(out)
}

/// Text items joined by new lines, image items as images (user messages only).
fn item_message(items: Vec<Item>, at: &str, user: bool) -> Result<Message, String> {
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item.content_type.as_str() {
            "text" => texts.push(item.content),
            "image" if user => {
                if !is_image_uri(&item.content) {
                    return Err(format!(
                        "{at}[{i}].content: an image is a data:image/…;base64,… URI or an https URL"
                    ));
                }
                images.push(item.content);
            }
            "image" => return Err(format!("{at}[{i}].content_type: only user messages carry images")),
            other => {
                return Err(format!("{at}[{i}].content_type: must be \"text\" or \"image\", got {other:?}"));
            }
        }
    }
    let text = texts.join("\n");
    Ok(if user { Message::user_with_images(text, images) } else { Message::assistant(text) })
}

fn is_image_uri(s: &str) -> bool {
    (s.starts_with("data:image/") && s.contains(";base64,")) || s.starts_with("https://")
}

/// Teal's `EmbeddedImage {format, data}`: `format` is the MIME type (`image/png`).
fn data_uri(img: &EmbeddedImage) -> Result<String, String> {
    let format = img.format.trim();
    let mime = if format.contains('/') { format.to_owned() } else { format!("image/{format}") };
    let ok_mime =
        mime.starts_with("image/") && mime.len() <= 64 && mime.bytes().all(|b| b.is_ascii_graphic());
    let ok_data = !img.data.is_empty()
        && img
            .data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r'));
    if !ok_mime {
        return Err(format!("embedded_image.format: expected an image MIME type, got {format:?}"));
    }
    if !ok_data {
        return Err("embedded_image.data: expected base64".to_owned());
    }
    Ok(format!("data:{mime};base64,{}", img.data))
}

/// Teal's user-context message: `The following user context was provided:` and one indented
/// `key: value` line per entry.
fn context_message(ctx: &BTreeMap<String, String>) -> Message {
    let mut text = String::from("The following user context was provided:\n");
    for (k, v) in ctx {
        text.push_str(&format!("  {k}: {v}\n"));
    }
    Message::user(text)
}

#[cfg(test)]
mod tests;
