//! The shared state through the API: response cache, shared tool catalog, rate limits, and what
//! happens when Redis is not there. Redis is the machine's real server under a per-test prefix.

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{StackOptions, mount_script, redis_env, spawn_stack, spawn_stack_with};

const READ_HELLO: &str = r#"call:fs_read_file {"path":"hello.txt"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_is_served_from_the_cache_without_the_llm() {
    let app = spawn_stack_with(StackOptions { env: redis_env(), ..Default::default() }).await;
    mount_script(&app).await;
    let body = json!({"chat_history": [{"role": "user", "content": "cache me"}]});

    let (status, headers, first) = app.post_json("plain/1", &body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(headers["x-cache"], "miss");
    let (status, headers, second) = app.post_json("plain/1", &body).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(headers["x-cache"], "hit");
    assert_eq!(second["output_raw"], first["output_raw"]);
    assert_ne!(second["request_id"], first["request_id"], "a hit is still its own request");
    assert!(
        second["extra_data"]["items"]
            .as_array()
            .expect("items")
            .contains(&json!({"key": "cached", "value": "true"}))
    );
    assert_eq!(app.llm_requests().await.len(), 1, "the hit cost no LLM call");

    // Cache-Control: no-cache goes to the LLM again.
    let resp = app
        .http
        .post(format!("{}/plain/1", app.base))
        .header("cache-control", "no-cache")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cache"], "bypass");
    assert_eq!(app.llm_requests().await.len(), 2);

    // A different input is a different key; the key ignores session_id.
    let (_, headers, _) =
        app.post_json("plain/1", &json!({"chat_history": [{"role": "user", "content": "other"}]})).await;
    assert_eq!(headers["x-cache"], "miss");
    let with_session =
        json!({"session_id": "s-9", "chat_history": [{"role": "user", "content": "cache me"}]});
    let (_, headers, hit) = app.post_json("plain/1", &with_session).await;
    assert_eq!(headers["x-cache"], "hit");
    assert_eq!(hit["session_id"], "s-9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_never_cached() {
    let app = spawn_stack().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&app.llm)
        .await;
    mount_script(&app).await;
    let body = json!({"chat_history": [{"role": "user", "content": "flaky"}]});
    let (status, _, _) = app.post_json("plain/1", &body).await;
    assert_eq!(status, 502);
    let (status, headers, ok) = app.post_json("plain/1", &body).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(headers["x-cache"], "miss", "the 502 left nothing in the cache");
    assert_eq!(ok["output_raw"], "ECHO: flaky");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_container_reuses_the_shared_catalog_and_makes_no_mcp_round_trip_before_the_llm() {
    let env = redis_env();
    let app = spawn_stack_with(StackOptions { env: env.clone(), ..Default::default() }).await;
    mount_script(&app).await;
    let (status, _, body) = app.say("fs-agent/1", READ_HELLO).await;
    assert_eq!(status, 200, "{body}");

    // A second container, same Redis: it has never talked to the MCP server.
    let sibling = app.sibling(&StackOptions { env, ..Default::default() }).await;
    let before = app.mcp().posts();
    let resp = app
        .http
        .post(format!("{sibling}/fs-agent/1"))
        .json(&json!({"items": [{"content_type": "text", "content": "just chat"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(app.mcp().posts() - before, 0, "no initialize and no tools/list: the catalog came from Redis");
    let sent = app.llm_requests().await;
    let tools = sent.last().expect("LLM call")["tools"].as_array().expect("tools offered").len();
    assert!(tools >= 4, "the LLM was offered the shared catalog ({tools} tools)");

    // Its first tool call connects then (initialize + call), and works.
    let resp = app
        .http
        .post(format!("{sibling}/fs-agent/1"))
        .json(&json!({"items": [{"content_type": "text", "content": READ_HELLO}]}))
        .send()
        .await
        .expect("request");
    let v: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(v["output_raw"], "TOOL SAID: hello from the e2e data dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_its_rate_limit_gets_429_with_retry_after() {
    let mut env = redis_env();
    env.push(("TA_RATE_LIMIT_RPS", "0.01".to_owned()));
    env.push(("TA_RATE_LIMIT_BURST", "2".to_owned()));
    let app = spawn_stack_with(StackOptions { env, ..Default::default() }).await;
    mount_script(&app).await;
    for i in 0..2 {
        let (status, _, body) = app.say("plain/1", &format!("hi {i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    let resp = app
        .http
        .post(format!("{}/plain/1", app.base))
        .json(&json!({"items": [{"content_type": "text", "content": "one too many"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=100).contains(&retry), "retry-after {retry}");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(app.llm_requests().await.len(), 2, "a refused request never reaches the LLM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_new_conversations_succeed_and_sessions_fail_clearly() {
    // A port nothing listens on: Redis "down" from the start.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let env = vec![("TA_REDIS_URL", format!("redis://127.0.0.1:{port}"))];
    let started = std::time::Instant::now();
    let app = spawn_stack_with(StackOptions { env, ..Default::default() }).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "a down Redis must not block start-up");
    mount_script(&app).await;

    // A request that continues no session is answered, and says its history was not kept.
    let (status, _, body) = app.say("plain/1", "hello?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_raw"], "ECHO: hello?");
    let items = body["extra_data"]["items"].as_array().expect("items");
    assert!(items.contains(&json!({"key": "session_stored", "value": "false"})), "{body}");
    let (status, _, body) =
        app.post_json("plain/1", &json!({"chat_history": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(status, 200, "{body}");

    // Continuing a session needs its history: 503, not an answer without it.
    let (status, _, body) = app
        .post_json(
            "plain/1",
            &json!({"session_id": "s-1", "items": [{"content_type": "text", "content": "and then?"}]}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "session_store_unavailable");
    assert_eq!(body["error"]["upstream"], "session_store");
    let (status, ready) = app.get("/ready").await;
    assert_eq!(status, 503);
    assert!(ready["failed"].as_array().expect("failed").contains(&json!("redis")), "{ready}");
}
