//! A tiny streamable-HTTP MCP server for the pool's tests: the tools a test gives it, a `sleep`
//! tool for timeouts, and counters of what it was asked. It runs in its own runtime on
//! 127.0.0.1:0, so a test can kill it (every open connection closes with it) and bring it back
//! on the same port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};

/// What the server was asked, by method.
#[derive(Default)]
pub struct Counts {
    initialize: AtomicUsize,
    list: AtomicUsize,
    call: AtomicUsize,
}

#[derive(Clone)]
struct Handler {
    tools: Arc<Vec<Tool>>,
    counts: Arc<Counts>,
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
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
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    /// `sleep` waits `ms` milliseconds; any other tool answers `called {name}`.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.counts.call.fetch_add(1, Ordering::SeqCst);
        if request.name == "sleep" {
            let ms = request.arguments.as_ref().and_then(|a| a.get("ms")).and_then(|v| v.as_u64());
            tokio::time::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("called {}", request.name))]).into())
    }
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
    running: Option<Running>,
}

impl TestServer {
    /// Serves `tools` (plus whatever a test calls by name) until killed or dropped.
    pub fn start(tools: Vec<Tool>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut server = Self {
            url: format!("http://{addr}/mcp"),
            addr,
            tools: Arc::new(tools),
            counts: Arc::default(),
            running: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let handler = Handler { tools: self.tools.clone(), counts: self.counts.clone() };
        let service = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_legacy_session_mode(true),
        );
        let router = axum::Router::new().nest_service("/mcp", service);
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
