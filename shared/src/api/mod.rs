//! The HTTP API: one axum [`Router`] per endpoint, merged by [`router`] for the local server.
//!
//! The same routes serve Lambda (through `lambda_http`) and `teal serve` (through axum), so the
//! local server is the real code. Owns request parsing, the invoke flow (agent lookup ->
//! session -> tools -> loop -> session), readiness checks and the error -> status mapping. It
//! holds no clients of its own: [`AppState`] is built once per process and shared.

mod error;
mod sse;
pub mod types;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::future::join_all;
use serde_json::json;
use tracing::Instrument;

pub use error::ApiError;
pub use sse::{sse_frame, stream_router};
pub use types::{InvokeResponse, TokenUsage};

use crate::agent::{Run, RunReport};
use crate::config::{AgentConfig, AgentSource, Registry};
use crate::llm::{LlmClient, Message};
use crate::mcp::McpPool;
use crate::store::{CacheKey, RateLimiter, RedisConnection, ResponseCache, SessionId, SessionStore};

/// Per-process API settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest accepted request body (default 1 MiB).
    pub body_limit: usize,
    /// Deadline of one run when the caller gives none (Lambda gives its own).
    pub request_timeout: Duration,
    /// How long a cached response is served when the agent sets no `cache_ttl` (default 3600 s).
    pub cache_ttl: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(120),
            cache_ttl: Duration::from_secs(3600),
        }
    }
}

/// Who is calling (the API key id the authorizer vouched for); rate limits are per caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// How the response cache treated one request (`x-cache` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// Not looked up: `Cache-Control: no-cache`, or a session continued from the store.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// Everything the routes share, built once per process (per Lambda container).
pub struct AppState {
    /// The agents: loaded once from files, or kept fresh from S3.
    pub agents: AgentSource,
    pub llm: Arc<dyn LlmClient>,
    pub mcp: McpPool,
    pub sessions: Arc<dyn SessionStore>,
    /// Complete, successful responses by agent and input (Redis or in-memory).
    pub cache: Arc<dyn ResponseCache>,
    /// Per-caller token buckets; `None` is unlimited.
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    /// The shared Redis connection, when Redis backs the stores (for `/ready`).
    pub redis: Option<RedisConnection>,
    pub settings: ApiSettings,
    pub started: Instant,
}

/// A deadline set by the runtime (in Lambda: the invocation's deadline minus a margin). When a
/// request carries it as an extension, runs stop there instead of after `request_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

/// The id of one request, in logs, the response body and `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub type SharedState = Arc<AppState>;

impl AppState {
    /// The agent registry as it is now.
    pub fn registry(&self) -> Arc<Registry> {
        self.agents.current()
    }
}

/// Every endpoint, for the local server.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .merge(health_router())
        .merge(ready_router())
        .merge(tools_router())
        .merge(invoke_router())
        .merge(stream_router())
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// `POST /{name}/{version}`
pub fn invoke_router() -> Router<SharedState> {
    Router::new().route("/{name}/{version}", post(invoke)).layer(DefaultBodyLimit::disable())
}

/// `GET /health`
pub fn health_router() -> Router<SharedState> {
    Router::new().route("/health", get(health))
}

/// `GET /ready`
pub fn ready_router() -> Router<SharedState> {
    Router::new().route("/ready", get(ready))
}

/// `GET /{name}/{version}/tools`
pub fn tools_router() -> Router<SharedState> {
    Router::new().route("/{name}/{version}/tools", get(tools))
}

/// Gives every request an id and logs one line when it ends.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, duration_ms = ms, "request finished");
        } else {
            tracing::info!(status, duration_ms = ms, "request finished");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The run's deadline: the runtime's (Lambda's, minus a margin) or `request_timeout` from now.
fn run_deadline(state: &AppState, ext: Option<Extension<Deadline>>) -> Instant {
    ext.map(|Extension(Deadline(d))| d).unwrap_or_else(|| Instant::now() + state.settings.request_timeout)
}

/// The whole body, or 413 when it is (or says it is) larger than `limit`.
async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // The only way reading a buffered body fails here is passing the limit.
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| ApiError::PayloadTooLarge { limit })
}

/// The rate-limit subject: the authorizer's caller id, or "anonymous" where none vouched.
fn caller_id(ext: Option<Extension<Caller>>) -> String {
    ext.map(|Extension(Caller(c))| c).unwrap_or_else(|| "anonymous".to_owned())
}

/// `Cache-Control: no-cache` or `no-store` on the request.
fn no_cache(headers: &axum::http::HeaderMap) -> bool {
    headers.get_all(axum::http::header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|d| matches!(d.trim().to_ascii_lowercase().as_str(), "no-cache" | "no-store"))
    })
}

fn request_id(ext: Option<Extension<RequestId>>) -> String {
    ext.map(|Extension(RequestId(id))| id).unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn find_agent(state: &AppState, name: &str, version: &str) -> Result<Arc<AgentConfig>, ApiError> {
    state.agents.refresh_if_stale();
    let registry = state.registry();
    registry.get(name, version).ok_or_else(|| ApiError::AgentNotFound {
        name: name.to_owned(),
        version: version.to_owned(),
        known: registry.known(),
    })
}

async fn invoke(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
    rid: Option<Extension<RequestId>>,
    deadline: Option<Extension<Deadline>>,
    caller: Option<Extension<Caller>>,
    req: Request,
) -> Response {
    let rid = request_id(rid);
    let caller = caller_id(caller);
    let opts = InvokeOptions { request_id: &rid, caller: &caller, no_cache: no_cache(req.headers()) };
    let deadline = run_deadline(&state, deadline);
    let result = match read_body(req, state.settings.body_limit).await {
        Ok(body) => invoke_agent(&state, &name, &version, &opts, &body, deadline).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((resp, cache)) => {
            let mut r = Json(resp).into_response();
            if let Ok(v) = HeaderValue::from_str(&rid) {
                r.headers_mut().insert("x-request-id", v);
            }
            r.headers_mut().insert("x-cache", HeaderValue::from_static(cache.as_str()));
            r
        }
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(agent = %name, version = %version, error = %e, "invoke failed");
            }
            e.into_response_with_id(&rid)
        }
    }
}

/// Per-request facts the invoke flow needs besides the body.
#[derive(Debug, Clone, Copy)]
pub struct InvokeOptions<'a> {
    pub request_id: &'a str,
    /// Rate-limit subject: the caller's API key id, or "anonymous".
    pub caller: &'a str,
    /// `Cache-Control: no-cache` / `no-store`: neither read nor write the response cache.
    pub no_cache: bool,
}

/// The invoke flow, callable from any adapter (HTTP route, streaming Lambda).
pub async fn invoke_agent(
    state: &AppState,
    name: &str,
    version: &str,
    opts: &InvokeOptions<'_>,
    body: &[u8],
    deadline: Instant,
) -> Result<(InvokeResponse, CacheStatus), ApiError> {
    invoke_agent_with_events(state, name, version, opts, body, deadline, &|_| {}).await
}

/// [`invoke_agent`] with a progress callback (tool calls started and finished).
pub async fn invoke_agent_with_events(
    state: &AppState,
    name: &str,
    version: &str,
    opts: &InvokeOptions<'_>,
    body: &[u8],
    deadline: Instant,
    on_event: &(dyn Fn(crate::agent::RunEvent) + Send + Sync),
) -> Result<(InvokeResponse, CacheStatus), ApiError> {
    let request_id = opts.request_id;
    let agent = find_agent(state, name, version)?;
    if let Some(limiter) = &state.rate_limiter {
        let decision = limiter.check(opts.caller).await;
        if !decision.allowed {
            return Err(ApiError::RateLimited {
                retry_after_secs: decision.retry_after.as_secs_f64().ceil() as u64,
            });
        }
    }
    if body.len() > state.settings.body_limit {
        return Err(ApiError::PayloadTooLarge { limit: state.settings.body_limit });
    }
    let input = types::parse_invoke_body(body).map_err(ApiError::BadRequest)?;
    let session = match &input.session_id {
        Some(s) => SessionId::parse(s).map_err(|e| ApiError::BadRequest(format!("session_id: {e}")))?,
        None => SessionId::generate(),
    };
    let mut conversation = if input.continues_session && input.session_id.is_some() {
        state.sessions.load(&session).await.map_err(|e| ApiError::SessionStore(e.to_string()))?
    } else {
        Vec::new()
    };
    conversation.extend(input.messages.iter().cloned());

    // Only a request that carries its whole conversation can be answered from the cache: a
    // continued session depends on history the key does not see.
    let cache_key = (!opts.no_cache && !input.continues_session)
        .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
        .flatten()
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("session_id");
            }
            CacheKey::new(&agent.name, &agent.version, &v)
        });
    if let Some(key) = &cache_key
        && let Some(bytes) = state.cache.lookup(key).await
        && let Ok(mut hit) = serde_json::from_slice::<InvokeResponse>(&bytes)
    {
        hit.request_id = request_id.to_owned();
        hit.session_id = session.as_str().to_owned();
        set_extra(&mut hit, "cached", "true");
        let mut turn = input.messages;
        turn.push(Message::assistant(hit.output_raw.clone()));
        state.sessions.append(&session, &turn).await.map_err(|e| ApiError::SessionStore(e.to_string()))?;
        tracing::info!(agent = %agent.name, version = %agent.version, "served from the response cache");
        return Ok((hit, CacheStatus::Hit));
    }

    let tools = state.mcp.agent_tools(&agent).await.map_err(|e| ApiError::Mcp(e, Default::default()))?;
    let run =
        Run { agent: &agent, llm: state.llm.as_ref(), pool: &state.mcp, tools: &tools, deadline, on_event };
    let RunReport { output, trace } = run.execute(&conversation).await?;

    let mut turn = input.messages;
    turn.push(Message::assistant(output.clone()));
    state.sessions.append(&session, &turn).await.map_err(|e| ApiError::SessionStore(e.to_string()))?;
    tracing::info!(
        agent = %agent.name,
        version = %agent.version,
        iterations = trace.iterations,
        tool_calls = trace.tool_calls.len(),
        total_tokens = trace.usage.total_tokens,
        "agent run finished"
    );
    let response = InvokeResponse {
        session_id: session.as_str().to_owned(),
        request_id: request_id.to_owned(),
        source: format!("{}:{}", agent.name, agent.version),
        token_usage: trace.usage.into(),
        output_raw: output,
        extra_data: types::ExtraData {
            items: vec![
                types::KeyValue { key: "iterations".into(), value: trace.iterations.to_string() },
                types::KeyValue { key: "tool_calls".into(), value: trace.tool_calls.len().to_string() },
                types::KeyValue { key: "cached".into(), value: "false".into() },
            ],
        },
    };
    let status = match &cache_key {
        Some(key) => {
            let ttl = agent.agent.cache_ttl.unwrap_or(state.settings.cache_ttl);
            if !ttl.is_zero()
                && let Ok(bytes) = serde_json::to_vec(&response)
            {
                state.cache.store(key, &bytes, ttl).await;
            }
            CacheStatus::Miss
        }
        None => CacheStatus::Bypass,
    };
    Ok((response, status))
}

fn set_extra(resp: &mut InvokeResponse, key: &str, value: &str) {
    match resp.extra_data.items.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => value.clone_into(&mut kv.value),
        None => resp.extra_data.items.push(types::KeyValue { key: key.to_owned(), value: value.to_owned() }),
    }
}

async fn health(State(state): State<SharedState>) -> Response {
    Json(health_body(&state)).into_response()
}

/// The `/health` body: liveness only, no upstream is contacted.
pub fn health_body(state: &AppState) -> serde_json::Value {
    json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "agents": state.registry().len(),
    })
}

async fn ready(State(state): State<SharedState>) -> Response {
    let (ok, body) = readiness(&state).await;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Really checks each configured MCP server (a `tools/list` round trip) and the session store.
pub async fn readiness(state: &AppState) -> (bool, serde_json::Value) {
    let mut servers = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for agent in state.registry().iter() {
        for s in &agent.agent.mcp_servers {
            if seen.insert((s.name.clone(), s.url.to_string())) {
                servers.push(s.clone());
            }
        }
    }
    let mcp_checks = join_all(servers.iter().map(|s| async move {
        let started = Instant::now();
        let r = state.mcp.check(s).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(n) => json!({"name": format!("mcp:{}", s.name), "ok": true, "tools": n, "ms": ms}),
            Err(e) => {
                tracing::warn!(server = %s.name, error = %crate::telemetry::error_chain(&e), "readiness check failed");
                json!({"name": format!("mcp:{}", s.name), "ok": false, "error": e.to_string(), "ms": ms})
            }
        }
    }));
    let store_check = async {
        let started = Instant::now();
        let r = state.sessions.ping().await;
        let name = format!("sessions:{}", state.sessions.backend());
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(()) => json!({"name": name, "ok": true, "ms": ms}),
            Err(e) => json!({"name": name, "ok": false, "error": e.to_string(), "ms": ms}),
        }
    };
    let redis_check = async {
        let redis = state.redis.as_ref()?;
        let started = Instant::now();
        let r = redis.ping().await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        Some(match r {
            Ok(()) => json!({"name": "redis", "ok": true, "ms": ms}),
            Err(e) => json!({"name": "redis", "ok": false, "error": e.to_string(), "ms": ms}),
        })
    };
    let (mut checks, store, redis) = futures::join!(mcp_checks, store_check, redis_check);
    checks.push(store);
    checks.extend(redis);
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c["ok"] != json!(true))
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let ok = failed.is_empty();
    (ok, json!({"status": if ok { "ready" } else { "not_ready" }, "failed": failed, "checks": checks}))
}

async fn tools(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
    rid: Option<Extension<RequestId>>,
) -> Response {
    let rid = request_id(rid);
    match tool_catalog(&state, &name, &version).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response_with_id(&rid),
    }
}

/// The tools an agent is offered: namespaced name, server, original name, description, schema.
pub async fn tool_catalog(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<serde_json::Value, ApiError> {
    let agent = find_agent(state, name, version)?;
    let tools = state.mcp.agent_tools(&agent).await.map_err(|e| ApiError::Mcp(e, Default::default()))?;
    let list: Vec<serde_json::Value> = tools
        .specs
        .iter()
        .map(|spec| {
            let route = tools.route(&spec.name);
            json!({
                "name": spec.name,
                "server": route.map(|r| r.server_name()),
                "tool": route.map(|r| r.tool_name()),
                "description": spec.description,
                "input_schema": spec.parameters,
            })
        })
        .collect();
    Ok(json!({"agent": format!("{}:{}", agent.name, agent.version), "tools": list}))
}
