//! The pool against a real streamable-HTTP MCP server on 127.0.0.1:0 ([`server::TestServer`]):
//! the branches that otherwise only the end-to-end suite reaches.

mod fastmcp;
mod guard;
mod oauth;
mod revisions;
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::ProtocolVersion;
use server::{Speaks, TestServer, tool};

use super::{McpError, McpPool, McpSettings};
use crate::config::{AgentSpec, parse_documents};
use crate::secrets::{EnvSecretStore, SecretError, SecretStore};
use crate::store::{CatalogSettings, MemoryCatalogCache};

fn pool() -> McpPool {
    pool_with_ttl(Duration::from_secs(300))
}

fn pool_with_ttl(catalog_ttl: Duration) -> McpPool {
    McpPool::new(McpSettings { catalog_ttl }, Arc::new(EnvSecretStore::new()))
}

/// An agent using `servers`: (name, url, YAML lines under the server, indented 8 spaces).
fn agent(servers: &[(&str, &str, &str)]) -> Arc<AgentSpec> {
    Arc::new(agent_config(servers))
}

fn agent_config(servers: &[(&str, &str, &str)]) -> AgentSpec {
    let mut yaml = "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: t\nversion: 1\nspec:\n  agent:\n    \
                    model: m\n    system_prompt: s\n    mcp_servers:\n"
        .to_owned();
    for (name, url, extra) in servers {
        yaml.push_str(&format!("      - name: {name}\n        url: {url}\n{extra}"));
    }
    let spec = parse_documents("test", &yaml).expect("agent").agents.remove(0).agents.remove(0);
    Arc::unwrap_or_clone(spec)
}

fn offered(tools: &super::AgentTools) -> Vec<&str> {
    tools.specs.iter().map(|s| s.name.as_str()).collect()
}

/// A stateful server from before 2026-07-28: sessions, `initialize`, reconnects.
fn old_server(tools: Vec<rmcp::model::Tool>) -> TestServer {
    TestServer::speaking(tools, Speaks::only_up_to(ProtocolVersion::V_2025_11_25))
}

#[tokio::test]
async fn a_dead_client_is_replaced_on_next_use() {
    let server = old_server(vec![tool("echo")]);
    let (pool, agent) = (pool(), agent(&[("srv", &server.url, "")]));
    let tools = pool.agent_tools(&agent).await.expect("tools");
    let route = tools.route("srv_echo").expect("route");
    assert_eq!(pool.call(route, "{}").await.expect("call").text, "called echo");

    let conn = pool.conn(&agent.mcp_servers[0]);
    conn.client.lock().await.as_ref().expect("a live client").cancellation_token().cancel();
    assert_eq!(pool.call(route, "{}").await.expect("call after the client died").text, "called echo");
    assert_eq!((server.initializes(), server.calls()), (2, 2), "one new session, no lost call");
}

#[tokio::test]
async fn a_call_that_found_its_client_dead_is_resent_once_on_a_new_one() {
    let server = old_server(vec![tool("echo")]);
    let (pool, agent) = (pool(), agent(&[("srv", &server.url, "")]));
    let conn = pool.conn(&agent.mcp_servers[0]);
    let killed = AtomicBool::new(false);
    let listed = pool
        .with_client(&conn, None, |client| {
            let first = !killed.swap(true, Ordering::SeqCst);
            async move {
                if first {
                    // The transport dies between the liveness check and the send.
                    client.cancellation_token().cancel();
                    while !client.peer().is_transport_closed() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                client.list_all_tools().await
            }
        })
        .await
        .expect("resent on a new client")
        .expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(server.initializes(), 2, "the dead client was replaced");
    assert_eq!(server.lists(), 1, "the first attempt never reached the server");
}

#[tokio::test]
async fn a_transport_error_drops_the_client_and_the_next_use_reconnects() {
    let mut server = old_server(vec![tool("echo")]);
    let (pool, agent) = (pool(), agent(&[("srv", &server.url, "")]));
    let tools = pool.agent_tools(&agent).await.expect("tools");
    let route = tools.route("srv_echo").expect("route");
    let conn = pool.conn(&agent.mcp_servers[0]);

    server.kill();
    let err = pool.call(route, "{}").await.expect_err("server is gone");
    assert!(err.to_string().starts_with("MCP server 'srv' is unreachable"), "{err:?}");
    assert!(conn.client.lock().await.is_none(), "the broken client was dropped");

    server.restart();
    assert_eq!(pool.call(route, "{}").await.expect("call after restart").text, "called echo");
    assert_eq!(server.initializes(), 2);
}

#[tokio::test]
async fn a_server_slower_than_its_timeout_gives_a_timeout() {
    let server = TestServer::start(vec![tool("sleep")]);
    let mut config = agent_config(&[("srv", &server.url, "")]);
    config.mcp_servers[0].timeout = Duration::from_millis(200);
    let (pool, agent) = (pool(), Arc::new(config));
    let tools = pool.agent_tools(&agent).await.expect("tools");
    let started = Instant::now();
    let err =
        pool.call(tools.route("srv_sleep").expect("route"), r#"{"ms": 3000}"#).await.expect_err("timeout");
    assert!(matches!(&err, McpError::Timeout { server, timeout_ms: 200 } if server == "srv"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "gave up after {:?}", started.elapsed());
}

#[tokio::test]
async fn allow_and_deny_choose_the_offered_tools() {
    let server = TestServer::start(["read_file", "write_file", "list_dir", "delete"].map(tool).to_vec());
    let filter = "        tools:\n          allow: [\"*_file\", \"list_*\"]\n          deny: [\"write_*\"]\n";
    let (pool, agent) = (pool(), agent(&[("srv", &server.url, filter)]));
    let tools = pool.agent_tools(&agent).await.expect("tools");
    assert_eq!(offered(&tools), ["srv_read_file", "srv_list_dir"]);
    assert!(tools.route("srv_write_file").is_none() && tools.route("srv_delete").is_none());
}

#[tokio::test]
async fn the_catalog_is_listed_once_within_its_ttl() {
    let server = old_server(vec![tool("echo")]);
    let (pool, agent) = (pool(), agent(&[("srv", &server.url, "")]));
    for _ in 0..3 {
        assert_eq!(offered(&pool.agent_tools(&agent).await.expect("tools")), ["srv_echo"]);
    }
    assert_eq!(server.lists(), 1);

    let expired = pool_with_ttl(Duration::ZERO);
    expired.agent_tools(&agent).await.expect("tools");
    expired.agent_tools(&agent).await.expect("tools");
    assert_eq!(server.lists(), 3, "past the TTL every request lists again");
}

#[tokio::test]
async fn two_tools_with_one_namespaced_name_keep_the_first() {
    let server = TestServer::start(vec![tool("a.b"), tool("a_b")]);
    let (pool, agent) = (pool(), agent(&[("srv", &server.url, "")]));
    let tools = pool.agent_tools(&agent).await.expect("tools");
    assert_eq!(offered(&tools), ["srv_a_b"]);
    assert_eq!(tools.route("srv_a_b").expect("route").tool_name(), "a.b");
}

#[tokio::test]
async fn a_server_that_is_not_there_is_unreachable_and_the_log_gets_why() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let agent = agent(&[("srv", &format!("http://{addr}/mcp"), "")]);
    let err = pool().agent_tools(&agent).await.err().expect("nothing listens there");
    assert!(matches!(err, McpError::Connect { .. }), "{err:?}");
    assert_eq!(err.to_string(), "MCP server 'srv' is unreachable");
    let chain = crate::telemetry::error_chain(&err);
    assert!(
        chain.starts_with("MCP server 'srv' is unreachable: ") && chain.contains(&addr.to_string()),
        "{chain}"
    );
}

#[tokio::test]
async fn a_missing_header_secret_names_the_secret_and_keeps_the_store_error() {
    let server = TestServer::start(vec![tool("echo")]);
    let headers =
        "        headers:\n          Authorization: \"Bearer ${secret:TEAL_MCP_TEST_UNSET_TOKEN}\"\n";
    let agent = agent(&[("srv", &server.url, headers)]);
    let err = pool().agent_tools(&agent).await.err().expect("the secret is not set");
    assert_eq!(err.to_string(), "MCP server 'srv': secret TEAL_MCP_TEST_UNSET_TOKEN could not be read");
    assert!(
        matches!(&err, McpError::Secret { source: crate::secrets::SecretError::NotFound { .. }, .. }),
        "{err:?}"
    );
    assert_eq!(server.initializes(), 0, "nothing was sent without the header");
}

/// Env secrets, counting the reads.
#[derive(Debug, Default)]
struct CountingSecrets {
    inner: EnvSecretStore,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl SecretStore for CountingSecrets {
    async fn get(&self, name: &str) -> Result<secrecy::SecretString, SecretError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(name).await
    }
}

#[tokio::test]
async fn a_shared_catalog_miss_reads_the_header_secrets_once() {
    let server = old_server(vec![tool("echo")]);
    let secrets = Arc::new(CountingSecrets {
        inner: EnvSecretStore::new().with("TEAL_MCP_TEST_TOKEN", "t0k3n"),
        ..Default::default()
    });
    let pool = McpPool::new(McpSettings::default(), secrets.clone())
        .with_shared_catalog(Arc::new(MemoryCatalogCache::default()), CatalogSettings::default());
    let headers = "        headers:\n          Authorization: \"Bearer ${secret:TEAL_MCP_TEST_TOKEN}\"\n";
    let agent = agent(&[("srv", &server.url, headers)]);
    assert_eq!(offered(&pool.agent_tools(&agent).await.expect("tools")), ["srv_echo"]);
    assert_eq!((server.initializes(), server.lists()), (1, 1));
    assert_eq!(secrets.reads.load(Ordering::SeqCst), 1, "one render for the scope and the session");
}

#[tokio::test]
async fn a_warm_request_shares_the_tool_set_until_a_catalog_is_listed_again() {
    let server = old_server(vec![tool("echo"), tool("sleep")]);
    let (pool, agent) = (pool(), agent(&[("srv", &server.url, "")]));
    let first = pool.agent_tools(&agent).await.expect("tools");
    let warm = pool.agent_tools(&agent).await.expect("tools");
    assert!(Arc::ptr_eq(&first.specs, &warm.specs), "a warm request copies no spec");

    let expired = pool_with_ttl(Duration::ZERO);
    let first = expired.agent_tools(&agent).await.expect("tools");
    let relisted = expired.agent_tools(&agent).await.expect("tools");
    assert!(!Arc::ptr_eq(&first.specs, &relisted.specs), "a new list, a new tool set");
    assert_eq!(first.specs, relisted.specs);
}

#[tokio::test]
async fn agents_configuring_the_same_server_share_its_session_and_catalog() {
    let server = old_server(vec![tool("echo")]);
    let pool = pool();
    let (one, two) = (agent(&[("srv", &server.url, "")]), agent(&[("srv", &server.url, "")]));
    pool.agent_tools(&one).await.expect("tools");
    pool.agent_tools(&two).await.expect("tools");
    assert_eq!((server.initializes(), server.lists()), (1, 1));

    let headers = "        headers:\n          X-Team: blue\n";
    pool.agent_tools(&agent(&[("srv", &server.url, headers)])).await.expect("tools");
    assert_eq!((server.initializes(), server.lists()), (2, 2), "other headers, another server");
}

#[tokio::test]
async fn a_reloaded_config_is_a_new_agent_and_the_old_one_is_forgotten() {
    let server = TestServer::start(vec![tool("echo")]);
    let pool = pool();
    let old = agent(&[("srv", &server.url, "")]);
    pool.agent_tools(&old).await.expect("tools");
    drop(old);
    let reloaded = agent(&[("srv", &server.url, "")]);
    assert_eq!(offered(&pool.agent_tools(&reloaded).await.expect("tools")), ["srv_echo"]);
    assert_eq!(pool.inner.agents.len(), 1);
}

#[tokio::test]
async fn agents_sharing_a_server_each_get_their_own_allow_and_deny() {
    let server = TestServer::start(["read_file", "write_file"].map(tool).to_vec());
    let pool = pool();
    let read_only = agent(&[("srv", &server.url, "        tools:\n          deny: [\"write_*\"]\n")]);
    let full = agent(&[("srv", &server.url, "")]);
    assert_eq!(offered(&pool.agent_tools(&read_only).await.expect("tools")), ["srv_read_file"]);
    assert_eq!(offered(&pool.agent_tools(&full).await.expect("tools")), ["srv_read_file", "srv_write_file"]);
    assert_eq!(offered(&pool.agent_tools(&read_only).await.expect("tools")), ["srv_read_file"]);
    assert_eq!(server.lists(), 1, "one catalog for both");
}

#[tokio::test]
async fn tool_names_as_served_keep_the_servers_own_names() {
    let server = TestServer::start(vec![tool("WeatherPlugin-get_weather")]);
    let pool = pool();
    let plain = agent(&[("weather", &server.url, "        tool_names: as-served\n")]);
    let tools = pool.agent_tools(&plain).await.expect("tools");
    assert_eq!(offered(&tools), ["WeatherPlugin-get_weather"]);
    let route = tools.route("WeatherPlugin-get_weather").expect("route");
    assert_eq!(pool.call(route, "{}").await.expect("call").text, "called WeatherPlugin-get_weather");
    let prefixed = agent(&[("weather", &server.url, "")]);
    assert_eq!(
        offered(&pool.agent_tools(&prefixed).await.expect("tools")),
        ["weather_WeatherPlugin-get_weather"]
    );
}

/// A call in flight when the server dies fails when the connection drops, not at the tool's
/// timeout: for a session (SSE answer) and a stateless (JSON answer) server alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_when_the_server_dies_fails_when_the_connection_drops() {
    for speaks in
        [Speaks::only_up_to(ProtocolVersion::V_2025_11_25), Speaks::newest(), Speaks::newest().stateless()]
    {
        let label = format!("{speaks:?}");
        let mut server = TestServer::speaking(vec![tool("sleep")], speaks);
        let mut config = agent_config(&[("srv", &server.url, "")]);
        config.mcp_servers[0].timeout = Duration::from_secs(20);
        let (pool, agent) = (Arc::new(pool()), Arc::new(config));
        let tools = pool.agent_tools(&agent).await.expect("tools");
        let call = {
            let (pool, tools) = (pool.clone(), tools.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let result = pool.call(tools.route("srv_sleep").expect("route"), r#"{"ms": 15000}"#).await;
                (result, started.elapsed())
            })
        };
        let waiting = Instant::now();
        while server.calls() == 0 && waiting.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.calls(), 1, "{label}: the call reached the server");
        server.kill();
        let (result, took) = call.await.expect("join");
        let err = result.expect_err("the server died mid-call");
        assert!(err.to_string().starts_with("MCP server 'srv' is unreachable"), "{label}: {err:?}");
        assert!(
            took < Duration::from_secs(3),
            "{label}: failed after {took:?}, not when the connection dropped"
        );
    }
}
