//! The HTTP call: one pooled `reqwest::Client`, the authentication header, and the retry loop.
//!
//! Owns the endpoint URL, the attempt and its classification (retry or not), and the deadline.
//! It must not build or parse the wire JSON itself ([`super::wire`]) nor compute backoffs or
//! read `Retry-After` by hand ([`super::retry`]), and must never log or print the API key.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::ExposeSecret;
use url::Url;

use super::redact::error_body;
use super::stream::Assembler;
use super::wire::{encode, parse_response};
use super::{ClientError, OpenAiSettings};
use crate::llm::retry::{Attempt, parse_retry_after, with_retries};
use crate::llm::{BoxError, ChatRequest, ChatResponse, LlmClient, LlmError, TextSink};

/// How long an idle pooled connection is kept (Lambda environments are frozen between calls;
/// a connection older than this is likely closed by the other side anyway).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// The OpenAI-compatible adapter: one pooled HTTP client, reused for every call.
///
/// Cloning is cheap and shares the connection pool. `Debug` shows the endpoint and the retry
/// settings, never the key.
#[derive(Clone)]
pub struct OpenAiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    settings: OpenAiSettings,
    /// `Authorization: Bearer …` or `api-key: …`, built once and marked sensitive.
    auth: Option<(&'static str, HeaderValue)>,
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base_url", &self.public_base_url().as_str())
            .field("api_key", &self.inner.settings.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("azure_api_version", &self.inner.settings.azure_api_version)
            .field("timeout", &self.inner.settings.timeout)
            .field("max_retries", &self.inner.settings.max_retries)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// Builds the pooled HTTP client (TCP nodelay, idle connections kept 50 s) and the
    /// authentication header.
    pub fn new(settings: OpenAiSettings) -> Result<Self, ClientError> {
        let auth = match &settings.api_key {
            None => None,
            Some(key) => {
                let key = key.expose_secret();
                let (name, value) = if settings.azure_api_version.is_some() {
                    ("api-key", key.to_owned())
                } else {
                    (AUTHORIZATION.as_str(), format!("Bearer {key}"))
                };
                let mut value = HeaderValue::from_str(&value).map_err(|_| ClientError::InvalidApiKey)?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        let http = crate::http_client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("teal-serverless/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::HttpClient)?;
        Ok(Self { inner: Arc::new(Inner { http, settings, auth }) })
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &OpenAiSettings {
        &self.inner.settings
    }

    /// The base URL without any user name or password it may carry, for logs and `describe`.
    fn public_base_url(&self) -> Url {
        let mut url = self.inner.settings.base_url.clone();
        // Both fail only for URLs that cannot carry credentials, which are then already clean.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url
    }

    /// The chat-completions URL for `model`: `{base}/chat/completions`, or in Azure mode
    /// `{base}/openai/deployments/{model}/chat/completions?api-version=V`.
    pub fn endpoint(&self, model: &str) -> Url {
        let mut url = self.inner.settings.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            if self.inner.settings.azure_api_version.is_some() {
                path.extend(["openai", "deployments", model]);
            }
            path.extend(["chat", "completions"]);
        }
        if let Some(version) = &self.inner.settings.azure_api_version {
            url.query_pairs_mut().append_pair("api-version", version);
        }
        url
    }

    /// Sends one attempt and reads the status: the response when it is a success, else what
    /// the failure comes to (retried or not).
    async fn send(&self, url: &Url, payload: &Bytes, attempts: u32) -> Result<reqwest::Response, Attempt> {
        let mut request =
            self.inner.http.post(url.clone()).header(CONTENT_TYPE, "application/json").body(payload.clone());
        if let Some((name, value)) = &self.inner.auth {
            request = request.header(*name, value.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Err(retry_on_transport(e, attempts)),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(Attempt::Done(Err(LlmError::Unauthorized { status: status.as_u16() })));
        }
        let key = self.inner.settings.api_key.as_ref().map(|k| k.expose_secret());
        let body = match response.bytes().await {
            Ok(b) => error_body(&b, key),
            Err(_) => String::new(),
        };
        let code = status.as_u16();
        Err(match code {
            429 => Attempt::Retry { error: LlmError::RateLimited { attempts }, retry_after },
            500 | 502 | 503 | 504 => {
                Attempt::Retry { error: LlmError::Status { status: code, body, attempts }, retry_after }
            }
            _ => Attempt::Done(Err(LlmError::Status { status: code, body, attempts })),
        })
    }

    /// One buffered attempt: the whole answer read, then parsed.
    async fn attempt(&self, url: &Url, payload: &Bytes, attempts: u32) -> Attempt {
        let response = match self.send(url, payload, attempts).await {
            Ok(r) => r,
            Err(failed) => return failed,
        };
        match response.bytes().await {
            Ok(body) => Attempt::Done(parse_response(&body)),
            Err(e) => retry_on_transport(e, attempts),
        }
    }

    /// One streamed attempt: server-sent events parsed as they arrive, each text delta handed to
    /// `on_text` at once. `started` is set before the first delta is handed on; from then on a
    /// failure is [`LlmError::StreamCutMidAnswer`]. A server that ignores `stream` and answers
    /// one JSON completion is read whole, and its text handed on in one piece.
    async fn stream_attempt(
        &self,
        url: &Url,
        payload: &Bytes,
        attempts: u32,
        on_text: TextSink<'_>,
        started: &AtomicBool,
    ) -> Attempt {
        let response = match self.send(url, payload, attempts).await {
            Ok(r) => r,
            Err(failed) => return failed,
        };
        let json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if json {
            return match response.bytes().await {
                Ok(body) => Attempt::Done(parse_response(&body).inspect(|answer| {
                    if let Some(text) = answer.message.content.as_deref().filter(|t| !t.is_empty()) {
                        on_text(text);
                    }
                })),
                Err(e) => retry_on_transport(e, attempts),
            };
        }
        let cut = |source: Option<BoxError>| {
            if started.load(Ordering::Acquire) {
                Attempt::Done(Err(LlmError::StreamCutMidAnswer { source }))
            } else {
                Attempt::Retry { error: LlmError::StreamCut { attempts, source }, retry_after: None }
            }
        };
        let mut seen: usize = 0;
        let bytes = response.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(StreamBodyError::Transport)?;
            seen = seen.saturating_add(chunk.len());
            if seen > MAX_STREAM_BYTES { Err(StreamBodyError::TooLarge) } else { Ok(chunk) }
        });
        let mut events = std::pin::pin!(sse_stream::SseStream::from_bytes_stream(bytes));
        let mut answer = Assembler::default();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => return cut(Some(Box::new(e))),
            };
            let Some(data) = event.data else { continue };
            match answer.push(&data) {
                Ok(Some(text)) => {
                    started.store(true, Ordering::Release);
                    on_text(&text);
                }
                Ok(None) => {}
                Err(e) => return Attempt::Done(Err(e)),
            }
            if answer.is_done() {
                break;
            }
        }
        if !answer.is_complete() {
            return cut(None);
        }
        Attempt::Done(Ok(answer.finish()))
    }
}

/// At most this many bytes of one streamed answer are read (a runaway server is cut off).
const MAX_STREAM_BYTES: usize = 32 * 1024 * 1024;

/// Why the bytes of a streamed answer stopped coming.
#[derive(Debug, thiserror::Error)]
enum StreamBodyError {
    #[error("reading the stream failed")]
    Transport(#[source] reqwest::Error),
    #[error("the stream exceeds {MAX_STREAM_BYTES} bytes")]
    TooLarge,
}

fn retry_on_transport(e: reqwest::Error, attempts: u32) -> Attempt {
    let error = if e.is_timeout() {
        LlmError::Timeout { attempts }
    } else {
        // reqwest moves a user name and password out of the URL (into the Authorization
        // header) before sending, so the URL this error prints carries none.
        LlmError::Connect { source: Box::new(e), attempts }
    };
    Attempt::Retry { error, retry_after: None }
}

#[async_trait::async_trait]
impl LlmClient for OpenAiClient {
    async fn complete(&self, request: ChatRequest<'_>, deadline: Instant) -> Result<ChatResponse, LlmError> {
        let url = self.endpoint(request.model);
        let payload = encode(&request, false).map_err(LlmError::Encode)?;
        let never = AtomicBool::new(false);
        with_retries(&self.inner.settings.retry_policy(), request.model, deadline, &never, |attempts| {
            self.attempt(&url, &payload, attempts)
        })
        .await
    }

    async fn stream(
        &self,
        request: ChatRequest<'_>,
        deadline: Instant,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let url = self.endpoint(request.model);
        let payload = encode(&request, true).map_err(LlmError::Encode)?;
        let started = AtomicBool::new(false);
        with_retries(&self.inner.settings.retry_policy(), request.model, deadline, &started, |attempts| {
            self.stream_attempt(&url, &payload, attempts, on_text, &started)
        })
        .await
    }

    fn describe(&self) -> String {
        let mode = if self.inner.settings.azure_api_version.is_some() {
            "azure-openai"
        } else {
            "openai-compatible"
        };
        format!("{mode} at {}", self.public_base_url())
    }
}

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
