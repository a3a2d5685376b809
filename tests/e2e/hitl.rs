//! Human approval in Teal's shape, over real Redis, a real MCP server and the wire-level fake
//! LLM: a `requires_hitl` call pauses the task (the MCP server never sees it), a freshly built
//! `AppState` (a cold container) resumes it, a decision is applied once (409 after), only the
//! task's user or an approver decides (403), an undecided run expires (410), a rejection
//! cancels it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::{Value, json};
use teal_core::api::{AppState, Caller};
use teal_mcp_filesystem::SessionMode;
use wiremock::MockServer;

use crate::helpers::{McpServer, StackOptions, redis_env, scripted_llm, start_api};

const AGENT: &str = "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: hitl\nversion: 1\nspec:\n  agent:\n    \
    model: gpt-e2e\n    system_prompt: You write files.\n    mcp_servers:\n      - name: fs\n        url: URL\n        \
    tool_governance_overrides:\n          write_file:\n            requires_hitl: true\n";

const WRITE: &str = r#"call:fs_write_file {"path":"drafts/a.md","content":"approved text"}"#;

/// The caller the authorizer would vouch for, from a test header.
async fn test_caller(mut req: Request, next: Next) -> Response {
    let caller = req.headers().get("x-test-caller").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(c) = caller {
        req.extensions_mut().insert(Caller(c));
    }
    next.run(req).await
}

async fn serve(state: Arc<AppState>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = teal_core::api::router(state).layer(middleware::from_fn(test_caller));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    base
}

struct Stack {
    mcp: McpServer,
    data: tempfile::TempDir,
    configs: tempfile::TempDir,
    llm: MockServer,
    opts: StackOptions,
}

impl Stack {
    async fn new(extra_env: Vec<(&'static str, String)>) -> Self {
        let data = tempfile::tempdir().expect("data");
        std::fs::create_dir(data.path().join("drafts")).expect("mkdir");
        let mcp = McpServer::start(data.path(), SessionMode::Stateful);
        let configs = tempfile::tempdir().expect("configs");
        std::fs::write(configs.path().join("hitl.yaml"), AGENT.replace("URL", &mcp.url)).expect("write");
        let llm = scripted_llm().await;
        let mut env = redis_env();
        env.extend(extra_env);
        Self { mcp, data, configs, llm, opts: StackOptions { env, ..StackOptions::default() } }
    }

    /// A new container: its own `AppState`, built from nothing but the settings.
    async fn container(&self) -> String {
        serve(start_api(self.configs.path(), &self.llm.uri(), &self.opts).await.1).await
    }
}

async fn post(base: &str, path: &str, caller: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("x-test-caller", caller)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

async fn start_paused(base: &str, caller: &str) -> (String, Value) {
    let (status, body) =
        post(base, "/hitl/1", caller, json!({"items": [{"content_type": "text", "content": WRITE}]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "Paused", "{body}");
    (body["request_id"].as_str().expect("request id").to_owned(), body)
}

fn resume_path(request_id: &str) -> String {
    format!("/tealagents/v1alpha1/resume/{request_id}")
}

#[tokio::test]
async fn a_paused_run_is_resumed_by_a_fresh_container_once_and_only_by_its_owner() {
    let stack = Stack::new(vec![("TA_HITL_APPROVERS", "boss".to_owned())]).await;
    let first = stack.container().await;
    let before = stack.mcp.posts();
    let (request_id, paused) = start_paused(&first, "alice").await;
    let hitl = &paused["content"];
    assert_eq!(hitl["message"], "Human intervention required.");
    assert_eq!(hitl["approval_url"], format!("{}?action=approve", resume_path(&request_id)));
    assert_eq!(hitl["rejection_url"], format!("{}?action=reject", resume_path(&request_id)));
    assert_eq!(hitl["tool_calls"][0]["name"], "fs_write_file");
    assert_eq!(hitl["tool_calls"][0]["arguments"]["path"], "drafts/a.md");
    assert!(hitl["expires_at"].as_str().is_some_and(|t| t.contains('T')), "{hitl}");
    // Listing the tools is all the MCP server saw: the held call never went out.
    let listed = stack.mcp.posts();
    assert!(!stack.data.path().join("drafts/a.md").exists());

    // A cold container resumes it; a stranger may not decide, the owner may.
    let second = stack.container().await;
    let (status, body) =
        post(&second, &resume_path(&request_id), "mallory", json!({"action": "approve"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        post(&second, &resume_path(&request_id), "alice", json!({"action": "approve"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["output"].as_str().is_some_and(|o| o.starts_with("TOOL SAID: ")), "{body}");
    assert_eq!(body["task_id"], paused["task_id"]);
    assert_eq!(
        std::fs::read_to_string(stack.data.path().join("drafts/a.md")).expect("written"),
        "approved text"
    );
    assert!(stack.mcp.posts() > listed && listed >= before);

    // Decided once: the second decision, from either container, is a conflict.
    let (status, body) = post(&first, &resume_path(&request_id), "alice", json!({"action": "approve"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");

    // An approver decides on another caller's run; a rejection cancels without running.
    let (request_id, _) = start_paused(&first, "bob").await;
    let (status, body) = post(&second, &resume_path(&request_id), "boss", json!({"action": "reject"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Tool excecution rejected.");
    assert_eq!(body["request_id"], request_id.as_str());

    // Bad bodies and unknown ids say what is wrong.
    let (status, body) = post(&second, &resume_path(&request_id), "boss", json!({"action": "maybe"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) =
        post(&second, &resume_path("no-such-request"), "boss", json!({"action": "reject"})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_undecided_run_expires_and_the_sse_route_ends_with_the_decision() {
    let stack = Stack::new(vec![("TA_HITL_TIMEOUT", "1".to_owned())]).await;
    let base = stack.container().await;
    let (expired, _) = start_paused(&base, "alice").await;
    let (fresh, _) = start_paused(&base, "alice").await;
    // The SSE variant: the approved call runs and the answer is the last event.
    let resp = reqwest::Client::new()
        .post(format!("{base}{}/sse", resume_path(&fresh)))
        .header("x-test-caller", "alice")
        .json(&json!({"action": "approve"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.expect("stream");
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events, ["tool-call-started", "tool-call-finished", "final-response"], "{text}");

    // A task that pauses on the SSE invoke route ends its stream with the pause.
    let resp = reqwest::Client::new()
        .post(format!("{base}/hitl/1/sse"))
        .header("x-test-caller", "alice")
        .json(&json!({"items": [{"content_type": "text", "content": WRITE}]}))
        .send()
        .await
        .expect("request");
    let text = resp.text().await.expect("stream");
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events.last(), Some(&"hitl-response"), "{text}");
    assert!(text.contains(r#""status":"Paused""#), "{text}");

    // TA_HITL_TIMEOUT is one second: past it, the run cannot be resumed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = post(&base, &resume_path(&expired), "alice", json!({"action": "approve"})).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "expired");
}
