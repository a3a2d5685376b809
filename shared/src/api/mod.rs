//! The HTTP API: one axum [`Router`] per endpoint, merged by [`router`] for the local server.
//!
//! The same routes serve Lambda (through `lambda_http`) and `teal serve` (through axum), so the
//! local server is the real code. Owns what is HTTP: reading the body within its limit, the
//! request id (one middleware sets `x-request-id` on every response), the run's deadline, the
//! caller, `Cache-Control`, and turning results and [`crate::Error`]s into responses. The use
//! cases themselves are [`crate::service`]'s.

mod body;
mod error;
pub mod input;
mod oauth;
mod resume;
mod sse;
pub mod types;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use tracing::Instrument;

pub use body::BodyError;
use body::read_body;
pub use error::{auth_challenge_body, error_body, error_response, route_error};
pub use oauth::oauth_callback_router;
pub use resume::resume_router;
pub use sse::{sse_frame, stream_router};
pub use types::{InvokeResponse, TokenUsage};

pub use crate::service::invoke::CacheStatus;
use crate::service::invoke::{Answer, InvokeOptions};
use crate::service::{self};
pub use crate::service::{ApiSettings, AppState};

/// Who is calling (the API key id the authorizer vouched for); rate limits are per caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// A deadline set by the runtime (in Lambda: the invocation's deadline minus a margin). When a
/// request carries it as an extension, runs stop there instead of after `request_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

/// The id of one request, in logs, the response body and `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// On a response: the registered agent the request ran, for its metrics' labels.
#[derive(Debug, Clone)]
pub struct AgentTag(pub Arc<crate::config::AgentConfig>);

/// `resp` tagged with the agent `name`/`version` names, when it is a registered one.
fn tag_agent(state: &AppState, name: &str, version: &str, mut resp: Response) -> Response {
    if let Ok(agent) = state.find_agent(name, version) {
        resp.extensions_mut().insert(AgentTag(agent));
    }
    resp
}

pub type SharedState = Arc<AppState>;

/// Every endpoint, for the local server.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .merge(health_router())
        .merge(ready_router())
        .merge(tools_router())
        .merge(invoke_router())
        .merge(stream_router())
        .merge(oauth_callback_router())
        .merge(resume_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(crate::oauth::caller::acting_for))
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// Any path no route serves: JSON with the request id, like every other error.
pub async fn not_found(method: Method, uri: Uri, rid: Option<Extension<RequestId>>) -> Response {
    let rid = rid.map_or_else(String::new, |Extension(RequestId(id))| id);
    route_error(StatusCode::NOT_FOUND, "not_found", &format!("no route for {method} {}", uri.path()), &rid)
}

/// A path served for other methods only.
pub async fn method_not_allowed(method: Method, uri: Uri, rid: Option<Extension<RequestId>>) -> Response {
    let rid = rid.map_or_else(String::new, |Extension(RequestId(id))| id);
    let message = format!("{method} is not allowed on {}", uri.path());
    route_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &message, &rid)
}

/// `POST /{name}/{version}`
pub fn invoke_router() -> Router<SharedState> {
    Router::new().route("/{name}/{version}", post(invoke)).layer(DefaultBodyLimit::disable())
}

/// `GET /health`, and Teal's `/health/live`, `/{name}/{version}/health` and
/// `/{name}/{version}/health/live`.
pub fn health_router() -> Router<SharedState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/{name}/{version}/health", get(health))
        .route("/{name}/{version}/health/live", get(live))
}

/// `GET /ready`
pub fn ready_router() -> Router<SharedState> {
    Router::new().route("/ready", get(ready))
}

/// `GET /{name}/{version}/tools` and `GET /{name}/{version}/openapi.json`
pub fn tools_router() -> Router<SharedState> {
    Router::new()
        .route("/{name}/{version}/tools", get(tools))
        .route("/{name}/{version}/openapi.json", get(openapi))
}

/// Gives every request an id (the client's `x-request-id` when it is a sane one), sets it on the
/// response, and logs one line when the request ends.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let header = HeaderValue::from_str(&id).ok();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    // Every log line of the request carries these (JSON logs list the spans a line is in).
    let caller = req.extensions().get::<Caller>().map_or("anonymous", |Caller(c)| c.as_str());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        %path,
        caller = %caller,
        agent = tracing::field::Empty,
        version = tracing::field::Empty,
    );
    crate::telemetry::join_caller_trace(&span, req.headers());
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let agent = resp.extensions().get::<AgentTag>().map(|t| (t.0.name.as_str(), t.0.version.as_str()));
    crate::telemetry::metrics::request(agent, status, elapsed);
    if let Some((name, version)) = agent {
        span.record("agent", name).record("version", version);
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, duration_ms = ms, "request finished");
        } else {
            tracing::info!(status, duration_ms = ms, "request finished");
        }
    });
    if let Some(v) = header {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The per-request facts the extractors give, as the handlers need them.
struct RequestFacts {
    request_id: String,
    caller: String,
    deadline: Instant,
}

impl RequestFacts {
    fn new(
        state: &AppState,
        rid: Option<Extension<RequestId>>,
        deadline: Option<Extension<Deadline>>,
        caller: Option<Extension<Caller>>,
    ) -> Self {
        Self {
            // Without the middleware (a router used on its own) the id is made here.
            request_id: rid.map_or_else(|| uuid::Uuid::new_v4().to_string(), |Extension(RequestId(id))| id),
            // The rate-limit subject: the authorizer's caller id, or "anonymous" where none vouched.
            caller: caller.map_or_else(|| "anonymous".to_owned(), |Extension(Caller(c))| c),
            // The runtime's deadline (Lambda's, minus a margin) or `request_timeout` from now.
            deadline: deadline
                .map_or_else(|| Instant::now() + state.settings.request_timeout, |Extension(Deadline(d))| d),
        }
    }

    fn options<'a>(&'a self, headers: &HeaderMap) -> InvokeOptions<'a> {
        InvokeOptions {
            request_id: &self.request_id,
            caller: &self.caller,
            no_cache: no_cache(headers),
            deadline: self.deadline,
            on_event: None,
        }
    }
}

/// `Cache-Control: no-cache` or `no-store` on the request.
fn no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|d| matches!(d.trim().to_ascii_lowercase().as_str(), "no-cache" | "no-store"))
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
    let facts = RequestFacts::new(&state, rid, deadline, caller);
    let opts = facts.options(req.headers());
    let result = match read_body(req, state.settings.body_limit).await {
        Ok(body) => service::invoke::invoke(&state, &name, &version, &body, &opts).await,
        Err(e) => Err(e),
    };
    let resp = match result {
        Ok(Answer::Invoke(invoked)) => {
            let mut r = Json(invoked.response).into_response();
            r.headers_mut().insert("x-cache", HeaderValue::from_static(invoked.cache.as_str()));
            r
        }
        Ok(Answer::State(state)) => Json(state).into_response(),
        Err(e) => error_response(&e, &facts.request_id),
    };
    tag_agent(&state, &name, &version, resp)
}

async fn health(State(state): State<SharedState>) -> Json<types::Health> {
    Json(health_body(&state))
}

/// The `/health` body: liveness only, no upstream is contacted.
fn health_body(state: &AppState) -> types::Health {
    types::Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        agents: state.registry().len(),
    }
}

/// Teal's liveness probe: the process answers.
async fn live() -> Json<types::Liveness> {
    Json(types::Liveness { alive: true, timestamp: chrono::Utc::now().to_rfc3339() })
}

async fn openapi(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
    rid: Option<Extension<RequestId>>,
) -> Response {
    match state.find_agent(&name, &version) {
        Ok(agent) => Json(service::openapi::document(&agent)).into_response(),
        Err(e) => error_response(&e, &rid.map_or_else(String::new, |Extension(RequestId(id))| id)),
    }
}

async fn ready(State(state): State<SharedState>) -> Response {
    let readiness = service::ready::readiness(&state).await;
    let status = if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness)).into_response()
}

async fn tools(
    State(state): State<SharedState>,
    Path((name, version)): Path<(String, String)>,
    rid: Option<Extension<RequestId>>,
    deadline: Option<Extension<Deadline>>,
    caller: Option<Extension<Caller>>,
) -> Response {
    let facts = RequestFacts::new(&state, rid, deadline, caller);
    match service::catalog::tool_catalog(&state, &name, &version, &facts.caller).await {
        Ok(catalog) => Json(catalog).into_response(),
        Err(e) => error_response(&e, &facts.request_id),
    }
}

#[cfg(test)]
mod tests;
