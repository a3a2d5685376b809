use super::*;
use crate::llm::Llm;
use crate::llm::openai::fixtures::*;
use crate::llm::openai::redact::MAX_ERROR_BODY_CHARS;
use crate::telemetry::error_chain;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---- settings ----

#[test]
fn a_key_that_cannot_be_a_header_is_rejected_without_showing_it() {
    let mut s = settings("http://localhost/v1");
    s.api_key = Some(SecretString::from("sk-bad\nkey"));
    let err = OpenAiClient::new(s).expect_err("must fail").to_string();
    assert!(!err.contains("sk-bad"), "{err}");
}

#[test]
fn debug_and_describe_never_show_the_key() {
    let mut s = settings("https://user:pw@api.openai.com/v1");
    s.api_key = Some(SecretString::from(KEY));
    let c = OpenAiClient::new(s.clone()).expect("client");
    for text in [format!("{c:?}"), format!("{s:?}"), format!("{:?}", Llm::OpenAi(c))] {
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains("sk-test"), "{text}");
    }
    let c = client("https://api.openai.com/v1");
    assert_eq!(c.describe(), "openai-compatible at https://api.openai.com/v1");
    assert!(!format!("{c:?}").contains(KEY));
    let c = OpenAiClient::new(settings("https://user:pw@example.com/v1")).expect("client");
    assert_eq!(c.describe(), "openai-compatible at https://example.com/v1");
}

// ---- URLs ----

#[test]
fn the_endpoint_handles_trailing_slashes_and_azure() {
    assert_eq!(
        client("https://api.openai.com/v1").endpoint("m").as_str(),
        "https://api.openai.com/v1/chat/completions"
    );
    assert_eq!(
        client("http://localhost:11434/v1/").endpoint("m").as_str(),
        "http://localhost:11434/v1/chat/completions"
    );
    assert_eq!(client("http://vllm:8000").endpoint("m").as_str(), "http://vllm:8000/chat/completions");
    let mut s = settings("https://res.openai.azure.com/");
    s.azure_api_version = Some("2024-10-21".into());
    let c = OpenAiClient::new(s).expect("client");
    assert_eq!(
        c.endpoint("gpt 4o").as_str(),
        "https://res.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(c.describe(), "azure-openai at https://res.openai.azure.com/");
}

// ---- over the wire ----

#[tokio::test]
async fn a_tool_call_answer_is_fetched_and_parsed() {
    let server = MockServer::start().await;
    let calls = json!([{"id": "call_9", "type": "function", "function": {"name": "fs_read_file", "arguments": "{}"}}]);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            Value::Null,
            Some(calls),
            "tool_calls",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let messages = tool_conversation();
    let tools = [read_file_tool()];
    let r = client(&format!("{}/v1", server.uri()))
        .complete(request(&messages, &tools), in_secs(10))
        .await
        .expect("ok");
    assert_eq!(r.message.tool_calls[0].id, "call_9");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));

    let received = server.received_requests().await.expect("recording");
    let sent = encode(&request(&messages, &tools), false).expect("encodes");
    assert_eq!(received[0].body, sent);
}

#[tokio::test]
async fn azure_mode_uses_the_deployment_url_and_api_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt-4o-mini/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(hello()))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.azure_api_version = Some("2024-10-21".into());
    let r = say_hi(&OpenAiClient::new(s).expect("client"), in_secs(10)).await.expect("ok");
    assert_eq!(r.message.content.as_deref(), Some("Hello!"));
    let received = server.received_requests().await.expect("recording");
    assert!(!received[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn no_key_means_no_auth_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(hello()))
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.api_key = None;
    say_hi(&OpenAiClient::new(s).expect("client"), in_secs(10)).await.expect("ok");
    let received = server.received_requests().await.expect("recording");
    assert!(!received[0].headers.contains_key("authorization"));
    assert!(!received[0].headers.contains_key("api-key"));
}

#[tokio::test]
async fn a_429_with_retry_after_zero_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(hello()))
        .expect(1)
        .mount(&server)
        .await;
    let r = say_hi(&client(&server.uri()), in_secs(10)).await.expect("ok");
    assert_eq!(r.message.content.as_deref(), Some("Hello!"));
    assert_eq!(server.received_requests().await.expect("recording").len(), 2);
}

#[tokio::test]
async fn persistent_429s_end_as_rate_limited() {
    let server = server_expecting(ResponseTemplate::new(429), 3).await;
    let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
    assert!(matches!(err, LlmError::RateLimited { attempts: 3 }), "{err:?}");
}

#[tokio::test]
async fn server_errors_are_retried_max_retries_times_then_reported() {
    let server = server_expecting(ResponseTemplate::new(500).set_body_string("upstream exploded"), 3).await;
    let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
    match err {
        LlmError::Status { status, body, attempts } => {
            assert_eq!((status, body.as_str(), attempts), (500, "upstream exploded", 3));
        }
        other => panic!("expected Status, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let server = server_expecting(ResponseTemplate::new(401), 1).await;
    let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
    assert!(matches!(err, LlmError::Unauthorized { status: 401 }), "{err:?}");
    assert_eq!(server.received_requests().await.expect("recording").len(), 1);
}

#[tokio::test]
async fn other_client_errors_are_not_retried_and_keep_a_truncated_body() {
    let server = server_expecting(ResponseTemplate::new(400).set_body_string("e".repeat(2000)), 1).await;
    let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
    match err {
        LlmError::Status { status: 400, body, attempts: 1 } => {
            assert_eq!(body.chars().count(), MAX_ERROR_BODY_CHARS + 1)
        }
        other => panic!("expected Status 400, got {other:?}"),
    }
}

#[tokio::test]
async fn an_invalid_answer_is_not_retried() {
    let server = server_expecting(ResponseTemplate::new(200).set_body_string("not json"), 1).await;
    let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
    assert!(matches!(err, LlmError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_server_is_cut_off_at_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(hello()).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let started = Instant::now();
    let err = say_hi(&client(&server.uri()), started + Duration::from_millis(300)).await.expect_err("fails");
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert!(matches!(err, LlmError::Deadline), "{err:?}");
}

#[tokio::test]
async fn a_slow_attempt_times_out_and_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(hello()).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.timeout = Duration::from_millis(150);
    s.max_retries = 1;
    let started = Instant::now();
    let err = say_hi(&OpenAiClient::new(s).expect("client"), in_secs(10)).await.expect_err("fails");
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert!(matches!(err, LlmError::Timeout { attempts: 2 }), "{err:?}");
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_returns_the_last_error_at_once() {
    let server = server_expecting(
        ResponseTemplate::new(503).insert_header("retry-after", "30").set_body_string("busy"),
        1,
    )
    .await;
    let started = Instant::now();
    let err = say_hi(&client(&server.uri()), in_secs(5)).await.expect_err("fails");
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert!(matches!(err, LlmError::Status { status: 503, attempts: 1, .. }), "{err:?}");
}

/// A server answering every call with `response`, and checking on drop that it got `calls`.
async fn server_expecting(response: ResponseTemplate, calls: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(response).expect(calls).mount(&server).await;
    server
}

/// A server answering `first` once, then `then` for good.
async fn server_answering(first: ResponseTemplate, then: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(first).up_to_n_times(1).mount(&server).await;
    Mock::given(method("POST")).respond_with(then).mount(&server).await;
    server
}

async fn requests_received(server: &MockServer) -> usize {
    server.received_requests().await.expect("recording").len()
}

#[tokio::test]
async fn a_429_with_a_past_http_date_is_retried_at_once_then_succeeds() {
    let busy = ResponseTemplate::new(429).insert_header("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT");
    let server = server_answering(busy, ResponseTemplate::new(200).set_body_json(hello())).await;
    let mut s = settings(&server.uri());
    // Were the date ignored, a backoff of up to 5 s would most likely show.
    s.initial_backoff = Duration::from_secs(5);
    s.max_backoff = Duration::from_secs(5);
    let started = Instant::now();
    let r = say_hi(&OpenAiClient::new(s).expect("client"), in_secs(10)).await.expect("ok");
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert_eq!(r.message.content.as_deref(), Some("Hello!"));
    assert_eq!(requests_received(&server).await, 2);
}

#[tokio::test]
async fn a_429_with_an_http_date_past_the_deadline_ends_at_once() {
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let busy = ResponseTemplate::new(429).insert_header("retry-after", later.as_str());
    let server = server_answering(busy, ResponseTemplate::new(200).set_body_json(hello())).await;
    let started = Instant::now();
    let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert!(matches!(err, LlmError::RateLimited { attempts: 1 }), "{err:?}");
    assert_eq!(requests_received(&server).await, 1);
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_waits_that_long() {
    let busy = ResponseTemplate::new(429).insert_header("retry-after", "1");
    let server = server_answering(busy, ResponseTemplate::new(200).set_body_json(hello())).await;
    let started = Instant::now();
    say_hi(&client(&server.uri()), in_secs(10)).await.expect("ok");
    assert!(started.elapsed() >= Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(requests_received(&server).await, 2);
}

#[tokio::test]
async fn each_retryable_server_error_is_retried_then_succeeds() {
    for code in [500, 502, 503, 504] {
        let failing = ResponseTemplate::new(code).set_body_string("try again");
        let server = server_answering(failing, ResponseTemplate::new(200).set_body_json(hello())).await;
        let r = say_hi(&client(&server.uri()), in_secs(10)).await.expect("ok");
        assert_eq!(r.message.content.as_deref(), Some("Hello!"), "{code}");
        assert_eq!(requests_received(&server).await, 2, "{code}");
    }
}

#[tokio::test]
async fn other_statuses_are_not_retried() {
    for code in [400, 404, 409, 422, 501, 505] {
        let failing = ResponseTemplate::new(code).set_body_string("no");
        let server = server_answering(failing, ResponseTemplate::new(200).set_body_json(hello())).await;
        let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
        assert!(
            matches!(&err, LlmError::Status { status, attempts: 1, .. } if *status == code),
            "{code}: {err:?}"
        );
        assert_eq!(requests_received(&server).await, 1, "{code}");
    }
}

#[tokio::test]
async fn forbidden_is_not_retried() {
    let server =
        server_answering(ResponseTemplate::new(403), ResponseTemplate::new(200).set_body_json(hello())).await;
    let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
    assert!(matches!(err, LlmError::Unauthorized { status: 403 }), "{err:?}");
    assert_eq!(requests_received(&server).await, 1);
}

#[tokio::test]
async fn a_backoff_never_sleeps_past_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let mut s = settings(&server.uri());
    s.max_retries = 50;
    s.initial_backoff = Duration::from_millis(300);
    s.max_backoff = Duration::from_secs(5);
    let c = OpenAiClient::new(s).expect("client");
    for _ in 0..5 {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(400);
        let err = say_hi(&c, deadline).await.expect_err("fails");
        // A wait that would reach the deadline is not slept: the last error comes back first.
        assert!(Instant::now() < deadline + Duration::from_millis(100), "took {:?}", started.elapsed());
        assert!(matches!(err, LlmError::Status { status: 503, .. } | LlmError::Deadline), "{err:?}");
    }
}

/// Records every tracing event and span field as text.
#[derive(Clone, Default)]
struct CaptureLogs(std::sync::Arc<std::sync::Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl CaptureLogs {
    fn push(&self, record: impl FnOnce(&mut Fields<'_>)) {
        let mut text = String::new();
        record(&mut Fields(&mut text));
        if let Ok(mut all) = self.0.lock() {
            all.push_str(&text);
            all.push('\n');
        }
    }
    fn text(&self) -> String {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl tracing::Subscriber for CaptureLogs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.push(|f| span.record(f));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.push(|f| values.record(f));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        self.push(|f| event.record(f));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Records this thread's events until the guards drop.
fn capture_logs() -> (CaptureLogs, (tracing::subscriber::DefaultGuard, tracing::Dispatch)) {
    let logs = CaptureLogs::default();
    let guard = tracing::subscriber::set_default(logs.clone());
    // With a single registered dispatcher, tracing computes a call site's interest from the
    // default of whichever thread hits it first: a parallel test could cache "never" for our
    // warn! call sites. A second live dispatcher makes it ask every registered dispatcher.
    let second = tracing::Dispatch::new(CaptureLogs::default());
    (logs, (guard, second))
}

/// A local address nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test]
async fn retries_are_logged_without_the_key() {
    let (logs, _guards) = capture_logs();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(hello()))
        .mount(&server)
        .await;
    say_hi(&client(&server.uri()), in_secs(10)).await.expect("ok");
    let text = logs.text();
    assert!(text.contains("retrying") && text.contains("attempt=1"), "{text}");
    assert!(!text.contains(KEY), "{text}");
}

#[tokio::test]
async fn an_unreachable_server_ends_as_connect() {
    let addr = closed_port();
    let err = say_hi(&client(&format!("http://{addr}/v1")), in_secs(10)).await.expect_err("fails");
    assert!(matches!(err, LlmError::Connect { attempts: 3, .. }), "{err:?}");
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn a_connection_error_keeps_its_cause_for_the_log_and_no_url_password() {
    let addr = closed_port();
    let err =
        say_hi(&client(&format!("http://user:hunter2@{addr}/v1")), in_secs(10)).await.expect_err("fails");
    assert_eq!(err.to_string(), "LLM unreachable after 3 attempt(s)");
    let chain = error_chain(&err);
    assert!(chain.starts_with("LLM unreachable after 3 attempt(s): error sending request"), "{chain}");
    assert!(chain.contains(&format!("http://{addr}/v1/chat/completions")), "{chain}");
    assert!(!chain.contains("hunter2") && !chain.contains(KEY), "{chain}");
}

#[tokio::test]
async fn an_error_body_is_scrubbed_logged_apart_and_kept_out_of_the_message() {
    let (logs, _guards) = capture_logs();
    let server = MockServer::start().await;
    let body =
        format!(r#"{{"error": "key {KEY} rejected; got Bearer abc.def; try sk-proj-AAAAAAAAAAAAAAAAAAAA"}}"#);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string(body))
        .expect(1)
        .mount(&server)
        .await;
    let err = say_hi(&client(&server.uri()), in_secs(10)).await.expect_err("fails");
    assert_eq!(err.to_string(), "LLM answered HTTP 400 after 1 attempt(s)");
    assert_eq!(
        err.upstream_body(),
        Some(r#"{"error": "key [REDACTED] rejected; got Bearer [REDACTED]; try [REDACTED]"}"#)
    );
    let text = logs.text();
    assert!(text.contains("not retried") && text.contains("[REDACTED] rejected"), "{text}");
    for secret in [KEY, "abc.def", "AAAAAAAAAAAA"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
