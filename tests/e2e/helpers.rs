//! The stack every end-to-end test runs against: the real API router on a free loopback port,
//! the real filesystem MCP server over streamable HTTP (in its own runtime, so a test can kill
//! and restart it), and a fake OpenAI-compatible LLM (wiremock) speaking the real wire format.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use teal_core::api::AppState;
use teal_core::bootstrap;
use teal_core::llm::{Llm, OpenAiClient, OpenAiSettings};
use teal_core::secrets::EnvSecretStore;
use teal_core::settings::{Env, Settings};
use teal_mcp_filesystem::{FsConfig, SessionMode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

pub const API_KEY: &str = "sk-e2e-secret-key-0123456789";

/// A real filesystem MCP server that a test can kill and bring back on the same port.
pub struct McpServer {
    pub url: String,
    addr: SocketAddr,
    root: PathBuf,
    mode: SessionMode,
    posts: Arc<AtomicU64>,
    running: Option<Running>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

async fn count_posts(State(counter): State<Arc<AtomicU64>>, req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    next.run(req).await
}

impl McpServer {
    pub fn start(root: &Path, mode: SessionMode) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind MCP port");
        let addr = listener.local_addr().expect("addr");
        let mut s = Self {
            url: format!("http://{addr}/mcp"),
            addr,
            root: root.to_owned(),
            mode,
            posts: Arc::new(AtomicU64::new(0)),
            running: None,
        };
        s.run_on(listener);
        s
    }

    fn run_on(&mut self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let fs = FsConfig::new(&self.root).expect("fs root");
        let router = teal_mcp_filesystem::router(fs, self.mode)
            .layer(axum::middleware::from_fn_with_state(self.posts.clone(), count_posts));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("MCP runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("tokio listener").tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                tokio::select! {
                    _ = axum::serve(listener, router) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime kills every connection task: the server is gone, not draining.
            rt.shutdown_background();
        });
        self.running = Some(Running { stop, thread });
    }

    /// Stops the server at once: listener and open connections are closed when this returns.
    pub fn kill(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            r.thread.join().expect("MCP server thread");
        }
    }

    /// Starts a fresh server (new process state: no sessions) on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let listener = std::net::TcpListener::bind(self.addr).expect("rebind the same MCP port");
        self.run_on(listener);
    }

    /// HTTP POSTs the server received (each MCP request is one POST).
    pub fn posts(&self) -> u64 {
        self.posts.load(Ordering::SeqCst)
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Shared with the fake LLM, so a scripted answer can kill the MCP server mid-run.
pub type KillSwitch = Arc<Mutex<Option<McpServer>>>;

/// The fake LLM's script, driven by the conversation it receives (OpenAI wire format):
/// - last message is a tool result -> final answer `TOOL SAID: <result>`;
/// - first user message starts with `loop:` -> always calls `fs_list_directory` (never ends);
/// - last user message `call:<tool> <json>` -> one tool call with those arguments;
/// - last user message `kill-mid-run:<tool> <json>` -> kills the MCP server, then that call;
/// - anything else -> `ECHO: <last user message>`.
pub struct ScriptedLlm {
    pub kill_switch: KillSwitch,
}

fn completion(message: Value) -> ResponseTemplate {
    let finish = if message.get("tool_calls").is_some() { "tool_calls" } else { "stop" };
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-e2e", "object": "chat.completion", "created": 0, "model": "gpt-e2e",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

fn tool_call(spec: &str, id: &str) -> Value {
    let (name, args) = spec.split_once(' ').unwrap_or((spec, "{}"));
    json!({"role": "assistant", "content": null, "tool_calls": [{
        "id": id, "type": "function", "function": {"name": name, "arguments": args}
    }]})
}

impl Respond for ScriptedLlm {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let last = messages.last().cloned().unwrap_or_default();
        let first_user = messages.iter().find(|m| m["role"] == "user").cloned().unwrap_or_default();
        let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
        if first_user["content"].as_str().is_some_and(|c| c.starts_with("loop:")) {
            return completion(tool_call("fs_list_directory {\"path\":\".\"}", &format!("call-{turn}")));
        }
        if last["role"] == "tool" {
            let text = last["content"].as_str().unwrap_or("");
            return completion(json!({"role": "assistant", "content": format!("TOOL SAID: {text}")}));
        }
        let text = last["content"].as_str().unwrap_or("");
        if let Some(spec) = text.strip_prefix("call:") {
            return completion(tool_call(spec, "call-1"));
        }
        if let Some(spec) = text.strip_prefix("kill-mid-run:") {
            if let Some(mut server) = self.kill_switch.lock().expect("kill switch").take() {
                server.kill();
            }
            return completion(tool_call(spec, "call-1"));
        }
        completion(json!({"role": "assistant", "content": format!("ECHO: {text}")}))
    }
}

/// The value of the secret MCP header of [`StackOptions::with_secret_mcp_header`], for tests
/// that check it never leaks.
pub const MCP_SECRET: &str = "mcp-header-secret-4f9c2e";

impl StackOptions {
    /// A stack whose fs-agent sends its MCP server `X-Mcp-Token: ${secret:MCP_TOKEN}`, that
    /// secret being [`MCP_SECRET`], with `env` for the process.
    pub fn with_secret_mcp_header(env: Vec<(&'static str, String)>) -> Self {
        Self {
            env,
            secrets: vec![("MCP_TOKEN", MCP_SECRET)],
            mcp_header: Some(("X-Mcp-Token", "${secret:MCP_TOKEN}")),
            ..Default::default()
        }
    }
}

/// Knobs a test may turn.
pub struct StackOptions {
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub mcp_mode: SessionMode,
    pub llm_retries: u32,
    pub max_iterations: u32,
    pub kill_switch: bool,
    /// `TA_*` variables for the process (stores: `TA_REDIS_URL`, `TA_RATE_LIMIT_RPS`, …).
    pub env: Vec<(&'static str, String)>,
    /// Secrets the process can read (by name), besides its environment's.
    pub secrets: Vec<(&'static str, &'static str)>,
    /// What the API's serve loop tolerates from clients (`teal serve`'s defaults).
    pub limits: teal_net::Limits,
    /// Another fake LLM (e.g. one that streams) instead of the wiremock one.
    pub llm_uri: Option<String>,
    /// One header the fs-agent sends its MCP server: (name, value template, e.g. `${secret:X}`).
    pub mcp_header: Option<(&'static str, &'static str)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(20),
            body_limit: 1024 * 1024,
            mcp_mode: SessionMode::Stateful,
            llm_retries: 2,
            max_iterations: 10,
            kill_switch: false,
            env: Vec::new(),
            secrets: Vec::new(),
            limits: teal_net::Limits::default(),
            llm_uri: None,
            mcp_header: None,
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub llm: MockServer,
    /// `None` when the kill switch holds the server.
    pub mcp: Option<McpServer>,
    pub kill_switch: KillSwitch,
    pub data: tempfile::TempDir,
    configs: tempfile::TempDir,
}

/// The real Redis the tests share (the machine's, or `TEAL_TEST_REDIS_URL`), under a key prefix
/// of this test's own so runs never see each other's keys.
pub fn redis_env() -> Vec<(&'static str, String)> {
    let url = std::env::var("TEAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    vec![("TA_REDIS_URL", url), ("TA_REDIS_PREFIX", format!("teal-e2e-{}:", uuid::Uuid::new_v4()))]
}

/// One API process (a "container"): the real bootstrap from `env`, over the given configs, LLM.
pub async fn start_api(configs: &Path, llm_uri: &str, opts: &StackOptions) -> (String, Arc<AppState>) {
    let mut settings_for_llm = OpenAiSettings::new(format!("{llm_uri}/v1").parse().expect("url"));
    settings_for_llm.api_key = Some(API_KEY.to_owned().into());
    settings_for_llm.max_retries = opts.llm_retries;
    settings_for_llm.initial_backoff = Duration::from_millis(1);
    settings_for_llm.max_backoff = Duration::from_millis(5);
    settings_for_llm.timeout = Duration::from_secs(10);
    let client = OpenAiClient::new(settings_for_llm).expect("LLM client");

    let env = Env::from_pairs(opts.env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut settings = Settings::read(&env).expect("settings");
    settings.api.body_limit = opts.body_limit;
    settings.api.request_timeout = opts.request_timeout;
    let (registry, _) = bootstrap::load_registry(configs, env.vars()).expect("configs load");
    bootstrap::check_prices(&settings, &registry).expect("every cost budget priced");
    let secrets: Arc<dyn teal_core::secrets::SecretStore> =
        Arc::new(opts.secrets.iter().fold(EnvSecretStore::new(), |s, (k, v)| s.with(*k, *v)));
    let stores = bootstrap::build_stores(&settings, secrets.clone()).await.expect("stores");
    let tools = bootstrap::load_tool_sources(&settings, &registry).await.expect("remote plugins load");
    let state = Arc::new(bootstrap::build_state(
        &settings,
        registry,
        Arc::new(Llm::OpenAi(client)),
        secrets,
        stores,
        tools,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind API");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = teal_core::api::router(state.clone());
    // The serve loop of `teal serve`: read timeouts, idle keep-alive, the connection cap.
    tokio::spawn(teal_net::serve(listener, app, opts.limits, std::future::pending()));
    (base, state)
}

pub async fn spawn_stack() -> TestApp {
    spawn_stack_with(StackOptions::default()).await
}

/// Starts the fake LLM without any mock; tests mount what they need (see [`mount_script`]).
pub async fn spawn_stack_with(opts: StackOptions) -> TestApp {
    let data = tempfile::tempdir().expect("data dir");
    std::fs::write(data.path().join("hello.txt"), "hello from the e2e data dir").expect("write");
    std::fs::write(data.path().join("secret-write-target.txt"), "unchanged").expect("write");
    let mcp = McpServer::start(data.path(), opts.mcp_mode);

    let configs = tempfile::tempdir().expect("config dir");
    std::fs::write(
        configs.path().join("fs-agent.yaml"),
        format!(
            "apiVersion: skagents/v1\nkind: Chat\nservice_name: fs-agent\nversion: 1\nspec:\n  agent:\n    \
             model: gpt-e2e\n    system_prompt: You read files.\n    max_iterations: {}\n    mcp_servers:\n      \
             - name: fs\n        url: {}\n        timeout: 5\n        tools:\n          deny: [\"write_*\"]\n{}",
            opts.max_iterations,
            mcp.url,
            opts.mcp_header.map_or_else(String::new, |(k, v)| format!("        headers:\n          {k}: \"{v}\"\n"))
        ),
    )
    .expect("write config");
    std::fs::write(
        configs.path().join("plain.yaml"),
        "apiVersion: skagents/v1\nkind: Chat\nservice_name: plain\nversion: 1\nspec:\n  agent:\n    \
         model: gpt-e2e\n    system_prompt: You chat.\n",
    )
    .expect("write config");

    let llm = MockServer::start().await;
    let kill_switch: KillSwitch = Arc::new(Mutex::new(None));
    let llm_uri = opts.llm_uri.clone().unwrap_or_else(|| llm.uri());
    let (base, _state) = start_api(configs.path(), &llm_uri, &opts).await;

    let mcp = if opts.kill_switch {
        *kill_switch.lock().expect("kill switch") = Some(mcp);
        None
    } else {
        Some(mcp)
    };
    TestApp { base, http: reqwest::Client::new(), llm, mcp, kill_switch, data, configs }
}

/// A fake LLM of its own answering with the [`ScriptedLlm`] script (no kill switch), for tests
/// that build their own configs.
pub async fn scripted_llm() -> MockServer {
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ScriptedLlm { kill_switch: Arc::default() })
        .mount(&llm)
        .await;
    llm
}

/// Mounts the scripted fake LLM (lowest priority, so a test's own mocks win).
pub async fn mount_script(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ScriptedLlm { kill_switch: app.kill_switch.clone() })
        .with_priority(10)
        .mount(&app.llm)
        .await;
}

impl TestApp {
    /// Another API process over the same configs, MCP server and LLM: a second Lambda container.
    pub async fn sibling(&self, opts: &StackOptions) -> String {
        start_api(self.configs.path(), &self.llm.uri(), opts).await.0
    }

    pub fn mcp(&self) -> &McpServer {
        self.mcp.as_ref().expect("MCP server owned by the test app")
    }

    pub fn mcp_mut(&mut self) -> &mut McpServer {
        self.mcp.as_mut().expect("MCP server owned by the test app")
    }

    /// `POST /{agent}` with Teal's `items` form; returns status, headers and JSON body.
    pub async fn say(&self, agent: &str, text: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.post_json(agent, &json!({"items": [{"content_type": "text", "content": text}]})).await
    }

    pub async fn post_json(&self, agent: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self.http.post(format!("{}/{agent}", self.base)).json(body).send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.expect("JSON body"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    /// The JSON bodies the fake LLM received, in order.
    pub async fn llm_requests(&self) -> Vec<Value> {
        self.llm
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("LLM request is JSON"))
            .collect()
    }
}

/// A redis-server of this test's own on a free port, durable on every write (appendfsync
/// always), so a kill loses nothing it acknowledged.
pub struct OwnRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut r = Self { port, dir: tempfile::tempdir().expect("dir"), child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL: no shutdown, no save.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
