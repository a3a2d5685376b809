//! Inputs and faults an attacker or a bad day brings, each with the outcome the README promises:
//! malformed and slow bodies, idle connections, bodies that are not JSON, an LLM that echoes
//! secrets. Loopback only, each bounded in time.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::method;
use wiremock::{Mock, Respond, ResponseTemplate};

use crate::helpers::{API_KEY, StackOptions, TestApp, mount_script, spawn_stack, spawn_stack_with};

#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// JSON logs of this process (nextest runs each test in a process of its own).
    pub fn capture() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .try_init();
        logs
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Writes `raw` on a new connection and reads the answer until the server closes (bounded).
async fn raw_exchange(app: &TestApp, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr(app)).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn json_of(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body expected: {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_gets_400_and_a_client_that_hangs_up_is_logged_as_aborted() {
    let logs = Logs::capture();
    let app = spawn_stack().await;
    mount_script(&app).await;
    let head = "POST /plain/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n";
    // A two-byte body behind a chunk size that is not hexadecimal.
    let answer = raw_exchange(
        &app,
        format!("{head}Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(json_of(&answer)["error"]["code"], "malformed_body");

    // Content-Length 100, ten bytes, then the client leaves.
    let mut s = TcpStream::connect(addr(&app)).await.expect("connect");
    s.write_all(format!("{head}Content-Length: 100\r\n\r\n{{\"items\": ").as_bytes()).await.expect("write");
    s.shutdown().await.expect("half-close");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    // Chunked, cut in the middle of a chunk.
    let mut s = TcpStream::connect(addr(&app)).await.expect("connect");
    s.write_all(format!("{head}Transfer-Encoding: chunked\r\n\r\n40\r\n{{\"items\"").as_bytes())
        .await
        .expect("write");
    drop(s);

    // The next request is served as usual, and by then both hang-ups are in the log.
    let (status, _, _) = app.say("plain/1", "still fine").await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let aborted = loop {
        let text = logs.text();
        let n = text.matches("\"outcome\":\"aborted\"").count();
        if n >= 2 || started.elapsed() > Duration::from_secs(5) {
            break (n, text);
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(aborted.0, 2, "{}", aborted.1);
    assert!(
        !aborted.1.contains("payload_too_large") && !aborted.1.contains("larger than the limit"),
        "{}",
        aborted.1
    );
    assert_eq!(app.llm_requests().await.len(), 1, "only the complete request reached the LLM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_gets_415_and_never_runs() {
    let app = spawn_stack().await;
    mount_script(&app).await;
    let body = r#"{"items": [{"content_type": "text", "content": "hi"}]}"#;
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut req = app.http.post(format!("{}/plain/1", app.base)).body(body);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 415, "{content_type:?}");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(v["error"]["code"], "unsupported_media_type");
        assert!(
            v["error"]["message"].as_str().expect("message").contains("Content-Type: application/json"),
            "{v}"
        );
    }
    let resp = app
        .http
        .post(format!("{}/plain/1", app.base))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(app.llm_requests().await.len(), 1, "only the JSON request ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_and_idle_or_slow_header_connections_are_closed() {
    let limits = teal_net::Limits {
        header_read: Duration::from_millis(400),
        body_read: Duration::from_millis(400),
        max_connections: 64,
    };
    let app = spawn_stack_with(StackOptions { limits, ..Default::default() }).await;
    mount_script(&app).await;
    let started = Instant::now();
    let answer = raw_exchange(
        &app,
        b"POST /plain/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"items\"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(json_of(&answer)["error"]["code"], "body_timeout");
    let idle = raw_exchange(&app, b"").await;
    let slow_header = raw_exchange(&app, b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
    assert!(idle.is_empty() && slow_header.is_empty(), "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(app.llm_requests().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_idle_connections_do_not_starve_health_and_are_closed() {
    let limits = teal_net::Limits { header_read: Duration::from_secs(1), ..teal_net::Limits::default() };
    let app = spawn_stack_with(StackOptions { limits, ..Default::default() }).await;
    let mut idle = Vec::new();
    for i in 0..600 {
        let mut s = TcpStream::connect(addr(&app)).await.expect("connect");
        if i % 2 == 0 {
            // Half of them start a request and never finish its headers.
            s.write_all(b"GET /health HTTP/1.1\r\n").await.expect("write");
        }
        idle.push(s);
    }
    let started = Instant::now();
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_millis(500), "/health waited {:?}", started.elapsed());
    // Every one of them is closed by the server at the idle / header limit.
    let closed = futures::future::join_all(idle.iter_mut().map(|s| async move {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }))
    .await;
    assert_eq!(closed.iter().filter(|c| **c).count(), 600);
}

/// An LLM that answers 500 with the request's own headers in its body, as some proxies do.
struct EchoHeaders;

impl Respond for EchoHeaders {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let auth = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        ResponseTemplate::new(500).set_body_string(format!(
            r#"{{"error": "upstream rejected request with Authorization: {auth}"}}"#
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_echoing_the_authorization_header_reaches_neither_the_client_nor_the_log() {
    let logs = Logs::capture();
    let app = spawn_stack().await;
    Mock::given(method("POST")).respond_with(EchoHeaders).mount(&app.llm).await;
    let (status, _, body) = app.say("plain/1", "hi").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["upstream"], "llm");
    assert_eq!(body["error"]["message"], "LLM upstream failed: HTTP 500 after 3 attempt(s)");
    let text = logs.text();
    assert!(text.contains("Authorization: Bearer [REDACTED]"), "the scrubbed detail is logged:\n{text}");
    for leak in [API_KEY, "e2e-secret"] {
        assert!(!body.to_string().contains(leak), "{leak} in the response: {body}");
        assert!(!text.contains(leak), "{leak} in the log:\n{text}");
    }
}
