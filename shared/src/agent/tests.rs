//! The loop's budgets and branches, against a fake OpenAI-compatible server on loopback
//! (wiremock speaking the chat-completions wire format) and the real OpenAI adapter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::config::{AgentSpec, parse_documents};
use crate::llm::{Llm, OpenAiClient, OpenAiSettings};
use crate::mcp::AgentTools;
use crate::mcp::McpSettings;
use crate::secrets::EnvSecretStore;

fn agent(max_iterations: u32) -> Arc<AgentSpec> {
    let yaml = format!(
        "apiVersion: skagents/v1\nkind: Chat\nservice_name: loop\nversion: 1.0\nspec:\n  agent:\n    name: a\n    model: m\n    system_prompt: be brief\n    max_iterations: {max_iterations}\n"
    );
    parse_documents("loop.yaml", &yaml).expect("valid").agents.remove(0).agents.remove(0)
}

fn llm(server: &MockServer) -> Llm {
    let mut s = OpenAiSettings::new(format!("{}/v1", server.uri()).parse().expect("url"));
    s.max_retries = 0;
    Llm::OpenAi(OpenAiClient::new(s).expect("client"))
}

fn completion(message: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }))
}

fn tool_call(name: &str) -> ResponseTemplate {
    completion(json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": name, "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": name, "arguments": "{}"}},
    ]}))
}

struct Harness {
    server: MockServer,
    pool: McpPool,
    tools: Toolbox,
}

impl Harness {
    async fn new() -> Self {
        Self {
            server: MockServer::start().await,
            pool: McpPool::new(McpSettings::default(), Arc::new(EnvSecretStore::new())),
            tools: Toolbox::new(AgentTools::default(), Vec::new(), &Default::default(), None, false),
        }
    }

    async fn run(&self, agent: &AgentSpec, deadline: Instant) -> Result<RunReport, AgentError> {
        let llm = llm(&self.server);
        let events = std::sync::Mutex::new(Vec::new());
        let on_event = |e: RunEvent| events.lock().expect("lock").push(e);
        let run = Run {
            agent,
            llm: &llm,
            pool: &self.pool,
            tools: &self.tools,
            deadline,
            on_event: &on_event,
            output: None,
            stream: false,
            switch: None,
        };
        run.execute(vec![Message::user("hi")]).await
    }

    async fn bodies(&self) -> Vec<Value> {
        let requests = self.server.received_requests().await.expect("recorded");
        requests.iter().map(|r| serde_json::from_slice(&r.body).expect("json")).collect()
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn a_final_answer_ends_the_run_after_one_call_with_the_system_prompt_first() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .respond_with(completion(json!({"role": "assistant", "content": "done"})))
        .mount(&h.server)
        .await;
    let report = h.run(&agent(5), soon()).await.expect("answer");
    assert_eq!(report.output, "done");
    assert_eq!((report.trace.iterations, report.trace.usage.total_tokens), (1, 12));
    let bodies = h.bodies().await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["messages"][0], json!({"role": "system", "content": "be brief"}));
    assert_eq!(bodies[0]["messages"][1], json!({"role": "user", "content": "hi"}));
}

#[tokio::test]
async fn unknown_tools_go_back_to_the_model_as_errors_answering_every_call_id_in_order() {
    let h = Harness::new().await;
    Mock::given(method("POST")).respond_with(tool_call("nope")).up_to_n_times(1).mount(&h.server).await;
    Mock::given(method("POST"))
        .respond_with(completion(json!({"role": "assistant", "content": "ok"})))
        .mount(&h.server)
        .await;
    let report = h.run(&agent(5), soon()).await.expect("answer");
    assert_eq!(report.output, "ok");
    assert_eq!(report.trace.iterations, 2);
    assert_eq!(report.trace.usage.total_tokens, 24, "usage is summed over calls");
    assert_eq!(report.trace.tool_calls.len(), 2);
    assert!(report.trace.tool_calls.iter().all(|t| t.is_error && t.server.is_none()));
    let second = &h.bodies().await[1]["messages"];
    assert_eq!(second[2]["tool_calls"].as_array().map(Vec::len), Some(2), "the assistant turn is kept");
    assert_eq!(
        (second[3]["tool_call_id"].as_str(), second[4]["tool_call_id"].as_str()),
        (Some("c1"), Some("c2"))
    );
    assert!(second[3]["content"].as_str().expect("text").starts_with("unknown tool nope"));
}

#[tokio::test]
async fn a_model_that_never_stops_calling_tools_hits_the_iteration_limit_exactly() {
    let h = Harness::new().await;
    Mock::given(method("POST")).respond_with(tool_call("nope")).mount(&h.server).await;
    let err = h.run(&agent(3), soon()).await.expect_err("limit");
    match err {
        AgentError::IterationLimit { max, trace } => {
            assert_eq!((max, trace.iterations, trace.tool_calls.len()), (3, 3, 6));
        }
        other => panic!("expected the iteration limit, got {other}"),
    }
    assert_eq!(h.bodies().await.len(), 3, "exactly max_iterations LLM calls");
}

#[tokio::test]
async fn a_passed_deadline_stops_before_any_llm_call() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .respond_with(completion(json!({"role": "assistant", "content": "x"})))
        .mount(&h.server)
        .await;
    let err = h.run(&agent(3), Instant::now()).await.expect_err("deadline");
    assert!(matches!(err, AgentError::Deadline { ref trace } if trace.iterations == 0), "{err}");
    assert!(h.bodies().await.is_empty());
}

#[tokio::test]
async fn a_slow_model_is_cut_at_the_deadline_with_the_progress_so_far() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .respond_with(
            completion(json!({"role": "assistant", "content": "late"})).set_delay(Duration::from_secs(5)),
        )
        .mount(&h.server)
        .await;
    let started = Instant::now();
    let err = h.run(&agent(3), Instant::now() + Duration::from_millis(200)).await.expect_err("deadline");
    assert!(matches!(err, AgentError::Deadline { ref trace } if trace.iterations == 1), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "did not wait for the model");
}

#[tokio::test]
async fn an_llm_client_error_ends_the_run_with_its_cause() {
    let h = Harness::new().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(400)).mount(&h.server).await;
    let err = h.run(&agent(3), soon()).await.expect_err("400");
    assert!(matches!(err, AgentError::Llm { source: LlmError::Status { status: 400, .. }, .. }), "{err}");
}
