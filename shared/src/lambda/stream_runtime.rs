//! The streaming function's Runtime API loop: lambda_runtime's, for one streamed HTTP response,
//! with `TCP_NODELAY` on the socket to the Runtime API.
//!
//! Why our own: lambda_runtime (1.5) connects without `TCP_NODELAY` and offers no way to set it.
//! A streamed response is many small writes: the prelude, its eight NUL bytes, then each token.
//! With Nagle's algorithm a small write waits while an earlier one is unacknowledged, and a
//! receiver that delays its ACK (Linux: up to ~40 ms) holds the token that long (README, the
//! streaming measurements under `cargo lambda watch`). Here every write leaves at once.
//!
//! What stays lambda_runtime's and lambda_http's: the client (`PooledClient`, with our connector),
//! the invocation [`Context`] and its `Config`, the event types and their conversion into the
//! request our router sees ([`StreamAdapter`]: the lambda context, the X-Ray header), the tracing
//! span ([`TracingLayer`]) and our telemetry layer around each invocation, and the wire format:
//! `GET /next`; `POST /response` in streaming mode (the prelude, the eight NULs, the body, each
//! written as it is ready; a body that fails mid-way ends with the error trailers); `POST /error`
//! before a response exists.
//! What is not done: setting `_X_AMZN_TRACE_ID` in the process environment for each invocation
//! (`std::env::set_var` is `unsafe` in edition 2024 and this workspace forbids `unsafe`; its only
//! reader here is the AWS SDK's recursion-detection header, and the trace id still reaches our
//! router as the request's `X-Amzn-Trace-Id`); SnapStart hooks (refused at start by
//! [`RuntimeApiSettings`]); polling concurrently under `AWS_LAMBDA_MAX_CONCURRENCY` (one
//! invocation at a time, as lambda_runtime's `run`, with a warning).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use futures::{FutureExt as _, Stream, StreamExt as _};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use lambda_http::StreamAdapter;
use lambda_http::lambda_runtime::layers::TracingLayer;
use lambda_http::lambda_runtime::tower::{Layer as _, Service, ServiceExt as _};
use lambda_http::lambda_runtime::{Context, Diagnostic, LambdaEvent, LambdaInvocation, StreamResponse};
use lambda_http::request::LambdaRequest;
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{BoxError, PooledClient, build_request};

use crate::settings::RuntimeApiSettings;

/// Lambda's limit on a synchronous invocation's payload: no event the Runtime API hands out is
/// larger, so a larger one is refused (to `/error`) rather than read.
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;
const NEXT: &str = "/2018-06-01/runtime/invocation/next";
/// The pause before asking again after an empty `GET /next` (204).
const EMPTY_POLL_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
/// Echoed on `/response` and `/error` so the Runtime API can refuse a stale answer.
const INVOCATION_ID: &str = "lambda-runtime-invocation-id";
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
const ERROR_BODY: &str = "lambda-runtime-function-error-body";

/// Serves `app`'s invocations from the Runtime API at `api` until a Runtime API call fails
/// (transport error, or `GET /next` answered with an error status): then the error, as
/// lambda_runtime does.
pub async fn run(app: Router, api: RuntimeApiSettings) -> Result<(), BoxError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Arc::new(
        PooledClient::builder()
            .with_connector(connector)
            .with_endpoint(api.endpoint)
            .with_pool_size(1)
            .build(),
    );
    if let Some(n) = api.max_concurrency.filter(|n| *n > 1) {
        tracing::warn!(
            max_concurrency = n,
            "AWS_LAMBDA_MAX_CONCURRENCY is set; this loop answers one invocation at a time"
        );
    }
    let config = Arc::new(api.config);
    let invoke = StreamInvoke { adapter: StreamAdapter::from(app), client: client.clone() };
    // Outermost first, as `Runtime::layer` stacks them for the other functions.
    let mut service = crate::telemetry::runtime::layer().layer(TracingLayer::new().layer(invoke));
    loop {
        let next = client.call(build_request().method(Method::GET).uri(NEXT).body(Body::empty())?).await?;
        match next.status() {
            // `cargo lambda watch`'s "nothing queued for this function yet" (it answers at once
            // until the function's first invocation; Lambda's own API never does): ask again,
            // without spinning.
            StatusCode::NO_CONTENT => {
                tokio::time::sleep(EMPTY_POLL_PAUSE).await;
                continue;
            }
            s if !s.is_success() => return Err(format!("the Runtime API answered GET /next with {s}").into()),
            _ => {}
        }
        let (parts, body) = next.into_parts();
        let request_id = header(&parts.headers, "lambda-runtime-aws-request-id")
            .ok_or("the Runtime API sent an event without lambda-runtime-aws-request-id")?
            .to_owned();
        let ids = Ids::of(request_id, &parts.headers);
        // (`Context::new` panics without a deadline.)
        let context = match header(&parts.headers, "lambda-runtime-deadline-ms") {
            None => Err("the event has no lambda-runtime-deadline-ms header".to_owned()),
            Some(_) => {
                Context::new(&ids.request_id, config.clone(), &parts.headers).map_err(|e| e.to_string())
            }
        };
        let prepared = match context {
            Err(e) => Err(format!("the event's context headers are malformed: {e}")),
            Ok(context) => match Limited::new(body, MAX_EVENT_BYTES).collect().await {
                Ok(body) => Ok((context, body.to_bytes())),
                Err(e) => Err(format!("the event could not be read (at most {MAX_EVENT_BYTES} bytes): {e}")),
            },
        };
        match prepared {
            Ok((context, body)) => {
                service.ready().await?.call(LambdaInvocation { parts, body, context }).await?
            }
            Err(message) => refuse_event(&client, &ids, message).await?,
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The invocation's identifiers for its answer.
struct Ids {
    request_id: String,
    invocation_id: Option<String>,
}

impl Ids {
    /// The request id and the invocation id `GET /next`'s `headers` carry.
    fn of(request_id: String, headers: &HeaderMap) -> Self {
        Self { request_id, invocation_id: header(headers, INVOCATION_ID).map(str::to_owned) }
    }

    /// `POST .../invocation/{request id}/{what}` (`response` or `error`), the invocation id echoed.
    fn answer(&self, what: &str) -> http::request::Builder {
        let request = build_request()
            .method(Method::POST)
            .uri(format!("/2018-06-01/runtime/invocation/{}/{what}", self.request_id));
        match &self.invocation_id {
            Some(id) => request.header(INVOCATION_ID, id),
            None => request,
        }
    }
}

/// One invocation: the event into the router's request, its response streamed to the Runtime API.
struct StreamInvoke {
    adapter: StreamAdapter<'static, Router, axum::body::Body>,
    client: Arc<PooledClient>,
}

impl Service<LambdaInvocation> for StreamInvoke {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.adapter.poll_ready(cx).map_err(|never: Infallible| match never {})
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let LambdaInvocation { parts, body, context } = invocation;
        let ids = Ids::of(context.request_id.clone(), &parts.headers);
        let client = self.client.clone();
        let handled = serde_json::from_slice::<LambdaRequest>(&body)
            .map(|event| self.adapter.call(LambdaEvent::new(event, context)));
        Box::pin(async move {
            let response = match handled {
                Err(e) => {
                    let message = format!("the event is not an API Gateway or function URL HTTP event: {e}");
                    return refuse_event(&client, &ids, message).await;
                }
                Ok(handling) => match AssertUnwindSafe(handling).catch_unwind().await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(panic) => {
                        let detail = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned());
                        tracing::error!(
                            panic = detail.as_deref().unwrap_or("(not a string)"),
                            "the handler panicked"
                        );
                        let error = Diagnostic {
                            error_type: "Runtime.Panic".into(),
                            error_message: "the handler panicked".into(),
                        };
                        return post_error(&client, &ids, error).await;
                    }
                },
            };
            post_stream(&client, &ids, response).await
        })
    }
}

/// `POST /response` in streaming mode, the body sent as the router produces it.
async fn post_stream<S>(client: &PooledClient, ids: &Ids, response: StreamResponse<S>) -> Result<(), BoxError>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send + 'static,
{
    let StreamResponse { mut metadata_prelude, stream } = response;
    metadata_prelude
        .headers
        .entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/octet-stream"));
    let prelude = serde_json::to_vec(&metadata_prelude)?;
    let request = ids
        .answer("response")
        .header("lambda-runtime-function-response-mode", "streaming")
        .header(CONTENT_TYPE, "application/vnd.awslambda.http-integration-response")
        .header("transfer-encoding", "chunked")
        .header("trailer", ERROR_TYPE)
        .header("trailer", ERROR_BODY);
    let head = [Bytes::from(prelude), Bytes::from_static(&[0; 8])];
    let body = StreamedBody { head: head.into_iter(), stream, done: false };
    send_answer(client, request.body(Body::new(body))?).await
}

/// An invocation the router cannot be handed: logged, and `/error` as `Runtime.InvalidEvent`.
async fn refuse_event(client: &PooledClient, ids: &Ids, message: String) -> Result<(), BoxError> {
    tracing::error!(request_id = %ids.request_id, error = %message, "the event is refused; the handler is not called");
    let error = Diagnostic { error_type: "Runtime.InvalidEvent".into(), error_message: message };
    post_error(client, ids, error).await
}

/// `POST /error`: the invocation failed before a response existed.
async fn post_error(client: &PooledClient, ids: &Ids, error: Diagnostic) -> Result<(), BoxError> {
    let body = Body::from(serde_json::to_vec(&error)?);
    send_answer(client, ids.answer("error").header(ERROR_TYPE, "unhandled").body(body)?).await
}

/// Sends an invocation's answer. A refused one is logged and the loop goes on, as lambda_runtime's
/// does (410: the invocation timed out, or the answer was stale).
async fn send_answer(client: &PooledClient, answer: http::Request<Body>) -> Result<(), BoxError> {
    let status = client.call(answer).await?.status();
    if !status.is_success() {
        tracing::error!(%status, "the Runtime API refused the invocation's answer");
    }
    Ok(())
}

/// The prelude and its separator, each its own chunk (the emulator reads them chunk by chunk;
/// Lambda reads up to the NULs), then the router's body; a body error ends it with the error
/// trailers (its detail goes to the log only).
struct StreamedBody<S> {
    head: std::array::IntoIter<Bytes, 2>,
    stream: S,
    done: bool,
}

impl<S> http_body::Body for StreamedBody<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(head) = self.head.next() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        // (hyper drops an empty chunk itself: it would otherwise end the chunked body.)
        match ready!(self.stream.poll_next_unpin(cx)) {
            Some(Ok(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some(Err(e)) => {
                self.done = true;
                tracing::error!(error = %e, "the response body failed mid-stream");
                Poll::Ready(Some(Ok(Frame::trailers(error_trailers()))))
            }
            None => {
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// What the Runtime API takes as a mid-stream failure: the error type and the base64 of the
/// error document, as trailers.
fn error_trailers() -> HeaderMap {
    let error = Diagnostic {
        error_type: "Runtime.StreamError".into(),
        error_message: "the response stream failed".into(),
    };
    let document = serde_json::to_vec(&error).unwrap_or_default();
    let mut trailers = HeaderMap::new();
    trailers.insert(ERROR_TYPE, HeaderValue::from_static("Runtime.StreamError"));
    if let Ok(body) = HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(document)) {
        trailers.insert(ERROR_BODY, body);
    }
    trailers
}
