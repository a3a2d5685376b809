//! The streamed call over real HTTP: a local fake LLM that speaks the chat-completions SSE wire
//! format step by step, waiting for the client to have handed on a delta before it sends the
//! next one (so order, not timing, proves the deltas are not buffered).

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;
use crate::llm::Message;
use crate::llm::openai::fixtures::*;
use crate::llm::{ToolCall, Usage};

/// One step of the fake's answer.
#[derive(Clone)]
enum Step {
    /// An SSE event `data: …`.
    Data(String),
    /// Wait until the client has handed on one more delta.
    WaitRead,
    /// Break the connection off (the body ends with an error).
    Cut,
    /// Answer this status with a small JSON body instead of a stream.
    Status(u16),
}

#[derive(Default)]
struct Fake {
    scripts: Mutex<VecDeque<Vec<Step>>>,
    /// What happened, in order: `sent:<data>` by the fake, `read:<text>` by the client.
    log: Mutex<Vec<String>>,
    bodies: Mutex<Vec<Value>>,
    reads: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<()>>>,
}

fn log(fake: &Fake, line: String) {
    fake.log.lock().expect("log").push(line);
}

async fn answer(State(fake): State<Arc<Fake>>, body: axum::body::Bytes) -> Response {
    fake.bodies.lock().expect("bodies").push(serde_json::from_slice(&body).unwrap_or_default());
    let steps = fake.scripts.lock().expect("scripts").pop_front().unwrap_or_default();
    if let Some(Step::Status(code)) = steps.first() {
        let status = StatusCode::from_u16(*code).expect("status");
        return (status, r#"{"error": {"message": "try later"}}"#).into_response();
    }
    let stream = futures::stream::unfold((steps.into_iter(), fake), |(mut steps, fake)| async move {
        loop {
            match steps.next()? {
                Step::Data(data) => {
                    log(&fake, format!("sent:{data}"));
                    let frame = Bytes::from(format!("data: {data}\n\n"));
                    return Some((Ok::<_, std::io::Error>(frame), (steps, fake)));
                }
                Step::WaitRead => {
                    let mut reads = fake.reads.lock().await;
                    reads.as_mut().expect("a read channel").recv().await?;
                }
                Step::Cut => return Some((Err(std::io::Error::other("cut")), (steps, fake))),
                Step::Status(_) => {}
            }
        }
    });
    ([(CONTENT_TYPE, "text/event-stream")], Body::from_stream(stream)).into_response()
}

/// Starts the fake with one script per request; returns its base URL, its state and the sender
/// the client's `on_text` signals reads on.
async fn fake(scripts: Vec<Vec<Step>>) -> (String, Arc<Fake>, mpsc::UnboundedSender<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Arc::new(Fake {
        scripts: Mutex::new(scripts.into()),
        reads: tokio::sync::Mutex::new(Some(rx)),
        ..Default::default()
    });
    let app = Router::new().route("/v1/chat/completions", post(answer)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("fake LLM") });
    (base, fake, tx)
}

fn delta(delta: Value, finish: Option<&str>) -> Step {
    Step::Data(
        json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string(),
    )
}

fn text(t: &str) -> Step {
    delta(json!({"content": t}), None)
}

fn usage() -> Step {
    Step::Data(
        json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}})
            .to_string(),
    )
}

fn done() -> Step {
    Step::Data("[DONE]".into())
}

/// Streams "hi" to `client`; each delta is logged and signalled to the fake as read.
async fn stream_hi(
    client: &OpenAiClient,
    fake: &Arc<Fake>,
    reads: &mpsc::UnboundedSender<()>,
) -> Result<ChatResponse, LlmError> {
    let on_text = |t: &str| {
        log(fake, format!("read:{t}"));
        let _ = reads.send(());
    };
    let messages = [Message::user("hi")];
    let call = client.stream(request(&messages, &[]), in_secs(10), &on_text);
    // A bound, not a synchronisation: a client that buffered would wait here for ever.
    tokio::time::timeout(Duration::from_secs(10), call).await.expect("the stream does not stall")
}

#[tokio::test]
async fn each_delta_is_handed_on_before_the_fake_sends_the_next() {
    let (base, fake, reads) = fake(vec![vec![
        delta(json!({"role": "assistant", "content": ""}), None),
        text("Hel"),
        Step::WaitRead,
        text("lo, "),
        Step::WaitRead,
        text("world"),
        Step::WaitRead,
        delta(json!({}), Some("stop")),
        usage(),
        done(),
    ]])
    .await;
    let answer = stream_hi(&client(&base), &fake, &reads).await.expect("streamed");
    assert_eq!(answer.message, Message::assistant("Hello, world"));
    assert_eq!(answer.usage, Usage { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 });
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    let log = fake.log.lock().expect("log").clone();
    let order: Vec<&str> =
        log.iter().map(|l| if l.starts_with("read:") { l.as_str() } else { "sent" }).collect();
    assert_eq!(
        order,
        ["sent", "sent", "read:Hel", "sent", "read:lo, ", "sent", "read:world", "sent", "sent", "sent"],
        "every read comes before the next send: {log:#?}"
    );

    let sent = &fake.bodies.lock().expect("bodies")[0];
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn a_tool_call_split_over_many_deltas_is_assembled() {
    let mut steps = vec![delta(
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_7", "type": "function", "function": {"name": "fs_read_file", "arguments": ""}}]}),
        None,
    )];
    for piece in ["{", "\"pa", "th", "\": \"", "hello", ".txt", "\"}"] {
        steps.push(delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), None));
    }
    steps.extend([delta(json!({}), Some("tool_calls")), usage(), done()]);
    let (base, fake, reads) = fake(vec![steps]).await;
    let answer = stream_hi(&client(&base), &fake, &reads).await.expect("streamed");
    assert_eq!(answer.message.content, None);
    assert_eq!(
        answer.message.tool_calls,
        vec![ToolCall {
            id: "call_7".into(),
            name: "fs_read_file".into(),
            arguments: r#"{"path": "hello.txt"}"#.into()
        }]
    );
    assert!(fake.log.lock().expect("log").iter().all(|l| !l.starts_with("read:")), "no text was handed on");
}

#[tokio::test]
async fn a_stream_cut_after_text_was_handed_on_is_a_clear_error_and_not_retried() {
    let (base, fake, reads) =
        fake(vec![vec![text("Hel"), Step::WaitRead, text("lo"), Step::Cut], vec![text("again"), done()]])
            .await;
    let err = stream_hi(&client(&base), &fake, &reads).await.expect_err("cut");
    assert!(matches!(err, LlmError::StreamCutMidAnswer { .. }), "{err:?}");
    assert_eq!(err.to_string(), "LLM stream broke off after part of the answer was sent");
    assert_eq!(fake.bodies.lock().expect("bodies").len(), 1, "not retried");
}

#[tokio::test]
async fn a_stream_that_ends_early_after_text_is_cut_too() {
    // No finish reason and no [DONE]: the body ends cleanly but the answer is not whole.
    let (base, fake, reads) = fake(vec![vec![text("Hel")], vec![text("again"), done()]]).await;
    let err = stream_hi(&client(&base), &fake, &reads).await.expect_err("cut");
    assert!(matches!(err, LlmError::StreamCutMidAnswer { source: None }), "{err:?}");
    assert_eq!(fake.bodies.lock().expect("bodies").len(), 1);
}

#[tokio::test]
async fn failures_before_the_first_text_are_retried() {
    let (base, fake, reads) = fake(vec![
        vec![Step::Status(503)],
        // Only a tool-call fragment reached the client before the cut: nothing was handed on.
        vec![
            delta(json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "x"}}]}), None),
            Step::Cut,
        ],
        vec![Step::Status(429)],
        vec![text("fine"), delta(json!({}), Some("stop")), done()],
    ])
    .await;
    let mut s = settings(&base);
    s.max_retries = 3;
    let answer = stream_hi(&OpenAiClient::new(s).expect("client"), &fake, &reads).await.expect("retried");
    assert_eq!(answer.message, Message::assistant("fine"));
    assert_eq!(fake.bodies.lock().expect("bodies").len(), 4);
}

#[tokio::test]
async fn a_stream_that_ends_early_before_any_text_is_retried_then_named() {
    let early = vec![delta(json!({"role": "assistant"}), None)];
    let (base, fake, reads) = fake(vec![early.clone(), early.clone(), early]).await;
    let err = stream_hi(&client(&base), &fake, &reads).await.expect_err("cut");
    assert!(matches!(err, LlmError::StreamCut { attempts: 3, source: None }), "{err:?}");
    assert_eq!(err.to_string(), "LLM stream broke off after 3 attempt(s)");
    assert_eq!(fake.bodies.lock().expect("bodies").len(), 3, "settings() allows 2 retries");
}

#[tokio::test]
async fn a_connection_broken_before_any_text_is_retried_until_retries_run_out() {
    let cut = vec![delta(json!({"role": "assistant"}), None), Step::Cut];
    let (base, fake, reads) = fake(vec![cut.clone(), cut.clone(), cut]).await;
    let err = stream_hi(&client(&base), &fake, &reads).await.expect_err("cut");
    // Whether the break reaches the client before or after the headers is the server's
    // buffering: either way it is retried and named with its cause.
    assert!(
        matches!(
            err,
            LlmError::StreamCut { attempts: 3, source: Some(_) } | LlmError::Connect { attempts: 3, .. }
        ),
        "{err:?}"
    );
    assert_eq!(fake.bodies.lock().expect("bodies").len(), 3);
}

#[tokio::test]
async fn an_invalid_chunk_is_an_invalid_answer() {
    let (base, fake, reads) = fake(vec![vec![Step::Data("{oops".into())]]).await;
    let err = stream_hi(&client(&base), &fake, &reads).await.expect_err("invalid");
    assert!(matches!(err, LlmError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn a_server_that_ignores_stream_and_answers_json_is_read_whole() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(hello()))
        .mount(&server)
        .await;
    let texts = Mutex::new(Vec::new());
    let on_text = |t: &str| texts.lock().expect("texts").push(t.to_owned());
    let messages = [Message::user("hi")];
    let answer = client(&format!("{}/v1", server.uri()))
        .stream(request(&messages, &[]), in_secs(10), &on_text)
        .await
        .expect("read whole");
    assert_eq!(answer.message, Message::assistant("Hello!"));
    assert_eq!(texts.into_inner().expect("texts"), ["Hello!"]);
}
