//! `teal serve` stopped the way containers and service managers stop it (SIGTERM): it finishes
//! the request in flight, exports that request's spans, and exits 0. A fake LLM in the test holds
//! the request until the signal has been sent; an OTLP/HTTP receiver in the test keeps what it is
//! sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{listen, serve, teal};

#[derive(Default)]
struct Llm {
    held: Notify,
    release: Notify,
}

/// OpenAI's wire format: waits for `release`, then answers `ok`.
async fn llm(State(llm): State<Arc<Llm>>, Json(body): Json<Value>) -> Json<Value> {
    llm.held.notify_one();
    llm.release.notified().await;
    Json(json!({"id": "x", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}))
}

/// Every OTLP export request's body.
type Exports = Arc<Mutex<Vec<Bytes>>>;

async fn receive(State(seen): State<Exports>, body: Bytes) -> &'static str {
    seen.lock().expect("lock").push(body);
    ""
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_exports_its_spans_and_exits_0() {
    let held = Arc::new(Llm::default());
    let llm_url =
        listen(Router::new().route("/v1/chat/completions", post(llm)).with_state(held.clone())).await;
    let exports: Exports = Arc::default();
    let otlp_url = listen(Router::new().route("/v1/traces", post(receive)).with_state(exports.clone())).await;

    let mut cmd = teal();
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env("TA_BASE_URL", format!("{llm_url}/v1"))
        .env("TA_API_KEY", "sk-test")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp_url);
    let (mut served, base) = serve(cmd);

    let body = json!({"items": [{"content_type": "text", "content": "hello"}]});
    let request = tokio::spawn(reqwest::Client::new().post(format!("{base}/chat/1.0")).json(&body).send());
    tokio::time::timeout(Duration::from_secs(10), held.held.notified()).await.expect("the LLM was called");

    // The run is at the LLM: none of its spans has ended, so none can have been exported yet.
    let pid = served.0.id().to_string();
    let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(kill.success());
    held.release.notify_one();

    let resp = request.await.expect("join").expect("the request in flight is answered");
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("JSON");
    assert_eq!(answer["output_raw"], "ok");

    let exit = tokio::task::spawn_blocking(move || {
        let status = served.0.wait();
        (served, status)
    });
    let (_served, status) = tokio::time::timeout(Duration::from_secs(10), exit)
        .await
        .expect("teal serve exits within 10 s of SIGTERM")
        .expect("join");
    assert!(status.expect("wait").success(), "teal serve exits 0 on SIGTERM");

    let exports = exports.lock().expect("lock");
    assert!(
        exports.iter().any(|b| contains(b, b"invoke_agent") && contains(b, b"gen_ai.usage.input_tokens")),
        "the run's spans were exported before the process ended ({} exports)",
        exports.len()
    );
}
