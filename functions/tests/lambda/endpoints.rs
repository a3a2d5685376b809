//! `invoke`, `stream`, `health`, `ready` and `tools`, each from its event file.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use lambda_http::RequestExt;
use teal_core::lambda::Endpoint;
use wiremock::ResponseTemplate;

use crate::helpers::{PARTNER_KEY, Stack, call, event, hello_txt, sse_events};

fn lambda_context(ms_left: u64) -> lambda_http::Context {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
    let mut ctx = lambda_http::Context::default();
    ctx.request_id = "aws-req-1".into();
    ctx.deadline = now + ms_left;
    ctx
}

#[tokio::test]
async fn invoke_event_runs_the_agent_through_the_real_mcp_server() {
    let stack = Stack::start().await;
    let app = stack.app(Endpoint::Invoke).await;
    let answer = call(app, event("invoke.json").with_lambda_context(lambda_context(30_000))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["output_raw"], format!("FILE SAYS: {}", hello_txt()));
    assert_eq!(body["source"], "fs-assistant:0.1");
    assert_eq!(body["token_usage"]["total_tokens"], 24);
    assert_eq!(body["extra_data"]["items"][1], serde_json::json!({"key": "tool_calls", "value": "1"}));
    // API Gateway's request id becomes the request id of the run.
    assert_eq!(body["request_id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    assert_eq!(answer.headers["x-request-id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    assert_eq!(stack.llm_calls().await, 2);
}

#[tokio::test]
async fn invoke_honours_the_lambda_deadline_minus_the_margin() {
    let stack = Stack::start().await;
    let app = stack.app(Endpoint::Invoke).await;
    // 300 ms left is less than the 500 ms margin: the run must stop before calling the LLM.
    let answer = call(app, event("invoke.json").with_lambda_context(lambda_context(300))).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["error"]["code"], "deadline_exceeded");
    assert_eq!(body["error"]["progress"]["iterations"], 0);
    assert_eq!(stack.llm_calls().await, 0);
}

#[tokio::test]
async fn stream_event_emits_tool_calls_then_the_final_response() {
    let stack = Stack::start().await;
    let app = stack.app(Endpoint::Stream).await;
    let answer = call(app, event("stream.json").with_lambda_context(lambda_context(30_000))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let events = sse_events(&answer.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["tool-call-started", "tool-call-finished", "partial-response", "final-response"]);
    assert_eq!(events[0].1["tool"], "fs_read_file");
    assert_eq!(events[1].1["is_error"], false);
    let expected = format!("FILE SAYS: {}", hello_txt());
    assert_eq!(events[2].1["output_partial"], expected);
    assert_eq!(events[3].1["output_raw"], expected);
    assert_eq!(events[3].1["source"], "fs-assistant:0.1");
}

#[tokio::test]
async fn stream_serves_the_rest_api_event_behind_its_stage() {
    // API Gateway REST API with response streaming: a v1 proxy event, stage `prod` in the path.
    let stack = Stack::start().await;
    let app = stack.app(Endpoint::Stream).await;
    let answer = call(app, event("stream-rest.json").with_lambda_context(lambda_context(30_000))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let events = sse_events(&answer.text());
    let last = events.last().expect("events");
    assert_eq!(last.0, "final-response");
    assert_eq!(last.1["source"], "fs-assistant:0.1");
    assert_eq!(last.1["request_id"], "d1f9b2f0-1b2c-4c5d-9e8f-0123456789ab", "API Gateway's request id");
}

#[tokio::test]
async fn stream_checks_the_api_key_itself() {
    let stack = Stack::start().await;
    let mut no_key = event("stream.json");
    no_key.headers_mut().remove("x-api-key");
    let answer = call(stack.app(Endpoint::Stream).await, no_key).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json()["error"]["code"], "unauthorized");

    let mut partner = event("stream.json");
    partner.headers_mut().insert("x-api-key", PARTNER_KEY.parse().expect("header"));
    let answer = call(stack.app(Endpoint::Stream).await, partner).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(!answer.text().contains(PARTNER_KEY));
    assert_eq!(stack.llm_calls().await, 0, "a refused request never reaches the agent");
}

#[tokio::test]
async fn stream_reports_an_llm_failure_as_an_error_event() {
    let stack = Stack::with_llm(ResponseTemplate::new(401)).await;
    let answer = call(stack.app(Endpoint::Stream).await, event("stream.json")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let events = sse_events(&answer.text());
    let (name, data) = events.last().expect("an event");
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(data["error"]["code"], "llm_upstream_failed");
    assert_eq!(data["error"]["status"], 502);
    assert!(!events.iter().any(|(n, _)| n == "final-response"));
}

#[tokio::test]
async fn health_event_answers_without_contacting_upstreams() {
    let mut stack = Stack::start().await;
    stack.break_mcp();
    stack.env.remove("TA_API_KEY");
    let answer = call(stack.app(Endpoint::Health).await, event("health.json")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["agents"], 2);
}

#[tokio::test]
async fn oauth_callback_event_refuses_a_state_it_never_issued() {
    let mut stack = Stack::start().await;
    stack.env.remove("TA_API_KEY");
    let answer = call(stack.app(Endpoint::OAuthCallback).await, event("oauth-callback.json")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["message"], "Invalid or expired state parameter");
}

#[tokio::test]
async fn ready_event_checks_the_mcp_server_and_the_store() {
    let stack = Stack::start().await;
    let answer = call(stack.app(Endpoint::Ready).await, event("ready.json")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["status"], "ready");
    let checks = body["checks"].as_array().expect("checks");
    let fs = checks.iter().find(|c| c["name"] == "mcp:fs").expect("mcp:fs check");
    assert_eq!(fs["ok"], true);
    assert!(fs["tools"].as_u64().is_some_and(|n| n >= 3), "{fs}");
    assert!(checks.iter().any(|c| c["name"] == "sessions:memory" && c["ok"] == true));
}

#[tokio::test]
async fn ready_event_answers_503_when_the_mcp_server_is_down() {
    let mut stack = Stack::start().await;
    stack.break_mcp();
    let answer = call(stack.app(Endpoint::Ready).await, event("ready.json")).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["failed"], serde_json::json!(["mcp:fs"]));
}

#[tokio::test]
async fn tools_event_lists_the_agents_filtered_tools() {
    let stack = Stack::start().await;
    let answer = call(stack.app(Endpoint::Tools).await, event("tools.json")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["agent"], "fs-assistant:0.1");
    let names: Vec<&str> =
        body["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"fs_read_file"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("fs_write")), "write_* is denied: {names:?}");
}

#[tokio::test]
async fn every_http_event_is_routed_only_by_its_own_function() {
    let stack = Stack::start().await;
    // The health function does not serve the invoke route: each function owns one endpoint.
    let answer = call(stack.app(Endpoint::Health).await, event("invoke.json")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(stack.llm_calls().await, 0);
}
