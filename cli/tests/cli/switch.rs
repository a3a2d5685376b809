//! The kill switch across processes: `teal serve` (the built binary) runs against the real Redis
//! with a fake LLM in this test; `teal disable`, run as another process, turns its agent off.
//! The server answers 503 naming the switch within a second of the command, a run held at the
//! LLM when the switch was flipped ends before its tool call, and `teal enable` brings it back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::teal;

#[derive(Default)]
struct Llm {
    /// A `[hold]` request arrived.
    held: Notify,
    /// Lets the `[hold]` request answer.
    release: Notify,
    holds: AtomicU64,
}

/// OpenAI's wire format: `[hold]` waits for `release`, then asks for `fs_read_file`; a tool
/// result gets a final answer; anything else `ok`.
async fn llm(State(llm): State<Arc<Llm>>, Json(body): Json<Value>) -> Json<Value> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or_default();
    let message = if last["role"] == "tool" {
        json!({"role": "assistant", "content": "done"})
    } else if last["content"].as_str().is_some_and(|c| c.contains("[hold]")) {
        llm.holds.fetch_add(1, Ordering::SeqCst);
        llm.held.notify_one();
        llm.release.notified().await;
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "fs_read_file", "arguments": "{\"path\":\"hello.txt\"}"}}]})
    } else {
        json!({"role": "assistant", "content": "ok"})
    };
    let finish = if message.get("tool_calls").is_some() { "tool_calls" } else { "stop" };
    Json(json!({"id": "x", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))
}

fn redis_url() -> String {
    std::env::var("TEAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `teal disable|enable TARGET` as its own process, against `prefix`.
fn switch(command: &str, target: &str, prefix: &str) -> std::process::Output {
    teal()
        .args([command, target])
        .env("TA_REDIS_URL", redis_url())
        .env("TA_REDIS_PREFIX", prefix)
        .output()
        .expect("run teal")
}

async fn say(http: &reqwest::Client, url: &str, text: &str) -> (u16, Value) {
    let body = json!({"items": [{"content_type": "text", "content": text}]});
    let resp = http.post(url).json(&body).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

/// Sends `hello` until the answer is `want`; the moment the answering request was sent.
async fn until_status(http: &reqwest::Client, url: &str, want: u16, from: Instant) -> (Instant, Value) {
    loop {
        let sent = Instant::now();
        let (status, body) = say(http, url, "hello").await;
        if status == want {
            return (sent, body);
        }
        assert!(from.elapsed() < Duration::from_secs(5), "still {status} after 5 s: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teal_disable_stops_a_served_agent_within_a_second_and_its_run_in_flight() {
    let state = Arc::new(Llm::default());
    let router = Router::new().route("/v1/chat/completions", post(llm)).with_state(state.clone());
    let llm_url = format!("{}/v1", super::listen(router).await);

    let configs = tempfile::tempdir().expect("configs");
    std::fs::write(
        configs.path().join("switched.yaml"),
        "apiVersion: skagents/v1\nkind: Chat\nservice_name: switched\nversion: 1\nspec:\n  agent:\n    \
         model: gpt-test\n    system_prompt: s\n    mcp_servers:\n      - name: fs\n        url: ${TEAL_BUNDLED_FS_URL}\n",
    )
    .expect("write");
    let prefix = format!("teal-cli-switch-{}:", std::process::id());
    let mut cmd = teal();
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--config"])
        .arg(configs.path())
        .env("TA_REDIS_URL", redis_url())
        .env("TA_REDIS_PREFIX", &prefix)
        .env("TA_BASE_URL", &llm_url)
        .env("TA_API_KEY", "test-key");
    let (_served, base) = super::serve(cmd);
    let url = format!("{base}/switched/1");
    let http = reqwest::Client::new();
    assert_eq!(say(&http, &url, "hello").await.0, 200);

    // A run in flight, held at the LLM.
    let in_flight = tokio::spawn({
        let (http, url) = (http.clone(), url.clone());
        async move { say(&http, &url, "[hold] read hello.txt").await }
    });
    state.held.notified().await;

    let out = switch("disable", "switched/1", &prefix);
    let flipped = Instant::now();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("disabled switched/1 ("), "{said}");

    let (sent, body) = until_status(&http, &url, 503, flipped).await;
    let took = sent.duration_since(flipped);
    assert!(
        took <= Duration::from_millis(1100),
        "the first 503 was to a request sent {took:?} after the switch"
    );
    assert_eq!(body["error"]["code"], "agent_disabled", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("agent switched/1 is disabled by the kill switch `switched/1` (set at "),
        "{message}"
    );
    assert!(message.ends_with("enable it with `teal enable switched/1`"), "{message}");

    // The held run goes on only now: it stops before the tool call the LLM asks for.
    state.release.notify_one();
    let (status, body) = in_flight.await.expect("in flight");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "agent_disabled");
    assert_eq!(body["error"]["progress"]["iterations"], 1, "{body}");
    assert_eq!(body["error"]["progress"]["tool_calls"], json!([]), "no tool call was made: {body}");
    assert_eq!(state.holds.load(Ordering::SeqCst), 1);

    let out = switch("enable", "switched/1", &prefix);
    let enabled = Instant::now();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (sent, _) = until_status(&http, &url, 200, enabled).await;
    assert!(sent.duration_since(enabled) <= Duration::from_millis(1100));
    assert!(
        String::from_utf8_lossy(&switch("enable", "switched/1", &prefix).stdout).contains("was not disabled")
    );
}

#[test]
fn without_redis_the_switch_commands_say_what_they_need() {
    let out = teal()
        .args(["disable", "switched"])
        .env_remove("TA_REDIS_URL")
        .env_remove("TA_REDIS_HOST")
        .output()
        .expect("run teal");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set TA_REDIS_URL"), "{err}");
    assert!(err.contains("stop the `teal serve` process instead"), "{err}");
    let out = teal().args(["disable", "bad name"]).output().expect("run teal");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NAME or NAME/VERSION"));
}
