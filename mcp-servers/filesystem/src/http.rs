//! HTTP wiring: the axum router (`/mcp` streamable HTTP, `GET /health`), the bearer-token
//! check, and the serve loop.
//!
//! This module owns how rmcp's `StreamableHttpService` is configured for each [`SessionMode`],
//! who may reach `/mcp` (`Host` allow-list, optional bearer token; `/health` stays open for the
//! load balancer) and how shutdown reaches open MCP streams. It must not know about files: it
//! only builds [`FilesystemServer`]s from the shared, already-canonical configuration.

use std::{future::Future, sync::Arc};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::{
    FsConfig,
    confine::AllowedDirs,
    ops::Ctx,
    server::{FilesystemServer, Shared},
};

/// rmcp's own default cap on a POST body; raised when the file size limit needs more room.
const MIN_BODY_LIMIT: u64 = 4 << 20;

/// How MCP sessions are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionMode {
    /// Classic streamable HTTP: `initialize` creates a session, answered with an
    /// `Mcp-Session-Id` header that later requests must carry; responses are SSE streams.
    /// (rmcp serves requests negotiating protocol `2026-07-28`+ statelessly even here.)
    #[default]
    Stateful,
    /// No sessions, JSON responses: every POST is answered on its own, even a `tools/call`
    /// with no prior `initialize`, so any replica behind a load balancer can serve it.
    Stateless,
}

impl SessionMode {
    fn http_config(self) -> StreamableHttpServerConfig {
        let config = StreamableHttpServerConfig::default();
        match self {
            Self::Stateful => config.with_legacy_session_mode(true),
            Self::Stateless => config.with_legacy_session_mode(false).with_json_response(true),
        }
    }
}

/// HTTP-level options.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub mode: SessionMode,
    /// `Host` header values accepted on `/mcp` (`name` or `name:port`); others get 403 (DNS
    /// rebinding protection). Defaults to rmcp's loopback list. An empty list disables the
    /// check (rmcp semantics), which only makes sense behind a proxy that validates `Host`.
    pub allowed_hosts: Vec<String>,
    /// When set, `/mcp` requires `Authorization: Bearer <token>` (compared in constant time);
    /// others get 401 with `WWW-Authenticate: Bearer`. `/health` never asks for it.
    pub auth_token: Option<SecretString>,
}

impl ServerOptions {
    pub fn new(mode: SessionMode) -> Self {
        Self { mode, allowed_hosts: StreamableHttpServerConfig::default().allowed_hosts, auth_token: None }
    }

    #[must_use]
    pub fn with_auth_token(mut self, token: SecretString) -> Self {
        self.auth_token = Some(token);
        self
    }

    /// Whether `allowed_hosts` is still rmcp's loopback-only default.
    pub fn allows_only_loopback_hosts(&self) -> bool {
        self.allowed_hosts == StreamableHttpServerConfig::default().allowed_hosts
    }

    #[must_use]
    pub fn with_allowed_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::new(SessionMode::default())
    }
}

/// The router with `/mcp` and `GET /health`, loopback `Host`s only.
pub fn router(cfg: FsConfig, mode: SessionMode) -> Router {
    router_with_options(cfg, &ServerOptions::new(mode))
}

pub fn router_with_options(cfg: FsConfig, options: &ServerOptions) -> Router {
    build(cfg, options).0
}

/// Serves until `shutdown` completes, then closes open MCP streams and drains connections.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: FsConfig,
    mode: SessionMode,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_options(listener, cfg, &ServerOptions::new(mode), shutdown).await
}

pub async fn serve_with_options(
    listener: tokio::net::TcpListener,
    cfg: FsConfig,
    options: &ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let allowed_dirs: Vec<String> = cfg.allowed_dirs().iter().map(|d| d.display().to_string()).collect();
    let (read_only, max_file_size) = (cfg.read_only(), cfg.max_file_size().to_string());
    let (app, mcp_config) = build(cfg, options);
    let streams = mcp_config.cancellation_token;
    tracing::info!(
        addr = %listener.local_addr()?,
        allowed_dirs = ?allowed_dirs,
        read_only,
        max_file_size,
        mode = ?options.mode,
        allowed_hosts = ?options.allowed_hosts,
        auth = options.auth_token.is_some(),
        "filesystem MCP server listening"
    );
    // teal_net: read timeouts, idle keep-alive, a connection cap, and TCP_NODELAY (MCP answers
    // are SSE frames written in several small pieces: without it each waits for a delayed ACK).
    teal_net::serve(listener, app, teal_net::Limits::default(), async move {
        shutdown.await;
        // SSE streams never end by themselves: cancel them so the drain can finish.
        streams.cancel();
    })
    .await
}

fn build(cfg: FsConfig, options: &ServerOptions) -> (Router, StreamableHttpServerConfig) {
    let max_file_size = cfg.max_file_size();
    let ctx = Ctx { dirs: AllowedDirs::new(cfg.dirs), max_file_size };
    let shared = Arc::new(Shared::new(ctx, cfg.read_only));
    // A write of a file at the limit must reach the tool (and one over it be refused there,
    // with a clear message): leave room for JSON escaping and the envelope.
    let body_limit = max_file_size.bytes().saturating_mul(2).saturating_add(1 << 20).max(MIN_BODY_LIMIT);
    let config = options
        .mode
        .http_config()
        .with_allowed_hosts(options.allowed_hosts.clone())
        .with_max_request_body_bytes(usize::try_from(body_limit).unwrap_or(usize::MAX));
    let mcp = StreamableHttpService::new(
        move || Ok(FilesystemServer::new(Arc::clone(&shared))),
        Arc::new(LocalSessionManager::default()),
        config.clone(),
    );
    let mut mcp = Router::new().nest_service("/mcp", mcp);
    if let Some(token) = &options.auth_token {
        mcp = mcp.layer(middleware::from_fn_with_state(Arc::new(token.clone()), require_bearer));
    }
    let app = Router::new().route("/health", get(health)).merge(mcp);
    (app, config)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Lets the request through only with `Authorization: Bearer <token>` (scheme
/// case-insensitive, token exact).
async fn require_bearer(State(token): State<Arc<SecretString>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim());
    let challenge = match given {
        Some(credentials) if constant_time_eq(credentials.as_bytes(), token.expose_secret().as_bytes()) => {
            return next.run(request).await;
        }
        Some(_) => "Bearer error=\"invalid_token\"",
        None => "Bearer",
    };
    tracing::warn!(outcome = "denied", presented = given.is_some(), "unauthorized /mcp request");
    let mut response = (StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthorized"}))).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

/// `given == expected` in time that depends only on `given`'s length (never on where the first
/// difference is, nor on the expected token's length).
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() {
        return false;
    }
    let mut difference = u8::from(given.len() != expected.len());
    for (i, byte) in given.iter().enumerate() {
        difference |= byte ^ expected[i % expected.len()];
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3creT", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"s3crets3cret", b"s3cret"), "a repetition is not a match");
        assert!(!constant_time_eq(b"", b"s3cret"));
        assert!(!constant_time_eq(b"", b""), "an empty token never matches");
    }
}
