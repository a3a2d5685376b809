use serde_json::json;
use teal_mcp_filesystem::SessionMode;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{StackOptions, mount_script, spawn_stack, spawn_stack_with};

const READ_HELLO: &str = r#"call:fs_read_file {"path":"hello.txt"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_429_is_retried_and_the_request_succeeds() {
    let app = spawn_stack().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("retry-after", "0").set_body_string("slow down"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.llm)
        .await;
    mount_script(&app).await;
    let (status, _, body) = app.say("plain/1", "hi").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_raw"], "ECHO: hi");
    assert_eq!(app.llm_requests().await.len(), 2, "one 429, one success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_server_killed_mid_run_gives_502_naming_it() {
    let app = spawn_stack_with(StackOptions { kill_switch: true, ..Default::default() }).await;
    mount_script(&app).await;
    // Warm: the pool holds a live session to the server.
    let (status, _, body) = app.say("fs-agent/1", READ_HELLO).await;
    assert_eq!(status, 200, "{body}");
    // The LLM's answer kills the server between its tool call and our MCP call.
    let (status, _, body) = app.say("fs-agent/1", r#"kill-mid-run:fs_read_file {"path":"hello.txt"}"#).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["upstream"], "mcp:fs");
    assert_eq!(body["error"]["message"], "MCP server 'fs' is unreachable");
    assert_eq!(body["error"]["progress"]["tool_calls"][0]["tool"], "fs_read_file");
    assert!(app.kill_switch.lock().expect("switch").is_none(), "the script did kill the server");

    // Agents that do not need the server are not affected.
    let (status, _, body) = app.say("plain/1", "still here?").await;
    assert_eq!(status, 200, "{body}");
    // /ready says which check failed.
    let (status, ready) = app.get("/ready").await;
    assert_eq!(status, 503);
    assert_eq!(ready["failed"], json!(["mcp:fs"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_mcp_server_is_reconnected_transparently() {
    let mut app = spawn_stack().await;
    mount_script(&app).await;
    let (status, _, _) = app.say("fs-agent/1", READ_HELLO).await;
    assert_eq!(status, 200);

    // A new server process on the same address knows nothing of our session.
    app.mcp_mut().restart();
    let (status, _, body) = app.say("fs-agent/1", READ_HELLO).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_raw"], "TOOL SAID: hello from the e2e data dir");

    // Down, then back: the failing request says so, the next one after the restart works.
    app.mcp_mut().kill();
    let (status, _, body) = app.say("fs-agent/1", READ_HELLO).await;
    assert_eq!(status, 502, "{body}");
    app.mcp_mut().restart();
    let (status, _, body) = app.say("fs-agent/1", READ_HELLO).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get("/ready").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_mcp_server_works_the_same() {
    let app = spawn_stack_with(StackOptions { mcp_mode: SessionMode::Stateless, ..Default::default() }).await;
    mount_script(&app).await;
    for _ in 0..3 {
        let (status, _, body) = app.say("fs-agent/1", READ_HELLO).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["output_raw"], "TOOL SAID: hello from the e2e data dir");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_server_down_from_the_start_gives_502_not_a_crash() {
    let mut app = spawn_stack().await;
    mount_script(&app).await;
    app.mcp_mut().kill();
    let (status, _, body) = app.say("fs-agent/1", READ_HELLO).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "mcp_upstream_failed");
    assert_eq!(body["error"]["upstream"], "mcp:fs");
    assert!(app.llm_requests().await.is_empty(), "no LLM call is paid for when the tools cannot be listed");
    let (status, _) = app.get("/fs-agent/1/tools").await;
    assert_eq!(status, 502);
}
