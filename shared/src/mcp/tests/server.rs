//! A tiny streamable-HTTP MCP server for the pool's tests: the tools a test gives it, a `sleep`
//! tool for timeouts, `ask` (asks the client for user input, the pre-2026 way) and `needs_input`
//! (answers `input_required`, the 2026-07-28 way), and counters of what it was asked, HTTP
//! requests included. It speaks the revisions up to a chosen one (an older server answers
//! `server/discover` as the unknown method it is to it), with sessions or without. It runs in
//! its own runtime on 127.0.0.1:0, so a test can kill it (every open connection closes with it)
//! and bring it back on the same port, as the same or a newer server.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, DiscoverResult,
    ElicitRequest, ElicitRequestParams, ElicitationSchema, InitializeRequestParams, InitializeResult,
    InputRequest, InputRequiredResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};

/// What the server was asked, by method, and how many HTTP requests reached it.
#[derive(Default)]
pub struct Counts {
    http: AtomicUsize,
    discover: AtomicUsize,
    initialize: AtomicUsize,
    list: AtomicUsize,
    call: AtomicUsize,
}

/// How a server is run: the newest revision it speaks, whether it keeps sessions, and the
/// cache hints its `tools/list` gives (`ttlMs`, `cacheScope: public` or `private`).
#[derive(Debug, Clone)]
pub struct Speaks {
    pub newest: ProtocolVersion,
    pub stateless: bool,
    pub ttl_ms: Option<u64>,
    pub public: Option<bool>,
    /// Requests need a token this guard admits (OAuth resource server).
    pub guard: Option<Arc<super::guard::Guard>>,
}

impl Speaks {
    /// 2026-07-28 (and every older revision), its lists fresh for five minutes.
    pub fn newest() -> Self {
        Self { ttl_ms: Some(300_000), ..Self::only_up_to(ProtocolVersion::V_2026_07_28) }
    }
    pub fn only_up_to(newest: ProtocolVersion) -> Self {
        Self { newest, stateless: false, ttl_ms: None, public: None, guard: None }
    }
    pub fn stateless(self) -> Self {
        Self { stateless: true, ..self }
    }
    pub fn protected_by(self, guard: Arc<super::guard::Guard>) -> Self {
        Self { guard: Some(guard), ..self }
    }
    pub fn cache_hints(self, ttl_ms: u64, public: bool) -> Self {
        Self { ttl_ms: Some(ttl_ms), public: Some(public), ..self }
    }
    fn versions(&self) -> Vec<ProtocolVersion> {
        ProtocolVersion::KNOWN_VERSIONS.iter().filter(|v| **v <= self.newest).cloned().collect()
    }
}

#[derive(Clone)]
struct Handler {
    tools: Arc<Vec<Tool>>,
    counts: Arc<Counts>,
    speaks: Speaks,
    versions: Arc<Vec<ProtocolVersion>>,
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.protocol_version = self.speaks.newest.clone();
        info
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(self.versions.as_ref().clone())
    }

    async fn discover(&self, _context: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData> {
        if self.speaks.newest.has_initialize() {
            // A server from before 2026-07-28 has never heard of the method.
            return Err(ErrorData::method_not_found::<rmcp::model::DiscoverRequestMethod>());
        }
        Ok(DiscoverResult::from_server_info(self.versions.as_ref().clone(), self.get_info()))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.counts.initialize.fetch_add(1, Ordering::SeqCst);
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.counts.list.fetch_add(1, Ordering::SeqCst);
        let mut listed = ListToolsResult::with_all_items(self.tools.as_ref().clone());
        listed.ttl_ms = self.speaks.ttl_ms;
        listed.cache_scope =
            self.speaks.public.map(|public| if public { CacheScope::Public } else { CacheScope::Private });
        Ok(listed)
    }

    /// `sleep` waits `ms` milliseconds, `ask` asks for user input, `needs_input` answers
    /// `input_required`; any other tool answers `called {name}` (and `structuredContent`
    /// `{"called": name}` when the tool declares an output schema).
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.counts.call.fetch_add(1, Ordering::SeqCst);
        match request.name.as_ref() {
            "sleep" => {
                let ms = request.arguments.as_ref().and_then(|a| a.get("ms")).and_then(|v| v.as_u64());
                tokio::time::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
            }
            "ask" => {
                let schema = ElicitationSchema::builder()
                    .required_string("name")
                    .build()
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                let asked = context
                    .peer
                    .create_elicitation(ElicitRequestParams::FormElicitationParams {
                        meta: None,
                        message: "What is your name?".into(),
                        requested_schema: schema,
                    })
                    .await;
                let text = match asked {
                    Ok(answer) => format!("answered {:?}", answer.action),
                    Err(e) => format!("could not ask: {e}"),
                };
                return Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into());
            }
            "needs_input" => {
                let schema = ElicitationSchema::builder()
                    .required_string("name")
                    .build()
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                let elicit = ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
                    meta: None,
                    message: "What is your name?".into(),
                    requested_schema: schema,
                });
                let requests = BTreeMap::from([("name".to_owned(), InputRequest::Elicitation(elicit))]);
                return Ok(CallToolResponse::InputRequired(InputRequiredResult::new(Some(requests), None)));
            }
            _ => {}
        }
        let text = ContentBlock::text(format!("called {}", request.name));
        let declared = self.tools.iter().any(|t| t.name == request.name && t.output_schema.is_some());
        let mut result = CallToolResult::success(vec![text]);
        if declared {
            result.structured_content = Some(serde_json::json!({ "called": request.name }));
        }
        Ok(result.into())
    }
}

/// Counts the request, and a `server/discover` however early the server refuses it (an older
/// server answers it with a 400 before any handler runs).
async fn count(
    counts: &Counts,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    counts.http.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    if bytes.windows(17).any(|w| w == b"\"server/discover\"") {
        counts.discover.fetch_add(1, Ordering::SeqCst);
    }
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// `401` with the challenge unless the guard admits the request's token.
async fn guarded(
    guard: &super::guard::Guard,
    well_known: &str,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if guard.admits(authorization.as_deref()).await {
        return next.run(req).await;
    }
    let challenge = format!("Bearer error=\"invalid_token\", resource_metadata=\"{well_known}\"");
    axum::response::Response::builder()
        .status(401)
        .header("www-authenticate", challenge)
        .body(axum::body::Body::empty())
        .unwrap_or_default()
}

/// A tool with an object schema and no properties.
pub fn tool(name: &'static str) -> Tool {
    Tool::new(name, format!("the {name} tool"), Arc::new(serde_json::Map::new()))
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

pub struct TestServer {
    /// The `/mcp` endpoint.
    pub url: String,
    addr: SocketAddr,
    tools: Arc<Vec<Tool>>,
    counts: Arc<Counts>,
    speaks: StdMutex<Speaks>,
    running: Option<Running>,
}

impl TestServer {
    /// Serves `tools` (plus whatever a test calls by name), every revision, with sessions for
    /// the old ones, until killed or dropped.
    pub fn start(tools: Vec<Tool>) -> Self {
        Self::speaking(tools, Speaks::newest())
    }

    /// Serves `tools` as a server that speaks `speaks`.
    pub fn speaking(tools: Vec<Tool>, speaks: Speaks) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut server = Self {
            url: format!("http://{addr}/mcp"),
            addr,
            tools: Arc::new(tools),
            counts: Arc::default(),
            speaks: StdMutex::new(speaks),
            running: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let speaks = self.speaks.lock().expect("speaks").clone();
        let handler = Handler {
            tools: self.tools.clone(),
            counts: self.counts.clone(),
            versions: Arc::new(speaks.versions()),
            speaks: speaks.clone(),
        };
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(!speaks.stateless)
            .with_json_response(speaks.stateless);
        let service = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let counts = self.counts.clone();
        let mut router = axum::Router::new().nest_service("/mcp", service);
        if let Some(guard) = speaks.guard.clone() {
            guard.set_resource(&self.url);
            let metadata = guard.clone();
            let served = move || {
                let metadata = metadata.clone();
                async move { axum::Json(metadata.metadata()) }
            };
            let well_known = format!("http://{}/.well-known/oauth-protected-resource/mcp", self.addr);
            router = router
                .layer(axum::middleware::from_fn(
                    move |req: axum::extract::Request, next: axum::middleware::Next| {
                        let (guard, well_known) = (guard.clone(), well_known.clone());
                        async move { guarded(&guard, &well_known, req, next).await }
                    },
                ))
                .route("/.well-known/oauth-protected-resource/mcp", axum::routing::get(served.clone()))
                .route("/.well-known/oauth-protected-resource", axum::routing::get(served));
        }
        let router = router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let counts = counts.clone();
                async move { count(&counts, req, next).await }
            },
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    _ = axum::serve(listener, router) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: the server is gone at once.
            rt.shutdown_background();
        });
        self.running = Some(Running { stop, thread });
    }

    /// Stops the server: the listener and every open connection are closed when this returns.
    pub fn kill(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            r.thread.join().expect("server thread");
        }
    }

    /// A fresh server (no sessions) on the same port, same tools, same counters.
    pub fn restart(&mut self) {
        self.kill();
        self.serve(std::net::TcpListener::bind(self.addr).expect("rebind"));
    }

    /// [`Self::restart`] as a server that speaks `speaks` (an upgrade, or a downgrade).
    pub fn restart_speaking(&mut self, speaks: Speaks) {
        *self.speaks.lock().expect("speaks") = speaks;
        self.restart();
    }

    pub fn http_requests(&self) -> usize {
        self.counts.http.load(Ordering::SeqCst)
    }

    pub fn discovers(&self) -> usize {
        self.counts.discover.load(Ordering::SeqCst)
    }

    pub fn initializes(&self) -> usize {
        self.counts.initialize.load(Ordering::SeqCst)
    }

    pub fn lists(&self) -> usize {
        self.counts.list.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> usize {
        self.counts.call.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}
