//! Pure translation between MCP and the LLM's view of tools: names, schemas, results.

use rmcp::model::{CallToolResult, ContentBlock, Tool};

use crate::llm::ToolSpec;

/// Longest tool name OpenAI-compatible APIs accept.
pub(crate) const MAX_TOOL_NAME: usize = 64;

/// `{server}_{tool}` as Teal Agents names MCP tools, reduced to `[A-Za-z0-9_-]{1,64}` (other
/// characters become `_`) so every OpenAI-compatible API accepts it.
pub(crate) fn namespaced_name(server: &str, tool: &str) -> String {
    sanitized(&format!("{server}_{tool}"))
}

/// `name` reduced to `[A-Za-z0-9_-]{1,64}`.
fn sanitized(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    out.truncate(MAX_TOOL_NAME);
    out
}

/// The spec offered to the LLM for one MCP tool, named `{server}_{tool}` (`prefix` is the
/// server's name), or by the server's own name when `prefix` is `None` (`tool_names: as-served`).
pub fn tool_spec(prefix: Option<&str>, tool: &Tool) -> ToolSpec {
    let mut parameters = serde_json::Value::Object((*tool.input_schema).clone());
    if let Some(obj) = parameters.as_object_mut() {
        obj.entry("type").or_insert_with(|| "object".into());
        obj.entry("properties").or_insert_with(|| serde_json::json!({}));
    }
    let description = tool.description.as_deref().or(tool.title.as_deref()).unwrap_or("").to_owned();
    let name = match prefix {
        Some(server) => namespaced_name(server, &tool.name),
        None => sanitized(&tool.name),
    };
    ToolSpec { name, description, parameters }
}

/// Everything a tool result holds, as text for the LLM, each thing once. `structuredContent`
/// and the text blocks are two renderings of one result (the spec asks tools to send both), so
/// one is picked: the structured JSON (compact) when a text block is just its serialisation,
/// else the text (the tool's own rendering, usually shorter: a file's text rather than that
/// text escaped in JSON), and the JSON only when there is no text. Other content (images,
/// audio, resources, links) is described or inlined, in order, either way. Returns the text
/// and whether the server flagged the result as an error.
pub fn result_text(result: &CallToolResult) -> (String, bool) {
    let is_text = |block: &ContentBlock| matches!(block, ContentBlock::Text(_));
    let structured = result.structured_content.as_ref().filter(|structured| {
        let serialised = |block: &ContentBlock| match block {
            ContentBlock::Text(t) => {
                serde_json::from_str::<serde_json::Value>(&t.text).ok().as_ref() == Some(*structured)
            }
            _ => false,
        };
        result.content.iter().any(serialised) || !result.content.iter().any(is_text)
    });
    let mut parts: Vec<String> = result
        .content
        .iter()
        .filter(|block| structured.is_none() || !is_text(block))
        .map(content_text)
        .collect();
    if let Some(structured) = structured {
        parts.insert(0, structured.to_string());
    }
    let is_error = result.is_error.unwrap_or(false);
    let mut text = parts.join("\n");
    if text.is_empty() {
        text = if is_error { "the tool failed without a message".into() } else { "(no content)".into() };
    }
    (text, is_error)
}

fn content_text(block: &ContentBlock) -> String {
    match serde_json::to_value(block) {
        Ok(v) => describe_content(&v),
        Err(e) => format!("[content that could not be read: {e}]"),
    }
}

/// Works on the wire form so every content kind (and future ones) has a rendering.
fn describe_content(v: &serde_json::Value) -> String {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str());
    match s("type") {
        Some("text") => s("text").unwrap_or("").to_owned(),
        Some("image") | Some("audio") => {
            let kind = s("type").unwrap_or("binary");
            let mime = s("mimeType").unwrap_or("unknown type");
            let bytes = s("data").map(|d| d.len() * 3 / 4).unwrap_or(0);
            format!("[{kind}: {mime}, about {bytes} bytes, not shown]")
        }
        Some("resource") => {
            let r = v.get("resource").cloned().unwrap_or_default();
            let uri = r.get("uri").and_then(|x| x.as_str()).unwrap_or("?");
            match r.get("text").and_then(|x| x.as_str()) {
                Some(text) => format!("[resource {uri}]\n{text}"),
                None => format!("[binary resource {uri}, not shown]"),
            }
        }
        Some("resource_link") => format!("[resource link: {}]", s("uri").unwrap_or("?")),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_from(json: serde_json::Value) -> CallToolResult {
        serde_json::from_value(json).expect("valid CallToolResult")
    }

    #[test]
    fn names_are_namespaced_and_made_acceptable() {
        assert_eq!(namespaced_name("fs", "read_file"), "fs_read_file");
        assert_eq!(namespaced_name("gh", "repos.get/v2"), "gh_repos_get_v2");
        assert_eq!(namespaced_name("s", &"x".repeat(100)).len(), MAX_TOOL_NAME);
    }

    #[test]
    fn every_content_item_reaches_the_llm() {
        let r = result_from(serde_json::json!({
            "content": [
                {"type": "text", "text": "first"},
                {"type": "image", "data": "aGVsbG8gd29ybGQh", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "inside"}},
                {"type": "resource_link", "uri": "file:///b.txt", "name": "b"}
            ],
            "structuredContent": {"count": 2}
        }));
        let (text, is_error) = result_text(&r);
        assert!(!is_error);
        insta::assert_snapshot!(text, @r#"
        first
        [image: image/png, about 12 bytes, not shown]
        [resource file:///a.txt]
        inside
        [resource link: file:///b.txt]
        "#);
    }

    #[test]
    fn structured_content_stands_for_its_text_rendering() {
        let r = result_from(serde_json::json!({
            "content": [{"type": "text", "text": "{\n  \"count\": 2\n}"}, {"type": "text", "text": "Found 2."}],
            "structuredContent": {"count": 2}
        }));
        assert_eq!(result_text(&r).0, "{\"count\":2}", "sent once, compact");
        let plain = result_from(
            serde_json::json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
        );
        assert_eq!(result_text(&plain).0, "a\nb");
    }

    #[test]
    fn error_results_are_flagged_not_raised() {
        let r = result_from(
            serde_json::json!({"content": [{"type": "text", "text": "no such file"}], "isError": true}),
        );
        assert_eq!(result_text(&r), ("no such file".to_owned(), true));
        let r = result_from(serde_json::json!({"content": [], "isError": true}));
        assert_eq!(result_text(&r), ("the tool failed without a message".to_owned(), true));
    }

    #[test]
    fn tool_spec_keeps_the_schema_and_fills_object_defaults() {
        let tool: Tool = serde_json::from_value(serde_json::json!({
            "name": "read_file",
            "description": "Read a file",
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
        }))
        .expect("tool");
        insta::assert_json_snapshot!(tool_spec(Some("fs"), &tool), @r#"
        {
          "name": "fs_read_file",
          "description": "Read a file",
          "parameters": {
            "type": "object",
            "properties": {
              "path": {
                "type": "string"
              }
            },
            "required": [
              "path"
            ]
          }
        }
        "#);
    }
}
