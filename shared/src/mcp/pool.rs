//! The pool of MCP clients, one per distinct server, kept for the life of the process: how a
//! session is set up, how a call runs on it (timeout, one resend on a dead client), and when a
//! client is thrown away.
//!
//! A server is its name, URL, headers and timeout: agents that configure the same server share
//! one client and one catalog. Looking one up allocates nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, JsonObject};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::sync::Mutex;

use super::catalog::{Catalog, SharedCatalog};
use super::convert::result_text;
use super::error::is_transport;
use super::headers::Headers;
use super::tools::AgentCache;
use super::{McpError, ToolRoute};
use crate::config::McpServerConfig;
use crate::secrets::SecretStore;
use crate::store::{CatalogCache, CatalogSettings};

pub(super) type Client = RunningService<RoleClient, ClientConfig>;

/// Pool-wide settings.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// How long a server's tool list is reused before it is listed again.
    pub catalog_ttl: Duration,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self { catalog_ttl: Duration::from_secs(300) }
    }
}

/// MCP clients shared by every request of the process. Cheap to clone.
#[derive(Clone)]
pub struct McpPool {
    pub(super) inner: Arc<PoolInner>,
}

pub(super) struct PoolInner {
    pub(super) settings: McpSettings,
    pub(super) secrets: Arc<dyn SecretStore>,
    http: reqwest::Client,
    /// By URL; each URL's servers differ in name, headers or timeout.
    servers: StdMutex<HashMap<String, Vec<Arc<ServerConn>>>>,
    pub(super) agents: AgentCache,
    /// Tool lists shared across containers (Redis), if configured.
    pub(super) shared: Option<SharedCatalog>,
}

/// One configured server: its client (connected lazily, replaced when its transport dies) and
/// its catalog.
pub(super) struct ServerConn {
    pub(super) cfg: McpServerConfig,
    pub(super) client: Mutex<Option<Arc<Client>>>,
    pub(super) catalog: Mutex<Option<Arc<Catalog>>>,
}

impl ServerConn {
    fn new(cfg: &McpServerConfig) -> Self {
        Self { cfg: cfg.clone(), client: Mutex::new(None), catalog: Mutex::new(None) }
    }

    /// Whether `cfg` is this server: same name (tools are namespaced by it), URL, transport,
    /// headers and timeout. The tool filter is not part of it: it is per agent.
    fn serves(&self, cfg: &McpServerConfig) -> bool {
        let own = &self.cfg;
        own.name == cfg.name
            && own.url == cfg.url
            && own.transport == cfg.transport
            && own.headers == cfg.headers
            && own.timeout == cfg.timeout
            && own.prefix_tools == cfg.prefix_tools
    }
}

/// The outcome of one tool call, as it goes back to the LLM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    pub text: String,
    pub is_error: bool,
}

impl McpPool {
    pub fn new(settings: McpSettings, secrets: Arc<dyn SecretStore>) -> Self {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "custom HTTP client settings refused; using defaults");
                reqwest::Client::new()
            });
        Self {
            inner: Arc::new(PoolInner {
                settings,
                secrets,
                http,
                servers: StdMutex::new(HashMap::new()),
                agents: AgentCache::default(),
                shared: None,
            }),
        }
    }

    /// Shares tool lists through `cache`: a server another container listed recently is not
    /// listed again (no initialize, no `tools/list` before the first LLM call); a stale entry is
    /// served while one caller refreshes it. Call before the pool is cloned.
    pub fn with_shared_catalog(mut self, cache: Arc<dyn CatalogCache>, settings: CatalogSettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.shared = Some(SharedCatalog { cache, settings });
        } else {
            tracing::warn!("shared catalog ignored: the MCP pool was already in use");
        }
        self
    }

    /// The pool's server for `cfg`, created (not connected) on first use.
    pub(super) fn conn(&self, cfg: &McpServerConfig) -> Arc<ServerConn> {
        let mut servers = lock(&self.inner.servers);
        if let Some(conn) =
            servers.get(cfg.url.as_str()).and_then(|same_url| same_url.iter().find(|c| c.serves(cfg)))
        {
            return conn.clone();
        }
        let conn = Arc::new(ServerConn::new(cfg));
        servers.entry(cfg.url.as_str().to_owned()).or_default().push(conn.clone());
        conn
    }

    /// Runs `op` on the server's live client within the server's timeout. A client found dead
    /// (nothing was sent) is replaced and `op` runs once more; a client whose transport failed
    /// is dropped so the next use reconnects. A JSON-RPC error from the server is `Ok(Err)`.
    /// `headers`: already rendered by the caller, if a session must be set up.
    pub(super) async fn with_client<T, Fut>(
        &self,
        conn: &Arc<ServerConn>,
        headers: Option<&Headers>,
        op: impl Fn(Arc<Client>) -> Fut,
    ) -> Result<Result<T, rmcp::ErrorData>, McpError>
    where
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let cfg = &conn.cfg;
        let mut resent = false;
        loop {
            let client = self.client(conn, headers).await?;
            let error = match tokio::time::timeout(cfg.timeout, op(client.clone())).await {
                Ok(Ok(value)) => return Ok(Ok(value)),
                Ok(Err(ServiceError::McpError(e))) => return Ok(Err(e)),
                Ok(Err(e)) => e,
                Err(_) => return Err(timeout_error(cfg)),
            };
            if !resent && stale_transport(&error, &client) {
                drop_client(conn, &client).await;
                resent = true;
                continue;
            }
            if is_transport(&error) {
                drop_client(conn, &client).await;
            }
            return Err(McpError::from_service(&cfg.name, error));
        }
    }

    /// Calls one tool. `arguments` is the model's JSON text; anything wrong with it, an unknown
    /// tool, or a JSON-RPC error from the server comes back as an error outcome for the LLM.
    /// Only a server that cannot be reached or does not answer in time is an `Err`.
    pub async fn call(&self, route: &ToolRoute, arguments: &str) -> Result<ToolOutcome, McpError> {
        let args: JsonObject = match arguments.trim() {
            "" => JsonObject::new(),
            text => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(map)) => map,
                Ok(other) => {
                    return Ok(ToolOutcome {
                        text: format!("arguments must be a JSON object, got: {other}"),
                        is_error: true,
                    });
                }
                Err(e) => {
                    return Ok(ToolOutcome {
                        text: format!("arguments are not valid JSON: {e}"),
                        is_error: true,
                    });
                }
            },
        };
        let params = CallToolRequestParams::new(route.tool.clone()).with_arguments(args);
        let called = self
            .with_client(&route.server, None, |client| {
                let params = params.clone();
                async move { client.call_tool(params).await }
            })
            .await?;
        Ok(match called {
            Ok(result) => {
                let (text, is_error) = result_text(&result);
                ToolOutcome { text, is_error }
            }
            Err(e) => ToolOutcome { text: format!("MCP error {}: {}", e.code.0, e.message), is_error: true },
        })
    }

    /// The live client of `conn`, connecting (initialize) when there is none or it has died.
    async fn client(
        &self,
        conn: &Arc<ServerConn>,
        headers: Option<&Headers>,
    ) -> Result<Arc<Client>, McpError> {
        let mut slot = conn.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let client = Arc::new(self.connect(&conn.cfg, headers).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn connect(&self, cfg: &McpServerConfig, headers: Option<&Headers>) -> Result<Client, McpError> {
        let headers = match headers {
            Some(rendered) => rendered.clone(),
            None => Headers::render(cfg, self.inner.secrets.as_ref()).await?,
        };
        let transport_cfg = StreamableHttpClientTransportConfig::with_uri(cfg.url.as_str())
            .custom_headers(headers.into_map());
        let transport = StreamableHttpClientTransport::with_client(self.inner.http.clone(), transport_cfg);
        let started = Instant::now();
        let info = client_info();
        match tokio::time::timeout(cfg.timeout, info.serve(transport)).await {
            Ok(Ok(client)) => {
                tracing::info!(server = %cfg.name, url = %cfg.url, ms = started.elapsed().as_millis() as u64, "MCP session initialised");
                Ok(client)
            }
            Ok(Err(e)) => Err(McpError::Connect { server: cfg.name.clone(), source: Box::new(e) }),
            Err(_) => Err(timeout_error(cfg)),
        }
    }
}

fn client_info() -> ClientConfig {
    let mut info = ClientConfig::default();
    info.client_info.name = "teal-serverless".into();
    info.client_info.version = env!("CARGO_PKG_VERSION").into();
    info
}

/// The client's transport was already closed when we used it: nothing was sent.
fn stale_transport(e: &ServiceError, client: &Client) -> bool {
    matches!(e, ServiceError::TransportClosed) || client.is_closed()
}

async fn drop_client(conn: &ServerConn, dead: &Arc<Client>) {
    let mut slot = conn.client.lock().await;
    if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, dead)) {
        *slot = None;
    }
}

/// A std mutex's guard, poisoned or not: every critical section here is one insert or one
/// replace, so a panic cannot leave the data half-written.
pub(super) fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn timeout_error(cfg: &McpServerConfig) -> McpError {
    McpError::Timeout { server: cfg.name.clone(), timeout_ms: cfg.timeout.as_millis() }
}
