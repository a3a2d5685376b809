//! The streaming function's own Runtime API loop (`teal_core::lambda::stream_runtime`). First
//! against the real emulator, `cargo lambda watch --only-lambda-apis`: this test process is the
//! function (its loop polls the emulator's Runtime API) and the client (through the emulated
//! function URL, or a direct invoke). The router is the test's, so each path makes the loop meet
//! one case: a body the test feeds chunk by chunk, a body that fails mid-way, a panic, the
//! invocation's context; and events that are no HTTP event or over 6 MiB. Then the wire of one
//! response at a minimal Runtime API of the test's own, since the emulator drops trailers.

use std::net::TcpListener as StdListener;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::get;
use base64::Engine as _;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lambda_http::RequestExt;
use lambda_http::lambda_runtime::Config;
use serde_json::Value;
use teal_core::lambda::stream_runtime;
use teal_core::settings::RuntimeApiSettings;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::helpers::repo;

/// The emulator serves only its project's binaries' names; with `--only-lambda-apis` it starts
/// none of them, so this process answers as `teal-stream`.
const FUNCTION: &str = "teal-stream";
/// A guard on every wait: a failure, never a synchronisation.
const LIMIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The emulator, stopped with the test.
async fn emulator() -> (Child, u16) {
    let port = free_port();
    let child = Command::new("cargo")
        .args(["lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cargo lambda watch starts (pip install cargo-lambda)");
    // Readiness: poll until the port accepts a connection.
    timeout(LIMIT, async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tick.tick().await;
        }
    })
    .await
    .expect("the emulator listens");
    (child, port)
}

/// The test's router: what each path makes the loop do.
fn router(chunks: mpsc::Receiver<Bytes>) -> Router {
    let chunks = std::sync::Arc::new(std::sync::Mutex::new(Some(chunks)));
    Router::new()
        .route(
            "/tokens",
            get(move || {
                let rx = chunks.lock().expect("lock").take().expect("/tokens is called once");
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
                });
                async move { Body::from_stream(stream) }
            }),
        )
        .route(
            "/boom",
            get(|| async {
                // An empty chunk on the way must not end the chunked body before the trailers.
                let items = [
                    Ok(Bytes::from_static(b"partial;")),
                    Ok(Bytes::new()),
                    Err(std::io::Error::other("disk on fire")),
                ];
                Body::from_stream(futures::stream::iter(items))
            }),
        )
        .route("/panic", get(panics))
        .route(
            "/context",
            get(|req: axum::extract::Request| async move {
                let ctx = req.lambda_context_ref().cloned().unwrap_or_default();
                format!("{}|{}", ctx.request_id, ctx.env_config.function_name)
            }),
        )
}

async fn panics() -> &'static str {
    panic!("handler bug")
}

/// The loop's settings for a Runtime API at `endpoint`.
fn settings(endpoint: &str) -> RuntimeApiSettings {
    RuntimeApiSettings {
        endpoint: endpoint.parse().expect("uri"),
        config: Config {
            function_name: FUNCTION.into(),
            memory: 512,
            version: "$LATEST".into(),
            ..Config::default()
        },
        max_concurrency: None,
    }
}

/// Runs the loop on a thread of its own, as the function's `main` would (its future is not
/// `Send`: the runtime layers' are not).
fn spawn_loop(app: Router, api: RuntimeApiSettings) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let ended = rt.block_on(stream_runtime::run(app, api));
        eprintln!("the loop ended: {ended:?}");
    });
}

struct Harness {
    _emulator: Child,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Harness {
    /// The harness, and the sender that feeds `/tokens`.
    async fn start() -> (Self, mpsc::Sender<Bytes>) {
        let (emulator, port) = emulator().await;
        let (chunks, rx) = mpsc::channel(1);
        let api = settings(&format!("http://127.0.0.1:{port}/.rt/{FUNCTION}"));
        spawn_loop(router(rx), api);
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        (Self { _emulator: emulator, base: format!("http://127.0.0.1:{port}"), client }, chunks)
    }

    async fn get(&self, path: &str) -> http::Response<hyper::body::Incoming> {
        let req = http::Request::get(format!("{}/lambda-url/{FUNCTION}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .expect("request");
        timeout(LIMIT, self.client.request(req)).await.expect("in time").expect("the emulator answers")
    }

    /// A direct invoke with a raw payload (what `cargo lambda invoke` sends).
    async fn invoke(&self, payload: &str) -> (http::StatusCode, Value) {
        let req = http::Request::post(format!("{}/2015-03-31/functions/{FUNCTION}/invocations", self.base))
            .body(Full::new(Bytes::from(payload.to_owned())))
            .expect("request");
        let res =
            timeout(LIMIT, self.client.request(req)).await.expect("in time").expect("the emulator answers");
        let status = res.status();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into())),
        )
    }
}

async fn text(res: http::Response<hyper::body::Incoming>) -> String {
    let body = timeout(LIMIT, res.into_body().collect()).await.expect("in time");
    String::from_utf8_lossy(&body.map(|b| b.to_bytes()).unwrap_or_default()).into_owned()
}

#[tokio::test]
async fn each_chunk_reaches_the_client_before_the_next_is_made_and_failures_are_answered() {
    let (h, chunks) = Harness::start().await;

    // Streaming: the test writes a chunk only after the client has read the previous one.
    let res = h.get("/tokens").await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    for token in ["alpha ", "beta ", "gamma"] {
        chunks.send(Bytes::from(token)).await.expect("the handler's stream is open");
        let frame =
            timeout(LIMIT, body.frame()).await.expect("the chunk arrives while the next is unwritten");
        let data = frame.expect("a frame").expect("no error").into_data().expect("data");
        assert_eq!(data, token.as_bytes(), "each chunk on its own, in order");
    }
    drop(chunks);
    let rest =
        timeout(LIMIT, body.collect()).await.expect("the end arrives").expect("a clean end").to_bytes();
    assert!(rest.is_empty(), "nothing after the last chunk: {rest:?}");
    // The context the router saw: the emulator's request id and our configuration.
    let ctx = text(h.get("/context").await).await;
    let (request_id, function) = ctx.split_once('|').expect("request id|function");
    assert!(!request_id.is_empty(), "{ctx}");
    assert_eq!(function, FUNCTION);

    // A body that fails mid-way: what was sent arrives, then the stream ends (the emulator does
    // not pass the error trailers on: the next test reads them); the loop goes on.
    let boom = text(h.get("/boom").await).await;
    assert_eq!(boom, "partial;", "what was sent, and no error detail");

    // A panic in the handler: reported to /error, the loop goes on.
    let res = h.get("/panic").await;
    assert!(res.status().is_server_error(), "{}", res.status());
    let panicked = text(res).await;
    assert!(!panicked.contains("handler bug"), "the panic's message stays in the log: {panicked}");

    // An event that is no HTTP event: /error names it; the handler is not called.
    let (status, error) = h.invoke(r#"{"hello":"world"}"#).await;
    assert!(!status.is_success(), "{status}: {error}");
    let error = error.to_string();
    assert!(error.contains("Runtime.InvalidEvent"), "{error}");
    assert!(error.contains("not an API Gateway or function URL HTTP event"), "{error}");

    // An event over Lambda's 6 MiB: /error names the bound, the event is not read further.
    let (status, error) = h.invoke(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(7 << 20))).await;
    assert!(!status.is_success(), "{status}");
    assert!(error.to_string().contains("at most 6291456 bytes"), "{error}");

    // And the loop still serves.
    let ctx = text(h.get("/context").await).await;
    assert!(ctx.ends_with(FUNCTION), "{ctx}");
}

/// What the loop posted for an invocation: `response` or `error`, headers, body chunks, trailers.
type Posted = (String, HeaderMap, Vec<Bytes>, Option<HeaderMap>);

/// The Runtime API side of one invocation, as a minimal server on loopback: `GET /next` hands out
/// `event` once (later polls wait), with or without its deadline header; `POST .../response` or
/// `.../error` is read to the end, trailers included. The emulator drops trailers, so this is
/// where the loop's trailers are seen.
async fn one_invocation(event: String, deadline: bool) -> (String, mpsc::Receiver<Posted>) {
    use axum::extract::Request;
    use axum::routing::post;
    let (tx, rx) = mpsc::channel(1);
    let handed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let api = Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(move || {
                let (event, handed_out) = (event.clone(), handed_out.clone());
                async move {
                    if handed_out.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    let mut headers = HeaderMap::new();
                    headers.insert("lambda-runtime-aws-request-id", "req-1".parse().expect("value"));
                    headers.insert("lambda-runtime-invocation-id", "inv-1".parse().expect("value"));
                    if deadline {
                        headers.insert("lambda-runtime-deadline-ms", "4102444800000".parse().expect("value"));
                    }
                    (headers, event)
                }
            }),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/{what}",
            post(
                move |axum::extract::Path((id, what)): axum::extract::Path<(String, String)>,
                      req: Request| {
                    let tx = tx.clone();
                    async move {
                        assert_eq!(id, "req-1");
                        let (parts, mut body) = req.into_parts();
                        let (mut chunks, mut trailers) = (Vec::new(), None);
                        while let Some(frame) = body.frame().await {
                            match frame.expect("a frame").into_data() {
                                Ok(d) => chunks.push(d),
                                Err(f) => trailers = f.into_trailers().ok(),
                            }
                        }
                        let _ = tx.send((what, parts.headers, chunks, trailers)).await;
                        http::StatusCode::ACCEPTED
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, api).await });
    (format!("http://{addr}"), rx)
}

#[tokio::test]
async fn the_response_is_posted_in_streaming_mode_and_a_failed_body_ends_with_the_error_trailers() {
    let mut event: Value = serde_json::from_str(&crate::helpers::event_text("stream.json")).expect("event");
    event["rawPath"] = "/boom".into();
    event["requestContext"]["http"]["method"] = "GET".into();
    event["requestContext"]["http"]["path"] = "/boom".into();
    let (endpoint, mut posted) = one_invocation(event.to_string(), true).await;
    let api = settings(&endpoint);
    let (_chunks, rx) = mpsc::channel(1);
    spawn_loop(router(rx), api);
    let (what, headers, chunks, trailers) =
        timeout(LIMIT, posted.recv()).await.expect("in time").expect("a response");
    assert_eq!(what, "response");
    assert_eq!(headers["lambda-runtime-function-response-mode"], "streaming");
    assert_eq!(headers["content-type"], "application/vnd.awslambda.http-integration-response");
    assert_eq!(headers["lambda-runtime-invocation-id"], "inv-1", "the invocation id is echoed");
    let prelude: Value = serde_json::from_slice(&chunks[0]).expect("the prelude, a chunk of its own");
    assert_eq!(prelude["statusCode"], 200);
    assert_eq!(&chunks[1][..], &[0u8; 8], "then the eight NULs, a chunk of their own");
    assert_eq!(chunks[2..].concat(), b"partial;", "then the body");
    let trailers = trailers.expect("the error trailers");
    assert_eq!(trailers["lambda-runtime-function-error-type"], "Runtime.StreamError");
    let document = base64::engine::general_purpose::STANDARD
        .decode(trailers["lambda-runtime-function-error-body"].as_bytes())
        .expect("base64");
    let document: Value = serde_json::from_slice(&document).expect("an error document");
    assert_eq!(document["errorType"], "Runtime.StreamError");
    assert_eq!(document["errorMessage"], "the response stream failed", "no detail: {document}");
}

#[tokio::test]
async fn an_event_without_a_deadline_is_refused_to_error_not_a_panic() {
    let (endpoint, mut posted) = one_invocation(crate::helpers::event_text("stream.json"), false).await;
    let (_chunks, rx) = mpsc::channel(1);
    spawn_loop(router(rx), settings(&endpoint));
    let (what, headers, chunks, _) =
        timeout(LIMIT, posted.recv()).await.expect("in time").expect("an answer");
    assert_eq!(what, "error");
    assert_eq!(headers["lambda-runtime-invocation-id"], "inv-1");
    let error: Value = serde_json::from_slice(&chunks.concat()).expect("an error document");
    assert_eq!(error["errorType"], "Runtime.InvalidEvent");
    assert!(
        error["errorMessage"].as_str().is_some_and(|m| m.contains("lambda-runtime-deadline-ms")),
        "{error}"
    );
}
