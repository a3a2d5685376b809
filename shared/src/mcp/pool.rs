//! The pool of MCP clients, one per distinct server, kept for the life of the process.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, JsonObject};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use super::convert::{result_text, tool_spec};
use super::error::is_transport;
use super::{HeaderError, McpError};
use crate::config::{AgentConfig, McpServerConfig};
use crate::llm::ToolSpec;
use crate::secrets::SecretStore;
use crate::store::{CatalogCache, CatalogKey, CatalogLookup, CatalogSettings, lookup_catalog};

type Client = RunningService<RoleClient, ClientConfig>;

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
    inner: Arc<PoolInner>,
}

struct PoolInner {
    settings: McpSettings,
    secrets: Arc<dyn SecretStore>,
    http: reqwest::Client,
    servers: StdMutex<HashMap<String, Arc<ServerConn>>>,
    /// Tool lists shared across containers (Redis), if configured.
    shared: Option<SharedCatalog>,
}

struct SharedCatalog {
    cache: Arc<dyn CatalogCache>,
    settings: CatalogSettings,
}

/// One configured server: its client (connected lazily, replaced when its transport dies) and
/// its filtered, namespaced catalog.
pub(super) struct ServerConn {
    cfg: McpServerConfig,
    pub(super) client: Mutex<Option<Arc<Client>>>,
    catalog: Mutex<Option<Catalog>>,
}

struct Catalog {
    fetched: Instant,
    tools: Arc<Vec<(ToolSpec, String)>>,
}

/// Where a namespaced tool name leads.
#[derive(Clone)]
pub struct ToolRoute {
    server: Arc<ServerConn>,
    tool: String,
}

impl ToolRoute {
    pub fn server_name(&self) -> &str {
        &self.server.cfg.name
    }
    pub fn tool_name(&self) -> &str {
        &self.tool
    }
}

/// The tools one agent may use in one request: specs for the LLM and routes for the calls.
#[derive(Clone, Default)]
pub struct AgentTools {
    pub specs: Vec<ToolSpec>,
    routes: HashMap<String, ToolRoute>,
}

impl AgentTools {
    pub fn route(&self, namespaced: &str) -> Option<&ToolRoute> {
        self.routes.get(namespaced)
    }
    pub fn len(&self) -> usize {
        self.specs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
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

    pub(super) fn conn(&self, cfg: &McpServerConfig) -> Arc<ServerConn> {
        let key = format!("{}|{}|{:?}|{:?}", cfg.name, cfg.url, cfg.headers, cfg.timeout);
        let mut servers = self.inner.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers
            .entry(key)
            .or_insert_with(|| {
                Arc::new(ServerConn { cfg: cfg.clone(), client: Mutex::new(None), catalog: Mutex::new(None) })
            })
            .clone()
    }

    /// The tools of every server of `agent`, listed concurrently (cached per server for the
    /// catalog TTL). Any server that cannot be listed fails the whole call: an agent must not
    /// silently run without the tools its config promises.
    pub async fn agent_tools(&self, agent: &AgentConfig) -> Result<AgentTools, McpError> {
        let servers = &agent.agent.mcp_servers;
        if servers.is_empty() {
            return Ok(AgentTools::default());
        }
        let lists = join_all(servers.iter().map(|cfg| async move {
            let conn = self.conn(cfg);
            let tools = self.catalog(&conn).await?;
            Ok::<_, McpError>((conn, tools))
        }))
        .await;
        let mut out = AgentTools::default();
        for listed in lists {
            let (conn, tools) = listed?;
            for (spec, tool) in tools.iter() {
                if out.routes.contains_key(&spec.name) {
                    tracing::warn!(tool = %spec.name, "two MCP tools share one namespaced name; keeping the first");
                    continue;
                }
                out.routes.insert(spec.name.clone(), ToolRoute { server: conn.clone(), tool: tool.clone() });
                out.specs.push(spec.clone());
            }
        }
        Ok(out)
    }

    async fn catalog(&self, conn: &Arc<ServerConn>) -> Result<Arc<Vec<(ToolSpec, String)>>, McpError> {
        let mut cached = conn.catalog.lock().await;
        if let Some(c) = cached.as_ref()
            && c.fetched.elapsed() < self.inner.settings.catalog_ttl
        {
            return Ok(c.tools.clone());
        }
        let (listed, age) = self.shared_or_list(conn).await?;
        let cfg = &conn.cfg;
        let tools: Vec<(ToolSpec, String)> = listed
            .iter()
            .filter(|t| cfg.tools.permits(&t.name))
            .map(|t| (tool_spec(&cfg.name, t), t.name.to_string()))
            .collect();
        tracing::info!(server = %cfg.name, listed = listed.len(), offered = tools.len(), "MCP tool catalog refreshed");
        let tools = Arc::new(tools);
        let fetched = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        *cached = Some(Catalog { fetched, tools: tools.clone() });
        Ok(tools)
    }

    /// The server's tools from the shared catalog when it has them (with their age), else listed
    /// from the server and shared. A stale shared entry is used at once; the caller holding the
    /// refresh lease lists the server in the background.
    async fn shared_or_list(
        &self,
        conn: &Arc<ServerConn>,
    ) -> Result<(Vec<rmcp::model::Tool>, Duration), McpError> {
        let Some(shared) = &self.inner.shared else {
            return Ok((self.list(conn).await?, Duration::ZERO));
        };
        let key = CatalogKey::new(conn.cfg.url.as_str(), &self.auth_scope(&conn.cfg).await?);
        let entry = match lookup_catalog(shared.cache.as_ref(), &key, &shared.settings).await {
            CatalogLookup::Fresh(entry) => entry,
            CatalogLookup::Stale { entry, refresh } => {
                if refresh {
                    let (pool, conn, key) = (self.clone(), conn.clone(), key.clone());
                    tokio::spawn(async move { pool.list_and_share(&conn, &key).await });
                }
                entry
            }
            CatalogLookup::Missing => return Ok((self.list_and_share(conn, &key).await?, Duration::ZERO)),
        };
        let tools: Vec<rmcp::model::Tool> =
            entry.tools.iter().filter_map(|t| serde_json::from_value(t.clone()).ok()).collect();
        if tools.len() != entry.tools.len() {
            tracing::warn!(server = %conn.cfg.name, "shared catalog entry unreadable; listing the server");
            return Ok((self.list_and_share(conn, &key).await?, Duration::ZERO));
        }
        Ok((tools, entry.age()))
    }

    async fn list_and_share(
        &self,
        conn: &Arc<ServerConn>,
        key: &CatalogKey,
    ) -> Result<Vec<rmcp::model::Tool>, McpError> {
        let tools = self.list(conn).await?;
        if let Some(shared) = &self.inner.shared {
            let json: Vec<serde_json::Value> =
                tools.iter().filter_map(|t| serde_json::to_value(t).ok()).collect();
            // Failures are logged by the adapter; the next container lists the server itself.
            let _ = shared.cache.put(key, &json, shared.settings.keep_for).await;
        }
        Ok(tools)
    }

    /// Who the tool list was made for: a hash of the rendered headers (tokens included, so two
    /// tenants never share a list, and no token is ever stored).
    async fn auth_scope(&self, cfg: &McpServerConfig) -> Result<String, McpError> {
        let headers = self.render_headers(cfg).await?;
        let mut lines: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{}:{}", k.as_str(), String::from_utf8_lossy(v.as_bytes())))
            .collect();
        lines.sort();
        Ok(crate::util::sha256_hex(lines.join("\n").as_bytes()))
    }

    async fn list(&self, conn: &Arc<ServerConn>) -> Result<Vec<rmcp::model::Tool>, McpError> {
        match self.with_client(conn, |client| async move { client.list_all_tools().await }).await? {
            Ok(tools) => Ok(tools),
            Err(e) => {
                Err(McpError::Protocol { server: conn.cfg.name.clone(), source: ServiceError::McpError(e) })
            }
        }
    }

    /// Runs `op` on the server's live client within the server's timeout. A client found dead
    /// (nothing was sent) is replaced and `op` runs once more; a client whose transport failed
    /// is dropped so the next use reconnects. A JSON-RPC error from the server is `Ok(Err)`.
    pub(super) async fn with_client<T, Fut>(
        &self,
        conn: &Arc<ServerConn>,
        op: impl Fn(Arc<Client>) -> Fut,
    ) -> Result<Result<T, rmcp::ErrorData>, McpError>
    where
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let cfg = &conn.cfg;
        let mut resent = false;
        loop {
            let client = self.client(conn).await?;
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
            .with_client(&route.server, |client| {
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

    /// A real round trip to `cfg`'s server (an uncached `tools/list`), for `/ready`.
    pub async fn check(&self, cfg: &McpServerConfig) -> Result<usize, McpError> {
        let conn = self.conn(cfg);
        let n = self.list(&conn).await?.len();
        Ok(n)
    }

    /// The live client of `conn`, connecting (initialize) when there is none or it has died.
    async fn client(&self, conn: &Arc<ServerConn>) -> Result<Arc<Client>, McpError> {
        let mut slot = conn.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let client = Arc::new(self.connect(&conn.cfg).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The configured headers with their secrets filled in.
    async fn render_headers(
        &self,
        cfg: &McpServerConfig,
    ) -> Result<HashMap<http::HeaderName, http::HeaderValue>, McpError> {
        let mut headers = HashMap::new();
        for (name, template) in &cfg.headers {
            if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("accept") {
                tracing::debug!(server = %cfg.name, header = %name, "header is set by the MCP transport; ignoring the configured value");
                continue;
            }
            let mut values = HashMap::new();
            for secret in template.secret_names() {
                let v = self.inner.secrets.get(secret).await.map_err(|source| McpError::Secret {
                    server: cfg.name.clone(),
                    secret: secret.to_owned(),
                    source,
                })?;
                values.insert(secret, v);
            }
            // Every secret the template names was read above.
            let Ok(rendered) = template
                .render(|n| Ok::<_, Infallible>(values.get(n).map_or("", |v| v.expose_secret()).to_owned()));
            let header_error = |source| McpError::Header { server: cfg.name.clone(), source };
            let value = http::HeaderValue::from_str(&rendered)
                .map_err(|source| header_error(HeaderError::Value { header: name.clone(), source }))?;
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|source| header_error(HeaderError::Name { header: name.clone(), source }))?;
            headers.insert(name, value);
        }
        Ok(headers)
    }

    async fn connect(&self, cfg: &McpServerConfig) -> Result<Client, McpError> {
        let headers = self.render_headers(cfg).await?;
        let transport_cfg =
            StreamableHttpClientTransportConfig::with_uri(cfg.url.as_str()).custom_headers(headers);
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

fn timeout_error(cfg: &McpServerConfig) -> McpError {
    McpError::Timeout { server: cfg.name.clone(), timeout_ms: cfg.timeout.as_millis() }
}
