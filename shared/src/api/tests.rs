//! The routes over an in-process state: in-memory stores, the offline model, one agent without
//! MCP servers. What these prove is the HTTP layer's own behaviour (ids, limits, bodies, cache
//! headers); the end-to-end suite covers the upstreams.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::bootstrap;
use crate::config::{Registry, parse_documents};
use crate::llm::{Llm, OfflineModel};
use crate::secrets::EnvSecretStore;
use crate::settings::{Env, Settings};
use crate::store::Stores;

const TASKS_AGENT: &str = "apiVersion: tealagents/v1alpha1\nname: tasks\nversion: 0.1\ndescription: Keeps tasks\nspec:\n  \
                           agent:\n    model: m\n    system_prompt: hi\n";

const SEQUENTIAL_AGENT: &str = "apiVersion: skagents/v1\nkind: Sequential\nservice_name: seq\nversion: 1\nspec:\n  \
    agents:\n    - name: a\n      model: m\n      system_prompt: s\n  tasks:\n    - name: first\n      task_no: 1\n      \
    description: d\n      instructions: one\n      agent: a\n    - name: second\n      task_no: 2\n      description: d\n      \
    instructions: 'two after {{_first}}'\n      agent: a\n";

fn app(pairs: &[(&str, &str)]) -> Router {
    let settings = Settings::read(&Env::from_pairs(pairs.iter().copied())).expect("settings");
    let yaml = "apiVersion: skagents/v1\nkind: Chat\nservice_name: chat\nversion: 1.0\nspec:\n  agent:\n    name: a\n    model: m\n    system_prompt: hi\n";
    let mut agents = parse_documents("chat.yaml", yaml).expect("valid").agents;
    agents.extend(parse_documents("tasks.yaml", TASKS_AGENT).expect("valid").agents);
    agents.extend(parse_documents("seq.yaml", SEQUENTIAL_AGENT).expect("valid").agents);
    let registry = Registry::new(agents).expect("registry");
    let stores = Stores::memory(&settings.stores);
    let state = bootstrap::build_state(
        &settings,
        registry,
        Arc::new(Llm::Offline(OfflineModel)),
        Arc::new(EnvSecretStore::new()),
        stores,
        Default::default(),
    );
    // Stands in for the authorizer: the caller id it would vouch for.
    let caller = |mut req: Request<Body>, next: axum::middleware::Next| async move {
        if let Some(c) = req.headers().get("x-test-caller").and_then(|v| v.to_str().ok()).map(str::to_owned) {
            req.extensions_mut().insert(Caller(c));
        }
        next.run(req).await
    };
    router(Arc::new(state)).layer(axum::middleware::from_fn(caller))
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, headers, body }
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path).header("content-type", "application/json")
}

fn chat(text: &str) -> String {
    json!({"chat_history": [{"role": "user", "content": text}]}).to_string()
}

#[tokio::test]
async fn every_response_carries_one_request_id_matching_its_body() {
    let app = app(&[]);
    let ok = send(
        &app,
        post("/chat/1.0").header("x-request-id", "client-id-1").body(Body::from(chat("a"))).expect("req"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers.get_all("x-request-id").iter().count(), 1);
    assert_eq!(ok.headers["x-request-id"], "client-id-1");
    assert_eq!(ok.body["request_id"], "client-id-1");

    let bad =
        send(&app, post("/chat/1.0").header("x-request-id", "has space").body(Body::from("{")).expect("req"))
            .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.headers.get_all("x-request-id").iter().count(), 1);
    let id = bad.headers["x-request-id"].to_str().expect("ascii");
    assert_ne!(id, "has space", "an unusable client id is replaced");
    assert_eq!(bad.body["error"]["request_id"], id);
    assert_eq!(bad.body["error"]["code"], "bad_request");
    assert!(bad.body["error"]["message"].as_str().expect("text").starts_with("invalid JSON body"));

    let health = send(&app, Request::get("/health").body(Body::empty()).expect("req")).await;
    assert_eq!(health.headers.get_all("x-request-id").iter().count(), 1);
    assert_eq!((health.body["status"].as_str(), health.body["agents"].as_u64()), (Some("ok"), Some(3)));
}

#[tokio::test]
async fn unknown_agents_are_404_listing_the_known_ones() {
    let a = send(&app(&[]), post("/ghost/2").body(Body::from(chat("a"))).expect("req")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["error"]["known_agents"], json!(["chat/1.0", "seq/1", "tasks/0.1"]));
    assert!(a.body["error"].get("upstream").is_none());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_whether_declared_or_streamed() {
    let app = app(&[("TA_BODY_LIMIT", "64")]);
    let big = chat(&"x".repeat(100));
    let declared = send(&app, post("/chat/1.0").body(Body::from(big.clone())).expect("req")).await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    let chunks = futures::stream::iter(
        big.into_bytes().chunks(10).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let streamed = send(&app, post("/chat/1.0").body(Body::from_stream(chunks)).expect("req")).await;
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(streamed.body["error"]["message"], "request body is larger than the limit of 64 bytes");
}

#[tokio::test]
async fn the_response_cache_hits_on_the_same_question_and_is_bypassed_when_asked() {
    let app = app(&[]);
    let ask = |cache_control: Option<&str>, body: String| {
        let mut b = post("/chat/1.0");
        if let Some(c) = cache_control {
            b = b.header("cache-control", c);
        }
        b.body(Body::from(body)).expect("req")
    };
    let first = send(&app, ask(None, chat("same"))).await;
    assert_eq!(first.headers["x-cache"], "miss");
    let second = send(&app, ask(None, chat("same"))).await;
    assert_eq!(second.headers["x-cache"], "hit");
    assert_eq!(second.body["output_raw"], first.body["output_raw"]);
    assert_ne!(second.body["request_id"], first.body["request_id"]);
    let bypass = send(&app, ask(Some("no-cache"), chat("same"))).await;
    assert_eq!(bypass.headers["x-cache"], "bypass");
    let items = json!({"items": [{"content_type": "text", "content": "same"}]}).to_string();
    assert_eq!(
        send(&app, ask(None, items)).await.headers["x-cache"],
        "bypass",
        "a continued session is never cached"
    );
}

#[tokio::test]
async fn a_caller_over_the_rate_limit_gets_429_with_retry_after() {
    let app = app(&[("TA_RATE_LIMIT_RPS", "0.01"), ("TA_RATE_LIMIT_BURST", "1")]);
    assert_eq!(
        send(&app, post("/chat/1.0").body(Body::from(chat("a"))).expect("req")).await.status,
        StatusCode::OK
    );
    let limited = send(&app, post("/chat/1.0").body(Body::from(chat("a"))).expect("req")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=100).contains(&retry), "{retry}");
    assert_eq!(limited.body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn ready_checks_the_session_store_and_names_each_check() {
    let a = send(&app(&[]), Request::get("/ready").body(Body::empty()).expect("req")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["status"], "ready");
    assert_eq!(a.body["checks"][0]["name"], "sessions:memory");
    assert_eq!(a.body["failed"], json!([]));
}

#[tokio::test]
async fn the_sse_route_prechecks_as_plain_4xx_and_streams_a_run() {
    let app = app(&[]);
    let bad = send(&app, post("/chat/1.0/sse").body(Body::from("{}")).expect("req")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let resp = app
        .clone()
        .oneshot(post("/chat/1.0/sse").body(Body::from(chat("hello"))).expect("req"))
        .await
        .expect("ok");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("stream");
    let text = String::from_utf8(bytes.to_vec()).expect("utf8");
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events, ["partial-response", "final-response"]);
}

#[tokio::test]
async fn tealagents_v1alpha1_answers_state_responses_and_continues_its_tasks() {
    let app = app(&[]);
    let say = |task: Option<&str>, caller: &str, text: &str| {
        let mut body = json!({"items": [{"content_type": "text", "content": text}]});
        if let Some(t) = task {
            body["task_id"] = json!(t);
        }
        post("/tasks/0.1").header("x-test-caller", caller).body(Body::from(body.to_string())).expect("req")
    };
    let first = send(&app, say(None, "ada", "hello")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["status"], "Completed");
    let task = first.body["task_id"].as_str().expect("task id").to_owned();
    assert_eq!(first.body["content"]["task_id"], task.as_str());
    assert_eq!(first.body["content"]["source"], "tasks:0.1");
    assert!(first.body["content"]["output"].as_str().expect("output").contains("You said: \"hello\""));

    // The next message continues the task: the model sees the whole history.
    let second = send(&app, say(Some(&task), "ada", "again")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["task_id"], task.as_str());
    assert_eq!(second.body["session_id"], first.body["session_id"]);
    assert!(
        second.body["content"]["output"].as_str().expect("output").contains("4 message(s) so far"),
        "{}",
        second.body
    );

    // Another user may not continue it.
    let other = send(&app, say(Some(&task), "mallory", "let me in")).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(other.body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn openapi_json_describes_each_agents_real_input_first() {
    let app = app(&[]);
    let a = send(&app, Request::get("/tasks/0.1/openapi.json").body(Body::empty()).expect("req")).await;
    assert_eq!(a.status, StatusCode::OK);
    let (first, op) = a.body["paths"].as_object().expect("paths").iter().next().expect("path");
    assert_eq!(first, "/tasks/0.1");
    assert_eq!(op["post"]["description"], "Keeps tasks");
    assert_eq!(a.body["components"]["schemas"]["Input"]["title"], "UserMessage");
    let missing = send(&app, Request::get("/ghost/1/openapi.json").body(Body::empty()).expect("req")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_with_the_request_id() {
    let app = app(&[]);
    let nf = send(
        &app,
        Request::get("/no/such/route/here").header("x-request-id", "r-404").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert_eq!(nf.body["error"]["code"], "not_found");
    assert_eq!(nf.body["error"]["request_id"], "r-404");
    let na = send(
        &app,
        Request::delete("/chat/1.0").header("x-request-id", "r-405").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(na.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(na.body["error"]["code"], "method_not_allowed");
    assert_eq!(na.body["error"]["request_id"], "r-405");
    for path in ["/health/live", "/chat/1.0/health/live"] {
        let live = send(&app, Request::get(path).body(Body::empty()).expect("req")).await;
        assert_eq!(live.status, StatusCode::OK, "{path}");
        assert_eq!(live.body["alive"], true);
        assert!(live.body["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    }
}

#[tokio::test]
async fn a_sequential_run_streams_each_finished_task_then_the_answer() {
    let app = app(&[]);
    let resp =
        app.clone().oneshot(post("/seq/1/sse").body(Body::from(chat("go"))).expect("req")).await.expect("ok");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("stream");
    let text = String::from_utf8(bytes.to_vec()).expect("utf8");
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events, ["intermediate-task-response", "partial-response", "final-response"]);
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    assert_eq!((data[0]["task_no"].as_u64(), data[0]["task_name"].as_str()), (Some(1), Some("first")));
    let first = data[0]["response"]["output_raw"].as_str().expect("first output");
    assert!(first.contains("You said: \"one\""), "{first}");
    // The second task saw the first's output through {{_first}}.
    let answer = data[2]["output_raw"].as_str().expect("answer");
    assert!(answer.contains("You said: \"two after [offline model]"), "{answer}");
}

#[tokio::test]
async fn the_oauth_callback_refuses_what_is_not_a_flow_it_started() {
    let app = app(&[]);
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    let unknown = send(&app, get("/oauth/callback?code=abc&state=never-issued")).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.body, json!({"status": "error", "message": "Invalid or expired state parameter"}));
    let missing = send(&app, get("/oauth/callback?state=x")).await;
    assert_eq!(
        (missing.status, missing.body["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("code and state are required"))
    );
    let denied = send(&app, get("/oauth/callback?error=access_denied&state=x")).await;
    assert_eq!(denied.body["message"], "the authorization server answered error=access_denied");
}

#[tokio::test]
async fn an_auth_challenge_is_teals_auth_challenge_response_with_200() {
    let needed = crate::mcp::AuthorizationNeeded {
        challenges: vec![crate::oauth::ServerChallenge {
            server_name: "gh".into(),
            auth_server: "https://auth.example.com/".into(),
            scopes: vec!["repo".into()],
            auth_url: "https://auth.example.com/authorize?state=s".into(),
        }],
        resume_url: "https://api.example.com/chat/1.0".into(),
    };
    let resp = error_response(&crate::Error::AuthChallenge(Box::new(needed)), "req-1");
    assert_eq!(resp.status(), StatusCode::OK, "as Teal answers it");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(body["request_id"], "req-1");
    assert_eq!(body["message"], "Authentication required for 1 MCP server(s).");
    assert_eq!(body["resume_url"], "https://api.example.com/chat/1.0");
    assert_eq!(body["auth_challenges"][0]["server_name"], "gh");
    assert_eq!(body["auth_challenges"][0]["auth_url"], "https://auth.example.com/authorize?state=s");
    assert!(body["task_id"].is_string() && body["session_id"].is_string());
}
