//! Token streaming end to end: a fake LLM streaming the chat-completions SSE wire format, the
//! real API's SSE route, a client reading events over real HTTP. The fake sends a delta only
//! after the client has read the `partial-response` of the previous one, so the order of the
//! log (not timing) proves nothing is buffered on the way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{StackOptions, TestApp, spawn_stack_with};

/// One step of the fake's answer to one request.
#[derive(Clone)]
pub enum Step {
    /// `data: …` (a chunk, or `[DONE]`).
    Data(String),
    /// Wait until the client has read one more `partial-response`.
    WaitRead,
    /// Break the connection off.
    Cut,
}

/// A streaming chat-completions server; one script per request, in order.
pub struct StreamingLlm {
    scripts: Mutex<VecDeque<Vec<Step>>>,
    /// `sent` by the fake (text chunks only), `read:<text>` by the client, in order.
    pub log: Mutex<Vec<String>>,
    pub requests: Mutex<Vec<Value>>,
    reads: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
}

impl StreamingLlm {
    fn note(&self, line: String) {
        self.log.lock().expect("log").push(line);
    }

    pub fn requests(&self) -> usize {
        self.requests.lock().expect("requests").len()
    }
}

async fn answer(State(llm): State<Arc<StreamingLlm>>, body: Bytes) -> Response {
    llm.requests.lock().expect("requests").push(serde_json::from_slice(&body).unwrap_or_default());
    let steps = llm.scripts.lock().expect("scripts").pop_front().unwrap_or_default();
    let frames = futures::stream::unfold((steps.into_iter(), llm), |(mut steps, llm)| async move {
        loop {
            match steps.next()? {
                Step::Data(data) => {
                    let chunk: Value = serde_json::from_str(&data).unwrap_or_default();
                    if chunk["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()) {
                        llm.note("sent".into());
                    }
                    let frame = Bytes::from(format!("data: {data}\n\n"));
                    return Some((Ok::<_, std::io::Error>(frame), (steps, llm)));
                }
                Step::WaitRead => {
                    llm.reads.lock().await.recv().await?;
                }
                Step::Cut => return Some((Err(std::io::Error::other("cut")), (steps, llm))),
            }
        }
    });
    ([("content-type", "text/event-stream")], Body::from_stream(frames)).into_response()
}

/// Starts the fake; returns its URI, itself, and where the client reports its reads.
pub async fn start(scripts: Vec<Vec<Step>>) -> (String, Arc<StreamingLlm>, mpsc::UnboundedSender<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let llm = Arc::new(StreamingLlm {
        scripts: Mutex::new(scripts.into()),
        log: Mutex::default(),
        requests: Mutex::default(),
        reads: tokio::sync::Mutex::new(rx),
    });
    let app = Router::new().route("/v1/chat/completions", post(answer)).with_state(llm.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let uri = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("fake LLM") });
    (uri, llm, tx)
}

pub fn chunk(delta: Value, finish: Option<&str>) -> Step {
    Step::Data(
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string(),
    )
}

pub fn text(t: &str) -> Step {
    chunk(json!({"content": t}), None)
}

/// Finish reason, usage, `[DONE]`.
pub fn end(finish: &str) -> Vec<Step> {
    vec![
        chunk(json!({}), Some(finish)),
        Step::Data(json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}).to_string()),
        Step::Data("[DONE]".into()),
    ]
}

/// A text answer streamed in `pieces`, each sent after the client read the previous one.
pub fn gated_text(pieces: &[&str]) -> Vec<Step> {
    let mut steps = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            steps.push(Step::WaitRead);
        }
        steps.push(text(piece));
    }
    steps.push(Step::WaitRead);
    steps.extend(end("stop"));
    steps
}

/// Posts to `/{agent}/sse` and reads every event; each `partial-response` is logged and
/// reported to the fake as read before the next event is read.
pub async fn read_events(
    app: &TestApp,
    agent: &str,
    text: &str,
    llm: &StreamingLlm,
    reads: &mpsc::UnboundedSender<()>,
) -> Vec<(String, Value)> {
    let body = json!({"items": [{"content_type": "text", "content": text}]});
    read_events_for(app, agent, &body, llm, reads).await
}

/// [`read_events`] for any request body.
pub async fn read_events_for(
    app: &TestApp,
    agent: &str,
    body: &Value,
    llm: &StreamingLlm,
    reads: &mpsc::UnboundedSender<()>,
) -> Vec<(String, Value)> {
    let resp = app.http.post(format!("{}/{agent}/sse", app.base)).json(body).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = std::pin::pin!(sse_stream::SseStream::from_bytes_stream(resp.bytes_stream()));
    let mut out = Vec::new();
    loop {
        // A bound, not a synchronisation: a route that buffered would wait here for ever.
        let next = tokio::time::timeout(Duration::from_secs(20), events.next()).await.expect("no stall");
        let Some(event) = next else { break };
        let event = event.expect("well-formed SSE");
        let name = event.event.unwrap_or_default();
        let data: Value = serde_json::from_str(event.data.as_deref().unwrap_or("null")).expect("JSON data");
        if name == "partial-response" {
            llm.note(format!("read:{}", data["output_partial"].as_str().unwrap_or_default()));
            let _ = reads.send(());
        }
        out.push((name, data));
    }
    out
}

async fn stack(scripts: Vec<Vec<Step>>) -> (TestApp, Arc<StreamingLlm>, mpsc::UnboundedSender<()>) {
    let (uri, llm, reads) = start(scripts).await;
    let app = spawn_stack_with(StackOptions { llm_uri: Some(uri), ..Default::default() }).await;
    (app, llm, reads)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_text_delta_reaches_the_client_before_the_llm_sends_the_next() {
    let (app, llm, reads) = stack(vec![gated_text(&["Hel", "lo, ", "world"])]).await;
    let events = read_events(&app, "plain/1", "hi", &llm, &reads).await;
    assert_eq!(
        names(&events),
        ["partial-response", "partial-response", "partial-response", "final-response"]
    );
    let log = llm.log.lock().expect("log").clone();
    assert_eq!(log, ["sent", "read:Hel", "sent", "read:lo, ", "sent", "read:world"]);

    let partial = &events[0].1;
    let fin = &events[3].1;
    assert_eq!(fin["output_raw"], "Hello, world");
    assert_eq!(fin["token_usage"], json!({"completion_tokens": 3, "prompt_tokens": 10, "total_tokens": 13}));
    for key in ["session_id", "request_id", "source"] {
        assert_eq!(partial[key], fin[key], "{key}: Teal's PartialResponse names the same run");
    }
    assert_eq!(partial["source"], "plain:1");
    assert_eq!(llm.requests.lock().expect("requests")[0]["stream"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_split_over_many_deltas_runs_then_the_answer_streams() {
    let mut call = vec![chunk(
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "fs_read_file", "arguments": ""}}]}),
        None,
    )];
    for piece in ["{\"", "path", "\":\"", "hello", ".txt", "\"}"] {
        call.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), None));
    }
    call.extend(end("tool_calls"));
    let (app, llm, reads) = stack(vec![call, gated_text(&["It says ", "hello"])]).await;
    let events = read_events(&app, "fs-agent/1", "read it", &llm, &reads).await;
    assert_eq!(
        names(&events),
        ["tool-call-started", "tool-call-finished", "partial-response", "partial-response", "final-response"]
    );
    assert_eq!(events[1].1["is_error"], false);
    let second = llm.requests.lock().expect("requests")[1].clone();
    let result = second["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    assert_eq!(result["role"], "tool");
    assert_eq!(result["content"], "hello from the e2e data dir", "the assembled arguments reached the tool");
    let fin = &events[4].1;
    assert_eq!(fin["output_raw"], "It says hello");
    assert_eq!(fin["token_usage"]["total_tokens"], 26, "usage of both calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_answer_ends_with_a_clear_error_event_and_no_retry() {
    let cut =
        vec![chunk(json!({"role": "assistant"}), None), text("Hel"), Step::WaitRead, text("lo"), Step::Cut];
    let (app, llm, reads) = stack(vec![cut, gated_text(&["never"])]).await;
    let events = read_events(&app, "plain/1", "hi", &llm, &reads).await;
    let last = events.last().expect("events");
    assert_eq!(last.0, "error", "{events:?}");
    assert_eq!(events[0].1["output_partial"], "Hel");
    let error = &last.1["error"];
    assert_eq!(error["status"], 502);
    assert_eq!(error["upstream"], "llm");
    assert_eq!(
        error["message"],
        "LLM upstream failed: the stream broke off after part of the answer was sent (not retried)"
    );
    assert_eq!(llm.requests(), 1, "not retried once text reached the client");
    assert!(!names(&events).contains(&"final-response"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_comes_whole_in_one_partial_response() {
    let (app, llm, reads) = stack(vec![gated_text(&["Hel", "lo"])]).await;
    let body = json!({"chat_history": [{"role": "user", "content": "hi"}]});
    let first = read_events_for(&app, "plain/1", &body, &llm, &reads).await;
    assert_eq!(names(&first), ["partial-response", "partial-response", "final-response"]);
    let again = read_events_for(&app, "plain/1", &body, &llm, &reads).await;
    assert_eq!(names(&again), ["partial-response", "final-response"]);
    assert_eq!(again[0].1["output_partial"], "Hello");
    assert_eq!(again[1].1["extra_data"]["items"][2], json!({"key": "cached", "value": "true"}));
    assert_eq!(llm.requests(), 1, "served from the response cache");
}
