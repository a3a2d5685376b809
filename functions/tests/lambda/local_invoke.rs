//! `scripts/local-invoke.sh` end to end: the real binary under `cargo lambda watch`, invoked
//! with an event file by `cargo lambda invoke` (the streaming function: through the emulated
//! function URL). Needs cargo-lambda on PATH (`pip install cargo-lambda`); without it these tests
//! fail, they do not skip.

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{KEYS_SECRET, Stack, hello_txt, key_set_json, repo, sse_events};

/// Runs the script with the stack's environment; returns what it printed.
async fn local_invoke_text(stack: &Stack, function: &str, event: &str) -> String {
    let out = Command::new(repo().join("scripts/local-invoke.sh"))
        .args([function, event])
        .current_dir(repo())
        .envs(&stack.env)
        // The key set the stream function checks itself (the others leave it to the authorizer).
        .env(KEYS_SECRET, key_set_json())
        .env("RUST_LOG", "warn")
        // The first invocation waits for the watcher's own build (the target dir may be busy).
        .env("LOCAL_INVOKE_TIMEOUT", "120")
        .kill_on_drop(true)
        .output()
        .await
        .expect("scripts/local-invoke.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "local-invoke.sh {function} {event} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// [`local_invoke_text`], read as the Lambda response it printed.
async fn local_invoke(stack: &Stack, function: &str, event: &str) -> Value {
    let stdout = local_invoke_text(stack, function, event).await;
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not a Lambda response ({e}): {stdout}"))
}

fn body(response: &Value) -> Value {
    let text = response["body"].as_str().unwrap_or_else(|| panic!("no body: {response}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_runs_under_cargo_lambda_watch() {
    let stack = Stack::start().await;
    let response = local_invoke(&stack, "health", "health").await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let body = body(&response);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["agents"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_runs_under_cargo_lambda_watch() {
    let stack = Stack::start().await;
    let response = local_invoke(&stack, "invoke", "invoke").await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let body = body(&response);
    assert_eq!(body["output_raw"], format!("FILE SAYS: {}", hello_txt()));
    assert_eq!(body["source"], "fs-assistant:0.1");
    assert_eq!(stack.llm_calls().await, 2);
}

/// The streaming function's `main` on its own Runtime API loop (`stream_runtime`), its settings
/// read from the variables the emulator sets, driven through the emulated function URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_runs_under_cargo_lambda_watch() {
    let stack = Stack::start().await;
    let body = local_invoke_text(&stack, "stream", "stream").await;
    let events = sse_events(&body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["tool-call-started", "tool-call-finished", "partial-response", "final-response"],
        "{body}"
    );
    assert_eq!(events[3].1["output_raw"], format!("FILE SAYS: {}", hello_txt()));
    assert_eq!(stack.llm_calls().await, 2);
}
