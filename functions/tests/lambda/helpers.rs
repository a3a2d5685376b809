//! What every test here runs against: the real filesystem MCP server on a free loopback port
//! (serving `examples/data`), a fake OpenAI-compatible LLM (wiremock speaking the real wire
//! format), the real agent configs in `examples/agents`, and each function's app booted by
//! `teal_core::lambda::boot_with`, the code its `main` runs. Events are the files in `events/`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use teal_core::auth::key_digest_hex;
use teal_core::lambda::{self, Endpoint};
use teal_core::secrets::{EnvSecretStore, SecretStore};
use teal_core::settings::Env;
use teal_mcp_filesystem::{FsConfig, SessionMode};
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

/// The key the event files carry in `x-api-key`; the key set gives it to `ci-bot`, all agents.
pub const EVENT_KEY: &str = "teal-local-test-key-0001";
/// A second key, for `partner`, allowed only the `chat` agent.
pub const PARTNER_KEY: &str = "teal-partner-key-0123456789";
pub const KEYS_SECRET: &str = "TEAL_TEST_API_KEYS";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The text of `examples/data/hello.txt`, which only the MCP server can hand the agent.
pub fn hello_txt() -> String {
    std::fs::read_to_string(repo().join("examples/data/hello.txt")).expect("examples/data/hello.txt")
}

/// An event file as `lambda_http` turns it into a request, exactly as in Lambda.
pub fn event(name: &str) -> lambda_http::Request {
    lambda_http::request::from_str(&event_text(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

pub fn event_text(name: &str) -> String {
    std::fs::read_to_string(repo().join("events").join(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

pub fn key_set_json() -> String {
    json!({
        "ci-bot": {"sha256": key_digest_hex(EVENT_KEY), "agents": ["*"]},
        "partner": {"key": PARTNER_KEY, "agents": ["chat"]},
    })
    .to_string()
}

pub fn secrets() -> Arc<dyn SecretStore> {
    Arc::new(EnvSecretStore::new().with(KEYS_SECRET, key_set_json()))
}

/// The fake LLM: tools offered and a user question -> call `fs_read_file` on `hello.txt`; a
/// tool result -> `FILE SAYS: <result>`; otherwise `ECHO: <question>`.
pub struct FakeLlm;

pub fn completion(message: Value) -> ResponseTemplate {
    let finish = if message.get("tool_calls").is_some() { "tool_calls" } else { "stop" };
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-lambda", "object": "chat.completion", "created": 0, "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    }))
}

impl Respond for FakeLlm {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let last = body["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
        let text = last["content"].as_str().unwrap_or_default();
        if last["role"] == "tool" {
            return completion(json!({"role": "assistant", "content": format!("FILE SAYS: {text}")}));
        }
        if body["tools"].as_array().is_some_and(|t| !t.is_empty()) {
            return completion(json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call-1", "type": "function",
                "function": {"name": "fs_read_file", "arguments": "{\"path\":\"hello.txt\"}"}
            }]}));
        }
        completion(json!({"role": "assistant", "content": format!("ECHO: {text}")}))
    }
}

pub struct Stack {
    pub llm: MockServer,
    pub env: HashMap<String, String>,
    stop_mcp: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Stack {
    /// MCP server + fake LLM answering with [`FakeLlm`].
    pub async fn start() -> Self {
        Self::with_llm(FakeLlm).await
    }

    pub async fn with_llm(llm: impl Respond + 'static) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(llm).mount(&server).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind MCP port");
        let mcp_url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let fs = FsConfig::new(repo().join("examples/data")).expect("examples/data");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.await;
            };
            let _ = teal_mcp_filesystem::serve(listener, fs, SessionMode::Stateless, stop).await;
        });
        let env = [
            ("TA_SERVICE_CONFIG", repo().join("examples/agents").display().to_string()),
            ("TEAL_BUNDLED_FS_URL", mcp_url),
            ("TA_BASE_URL", format!("{}/v1", server.uri())),
            ("TA_API_KEY", "sk-lambda-test".to_owned()),
            ("TA_API_KEYS_SECRET", KEYS_SECRET.to_owned()),
            ("TA_REQUEST_TIMEOUT", "20".to_owned()),
            // Secrets from the environment even where an AWS region is set.
            ("TA_SECRETS_BACKEND", "env".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self { llm: server, env, stop_mcp: Some(stop) }
    }

    /// Points the MCP URL at a port nobody listens on (for the failure paths of `/ready`).
    pub fn break_mcp(&mut self) {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        self.env.insert("TEAL_BUNDLED_FS_URL".into(), format!("http://{dead}/mcp"));
        if let Some(stop) = self.stop_mcp.take() {
            let _ = stop.send(());
        }
    }

    /// The function's app, booted as its `main` boots it.
    pub async fn app(&self, endpoint: Endpoint) -> axum::Router {
        lambda::boot_with(endpoint, &Env::from(self.env.clone()), secrets()).await.expect("cold start")
    }

    pub async fn llm_calls(&self) -> usize {
        self.llm.received_requests().await.map_or(0, |r| r.len())
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One invocation: the request through the app, the whole body read.
pub async fn call(app: axum::Router, req: lambda_http::Request) -> Answer {
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    Answer { status, headers, body }
}

/// `(event, data)` pairs of an SSE body.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let mut event = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("SSE data ({e}): {data}"));
            (event, data)
        })
        .collect()
}
