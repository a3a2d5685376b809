//! OAuth at the wire: a real authorization server (npm `oauth2-mock-server`, run by node) in
//! front of a test MCP server that verifies its tokens; token requests counted at the
//! authorization server, tokens seen counted at the MCP server.

use std::sync::Arc;

use super::agent;
use super::guard::{AuthServer, Guard};
use super::server::{Speaks, TestServer, tool};
use crate::config::McpServerConfig;
use crate::mcp::{AuthStep, McpError, McpPool, McpSettings};
use crate::oauth::caller::{Acting, scope};
use crate::oauth::{OAuth, OAuthSettings};
use crate::secrets::EnvSecretStore;
use crate::store::{MemoryTokenStore, TokenStore};

const SECRET: &str = "s3cr3t-client";

/// One process ("container"): its own pool and OAuth layer, the shared token store and key.
fn container(tokens: &Arc<MemoryTokenStore>, client_secret: &str) -> McpPool {
    container_with(tokens, client_secret, true)
}

fn container_with(tokens: &Arc<MemoryTokenStore>, client_secret: &str, refresh: bool) -> McpPool {
    let secrets = Arc::new(
        EnvSecretStore::new()
            .with("TEAL_TEST_OAUTH_KEY", "a-key-of-more-than-32-characters-for-the-tests")
            .with("TEAL_TEST_CLIENT_SECRET", client_secret),
    );
    let settings = OAuthSettings {
        redirect_uri: "http://127.0.0.1:9/oauth/callback".into(),
        key_secret: Some("TEAL_TEST_OAUTH_KEY".into()),
        refresh,
        ..OAuthSettings::default()
    };
    let store: Arc<dyn TokenStore> = tokens.clone();
    let oauth = Arc::new(OAuth::new(settings, store, secrets.clone()));
    McpPool::new(McpSettings::default(), secrets).with_oauth(oauth)
}

fn oauth_server(auth: &AuthServer, url: &str, grant: &str) -> Arc<crate::config::AgentSpec> {
    let extra = format!(
        "        auth_server: {}\n        scopes: [tools.read]\n        oauth_grant: {grant}\n        \
         oauth_client_id: teal-test\n        oauth_client_secret: \"${{secret:TEAL_TEST_CLIENT_SECRET}}\"\n",
        auth.issuer
    );
    agent(&[("srv", url, &extra)])
}

fn protected(auth: &AuthServer) -> (TestServer, Arc<Guard>) {
    let guard = Guard::new(&auth.issuer);
    (TestServer::speaking(vec![tool("echo")], Speaks::newest().protected_by(guard.clone())), guard)
}

fn acting(caller: &str) -> Acting {
    Acting { caller: Arc::from(caller), path: Arc::from("/t/1") }
}

#[tokio::test]
async fn client_credentials_are_asked_for_once_by_many_cold_containers() {
    let auth = AuthServer::start(SECRET, 3600);
    let (server, guard) = protected(&auth);
    let tokens = Arc::new(MemoryTokenStore::default());
    let agent = oauth_server(&auth, &server.url, "client_credentials");

    // Ten containers start at once: one asks the token endpoint, the others wait for its answer.
    let pools: Vec<McpPool> = (0..10).map(|_| container(&tokens, SECRET)).collect();
    let listed = futures::future::join_all(pools.iter().map(|p| p.agent_tools(&agent))).await;
    for tools in &listed {
        assert_eq!(super::offered(tools.as_ref().expect("listed with the token")), ["srv_echo"]);
    }
    assert_eq!(auth.token_requests("client_credentials").await, 1, "one token request, not ten");

    let pool = &pools[0];
    let tools = pool.agent_tools(&agent).await.expect("warm");
    let before = server.http_requests();
    pool.call(tools.route("srv_echo").expect("route"), "{}").await.expect("call");
    assert_eq!(server.http_requests() - before, 1, "a warm call is one request");
    assert!(guard.tokens_seen().iter().all(|t| *t == guard.tokens_seen()[0]), "one token for the service");
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_clear_error_naming_the_token_request() {
    let auth = AuthServer::start(SECRET, 3600);
    let (server, _guard) = protected(&auth);
    let pool = container(&Arc::new(MemoryTokenStore::default()), "not-the-secret");
    let err = pool
        .agent_tools(&oauth_server(&auth, &server.url, "client_credentials"))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, McpError::Auth { step: AuthStep::TokenRequest, .. }), "{err:?}");
    assert_eq!(err.to_string(), "MCP server 'srv': authorization failed at token request");
    assert_eq!(err.code(), "mcp_auth_failed");
    let chain = crate::telemetry::error_chain(&err);
    assert!(!chain.contains("not-the-secret") && !chain.contains(SECRET), "{chain}");
    assert_eq!(server.lists() + server.calls(), 0, "no MCP request went out without a token");
}

#[tokio::test]
async fn a_revoked_token_gets_one_refresh_and_a_server_refusing_every_token_is_a_clear_error() {
    let auth = AuthServer::start(SECRET, 3600);
    let (server, guard) = protected(&auth);
    let pool = container(&Arc::new(MemoryTokenStore::default()), SECRET);
    let agent = oauth_server(&auth, &server.url, "client_credentials");
    let tools = pool.agent_tools(&agent).await.expect("tools");
    let route = tools.route("srv_echo").expect("route");
    pool.call(route, "{}").await.expect("first call");

    guard.revoke_seen();
    assert_eq!(pool.call(route, "{}").await.expect("401, one new token, success").text, "called echo");
    assert_eq!(auth.token_requests("client_credentials").await, 2);

    guard.refuse_all();
    let err = pool.call(route, "{}").await.expect_err("still 401 after one refresh");
    assert!(matches!(err, McpError::Auth { step: AuthStep::Server, .. }), "{err:?}");
    assert_eq!(err.to_string(), "MCP server 'srv': authorization failed at the server (credentials refused)");
    assert_eq!(auth.token_requests("client_credentials").await, 3, "exactly one more token request");
}

/// The authorization server's redirect for `auth_url`, as a browser would follow it: `code`,
/// `state` and `iss`.
async fn authorize(auth_url: &str) -> (String, String, Option<String>) {
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = client.get(auth_url).send().await.expect("authorize");
    let location =
        response.headers().get("location").and_then(|v| v.to_str().ok()).expect("redirect").to_owned();
    let url = url::Url::parse(&location).expect("location");
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    (param("code").expect("code"), param("state").expect("state"), param("iss"))
}

/// `caller` is challenged, authorizes in the browser, and the callback completes.
async fn authorize_as(caller: &str, pool: &McpPool, agent: &Arc<crate::config::AgentSpec>) {
    let err = scope(acting(caller), pool.agent_tools(agent)).await.err().expect("challenge");
    let McpError::AuthorizationRequired(needed) = err else { panic!("a challenge, got {err:?}") };
    let (code, state, iss) = authorize(&needed.challenges[0].auth_url).await;
    let oauth = pool.oauth().expect("oauth").clone();
    oauth.complete(finder(agent), &code, &state, iss.as_deref()).await.expect("callback");
}

fn finder(agent: &crate::config::AgentSpec) -> impl Fn(&str, &str) -> Option<McpServerConfig> + '_ {
    move |name, url| agent.mcp_servers.iter().find(|s| s.name == name && s.url.as_str() == url).cloned()
}

#[tokio::test]
async fn per_user_authorization_code_with_pkce_from_challenge_to_resumed_run() {
    let auth = AuthServer::start(SECRET, 3600);
    let (server, guard) = protected(&auth);
    let tokens = Arc::new(MemoryTokenStore::default());
    let pool = container(&tokens, SECRET);
    let agent = oauth_server(&auth, &server.url, "authorization_code");

    // No token for alice: the run does not start; she is told where to authorize.
    let err = scope(acting("alice"), pool.agent_tools(&agent)).await.err().expect("challenge");
    let McpError::AuthorizationRequired(needed) = err else { panic!("a challenge, got {err:?}") };
    assert_eq!(needed.resume_url, "http://localhost:8000/t/1");
    let challenge = &needed.challenges[0];
    assert_eq!(
        (challenge.server_name.as_str(), challenge.scopes.as_slice()),
        ("srv", &["tools.read".to_owned()][..])
    );
    let auth_url = url::Url::parse(&challenge.auth_url).expect("auth url");
    let param = |name: &str| auth_url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("resource").as_deref(), Some(server.url.as_str()), "RFC 8707");
    assert_eq!(server.lists() + server.calls(), 0, "no MCP request was sent (discovery only)");

    // The browser authorizes; the callback exchanges the code (PKCE checked by the server).
    let (code, state, iss) = authorize(&challenge.auth_url).await;
    assert_eq!(iss.as_deref(), Some(auth.issuer.as_str()));
    let oauth = pool.oauth().expect("oauth").clone();
    let done = oauth.complete(finder(&agent), &code, &state, iss.as_deref()).await.expect("callback");
    assert_eq!(done.server_name, "srv");
    let again =
        oauth.complete(finder(&agent), &code, &state, iss.as_deref()).await.expect_err("state works once");
    assert!(matches!(again, crate::oauth::OAuthError::UnknownState), "{again:?}");

    // Alice resumes: her run starts and her token reaches the server.
    let tools = scope(acting("alice"), pool.agent_tools(&agent)).await.expect("authorized");
    let called = scope(acting("alice"), pool.call(tools.route("srv_echo").expect("route"), "{}")).await;
    assert_eq!(called.expect("call").text, "called echo");
    let alice_tokens = guard.tokens_seen();

    // Bob is challenged; alice's token never serves him, not even from another container.
    let other = container(&tokens, SECRET);
    for pool in [&pool, &other] {
        let err = scope(acting("bob"), pool.agent_tools(&agent)).await.err().expect("bob must authorize");
        assert!(matches!(err, McpError::AuthorizationRequired(_)), "{err:?}");
    }
    assert_eq!(guard.tokens_seen(), alice_tokens, "no request for bob reached the server");
    // A callback that lies about the issuer is refused (RFC 9207).
    let err = scope(acting("bob"), pool.agent_tools(&agent)).await.err().expect("challenge");
    let McpError::AuthorizationRequired(needed) = err else { panic!("challenge") };
    let (code, state, _) = authorize(&needed.challenges[0].auth_url).await;
    let forged = oauth.complete(finder(&agent), &code, &state, Some("http://evil.example")).await;
    assert!(
        matches!(forged, Err(crate::oauth::OAuthError::Failed { step: AuthStep::TokenRequest, .. })),
        "{forged:?}"
    );
    assert_eq!(auth.token_requests("authorization_code").await, 1, "the forged callback asked for nothing");
}

#[tokio::test]
async fn an_expiring_per_user_token_is_refreshed_with_the_refresh_token() {
    // Tokens that live 20 s are always within the 30 s refresh margin: every use refreshes.
    let auth = AuthServer::start(SECRET, 20);
    let (server, _guard) = protected(&auth);
    let pool = container(&Arc::new(MemoryTokenStore::default()), SECRET);
    let agent = oauth_server(&auth, &server.url, "authorization_code");
    authorize_as("alice", &pool, &agent).await;
    assert_eq!(auth.token_requests("refresh_token").await, 0);

    let tools =
        scope(acting("alice"), pool.agent_tools(&agent)).await.expect("a refreshable token is enough");
    assert!(auth.token_requests("refresh_token").await >= 1, "refreshed before use");
    let called = scope(acting("alice"), pool.call(tools.route("srv_echo").expect("route"), "{}")).await;
    assert_eq!(called.expect("call with the refreshed token").text, "called echo");
}

#[tokio::test]
async fn an_authorization_server_the_resource_does_not_name_fails_discovery() {
    let auth = AuthServer::start(SECRET, 3600);
    let impostor = AuthServer::start(SECRET, 3600);
    let (server, _guard) = protected(&auth);
    let pool = container(&Arc::new(MemoryTokenStore::default()), SECRET);
    // The config names another authorization server than the one the resource's metadata names.
    let err = pool
        .agent_tools(&oauth_server(&impostor, &server.url, "client_credentials"))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, McpError::Auth { step: AuthStep::Discovery, .. }), "{err:?}");
    assert_eq!(impostor.token_requests("token").await + auth.token_requests("token").await, 0);
}

#[tokio::test]
async fn with_refresh_switched_off_an_expiring_per_user_token_means_a_new_challenge() {
    let auth = AuthServer::start(SECRET, 20);
    let (server, _guard) = protected(&auth);
    let pool = container_with(&Arc::new(MemoryTokenStore::default()), SECRET, false);
    let agent = oauth_server(&auth, &server.url, "authorization_code");
    authorize_as("alice", &pool, &agent).await;
    let again =
        scope(acting("alice"), pool.agent_tools(&agent)).await.err().expect("no refresh: challenged again");
    assert!(matches!(again, McpError::AuthorizationRequired(_)), "{again:?}");
    assert_eq!(auth.token_requests("refresh_token").await, 0);
}
