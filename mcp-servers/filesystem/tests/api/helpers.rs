//! Spawning a server on a free port and talking to it.

use std::path::{Path, PathBuf};

use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, ClientConfig},
    service::RunningService,
    transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
};
use serde_json::Value;
use teal_mcp_filesystem::{FsConfig, ServerOptions, SessionMode, serve_with_options};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Client = RunningService<RoleClient, ClientConfig>;

/// A running server. Dropping it shuts the server down.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// The served directory (canonical path).
    pub root: PathBuf,
    /// A sibling directory outside the root, holding `secret.txt` = [`SECRET`].
    pub outside: PathBuf,
    _root_dir: TempDir,
    _outside_dir: TempDir,
    _stop: oneshot::Sender<()>,
}

pub const SECRET: &str = "top secret, outside the root";

impl TestServer {
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Writes `content` at `relative` under the root, creating parents.
    pub fn put(&self, relative: &str, content: impl AsRef<[u8]>) -> Result<PathBuf, Error> {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
        Ok(path)
    }

    pub async fn client(&self) -> Result<Client, Error> {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.mcp_url()),
        );
        Ok(ClientConfig::default().serve(transport).await?)
    }
}

pub async fn spawn(mode: SessionMode) -> Result<TestServer, Error> {
    spawn_with(ServerOptions::new(mode)).await
}

pub async fn spawn_with(options: ServerOptions) -> Result<TestServer, Error> {
    let root_dir = tempfile::tempdir()?;
    let outside_dir = tempfile::tempdir()?;
    let outside = outside_dir.path().canonicalize()?;
    std::fs::write(outside.join("secret.txt"), SECRET)?;
    let cfg = FsConfig::new(root_dir.path())?;
    let root = cfg.root.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = serve_with_options(listener, cfg, &options, shutdown).await {
            eprintln!("test server failed: {e}");
        }
    });
    Ok(TestServer { addr, root, outside, _root_dir: root_dir, _outside_dir: outside_dir, _stop: stop })
}

/// The outcome of one tool call: `isError` and the text of its single content block.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub is_error: bool,
    pub text: String,
}

impl Outcome {
    pub fn ok(text: impl Into<String>) -> Self {
        Self { is_error: false, text: text.into() }
    }

    pub fn err(text: impl Into<String>) -> Self {
        Self { is_error: true, text: text.into() }
    }
}

pub async fn call(client: &Client, tool: &str, args: Value) -> Result<Outcome, Error> {
    let Value::Object(args) = args else {
        return Err("tool arguments must be a JSON object".into());
    };
    let result = client.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)).await?;
    let [block] = result.content.as_slice() else {
        return Err(format!("expected one content block, got {:?}", result.content).into());
    };
    let text = block.as_text().ok_or_else(|| format!("expected text content, got {block:?}"))?.text.clone();
    Ok(Outcome { is_error: result.is_error == Some(true), text })
}

/// POSTs one JSON-RPC message to `/mcp` the way a bare HTTP client would.
pub async fn post_mcp(server: &TestServer, body: &Value) -> Result<reqwest::Response, Error> {
    Ok(reqwest::Client::new()
        .post(server.mcp_url())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await?)
}

pub fn read(path: &Path) -> Result<String, Error> {
    Ok(std::fs::read_to_string(path)?)
}
