//! Interoperability with the Python SDK: a FastMCP server (PyPI `mcp` 1.x, which predates
//! 2026-07-28) in stateful and stateless modes, run by python3 on a free port: our probe falls
//! back to `initialize`, the revision it answers is remembered (shared), and calls, a cold
//! container over the shared catalog, and elicitation all behave.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;

use super::agent;
use crate::mcp::revision::{self, Known};
use crate::mcp::{McpError, McpPool, McpSettings};
use crate::secrets::EnvSecretStore;
use crate::store::{CatalogCache, CatalogKey, CatalogSettings, MemoryCatalogCache};

struct FastMcp {
    url: String,
    child: Child,
    _stdin: ChildStdin,
}

impl FastMcp {
    fn start(mode: &str) -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fastmcp/server.py");
        let mut child = Command::new(std::env::var("TEAL_PYTHON").unwrap_or_else(|_| "python3".into()))
            .args([script, mode, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs the FastMCP server (scripts/test.sh installs PyPI mcp)");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        loop {
            let line =
                lines.next().expect("the server starts (is PyPI mcp installed?)").expect("stderr line");
            if line.contains("Uvicorn running") {
                break;
            }
        }
        // Keep reading its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { url: format!("http://127.0.0.1:{port}/mcp"), child, _stdin: stdin }
    }
}

impl Drop for FastMcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pool(cache: &Arc<MemoryCatalogCache>) -> McpPool {
    McpPool::new(McpSettings::default(), Arc::new(EnvSecretStore::new()))
        .with_shared_catalog(cache.clone(), CatalogSettings::default())
}

#[tokio::test]
async fn fastmcp_in_both_modes_is_reached_in_its_revision_and_remembered_for_cold_containers() {
    for mode in ["stateful", "stateless"] {
        let server = FastMcp::start(mode);
        let cache = Arc::new(MemoryCatalogCache::default());
        let agent = agent(&[("py", &server.url, "")]);
        let first = pool(&cache);
        let tools = first.agent_tools(&agent).await.expect("listed");
        assert_eq!(super::offered(&tools), ["py_echo", "py_ask"], "{mode}");
        let Known::Speaks(spoken) = first.inner.revisions.get(&server.url, std::time::Duration::MAX) else {
            panic!("{mode}: the revision is remembered")
        };
        assert!(spoken.has_initialize(), "{mode}: FastMCP 1.x is older than 2026-07-28, got {spoken:?}");
        let record = cache.get(&CatalogKey::server(&server.url)).await.expect("get").expect("shared record");
        assert_eq!(record.protocol.as_deref().and_then(revision::parse), Some(spoken.clone()), "{mode}");
        let called = first.call(tools.route("py_echo").expect("route"), r#"{"text": "hi"}"#).await;
        assert_eq!(called.expect("call").text, "echo hi", "{mode}");

        // A cold container: the catalog and the revision come from the shared cache.
        let cold = pool(&cache);
        let tools = cold.agent_tools(&agent).await.expect("from the shared catalog");
        assert_eq!(cold.inner.revisions.get(&server.url, std::time::Duration::MAX), Known::Speaks(spoken));
        let called = cold.call(tools.route("py_echo").expect("route"), r#"{"text": "cold"}"#).await;
        assert_eq!(called.expect("call").text, "echo cold", "{mode}");
    }
}

#[tokio::test]
async fn a_fastmcp_tool_that_elicits_ends_the_run_naming_the_server_and_the_tool() {
    let server = FastMcp::start("stateful");
    let cache = Arc::new(MemoryCatalogCache::default());
    let pool = pool(&cache);
    let tools = pool.agent_tools(&agent(&[("py", &server.url, "")])).await.expect("listed");
    let err = pool.call(tools.route("py_ask").expect("route"), "{}").await.expect_err("elicitation");
    assert!(
        matches!(&err, McpError::InputRequired { server, tool, .. } if server == "py" && tool == "ask"),
        "{err:?}"
    );
}
