//! Run budgets over the real stack: an agent whose model never stops calling tools is ended at
//! exactly `max_tool_calls` tool calls, or before the LLM call after `max_tokens_total` tokens
//! or `max_cost_usd` dollars (at `TA_MODEL_PRICES`), with `budget_exceeded` naming the budget
//! and the progress so far.

use serde_json::{Value, json};
use teal_mcp_filesystem::SessionMode;

use teal_core::bootstrap;
use teal_core::settings::{Env, Settings};

use crate::helpers::{McpServer, StackOptions, scripted_llm, start_api};

/// gpt-e2e at $2.50 / $10 per million tokens: each fake answer (10 prompt and 5 completion
/// tokens) costs $0.000075.
const PRICES: &str = r#"{"gpt-e2e": {"input_per_million": 2.5, "output_per_million": 10}}"#;

async fn run_with(budget: &str) -> (u16, Value, u64) {
    run_in(budget, StackOptions::default()).await
}

async fn run_in(budget: &str, opts: StackOptions) -> (u16, Value, u64) {
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
    let (base, _) = start_api(configs.path(), &llm.uri(), &opts).await;
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

#[tokio::test]
async fn a_run_ends_before_the_llm_call_after_its_cost_budget() {
    let opts = StackOptions { env: vec![("TA_MODEL_PRICES", PRICES.to_owned())], ..StackOptions::default() };
    // Two answers cost exactly the budget: the third call is never made.
    let (status, body, llm_calls) = run_in("max_cost_usd: 0.00015", opts).await;
    assert_eq!(status, 502, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], "budget_exceeded");
    assert_eq!(
        e["message"],
        "the run reached its budget spec.agent.max_cost_usd = 0.00015 before a final answer"
    );
    assert_eq!(e["progress"]["cost_usd"], "0.00015", "{body}");
    assert_eq!(e["progress"]["usage"]["total_tokens"], 30, "{body}");
    assert_eq!(llm_calls, 2);
}

#[test]
fn a_cost_budget_needs_its_model_priced_at_start() {
    let configs = tempfile::tempdir().expect("configs");
    let model = "bedrock:anthropic.claude-3-haiku-20240307-v1:0";
    let agent = format!(
        "apiVersion: skagents/v1\nkind: Chat\nservice_name: spender\nversion: 1\nspec:\n  agent:\n    name: thrifty\n    \
         model: {model}\n    system_prompt: s\n    max_cost_usd: 1\n"
    );
    std::fs::write(configs.path().join("spender.yaml"), agent).expect("write");
    let check = |prices: &str| {
        let env = Env::from_pairs([("TA_MODEL_PRICES", prices)]);
        let settings = Settings::read(&env).expect("settings");
        let (registry, _) = bootstrap::load_registry(configs.path(), env.vars()).expect("configs load");
        bootstrap::check_prices(&settings, &registry)
    };
    let e = check(PRICES).expect_err("unpriced");
    assert_eq!(
        e.to_string(),
        format!(
            "agent spender/1 (thrifty) has max_cost_usd but its model `{model}` has no price in TA_MODEL_PRICES: \
             add {{\"{model}\": {{\"input_per_million\": …, \"output_per_million\": …}}}} or remove the budget"
        )
    );
    // Priced by the model as the agent writes it, `bedrock:` prefix included.
    check(&format!(r#"{{"{model}": {{"input_per_million": 0.25, "output_per_million": 1.25}}}}"#))
        .expect("priced");
}
