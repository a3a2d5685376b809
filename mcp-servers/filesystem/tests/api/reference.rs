//! The server against the reference server's tool list (`reference-tools.json`, recorded from
//! `@modelcontextprotocol/server-filesystem` by `scripts/record-reference-tools.sh`): the same
//! 14 names, required arguments, argument types and annotations; and what the reference does
//! not have: strict schemas and an output schema on every tool.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use teal_mcp_filesystem::SessionMode;

use crate::helpers::{Error, Outcome, call, spawn};
use crate::tools::ALL_TOOLS;

/// A JSON Schema's type, without the `null` an optional argument may add.
fn type_of(schema: &Value) -> Value {
    match schema.get("type") {
        Some(Value::Array(types)) => {
            let mut rest: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
            if rest.len() == 1 { rest.remove(0).clone() } else { json!(rest) }
        }
        Some(t) => t.clone(),
        // `Option<Enum>` comes out as `anyOf: [{$ref}, {type: null}]`: an enum of strings.
        None => json!("string"),
    }
}

#[tokio::test]
async fn the_tool_list_matches_the_reference_server_and_every_schema_is_strict() -> Result<(), Error> {
    let reference: Value = serde_json::from_str(include_str!("reference-tools.json"))?;
    let server = spawn(SessionMode::Stateful).await?;
    let client = server.client().await?;
    let tools = client.list_all_tools().await?;

    let mut names: Vec<&str> =
        reference["tools"].as_array().ok_or("tools")?.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ALL_TOOLS, "the reference's 14 tools");
    for expected in reference["tools"].as_array().ok_or("tools")? {
        let name = expected["name"].as_str().ok_or("name")?;
        let tool = tools.iter().find(|t| t.name == name).ok_or_else(|| format!("{name} not listed"))?;
        let schema = Value::Object((*tool.input_schema).clone());
        let mut required: Vec<&str> =
            schema["required"].as_array().map_or(vec![], |r| r.iter().filter_map(Value::as_str).collect());
        required.sort_unstable();
        assert_eq!(json!(required), expected["required"], "{name} required");
        let types: BTreeMap<String, Value> = schema["properties"]
            .as_object()
            .map(|p| p.iter().map(|(k, v)| (k.clone(), type_of(v))).collect())
            .unwrap_or_default();
        assert_eq!(json!(types), expected["properties"], "{name} argument types");
        assert_eq!(schema["additionalProperties"], json!(false), "{name} is strict");
        assert_eq!(serde_json::to_value(&tool.annotations)?, expected["annotations"], "{name} annotations");
        let output = tool.output_schema.as_ref().ok_or_else(|| format!("{name} has no output schema"))?;
        assert_eq!(output.get("required"), Some(&json!(["content"])), "{name}");
    }
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn unknown_arguments_are_refused_and_whole_numbers_are_taken_as_written() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateless).await?;
    server.put("three.txt", "one\ntwo\nthree\n")?;
    let client = server.client().await?;
    let refused = call(&client, "read_text_file", json!({"path": "three.txt", "lines": 2})).await?;
    assert!(refused.is_error && refused.text.contains("unknown field `lines`"), "{refused:?}");
    assert_eq!(
        call(&client, "read_text_file", json!({"path": "three.txt", "head": 1.0})).await?,
        Outcome::ok("one\n")
    );
    assert_eq!(
        call(&client, "read_file", json!({"path": "three.txt", "tail": 2})).await?,
        Outcome::ok("two\nthree\n")
    );
    let fraction = call(&client, "read_text_file", json!({"path": "three.txt", "head": 1.5})).await?;
    assert!(fraction.is_error && fraction.text.contains("whole number"), "{fraction:?}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn sizes_and_media_come_back_as_the_reference_gives_them_with_structured_content() -> Result<(), Error>
{
    let server = spawn(SessionMode::Stateful).await?;
    server.put("small.txt", "abc")?;
    server.put("big.txt", "x".repeat(1536))?;
    server.put("sub/inner.txt", "")?;
    server.put("pixel.png", [0x89u8, b'P', b'N', b'G'])?;
    server.put("data.bin", [0u8, 1, 2])?;
    let client = server.client().await?;

    let by_size = call(&client, "list_directory_with_sizes", json!({"path": ".", "sortBy": "size"})).await?;
    let lines: Vec<&str> = by_size.text.lines().collect();
    assert!(lines[0].starts_with("[FILE] big.txt") && lines[0].ends_with("1.50 KB"), "{lines:?}");
    assert!(lines.contains(&"[DIR] sub"), "{lines:?}");
    assert_eq!(&lines[lines.len() - 2..], ["Total: 4 files, 1 directories", "Combined size: 1.51 KB"]);

    let args = |path: &str| json!({"path": path}).as_object().cloned();
    let png = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("read_media_file")
                .with_arguments(args("pixel.png").ok_or("args")?),
        )
        .await?;
    let block = serde_json::to_value(&png.content[0])?;
    assert_eq!(
        (block["type"].as_str(), block["mimeType"].as_str(), block["data"].as_str()),
        (Some("image"), Some("image/png"), Some("iVBORw=="))
    );
    assert_eq!(png.structured_content, Some(json!({"content": [block]})));
    let bin = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("read_media_file")
                .with_arguments(args("data.bin").ok_or("args")?),
        )
        .await?;
    let block = serde_json::to_value(&bin.content[0])?;
    assert_eq!(block["resource"]["mimeType"], "application/octet-stream");
    assert_eq!(block["resource"]["blob"], "AAEC");

    let listed = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("list_directory")
                .with_arguments(args("sub").ok_or("args")?),
        )
        .await?;
    assert_eq!(listed.structured_content, Some(json!({"content": "[FILE] inner.txt"})), "text tools too");
    client.cancel().await?;
    Ok(())
}
