use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{StackOptions, mount_script, spawn_stack, spawn_stack_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_invalid_bodies_get_400_naming_the_problem() {
    let app = spawn_stack().await;
    mount_script(&app).await;
    let resp = app
        .http
        .post(format!("{}/plain/1", app.base))
        .header("content-type", "application/json")
        .body("{\"chat_history\": [")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_request");
    assert_eq!(body["error"]["message"], "chat_history: EOF while parsing a list at line 1 column 18");

    let (status, _, body) =
        app.post_json("plain/1", &json!({"chat_history": [{"role": "wizard", "content": "hi"}]})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "chat_history[0].role: must be \"user\" or \"assistant\", got \"wizard\""
    );
    assert!(app.llm_requests().await.is_empty(), "bad input never reaches the LLM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_agent_gets_404_listing_the_known_ones() {
    let app = spawn_stack().await;
    let (status, headers, body) = app.say("ghost/2", "hi").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "no agent ghost/2");
    assert_eq!(body["error"]["known_agents"], json!(["fs-agent/1", "plain/1"]));
    assert_eq!(
        headers["x-request-id"].to_str().expect("ascii"),
        body["error"]["request_id"].as_str().expect("id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_413() {
    let app = spawn_stack_with(StackOptions { body_limit: 1024, ..Default::default() }).await;
    mount_script(&app).await;
    let (status, _, body) = app.say("plain/1", &"x".repeat(2000)).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["message"], "request body is larger than the limit of 1024 bytes");
    // Chunked bodies (no Content-Length) are cut at the limit too.
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut raw =
        b"POST /plain/1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n640\r\n".to_vec();
    raw.extend(vec![b' '; 0x640]);
    raw.extend(b"\r\n0\r\n\r\n");
    stream.write_all(&raw).await.expect("write");
    let mut head = vec![0u8; 12];
    stream.read_exact(&mut head).await.expect("status line");
    assert_eq!(&head, b"HTTP/1.1 413");
    let (status, _, _) = app.say("plain/1", "small enough").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_failing_after_retries_gives_502_naming_the_llm() {
    let app = spawn_stack().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&app.llm)
        .await;
    let (status, _, body) = app.say("plain/1", "hi").await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["upstream"], "llm");
    assert_eq!(body["error"]["message"], "LLM upstream failed: HTTP 500 after 3 attempt(s)");
    assert_eq!(app.llm_requests().await.len(), 3, "1 attempt + 2 retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_deadline_gets_504_with_what_happened() {
    let app =
        spawn_stack_with(StackOptions { request_timeout: Duration::from_millis(400), ..Default::default() })
            .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&app.llm)
        .await;
    let started = Instant::now();
    let (status, _, body) = app.say("plain/1", "hi").await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "deadline_exceeded");
    assert_eq!(body["error"]["upstream"], "llm", "what the run was waiting for");
    assert_eq!(body["error"]["progress"]["iterations"], 1);
    assert!(took < Duration::from_secs(3), "stopped at the deadline, not the LLM's pace: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_never_stops_calling_tools_hits_max_iterations() {
    let app = spawn_stack_with(StackOptions { max_iterations: 3, ..Default::default() }).await;
    mount_script(&app).await;
    let (status, _, body) = app.say("fs-agent/1", "loop: forever").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "iteration_limit");
    assert_eq!(body["error"]["upstream"], "llm");
    assert_eq!(body["error"]["progress"]["iterations"], 3);
    assert_eq!(body["error"]["progress"]["tool_calls"].as_array().expect("calls").len(), 3);
}
