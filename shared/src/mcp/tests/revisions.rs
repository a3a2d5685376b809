//! Protocol revisions at the wire: HTTP requests counted at a real server for each revision, the
//! shared memory of what a server speaks, cache hints, and servers that ask for user input.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::ProtocolVersion;

use super::server::{Speaks, TestServer, tool};
use super::{agent, offered};
use crate::mcp::revision::{self, Known};
use crate::mcp::{McpError, McpPool, McpSettings};
use crate::secrets::EnvSecretStore;
use crate::store::{CatalogCache, CatalogKey, CatalogSettings, MemoryCatalogCache};

fn pool_sharing(cache: &Arc<MemoryCatalogCache>, catalog_ttl: Duration) -> McpPool {
    pool_trusting_old_revisions_for(cache, catalog_ttl, catalog_ttl)
}

/// A pool whose shared lists are fresh for `catalog_ttl` and who trusts an older revision it
/// learned for `trust_old_for` (in production both are `TA_CATALOG_TTL`).
fn pool_trusting_old_revisions_for(
    cache: &Arc<MemoryCatalogCache>,
    catalog_ttl: Duration,
    trust_old_for: Duration,
) -> McpPool {
    let settings = CatalogSettings { fresh_for: catalog_ttl, ..CatalogSettings::default() };
    McpPool::new(McpSettings { catalog_ttl: trust_old_for }, Arc::new(EnvSecretStore::new()))
        .with_shared_catalog(cache.clone(), settings)
}

const TTL: Duration = Duration::from_secs(300);

/// Every revision we speak, and the sessions each kind of server keeps.
fn every_kind_of_server() -> Vec<(&'static str, Speaks)> {
    vec![
        ("2026-07-28", Speaks::newest()),
        ("2026-07-28", Speaks::newest().stateless()),
        ("2025-11-25", Speaks::only_up_to(ProtocolVersion::V_2025_11_25)),
        ("2025-06-18", Speaks::only_up_to(ProtocolVersion::V_2025_06_18)),
        ("2025-03-26", Speaks::only_up_to(ProtocolVersion::V_2025_03_26)),
        ("2025-03-26", Speaks::only_up_to(ProtocolVersion::V_2025_03_26).stateless()),
    ]
}

#[tokio::test]
async fn each_revision_is_spoken_probed_once_and_a_warm_call_is_one_request() {
    for (expected, speaks) in every_kind_of_server() {
        let modern = !speaks.newest.has_initialize();
        let server = TestServer::speaking(vec![tool("echo")], speaks.clone());
        let cache = Arc::new(MemoryCatalogCache::default());
        let (pool, agent) = (pool_sharing(&cache, TTL), agent(&[("srv", &server.url, "")]));
        let tools = pool.agent_tools(&agent).await.expect("tools");
        assert_eq!(offered(&tools), ["srv_echo"], "{speaks:?}");
        assert_eq!(server.discovers(), 1, "probed once: {speaks:?}");
        assert_eq!(server.initializes(), usize::from(!modern), "{speaks:?}");
        let known = pool.inner.revisions.get(&server.url, TTL);
        assert_eq!(known, Known::Speaks(revision::parse(expected).expect("known")), "{speaks:?}");
        let record = cache.get(&CatalogKey::server(&server.url)).await.expect("get").expect("shared");
        assert_eq!(record.protocol.as_deref(), Some(expected), "every container learns it: {speaks:?}");

        let route = tools.route("srv_echo").expect("route");
        assert_eq!(pool.call(route, "{}").await.expect("call").text, "called echo");
        let before = server.http_requests();
        pool.call(route, "{}").await.expect("warm call");
        assert_eq!(server.http_requests() - before, 1, "a warm call is one request: {speaks:?}");
        assert_eq!(server.discovers(), 1, "{speaks:?}");
    }
}

#[tokio::test]
async fn a_cold_container_over_a_warm_shared_catalog_sends_nothing_before_its_first_call() {
    for (expected, speaks) in every_kind_of_server() {
        let modern = !speaks.newest.has_initialize();
        let server = TestServer::speaking(vec![tool("echo")], speaks.clone());
        let cache = Arc::new(MemoryCatalogCache::default());
        let agent = agent(&[("srv", &server.url, "")]);
        // Kept alive: dropping it would end its session (a DELETE counted below).
        let first = pool_sharing(&cache, TTL);
        first.agent_tools(&agent).await.expect("the first container lists");

        let before = server.http_requests();
        let cold = pool_sharing(&cache, TTL);
        let tools = cold.agent_tools(&agent).await.expect("tools from the shared catalog");
        assert_eq!(server.http_requests(), before, "no request before the first LLM call: {speaks:?}");
        assert_eq!(
            cold.inner.revisions.get(&server.url, TTL),
            Known::Speaks(revision::parse(expected).expect("known"))
        );

        cold.call(tools.route("srv_echo").expect("route"), "{}").await.expect("first call");
        assert_eq!(server.discovers(), 1, "the cold container did not probe: {speaks:?}");
        let first_call = server.http_requests() - before;
        if modern {
            assert_eq!(first_call, 1, "no handshake at all: {speaks:?}");
        } else {
            // initialize, notifications/initialized, the call (and the session's GET stream).
            assert!((3..=4).contains(&first_call), "{first_call} requests: {speaks:?}");
        }
    }
}

#[tokio::test]
async fn a_server_upgraded_to_2026_while_we_run_keeps_working_and_new_containers_speak_2026() {
    let mut server =
        TestServer::speaking(vec![tool("echo")], Speaks::only_up_to(ProtocolVersion::V_2025_11_25));
    let cache = Arc::new(MemoryCatalogCache::default());
    let agent = agent(&[("srv", &server.url, "")]);
    let running = pool_sharing(&cache, TTL);
    let tools = running.agent_tools(&agent).await.expect("tools");
    let route = tools.route("srv_echo").expect("route");
    running.call(route, "{}").await.expect("call on 2025-11-25");

    server.restart_speaking(Speaks::newest());
    // As with any restart, a call already on its way on a connection the restart closed fails
    // (it is not resent: it may have run); the next one reconnects.
    let after = match running.call(route, "{}").await {
        Err(McpError::Transport { .. }) => running.call(route, "{}").await,
        other => other,
    };
    assert_eq!(after.expect("call after the upgrade").text, "called echo");
    assert_eq!(server.initializes(), 2, "the lost session was set up again");

    // A container started once the old knowledge is older than the catalog TTL probes again.
    let later = pool_trusting_old_revisions_for(&cache, TTL, Duration::ZERO);
    let tools = later.agent_tools(&agent).await.expect("tools");
    let before = server.http_requests();
    later.call(tools.route("srv_echo").expect("route"), "{}").await.expect("call");
    assert_eq!(later.inner.revisions.get(&server.url, TTL), Known::Speaks(ProtocolVersion::V_2026_07_28));
    let record = cache.get(&CatalogKey::server(&server.url)).await.expect("get").expect("shared");
    assert_eq!(record.protocol.as_deref(), Some("2026-07-28"));
    later.call(tools.route("srv_echo").expect("route"), "{}").await.expect("warm call");
    assert_eq!(server.http_requests() - before, 3, "one probe, then one request per call");
}

#[tokio::test]
async fn a_remembered_2026_server_that_was_downgraded_is_probed_again_and_the_call_resent_once() {
    let mut server = TestServer::start(vec![tool("echo")]);
    let cache = Arc::new(MemoryCatalogCache::default());
    let agent = agent(&[("srv", &server.url, "")]);
    pool_sharing(&cache, TTL).agent_tools(&agent).await.expect("learned 2026-07-28");
    server.restart_speaking(Speaks::only_up_to(ProtocolVersion::V_2025_06_18));

    let cold = pool_sharing(&cache, TTL);
    let tools = cold.agent_tools(&agent).await.expect("tools");
    let outcome = cold.call(tools.route("srv_echo").expect("route"), "{}").await.expect("resent");
    assert_eq!(outcome.text, "called echo");
    assert_eq!(cold.inner.revisions.get(&server.url, TTL), Known::Speaks(ProtocolVersion::V_2025_06_18));
    assert_eq!(server.calls(), 1, "the refused request never ran; the resent one did");
}

#[tokio::test]
async fn ttl_ms_zero_is_never_cached_and_a_public_list_is_shared_across_credentials() {
    let server = TestServer::speaking(vec![tool("echo")], Speaks::newest().cache_hints(0, true));
    let cache = Arc::new(MemoryCatalogCache::default());
    let (pool, one) = (pool_sharing(&cache, TTL), agent(&[("srv", &server.url, "")]));
    pool.agent_tools(&one).await.expect("tools");
    pool.agent_tools(&one).await.expect("tools");
    assert_eq!(server.lists(), 2, "ttlMs 0: listed for every request, whatever TA_CATALOG_TTL says");
    assert!(cache.get(&CatalogKey::public(&server.url)).await.expect("get").is_none(), "and never stored");

    let shared = TestServer::speaking(vec![tool("echo")], Speaks::newest().cache_hints(60_000, true));
    let blue = agent(&[("srv", &shared.url, "        headers:\n          X-Team: blue\n")]);
    let red = agent(&[("srv", &shared.url, "        headers:\n          X-Team: red\n")]);
    pool_sharing(&cache, TTL).agent_tools(&blue).await.expect("blue lists");
    pool_sharing(&cache, TTL).agent_tools(&red).await.expect("red shares the public list");
    assert_eq!(shared.lists(), 1);
    let entry = cache.get(&CatalogKey::public(&shared.url)).await.expect("get").expect("public entry");
    assert!(entry.ttl_ms.is_some_and(|ms| (59_000..=60_000).contains(&ms)), "{:?}", entry.ttl_ms);
}

#[tokio::test]
async fn a_private_list_is_never_shared_with_another_credential() {
    let server = TestServer::speaking(vec![tool("echo")], Speaks::newest().cache_hints(60_000, false));
    let cache = Arc::new(MemoryCatalogCache::default());
    let blue = agent(&[("srv", &server.url, "        headers:\n          X-Team: blue\n")]);
    let red = agent(&[("srv", &server.url, "        headers:\n          X-Team: red\n")]);
    pool_sharing(&cache, TTL).agent_tools(&blue).await.expect("blue lists");
    pool_sharing(&cache, TTL).agent_tools(&blue).await.expect("blue again: shared with itself");
    assert_eq!(server.lists(), 1);
    pool_sharing(&cache, TTL).agent_tools(&red).await.expect("red lists its own");
    assert_eq!(server.lists(), 2);
    assert!(cache.get(&CatalogKey::public(&server.url)).await.expect("get").is_none());
}

#[tokio::test]
async fn a_tool_that_asks_for_user_input_ends_the_run_naming_the_server_and_the_tool() {
    let old = TestServer::speaking(vec![tool("ask")], Speaks::only_up_to(ProtocolVersion::V_2025_11_25));
    let new = TestServer::start(vec![tool("needs_input")]);
    let pool = McpPool::new(McpSettings::default(), Arc::new(EnvSecretStore::new()));
    let agent = agent(&[("old", &old.url, ""), ("new", &new.url, "")]);
    let tools = pool.agent_tools(&agent).await.expect("tools");

    let err = pool.call(tools.route("old_ask").expect("route"), "{}").await.expect_err("elicitation");
    assert!(
        matches!(&err, McpError::InputRequired { server, tool, .. } if server == "old" && tool == "ask"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "MCP server 'old': tool 'ask' asked for user input (elicitation (form)), which this deployment \
         cannot collect yet"
    );
    assert_eq!(err.code(), "mcp_input_required");

    let err =
        pool.call(tools.route("new_needs_input").expect("route"), "{}").await.expect_err("input_required");
    assert!(
        matches!(&err, McpError::InputRequired { server, tool, what } if server == "new" && tool == "needs_input" && what.contains("elicitation")),
        "{err:?}"
    );
}
