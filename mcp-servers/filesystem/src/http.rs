//! HTTP wiring: the axum router (`/mcp` streamable HTTP, `GET /health`) and the serve loop.
//!
//! This module owns how rmcp's `StreamableHttpService` is configured for each [`SessionMode`]
//! and how shutdown reaches open MCP streams. It must not know about files: it only builds
//! [`FilesystemServer`]s from the shared, already-canonical root.

use std::{future::Future, sync::Arc};

use axum::{Json, Router, routing::get};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use serde_json::{Value, json};

use crate::{FsConfig, confine::Root, server::FilesystemServer};

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

/// HTTP-level options. Grows with the Fargate hardening (body limits, origins…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    pub mode: SessionMode,
    /// `Host` header values accepted on `/mcp` (`name` or `name:port`); others get 403 (DNS
    /// rebinding protection). Defaults to rmcp's loopback list. An empty list disables the
    /// check (rmcp semantics), which only makes sense behind a proxy that validates `Host`.
    pub allowed_hosts: Vec<String>,
}

impl ServerOptions {
    pub fn new(mode: SessionMode) -> Self {
        Self { mode, allowed_hosts: StreamableHttpServerConfig::default().allowed_hosts }
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
    let root = cfg.root.display().to_string();
    let (app, mcp_config) = build(cfg, options);
    let streams = mcp_config.cancellation_token;
    tracing::info!(
        addr = %listener.local_addr()?,
        root,
        mode = ?options.mode,
        "filesystem MCP server listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // SSE streams never end by themselves: cancel them so the drain can finish.
            streams.cancel();
        })
        .await
}

fn build(cfg: FsConfig, options: &ServerOptions) -> (Router, StreamableHttpServerConfig) {
    let root = Arc::new(Root::new(cfg.root));
    let config = options.mode.http_config().with_allowed_hosts(options.allowed_hosts.clone());
    let mcp = StreamableHttpService::new(
        move || Ok(FilesystemServer::new(Arc::clone(&root))),
        Arc::new(LocalSessionManager::default()),
        config.clone(),
    );
    let app = Router::new().route("/health", get(health)).nest_service("/mcp", mcp);
    (app, config)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
