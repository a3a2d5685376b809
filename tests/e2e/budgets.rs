//! Run budgets over the real stack: an agent whose model never stops calling tools is ended at
//! exactly `max_tool_calls` tool calls, or before the LLM call after `max_tokens_total` tokens,
//! with `budget_exceeded` naming the budget and the progress so far.

use serde_json::{Value, json};
use teal_mcp_filesystem::SessionMode;

use crate::helpers::{McpServer, StackOptions, scripted_llm, start_api};

async fn run_with(budget: &str) -> (u16, Value, u64) {
    let data = tempfile::tempdir().expect("data");
    let mcp = McpServer::start(data.path(), SessionMode::Stateful);
    let configs = tempfile::tempdir().expect("configs");
    let agent = format!(
        "apiVersion: skagents/v1\nkind: Chat\nservice_name: spender\nversion: 1\nspec:\n  agent:\n    model: gpt-e2e\n    \
         system_prompt: s\n    {budget}\n    mcp_servers:\n      - name: fs\n        url: {}\n",
        mcp.url
    );
    std::fs::write(configs.path().join("spender.yaml"), agent).expect("write");
    let llm = scripted_llm().await;
    let (base, _) = start_api(configs.path(), &llm.uri(), &StackOptions::default()).await;
    let body = json!({"items": [{"content_type": "text", "content": "loop: forever"}]});
    let resp =
        reqwest::Client::new().post(format!("{base}/spender/1")).json(&body).send().await.expect("request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("JSON");
    let requests = llm.received_requests().await.map_or(0, |r| r.len() as u64);
    (status, body, requests)
}

#[tokio::test]
async fn a_run_ends_at_exactly_its_tool_call_budget() {
    let (status, body, llm_calls) = run_with("max_tool_calls: 2").await;
    assert_eq!(status, 502, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], "budget_exceeded");
    assert_eq!(
        e["message"],
        "the run reached its budget spec.agent.max_tool_calls = 2 before a final answer"
    );
    assert_eq!(e["progress"]["tool_calls"].as_array().map(Vec::len), Some(2), "{body}");
    // The third call was asked for (a third LLM answer) but never made.
    assert_eq!(llm_calls, 3);
}

#[tokio::test]
async fn a_run_ends_before_the_llm_call_after_its_token_budget() {
    // Each fake LLM answer uses 15 tokens: 30 are spent after two calls.
    let (status, body, llm_calls) = run_with("max_tokens_total: 30").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert_eq!(body["error"]["progress"]["usage"]["total_tokens"], 30, "{body}");
    assert_eq!(llm_calls, 2);
}

#[tokio::test]
async fn a_budget_must_be_a_positive_whole_number() {
    let text = "apiVersion: skagents/v1\nkind: Chat\nservice_name: x\nversion: 1\nspec:\n  agent:\n    model: m\n    \
                system_prompt: s\n    max_tool_calls: 0\n";
    let e = teal_core::config::parse_documents("x.yaml", text).expect_err("refused");
    assert_eq!(e.to_string(), "x.yaml:9 spec.agent.max_tool_calls: must be a whole number greater than 0");
}
