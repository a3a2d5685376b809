//! Tool policies over the real stack: a denied call goes back to the model as a tool error that
//! names the policy and never reaches the MCP server (its POSTs are counted); an allowed call
//! does; a tool no policy lets the caller list is not offered.

use serde_json::{Value, json};
use teal_mcp_filesystem::SessionMode;
use wiremock::MockServer;

use crate::helpers::{McpServer, StackOptions, scripted_llm, start_api};

const AGENT: &str = "apiVersion: skagents/v1\nkind: Chat\nservice_name: writer\nversion: 1\nspec:\n  agent:\n    \
    model: gpt-e2e\n    system_prompt: You write files.\n    mcp_servers:\n      - name: fs\n        url: URL\n        \
    tools:\n          allow: [\"read_*\", \"write_file\", \"move_file\"]\n";

struct Governed {
    base: String,
    mcp: McpServer,
    data: tempfile::TempDir,
    _configs: tempfile::TempDir,
    _llm: MockServer,
}

async fn governed() -> Governed {
    let data = tempfile::tempdir().expect("data");
    std::fs::create_dir(data.path().join("drafts")).expect("mkdir");
    std::fs::write(data.path().join("notes.txt"), "unchanged").expect("write");
    let mcp = McpServer::start(data.path(), SessionMode::Stateful);
    let configs = tempfile::tempdir().expect("configs");
    std::fs::write(configs.path().join("writer.yaml"), AGENT.replace("URL", &mcp.url)).expect("write");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/governance/policies");
    std::fs::create_dir(configs.path().join("policies")).expect("mkdir");
    for name in ["base.cedar", "fs-writes.cedar", "arguments.cedarschema"] {
        std::fs::copy(format!("{examples}/{name}"), configs.path().join("policies").join(name))
            .expect("copy");
    }
    // Nobody may even see move_file (the caller here is `anonymous`).
    std::fs::write(
        configs.path().join("policies/no-moves.cedar"),
        "@id(\"no-moves-for-anonymous\")\nforbid(principal == Caller::\"anonymous\", action, resource == Tool::\"fs/move_file\");\n",
    )
    .expect("write");
    let llm = scripted_llm().await;
    let (base, _) = start_api(configs.path(), &llm.uri(), &StackOptions::default()).await;
    Governed { base, mcp, data, _configs: configs, _llm: llm }
}

async fn say(base: &str, text: &str) -> (u16, Value) {
    let body = json!({"items": [{"content_type": "text", "content": text}]});
    let resp =
        reqwest::Client::new().post(format!("{base}/writer/1")).json(&body).send().await.expect("request");
    (resp.status().as_u16(), resp.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_denied_call_names_its_policy_and_never_reaches_the_mcp_server() {
    let g = governed().await;
    // Warm: the tool list is fetched, so what follows counts tool calls only.
    let (status, _) = say(&g.base, "hello").await;
    assert_eq!(status, 200);
    let before = g.mcp.posts();

    let (status, body) = say(&g.base, r#"call:fs_write_file {"path":"notes.txt","content":"pwned"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_raw"], "TOOL SAID: tool call denied by policy `fs-writes-under-drafts`");
    assert_eq!(g.mcp.posts(), before, "the denied call reached the MCP server");
    assert_eq!(std::fs::read_to_string(g.data.path().join("notes.txt")).expect("read"), "unchanged");

    let (status, body) = say(&g.base, r#"call:fs_write_file {"path":"drafts/a.md","content":"ok"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(g.mcp.posts(), before + 1, "the allowed call is one request");
    assert_eq!(std::fs::read_to_string(g.data.path().join("drafts/a.md")).expect("written"), "ok");
}

#[tokio::test]
async fn a_tool_the_caller_may_not_list_is_not_offered() {
    let g = governed().await;
    let resp = reqwest::get(format!("{}/writer/1/tools", g.base)).await.expect("request");
    let catalog: Value = resp.json().await.expect("JSON");
    let names: Vec<&str> =
        catalog["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"fs_write_file"), "{names:?}");
    assert!(!names.contains(&"fs_move_file"), "{names:?}");

    let before = g.mcp.posts();
    let (status, body) =
        say(&g.base, r#"call:fs_move_file {"source":"drafts/a","destination":"drafts/b"}"#).await;
    assert_eq!(status, 200, "{body}");
    let text = body["output_raw"].as_str().expect("output");
    assert!(text.starts_with("TOOL SAID: unknown tool fs_move_file; available tools: "), "{text}");
    assert_eq!(g.mcp.posts(), before);
}
