//! The pool of MCP clients, one per distinct server, kept for the life of the process: how a
//! session is set up, how a call runs on it (timeout, one resend on a dead client), and when a
//! client is thrown away.
//!
//! A server is its name, URL, headers and timeout: agents that configure the same server share
//! one client and one catalog. Looking one up allocates nothing.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, JsonObject, ServerResult,
};
use rmcp::service::{PeerRequestOptions, RoleClient, RunningService, ServiceError};
use tokio::sync::Mutex;

use super::authorize;
use super::catalog::{Catalog, SharedCatalog};
use super::convert::result_text;
use super::error::{AuthStep, challenge, is_transport};
use super::handler::{Asked, TealClient};
use super::headers::Headers;
use super::revision::{self, Revisions};
use super::tools::AgentCache;
use super::{McpError, ToolRoute};
use crate::config::McpServerConfig;
use crate::secrets::SecretStore;
use crate::store::{CatalogCache, CatalogSettings};
use crate::telemetry::metrics;
use tracing::Instrument;

pub(super) type Client = RunningService<RoleClient, TealClient>;

/// A connected client and whether it has been proven: one set up from a remembered revision
/// without a handshake is unproven until the server answers a request on it.
pub(super) struct Live {
    client: Client,
    unproven: AtomicBool,
    /// When the OAuth token this client sends stops working.
    token_expires: Option<std::time::Instant>,
}

/// A client whose token has less than this left is replaced before use.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

impl Live {
    pub(super) fn new(client: Client, unproven: bool, token_expires: Option<std::time::Instant>) -> Self {
        Self { client, unproven: AtomicBool::new(unproven), token_expires }
    }

    /// Closed, or its token about to expire: make another.
    fn is_spent(&self) -> bool {
        self.is_closed()
            || self
                .token_expires
                .is_some_and(|at| at.saturating_duration_since(std::time::Instant::now()) < TOKEN_MARGIN)
    }

    fn prove(&self) {
        self.unproven.store(false, Ordering::Relaxed);
    }

    fn is_unproven(&self) -> bool {
        self.unproven.load(Ordering::Relaxed)
    }
}

impl Deref for Live {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

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
    pub(super) http: reqwest::Client,
    /// What each server URL speaks, as learned here (and from the shared catalog).
    pub(super) revisions: Revisions,
    /// By URL; each URL's servers differ in name, headers or timeout.
    servers: StdMutex<HashMap<String, Vec<Arc<ServerConn>>>>,
    pub(super) agents: AgentCache,
    /// Tool lists shared across containers (Redis), if configured.
    pub(super) shared: Option<SharedCatalog>,
    /// Tokens for servers configured with OAuth, if set up.
    pub(super) oauth: Option<Arc<crate::oauth::OAuth>>,
}

/// One configured server: its client (connected lazily, replaced when its transport dies) and
/// its catalog.
pub(super) struct ServerConn {
    pub(super) cfg: McpServerConfig,
    /// The caller whose token this connection carries (per-user OAuth servers only).
    pub(super) caller: Option<Arc<str>>,
    /// The OAuth token of the last client made (to name it when the server refuses it).
    pub(super) token: StdMutex<Option<secrecy::SecretString>>,
    pub(super) client: Mutex<Option<Arc<Live>>>,
    pub(super) catalog: Mutex<Option<Arc<Catalog>>>,
    /// A client was set up before: the next one is a reconnect (metrics).
    connected: std::sync::atomic::AtomicBool,
}

impl ServerConn {
    fn new(cfg: &McpServerConfig, caller: Option<Arc<str>>) -> Self {
        Self {
            cfg: cfg.clone(),
            caller,
            token: StdMutex::new(None),
            client: Mutex::new(None),
            catalog: Mutex::new(None),
            connected: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether `cfg` is this server: same name (tools are namespaced by it), URL, transport,
    /// headers and timeout. The tool filter is not part of it: it is per agent.
    fn serves(&self, cfg: &McpServerConfig, caller: Option<&str>) -> bool {
        let own = &self.cfg;
        self.caller.as_deref() == caller
            && own.name == cfg.name
            && own.url == cfg.url
            && own.transport == cfg.transport
            && own.headers == cfg.headers
            && own.timeout == cfg.timeout
            && own.prefix_tools == cfg.prefix_tools
            && own.oauth == cfg.oauth
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
        let http = crate::http_client::builder()
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
                revisions: Revisions::default(),
                servers: StdMutex::new(HashMap::new()),
                agents: AgentCache::default(),
                shared: None,
                oauth: None,
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
    /// For a per-user OAuth server, the current caller's.
    pub(super) fn conn(&self, cfg: &McpServerConfig) -> Arc<ServerConn> {
        let caller = authorize::caller_for(cfg);
        let mut servers = lock(&self.inner.servers);
        if let Some(conn) = servers
            .get(cfg.url.as_str())
            .and_then(|same_url| same_url.iter().find(|c| c.serves(cfg, caller.as_deref())))
        {
            return conn.clone();
        }
        let same_url = servers.entry(cfg.url.as_str().to_owned()).or_default();
        if caller.is_some()
            && same_url.iter().filter(|c| c.caller.is_some()).count() >= authorize::MAX_CALLERS
        {
            // Callers' connections nobody holds any more (no agent tool set points at them).
            same_url.retain(|c| c.caller.is_none() || Arc::strong_count(c) > 1);
        }
        let conn = Arc::new(ServerConn::new(cfg, caller));
        same_url.push(conn.clone());
        conn
    }

    /// The OAuth layer, when set up (the callback route finishes authorizations through it).
    pub fn oauth(&self) -> Option<&Arc<crate::oauth::OAuth>> {
        self.inner.oauth.as_ref()
    }

    /// Reaches servers configured with OAuth through `oauth` (tokens per caller or per
    /// service). Call before the pool is cloned.
    pub fn with_oauth(mut self, oauth: Arc<crate::oauth::OAuth>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.oauth = Some(oauth);
        } else {
            tracing::warn!("OAuth ignored: the MCP pool was already in use");
        }
        self
    }

    /// Runs `op` on the server's live client within the server's timeout. A client found dead
    /// (nothing was sent) is replaced and `op` runs once more; so is a client set up from a
    /// remembered revision whose first request the server refused (the revision is forgotten and
    /// the server probed again). A client whose transport failed is dropped so the next use
    /// reconnects. A JSON-RPC error from the server is `Ok(Err)`. `headers`: already rendered
    /// by the caller, if a session must be set up.
    pub(super) async fn with_client<T, Fut>(
        &self,
        conn: &Arc<ServerConn>,
        headers: Option<&Headers>,
        op: impl Fn(Arc<Live>) -> Fut,
    ) -> Result<Result<T, rmcp::ErrorData>, McpError>
    where
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let cfg = &conn.cfg;
        let (mut resent, mut refused) = (false, None);
        loop {
            let live = match self.client(conn, headers, refused.as_ref()).await {
                Ok(live) => live,
                // The server refused the token while setting up: one refresh, then the error.
                Err(McpError::Auth { step: AuthStep::Server, .. })
                    if cfg.oauth.is_some() && refused.is_none() =>
                {
                    refused = Some(lock(&conn.token).clone().unwrap_or_else(|| "".into()));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let error = match tokio::time::timeout(cfg.timeout + CALL_MARGIN, op(live.clone())).await {
                Ok(Ok(value)) => {
                    live.prove();
                    return Ok(Ok(value));
                }
                Ok(Err(ServiceError::McpError(e)))
                    if !(live.is_unproven() && revision::rejects_revision(&e)) =>
                {
                    live.prove();
                    return Ok(Err(e));
                }
                Ok(Err(ServiceError::Timeout { .. })) | Err(_) => return Err(timeout_error(cfg)),
                Ok(Err(e)) => e,
            };
            if cfg.oauth.is_some() && refused.is_none() && challenge(&error).is_some() {
                // The server refused the token on a live client: one refresh, then the error.
                refused = Some(lock(&conn.token).clone().unwrap_or_else(|| "".into()));
                drop_client(conn, &live).await;
                continue;
            }
            // The first request of a client set up from memory failed at the HTTP level (rmcp
            // then reports only "closed"), or was refused: probe the server again (a 401 then
            // surfaces at the probe, with its challenge) and resend once. Nothing was processed.
            let first_failed = matches!(error, ServiceError::TransportClosed);
            if !resent && live.is_unproven() && (first_failed || revision::answered_but_refused(&error)) {
                tracing::warn!(server = %cfg.name, "MCP server refused the first request on a remembered revision; probing it again");
                self.inner.revisions.forget(cfg.url.as_str());
                drop_client(conn, &live).await;
                resent = true;
                continue;
            }
            if !resent && stale_transport(&error, &live) {
                drop_client(conn, &live).await;
                resent = true;
                continue;
            }
            if is_transport(&error) {
                drop_client(conn, &live).await;
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
        let timeout = route.server.cfg.timeout;
        let called =
            self.with_client(&route.server, None, |live| call_once(live, params.clone(), timeout)).await?;
        let input_required = |what: &str| McpError::InputRequired {
            server: route.server.cfg.name.clone(),
            tool: route.tool.clone(),
            what: what.to_owned(),
        };
        match called {
            Ok((_, Some(asked))) => Err(input_required(asked.describe())),
            Ok((CallToolResponse::Complete(result), None)) => {
                let (text, is_error) = result_text(&result);
                Ok(ToolOutcome { text, is_error })
            }
            Ok((CallToolResponse::InputRequired(asked), None)) => {
                let kinds: Vec<&str> = asked
                    .input_requests
                    .iter()
                    .flat_map(|requests| requests.values())
                    .map(|r| match r {
                        rmcp::model::InputRequest::Elicitation(_) => "elicitation",
                        rmcp::model::InputRequest::CreateMessage(_) => "sampling",
                        rmcp::model::InputRequest::ListRoots(_) => "roots",
                        _ => "input",
                    })
                    .collect();
                Err(input_required(&format!("input_required: {}", kinds.join(", "))))
            }
            Ok((_, None)) => Err(McpError::Protocol {
                server: route.server.cfg.name.clone(),
                source: ServiceError::UnexpectedResponse,
            }),
            Err(e) => {
                Ok(ToolOutcome { text: format!("MCP error {}: {}", e.code.0, e.message), is_error: true })
            }
        }
    }

    /// The live client of `conn`, connecting when there is none, it has died or its token is
    /// about to expire. `refused`: the token the server just refused (get another).
    async fn client(
        &self,
        conn: &Arc<ServerConn>,
        headers: Option<&Headers>,
        refused: Option<&secrecy::SecretString>,
    ) -> Result<Arc<Live>, McpError> {
        let mut slot = conn.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_spent()
            && refused.is_none()
        {
            return Ok(c.clone());
        }
        // A root span: the client's background tasks outlive this request, and would otherwise
        // keep its spans (and their traces) open for as long as the connection lives.
        let span = tracing::info_span!(parent: None, "mcp_connect", server = %conn.cfg.name);
        let live = match self.connect(conn, headers, refused).instrument(span).await {
            Ok(live) => Arc::new(live),
            Err(e) => {
                metrics::mcp_connection_failure(&conn.cfg.name);
                return Err(e);
            }
        };
        if conn.connected.swap(true, std::sync::atomic::Ordering::Relaxed) {
            metrics::mcp_reconnect(&conn.cfg.name);
        }
        *slot = Some(live.clone());
        Ok(live)
    }
}

/// What a tool call can wait beyond the server's timeout before the pool gives up on it: rmcp
/// times the request out first (and tells the server), this only bounds the rest.
const CALL_MARGIN: Duration = Duration::from_millis(250);

/// One `tools/call`, and whether the server asked for user input while it ran. rmcp cancels
/// it at the server when `timeout` passes.
async fn call_once(
    live: Arc<Live>,
    params: CallToolRequestParams,
    timeout: Duration,
) -> Result<(CallToolResponse, Option<Asked>), ServiceError> {
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    let handle = live.send_request_with_option(request, PeerRequestOptions::with_timeout(timeout)).await?;
    let id = handle.id.clone();
    let answer = handle.await_response().await;
    let asked = live.service().take_asked(&id);
    let response = match answer? {
        ServerResult::CallToolResult(result) => CallToolResponse::Complete(result),
        ServerResult::InputRequiredResult(result) => CallToolResponse::InputRequired(result),
        ServerResult::CreateTaskResult(result) => CallToolResponse::Task(result),
        _ => return Err(ServiceError::UnexpectedResponse),
    };
    Ok((response, asked))
}

/// The client's transport was already closed when we used it: nothing was sent.
fn stale_transport(e: &ServiceError, client: &Live) -> bool {
    matches!(e, ServiceError::TransportClosed) || client.is_closed()
}

pub(super) async fn drop_client(conn: &ServerConn, dead: &Arc<Live>) {
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

pub(super) fn timeout_error(cfg: &McpServerConfig) -> McpError {
    McpError::Timeout { server: cfg.name.clone(), timeout_ms: cfg.timeout.as_millis() }
}
