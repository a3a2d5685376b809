//! The Bedrock adapter at the wire: a local HTTP server speaking Converse's JSON and
//! ConverseStream's binary event-stream framing (frames encoded with the smithy event-stream
//! crate), reached through the real SDK with an endpoint override and dummy credentials.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::config::Credentials;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message as Frame};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;
use crate::llm::{Message, Role, ToolCall, ToolSpec, Usage};

const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

/// One answer of the fake.
enum Reply {
    /// A Converse JSON answer (or an AWS JSON error with `x-amzn-errortype`).
    Json { status: u16, error_type: Option<&'static str>, body: Value },
    /// ConverseStream frames: `(event type, payload)`, `exception:` + type for an exception.
    Stream(Vec<(&'static str, Value)>),
    /// Frames, then the connection breaks off.
    StreamThenCut(Vec<(&'static str, Value)>),
}

#[derive(Default)]
struct Fake {
    replies: Mutex<VecDeque<Reply>>,
    /// `(path, body)` of every request.
    seen: Mutex<Vec<(String, Value)>>,
    /// Signalled by the client's `on_text`: a cut waits for it, so it comes after the text.
    read: tokio::sync::Notify,
}

fn frame(kind: &str, payload: &Value) -> Bytes {
    let (message_type, type_header) = match kind.strip_prefix("exception:") {
        Some(exception) => ("exception", (":exception-type", exception.to_owned())),
        None => ("event", (":event-type", kind.to_owned())),
    };
    let message = Frame::new(payload.to_string().into_bytes())
        .add_header(Header::new(":message-type", HeaderValue::String(message_type.into())))
        .add_header(Header::new(type_header.0, HeaderValue::String(type_header.1.into())))
        .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())));
    let mut buf = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut buf).expect("frame encodes");
    Bytes::from(buf)
}

fn stream_body(fake: Arc<Fake>, frames: Vec<(&'static str, Value)>, cut: bool) -> Response {
    let items: Vec<Result<Bytes, std::io::Error>> = frames.iter().map(|(k, p)| Ok(frame(k, p))).collect();
    let cutting = cut;
    let cut = futures::stream::once(async move {
        fake.read.notified().await;
        Err(std::io::Error::other("cut"))
    });
    let body = if cutting {
        Body::from_stream(futures::StreamExt::chain(futures::stream::iter(items), cut))
    } else {
        Body::from_stream(futures::stream::iter(items))
    };
    ([("content-type", "application/vnd.amazon.eventstream")], body).into_response()
}

async fn answer(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX).await.expect("body");
    fake.seen.lock().expect("seen").push((path, serde_json::from_slice(&body).unwrap_or_default()));
    let reply = fake.replies.lock().expect("replies").pop_front();
    match reply {
        Some(Reply::Json { status, error_type, body }) => {
            let mut resp = (StatusCode::from_u16(status).expect("status"), axum::Json(body)).into_response();
            if let Some(t) = error_type {
                resp.headers_mut().insert("x-amzn-errortype", t.parse().expect("header"));
            }
            resp
        }
        Some(Reply::Stream(frames)) => stream_body(fake.clone(), frames, false),
        Some(Reply::StreamThenCut(frames)) => stream_body(fake.clone(), frames, true),
        None => StatusCode::GONE.into_response(),
    }
}

fn settings(url: String) -> BedrockSettings {
    BedrockSettings {
        endpoint_url: Some(url),
        region: None,
        retry: RetryPolicy {
            timeout: Duration::from_secs(10),
            max_retries: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        },
    }
}

async fn fake(replies: Vec<Reply>) -> (BedrockClient, Arc<Fake>) {
    let fake = Arc::new(Fake { replies: Mutex::new(replies.into()), ..Default::default() });
    let app = Router::new().fallback(answer).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("fake Bedrock") });
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "test-secret", None, None, "test"))
        .load()
        .await;
    (BedrockClient::new(&sdk, &settings(url)), fake)
}

fn in_secs(s: u64) -> Instant {
    Instant::now() + Duration::from_secs(s)
}

fn read_tool() -> ToolSpec {
    ToolSpec {
        name: "fs_read_file".into(),
        description: "Read a file".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }
}

fn conversation() -> Vec<Message> {
    vec![
        Message::system("You read files."),
        Message::user("What is in hello.txt?"),
        Message {
            role: Role::Assistant,
            content: Some("Let me look.".into()),
            tool_calls: vec![ToolCall {
                id: "tu_1".into(),
                name: "fs_read_file".into(),
                arguments: r#"{"path":"hello.txt"}"#.into(),
            }],
            tool_call_id: None,
            images: Vec::new(),
        },
        Message::tool_result("tu_1", "Hello, world!"),
    ]
}

fn converse_answer(content: Value, stop: &str) -> Reply {
    Reply::Json {
        status: 200,
        error_type: None,
        body: json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {"inputTokens": 21, "outputTokens": 7, "totalTokens": 28},
            "metrics": {"latencyMs": 5},
        }),
    }
}

fn error(status: u16, kind: &'static str) -> Reply {
    Reply::Json { status, error_type: Some(kind), body: json!({"message": format!("{kind} from the fake")}) }
}

#[tokio::test]
async fn converse_sends_the_conversation_and_maps_the_tool_use_answer() {
    let (client, fake) = fake(vec![converse_answer(
        json!([{"text": "Reading."}, {"toolUse": {"toolUseId": "tu_2", "name": "fs_read_file", "input": {"path": "b.txt"}}}]),
        "tool_use",
    )])
    .await;
    let messages = conversation();
    let tools = [read_tool()];
    let mut req = ChatRequest::new(MODEL, &messages, &tools);
    req.temperature = Some(0.2);
    req.max_tokens = Some(300);
    let answer = client.complete(req, in_secs(10)).await.expect("answered");
    assert_eq!(answer.message.content.as_deref(), Some("Reading."));
    assert_eq!(
        answer.message.tool_calls,
        [ToolCall {
            id: "tu_2".into(),
            name: "fs_read_file".into(),
            arguments: r#"{"path":"b.txt"}"#.into()
        }]
    );
    assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(answer.usage, Usage { prompt_tokens: 21, completion_tokens: 7, total_tokens: 28 });

    let seen = fake.seen.lock().expect("seen").clone();
    assert_eq!(seen[0].0, "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse");
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_sort_maps(true);
    s.bind(|| insta::assert_json_snapshot!("bedrock_converse_request_body", seen[0].1));
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_and_access_denied_is_not() {
    let (client, fake) = fake(vec![
        error(429, "ThrottlingException"),
        error(503, "ServiceUnavailableException"),
        converse_answer(json!([{"text": "fine"}]), "end_turn"),
        error(403, "AccessDeniedException"),
        error(400, "ValidationException"),
    ])
    .await;
    let messages = [Message::user("hi")];
    let answer =
        client.complete(ChatRequest::new(MODEL, &messages, &[]), in_secs(10)).await.expect("retried");
    assert_eq!(answer.message, Message::assistant("fine"));
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    assert_eq!(fake.seen.lock().expect("seen").len(), 3);

    let err =
        client.complete(ChatRequest::new(MODEL, &messages, &[]), in_secs(10)).await.expect_err("denied");
    assert!(matches!(err, LlmError::Unauthorized { status: 403 }), "{err:?}");
    let err =
        client.complete(ChatRequest::new(MODEL, &messages, &[]), in_secs(10)).await.expect_err("invalid");
    let LlmError::Status { status: 400, body, attempts: 1 } = &err else { panic!("{err:?}") };
    assert_eq!(body, "ValidationException: ValidationException from the fake", "for the log only");
    assert_eq!(err.to_string(), "LLM answered HTTP 400 after 1 attempt(s)");
    assert_eq!(fake.seen.lock().expect("seen").len(), 5, "neither was retried");
}

#[tokio::test]
async fn persistent_throttling_ends_as_rate_limited() {
    let (client, fake) = fake((0..3).map(|_| error(429, "ThrottlingException")).collect()).await;
    let messages = [Message::user("hi")];
    let err =
        client.complete(ChatRequest::new(MODEL, &messages, &[]), in_secs(10)).await.expect_err("throttled");
    assert!(matches!(err, LlmError::RateLimited { attempts: 3 }), "{err:?}");
    assert_eq!(fake.seen.lock().expect("seen").len(), 3);
}

fn text_delta(i: i32, t: &str) -> (&'static str, Value) {
    ("contentBlockDelta", json!({"contentBlockIndex": i, "delta": {"text": t}}))
}

fn stream_end(stop: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("messageStop", json!({"stopReason": stop})),
        (
            "metadata",
            json!({"usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}, "metrics": {"latencyMs": 3}}),
        ),
    ]
}

#[tokio::test]
async fn converse_stream_hands_on_text_and_assembles_a_split_tool_use() {
    let mut frames = vec![
        ("messageStart", json!({"role": "assistant"})),
        text_delta(0, "Let "),
        text_delta(0, "me look."),
    ];
    frames.push(("contentBlockStop", json!({"contentBlockIndex": 0})));
    frames.push((
        "contentBlockStart",
        json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu_9", "name": "fs_read_file"}}}),
    ));
    for piece in ["{\"pa", "th\": \"hel", "lo.txt\"}"] {
        frames.push((
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": piece}}}),
        ));
    }
    frames.push(("contentBlockStop", json!({"contentBlockIndex": 1})));
    frames.extend(stream_end("tool_use"));
    let (client, fake) = fake(vec![Reply::Stream(frames)]).await;
    let texts = Mutex::new(Vec::new());
    let on_text = |t: &str| texts.lock().expect("texts").push(t.to_owned());
    let messages = [Message::user("hi")];
    let answer = client
        .stream(ChatRequest::new(MODEL, &messages, &[read_tool()]), in_secs(10), &on_text)
        .await
        .expect("streamed");
    assert_eq!(texts.into_inner().expect("texts"), ["Let ", "me look."]);
    assert_eq!(answer.message.content.as_deref(), Some("Let me look."));
    assert_eq!(
        answer.message.tool_calls,
        [ToolCall {
            id: "tu_9".into(),
            name: "fs_read_file".into(),
            arguments: r#"{"path": "hello.txt"}"#.into()
        }]
    );
    assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(answer.usage, Usage { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
    assert!(fake.seen.lock().expect("seen")[0].0.ends_with("/converse-stream"));
}

#[tokio::test]
async fn a_throttled_stream_before_any_text_is_retried() {
    let mut ok = vec![text_delta(0, "ok")];
    ok.extend(stream_end("end_turn"));
    let (client, fake) = fake(vec![
        Reply::Stream(vec![("exception:throttlingException", json!({"message": "slow down"}))]),
        Reply::Stream(ok),
    ])
    .await;
    let messages = [Message::user("hi")];
    let answer = client
        .stream(ChatRequest::new(MODEL, &messages, &[]), in_secs(10), &|_: &str| {})
        .await
        .expect("retried");
    assert_eq!(answer.message, Message::assistant("ok"));
    assert_eq!(fake.seen.lock().expect("seen").len(), 2);
}

#[tokio::test]
async fn a_stream_cut_after_text_is_named_and_not_retried() {
    let (client, fake) =
        fake(vec![Reply::StreamThenCut(vec![text_delta(0, "Hel")]), Reply::Stream(stream_end("end_turn"))])
            .await;
    let messages = [Message::user("hi")];
    let on_text = |_: &str| fake.read.notify_one();
    let err =
        client.stream(ChatRequest::new(MODEL, &messages, &[]), in_secs(10), &on_text).await.expect_err("cut");
    assert!(matches!(err, LlmError::StreamCutMidAnswer { .. }), "{err:?}");
    assert_eq!(fake.seen.lock().expect("seen").len(), 1);
}

#[tokio::test]
async fn the_bedrock_prefix_selects_bedrock_and_other_models_the_default() {
    let (client, fake) = fake(vec![converse_answer(json!([{"text": "from bedrock"}]), "end_turn")]).await;
    let offline: Arc<dyn LlmClient> = Arc::new(crate::llm::OfflineModel);
    let providers =
        crate::llm::Providers::with_bedrock(Some(offline), client, settings("http://unused".into()));
    let messages = [Message::user("hi")];
    let model = format!("bedrock:{MODEL}");
    let answer =
        providers.complete(ChatRequest::new(&model, &messages, &[]), in_secs(10)).await.expect("bedrock");
    assert_eq!(answer.message, Message::assistant("from bedrock"));
    assert!(
        fake.seen.lock().expect("seen")[0].0.starts_with("/model/anthropic.claude"),
        "the prefix is not sent"
    );
    let answer =
        providers.complete(ChatRequest::new("gpt-4o", &messages, &[]), in_secs(10)).await.expect("default");
    assert!(answer.message.content.unwrap_or_default().starts_with("[offline model]"));
    assert_eq!(fake.seen.lock().expect("seen").len(), 1);

    let none = crate::llm::Providers::new(None, settings("http://unused".into()), None);
    let err =
        none.complete(ChatRequest::new("gpt-4o", &messages, &[]), in_secs(10)).await.expect_err("no default");
    assert_eq!(
        err.to_string(),
        "the LLM provider cannot take models without the bedrock: prefix (set TA_API_KEY or TA_BASE_URL for them)"
    );
}

#[tokio::test]
async fn one_process_serves_agents_on_bedrock_openai_azure_and_a_compatible_endpoint() {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use crate::llm::Endpoint;
    use crate::secrets::EnvSecretStore;

    let reply = |text: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
        }))
    };
    let compatible = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer key-a"))
        .respond_with(reply("from the compatible endpoint"))
        .expect(2)
        .mount(&compatible)
        .await;
    let azure = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt-4o-prod/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", "key-b"))
        .respond_with(reply("from azure"))
        .expect(1)
        .mount(&azure)
        .await;
    let (bedrock, fake) = fake(vec![converse_answer(json!([{"text": "from bedrock"}]), "end_turn")]).await;
    let secrets = Arc::new(EnvSecretStore::new().with("AGENT_A_KEY", "key-a").with("AGENT_B_KEY", "key-b"));
    let default: Arc<dyn LlmClient> = Arc::new(crate::llm::OfflineModel);
    let providers =
        crate::llm::Providers::with_bedrock(Some(default), bedrock, settings("http://unused".into()))
            .with_secrets(secrets);

    let on_compatible = Endpoint::OpenAi {
        base_url: format!("{}/v1", compatible.uri()).parse().expect("url"),
        api_key_secret: Some("AGENT_A_KEY".into()),
    };
    let on_azure = Endpoint::AzureOpenAi {
        base_url: azure.uri().parse().expect("url"),
        api_version: "2024-10-21".into(),
        api_key_secret: Some("AGENT_B_KEY".into()),
    };
    let messages = [Message::user("hi")];
    let ask = |model: &'static str, endpoint: Option<&'static Endpoint>| {
        let mut req = ChatRequest::new(model, &messages, &[]);
        req.endpoint = endpoint;
        req
    };
    let on_compatible: &'static Endpoint = Box::leak(Box::new(on_compatible));
    let on_azure: &'static Endpoint = Box::leak(Box::new(on_azure));
    let model_bedrock = "bedrock:anthropic.claude-3-5-haiku-20241022-v1:0";
    let answers = futures::future::join_all([
        providers.complete(ask("llama3", Some(on_compatible)), in_secs(10)),
        providers.complete(ask("gpt-4o-prod", Some(on_azure)), in_secs(10)),
        providers.complete(ask(model_bedrock, None), in_secs(10)),
        providers.complete(ask("gpt-4o", None), in_secs(10)),
    ])
    .await;
    let texts: Vec<String> =
        answers.into_iter().map(|a| a.expect("answered").message.content.unwrap_or_default()).collect();
    assert_eq!(texts[..3], ["from the compatible endpoint", "from azure", "from bedrock"]);
    assert!(texts[3].starts_with("[offline model]"), "the deployment's default: {}", texts[3]);
    assert_eq!(fake.seen.lock().expect("seen").len(), 1);

    providers.complete(ask("llama3", Some(on_compatible)), in_secs(10)).await.expect("again");
    let missing = Endpoint::OpenAi {
        base_url: compatible.uri().parse().expect("url"),
        api_key_secret: Some("NOT_SET".into()),
    };
    let missing: &'static Endpoint = Box::leak(Box::new(missing));
    let err = providers.complete(ask("m", Some(missing)), in_secs(10)).await.expect_err("no secret");
    assert_eq!(err.to_string(), "the LLM key secret NOT_SET could not be read");
}
