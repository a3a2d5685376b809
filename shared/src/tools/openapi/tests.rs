//! The module at the wire: real axum servers on 127.0.0.1:0 serve the OpenAPI documents and
//! implement the operations (echoing what reached them), and plugins are loaded and called
//! through the public API.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::*;

const PETSTORE: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openapi/petstore-3.0.json"));

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi").join(name)
}

/// Serves `router` on a free port of 127.0.0.1 until the test ends; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// What reached the server, as JSON.
async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    axum::Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "content_type": header("content-type"),
        "authorization": header("authorization"),
        "x_api_key": header("x-api-key"),
        "x_request_id": header("x-request-id"),
        "body": serde_json::from_slice::<Value>(&body).ok(),
    }))
    .into_response()
}

/// The petstore: its document at `/openapi.json`, its operations under `/api`.
fn petstore(elsewhere: Option<String>) -> Router {
    Router::new()
        .route("/openapi.json", get(|| async { ([("content-type", "application/json")], PETSTORE) }))
        .route("/api/pets/{id}/photo", get(|Path(id): Path<u32>| async move { (StatusCode::NOT_FOUND, format!("no photo for pet {id}")) }))
        .route("/api/big", get(|| async { "x".repeat(4096) }))
        .route(
            "/api/big-stream",
            get(|| async {
                let chunks = (0..8).map(|_| Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'y'; 1024])));
                Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route("/api/slow", get(std::future::pending::<&'static str>))
        .route(
            "/api/moved",
            get(move || {
                let to = elsewhere.clone().unwrap_or_else(|| "/api/pets/1".into());
                async move { Redirect::temporary(&to) }
            }),
        )
        .route("/api/{*rest}", any(echo))
}

fn settings() -> OpenApiSettings {
    OpenApiSettings { max_response_bytes: 2048, ..OpenApiSettings::default() }
}

/// The petstore served, and its plugin loaded over HTTP as a catalog would list it.
async fn petstore_plugin(settings: OpenApiSettings, elsewhere: Option<String>) -> Arc<RemotePlugin> {
    let base = serve(petstore(elsewhere)).await;
    let catalog = RemotePluginCatalog::parse(
        &format!("remote_plugins:\n  - plugin_name: petstore\n    openapi_json_path: {base}/openapi.json\n"),
        std::path::Path::new("catalog.yaml"),
    )
    .expect("catalog");
    let client = OpenApiClient::new(settings).expect("client");
    let plugins = RemotePlugins::load(&catalog, &["petstore"], &client, soon()).await.expect("loaded");
    plugins.get("petstore").expect("petstore").clone()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

async fn call(plugin: &RemotePlugin, tool: &str, args: Value) -> ToolOutcome {
    plugin.call(tool, &args.to_string(), &AuthHeaders::new(), soon()).await.expect("reached")
}

fn echoed(outcome: &ToolOutcome) -> Value {
    assert!(!outcome.is_error, "{}", outcome.text);
    serde_json::from_str(&outcome.text).expect("echo JSON")
}

#[tokio::test]
async fn a_document_fetched_over_http_gives_tools_that_reach_the_server_as_specified() {
    let plugin = petstore_plugin(settings(), None).await;
    assert_eq!(plugin.tools().len(), 9);
    assert!(plugin.skipped().iter().any(|s| s.whole_operation && s.operation == "POST /upload"));

    let get = call(&plugin, "petstore-getPet", json!({"petId": 7, "X_Request_Id": "r-1"})).await;
    let get = echoed(&get);
    assert_eq!(
        (&get["method"], &get["path"], &get["x_request_id"]),
        (&json!("GET"), &json!("/api/pets/7"), &json!("r-1"))
    );

    let list = echoed(&call(&plugin, "petstore-listPets", json!({"tag": ["a b", "c"]})).await);
    assert_eq!(list["query"], "tag=a+b&tag=c&limit=20");

    let created = echoed(
        &call(
            &plugin,
            "petstore-createPet",
            json!({"name": "Rex", "owner_email": "o@x.test", "owner_city": "Oslo"}),
        )
        .await,
    );
    assert_eq!(created["content_type"], "application/json");
    assert_eq!(created["body"], json!({"name": "Rex", "owner": {"email": "o@x.test", "city": "Oslo"}}));

    let deleted = echoed(&call(&plugin, "petstore-delete_pets_petId", json!({"petId": 3})).await);
    assert_eq!((&deleted["method"], &deleted["path"]), (&json!("DELETE"), &json!("/api/pets/3")));
}

#[tokio::test]
async fn a_3_1_yaml_document_on_disk_is_called_at_the_catalog_server_url() {
    let base = serve(petstore(None)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture("inventory-3.1.yaml"), dir.path().join("inventory.yaml")).expect("copy");
    let catalog_path = dir.path().join("catalog.yaml");
    std::fs::write(
        &catalog_path,
        format!("remote_plugins:\n  - plugin_name: inventory\n    openapi_json_path: inventory.yaml\n    server_url: {base}/api\n"),
    )
    .expect("write catalog");
    let catalog = RemotePluginCatalog::load(&catalog_path).expect("catalog");
    let client = OpenApiClient::new(settings()).expect("client");
    let entry = catalog.get("inventory").expect("entry");
    let plugin = RemotePlugin::load(entry, &client, soon()).await.expect("loaded");

    let put = echoed(
        &call(&plugin, "inventory-replaceTags", json!({"petId": 5, "payload": ["x", "y"], "version": 2}))
            .await,
    );
    assert_eq!(
        (&put["method"], &put["path"], &put["query"]),
        (&json!("PUT"), &json!("/api/pets/5/tags"), &json!("version=2"))
    );
    assert_eq!(put["body"], json!(["x", "y"]));

    let args = json!({"filter": {"color": "red"}, "fields": ["id", "name"]});
    let search = echoed(&call(&plugin, "inventory-stock_search", args).await);
    assert_eq!(search["query"], "filter%5Bcolor%5D=red&fields=id%7Cname");
}

#[tokio::test]
async fn what_the_model_gets_wrong_goes_back_to_it_as_a_tool_error() {
    let plugin = petstore_plugin(settings(), None).await;
    let missing = call(&plugin, "petstore-createPet", json!({"owner_city": "Oslo"})).await;
    assert_eq!(
        (missing.text.as_str(), missing.is_error),
        ("missing required argument(s): name, owner_email", true)
    );

    let not_json =
        plugin.call("petstore-getPet", "{petId: 1", &AuthHeaders::new(), soon()).await.expect("outcome");
    assert!(
        not_json.is_error && not_json.text.starts_with("arguments are not valid JSON"),
        "{}",
        not_json.text
    );
    let not_object =
        plugin.call("petstore-getPet", "[1]", &AuthHeaders::new(), soon()).await.expect("outcome");
    assert_eq!(not_object.text, "arguments must be a JSON object, got: [1]");

    let unknown = call(&plugin, "petstore-adopt", json!({})).await;
    assert!(
        unknown.is_error
            && unknown.text.starts_with("unknown tool petstore-adopt; petstore offers: petstore-listPets")
    );

    let not_found = call(&plugin, "petstore-getPhoto", json!({"petId": 9})).await;
    assert_eq!((not_found.text.as_str(), not_found.is_error), ("HTTP 404: no photo for pet 9", true));
}

#[tokio::test]
async fn answers_over_the_size_limit_are_not_read() {
    let plugin = petstore_plugin(settings(), None).await;
    for tool in ["petstore-getBig", "petstore-getBigStream"] {
        let big = call(&plugin, tool, json!({})).await;
        assert!(big.is_error, "{tool}");
        assert!(big.text.contains("larger than 2048 bytes"), "{tool}: {}", big.text);
    }
}

#[tokio::test]
async fn a_server_that_is_down_or_too_slow_is_an_error_for_the_caller() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let down = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let entry = CatalogEntry {
        name: PluginName::parse("petstore").expect("name"),
        document: DocumentSource::File(fixture("petstore-3.0.json")),
        server_url: Some(down.parse().expect("url")),
        headers: Default::default(),
    };
    let client = OpenApiClient::new(settings()).expect("client");
    let plugin = RemotePlugin::load(&entry, &client, soon()).await.expect("loaded from disk");
    let e = plugin
        .call("petstore-getPet", r#"{"petId": 1}"#, &AuthHeaders::new(), soon())
        .await
        .expect_err("down");
    assert!(matches!(e, OpenApiError::Unreachable { .. }), "{e:?}");
    assert_eq!(e.to_string(), "remote plugin 'petstore' is unreachable");
    assert_eq!(e.plugin(), Some("petstore"));

    let plugin = petstore_plugin(settings(), None).await;
    let deadline = Instant::now() + Duration::from_millis(200);
    let e = plugin.call("petstore-slow", "{}", &AuthHeaders::new(), deadline).await.expect_err("deadline");
    assert_eq!(e.to_string(), "request deadline reached while calling remote plugin 'petstore'");
    let e = plugin.call("petstore-slow", "{}", &AuthHeaders::new(), Instant::now()).await.expect_err("past");
    assert!(matches!(e, OpenApiError::Deadline { .. }), "{e:?}");

    let short = OpenApiSettings { timeout: Duration::from_millis(200), ..settings() };
    let plugin = petstore_plugin(short, None).await;
    let e = plugin.call("petstore-slow", "{}", &AuthHeaders::new(), soon()).await.expect_err("timeout");
    assert_eq!(e.to_string(), "remote plugin 'petstore' did not answer within 200 ms");
}

#[tokio::test]
async fn loading_fails_with_the_plugin_named() {
    let base = serve(petstore(None)).await;
    let client = OpenApiClient::new(settings()).expect("client");
    let catalog = RemotePluginCatalog::parse(
        &format!(
            "remote_plugins:\n  - plugin_name: gone\n    openapi_json_path: {base}/nothing.json\n  \
             - plugin_name: local\n    openapi_json_path: petstore-3.0.json\n"
        ),
        &fixture("catalog.yaml"),
    )
    .expect("catalog");
    let e = RemotePlugins::load(&catalog, &["gone"], &client, soon()).await.expect_err("404");
    assert_eq!(
        e.to_string(),
        format!("remote plugin 'gone': OpenAPI document {base}/nothing.json could not be loaded")
    );
    assert!(crate::telemetry::error_chain(&e).ends_with("was answered with HTTP 404"), "{e}");
    let e = RemotePlugins::load(&catalog, &["missing"], &client, soon()).await.expect_err("unknown");
    assert_eq!(e.to_string(), "remote plugin 'missing' is not in the remote plugin catalog");
    // A relative server URL needs a document URL to resolve against: from disk it is an error.
    let e = RemotePlugins::load(&catalog, &["local"], &client, soon()).await.expect_err("relative server");
    assert!(crate::telemetry::error_chain(&e).contains("server URL \"/api\" is relative"), "{e}");
}

#[tokio::test]
async fn auth_headers_win_over_the_model_and_never_leave_the_origin() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let elsewhere = serve(Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { "elsewhere" }
    }))
    .await;
    let plugin = petstore_plugin(settings(), Some(format!("{elsewhere}/steal"))).await;
    let auth = AuthHeaders::new()
        .with("Authorization", SecretString::from("Bearer sk-test-secret"))
        .and_then(|a| a.with("X-Api-Key", SecretString::from("key-from-secrets")))
        .expect("auth");
    let args = json!({"petId": 1, "X_Api_Key": "model-made-up"}).to_string();
    let got = echoed(&plugin.call("petstore-getPet", &args, &auth, soon()).await.expect("reached"));
    assert_eq!(
        (&got["authorization"], &got["x_api_key"]),
        (&json!("Bearer sk-test-secret"), &json!("key-from-secrets"))
    );

    let moved = plugin.call("petstore-moved", "{}", &auth, soon()).await.expect("answered");
    assert!(moved.is_error && moved.text.starts_with("HTTP 307"), "{}", moved.text);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a cross-origin redirect was followed");
}

#[tokio::test]
async fn same_origin_redirects_are_followed() {
    let plugin = petstore_plugin(settings(), None).await;
    let got = echoed(&call(&plugin, "petstore-moved", json!({})).await);
    assert_eq!(got["path"], "/api/pets/1");
}

/// Collects formatted log output of the current thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_hold_auth_header_values() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let plugin = petstore_plugin(settings(), None).await;
    let auth =
        AuthHeaders::new().with("Authorization", SecretString::from("Bearer sk-log-canary")).expect("auth");
    tracing::debug!(?auth, "calling with");
    let ok = plugin.call("petstore-getPet", r#"{"petId": 2}"#, &auth, soon()).await.expect("reached");
    assert!(ok.text.contains("sk-log-canary"), "the header did reach the server");
    let _ = plugin.call("petstore-getPhoto", r#"{"petId": 2}"#, &auth, soon()).await;
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(logs.contains("remote plugin call"), "nothing was logged: {logs}");
    assert!(!logs.contains("sk-log-canary"), "a log line holds the key:\n{logs}");
}
