//! The one HTTP client of every remote plugin, and the one place its calls are bounded.
//!
//! [`OpenApiClient::run`] holds the policy for every request (document fetches and tool calls
//! alike): the per-call timeout and the caller's absolute deadline, whichever comes first, bound
//! connecting, sending and reading the whole answer; the answer is read only up to a byte limit;
//! a transport failure becomes an [`OpenApiError`] naming the plugin. Redirects are followed
//! within the same origin only (at most 5), so auth headers never reach another host. Auth
//! header values are [`SecretString`]s, sent as sensitive header values and never logged.

use std::fmt;
use std::time::{Duration, Instant};

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::OpenApiError;
use super::request::Prepared;
use crate::mcp::ToolOutcome;

/// Characters of an error body the model sees.
const ERROR_SNIPPET_CHARS: usize = 1_000;

/// Limits of every remote plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiSettings {
    /// Bound of one call: connecting, sending and reading the answer (default 30 s).
    pub timeout: Duration,
    /// Bound of opening a connection (default 5 s).
    pub connect_timeout: Duration,
    /// Largest response body read for the model (default 1 MiB); a larger one is a tool error.
    pub max_response_bytes: usize,
    /// Largest OpenAPI document read (default 8 MiB).
    pub max_document_bytes: usize,
}

impl Default for OpenApiSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
            max_document_bytes: 8 << 20,
        }
    }
}

/// Headers the caller adds to every request of a call (API keys, tokens). Values are secrets:
/// `Debug` shows only the names. They replace any header of the same name the model filled.
#[derive(Clone, Default)]
pub struct AuthHeaders {
    headers: Vec<(HeaderName, SecretString)>,
}

impl AuthHeaders {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name: value`; fails (without echoing the value) if either is not valid in HTTP.
    pub fn with(mut self, name: &str, value: SecretString) -> Result<Self, http::Error> {
        let name = HeaderName::from_bytes(name.as_bytes())?;
        HeaderValue::from_str(value.expose_secret())?;
        self.headers.push((name, value));
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    fn apply(&self, map: &mut HeaderMap) {
        for (name, secret) in &self.headers {
            if let Ok(mut value) = HeaderValue::from_str(secret.expose_secret()) {
                value.set_sensitive(true);
                map.insert(name.clone(), value);
            }
        }
    }
}

impl fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.headers.iter().map(|(n, _)| (n.as_str(), "[REDACTED]"))).finish()
    }
}

/// The pooled HTTP client of all remote plugins, built once per process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenApiClient {
    http: reqwest::Client,
    settings: OpenApiSettings,
}

/// What a bounded request brought back.
pub(crate) enum Answer {
    Complete {
        status: StatusCode,
        body: Vec<u8>,
    },
    /// The body passed the limit; it was not read to the end.
    TooLarge {
        status: StatusCode,
    },
}

impl OpenApiClient {
    pub fn new(settings: OpenApiSettings) -> Result<Self, OpenApiError> {
        let same_origin = reqwest::redirect::Policy::custom(|attempt| {
            let same =
                attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() > 5 {
                attempt.error("more than 5 redirects")
            } else if same {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let http = crate::http_client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(settings.connect_timeout)
            .redirect(same_origin)
            .user_agent(concat!("teal-serverless/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(OpenApiError::HttpClient)?;
        Ok(Self { http, settings })
    }

    pub fn settings(&self) -> &OpenApiSettings {
        &self.settings
    }

    /// Sends `request` and reads its answer up to `limit` bytes, within the per-call timeout and
    /// before `deadline`.
    async fn run(
        &self,
        plugin: &str,
        request: reqwest::RequestBuilder,
        limit: usize,
        deadline: Instant,
    ) -> Result<Answer, OpenApiError> {
        let now = Instant::now();
        if deadline <= now {
            return Err(OpenApiError::Deadline { plugin: plugin.to_owned() });
        }
        let by_timeout = now + self.settings.timeout;
        let until = by_timeout.min(deadline);
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status();
            if response.content_length().is_some_and(|n| n > limit as u64) {
                return Ok(Answer::TooLarge { status });
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > limit {
                    return Ok(Answer::TooLarge { status });
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Answer::Complete { status, body })
        };
        match tokio::time::timeout_at(until.into(), exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) if e.is_timeout() => Err(self.timeout(plugin)),
            Ok(Err(source)) => Err(OpenApiError::Unreachable { plugin: plugin.to_owned(), source }),
            Err(_) if deadline < by_timeout => Err(OpenApiError::Deadline { plugin: plugin.to_owned() }),
            Err(_) => Err(self.timeout(plugin)),
        }
    }

    fn timeout(&self, plugin: &str) -> OpenApiError {
        OpenApiError::Timeout { plugin: plugin.to_owned(), timeout_ms: self.settings.timeout.as_millis() }
    }

    /// The text of an OpenAPI document served at `url`.
    pub(crate) async fn fetch_document(
        &self,
        plugin: &str,
        url: &Url,
        deadline: Instant,
    ) -> Result<String, OpenApiError> {
        let request =
            self.http.get(url.clone()).header(ACCEPT, "application/json, application/yaml;q=0.9, */*;q=0.5");
        let limit = self.settings.max_document_bytes;
        let fail =
            |source| OpenApiError::Document { plugin: plugin.to_owned(), location: url.to_string(), source };
        match self.run(plugin, request, limit, deadline).await? {
            Answer::Complete { status, body } if status.is_success() => {
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            Answer::Complete { status, .. } => {
                Err(fail(super::DocumentError::Status { status: status.as_u16() }))
            }
            Answer::TooLarge { .. } => Err(fail(super::DocumentError::TooLarge { limit })),
        }
    }

    /// Sends a prepared tool call. HTTP error statuses and oversized answers are tool errors for
    /// the model; only transport failures and timeouts are `Err`.
    pub(crate) async fn call(
        &self,
        plugin: &str,
        tool: &str,
        prepared: Prepared,
        auth: &AuthHeaders,
        deadline: Instant,
    ) -> Result<ToolOutcome, OpenApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/plain;q=0.9, */*;q=0.5"));
        for (name, value) in prepared.headers {
            headers.insert(name, value);
        }
        auth.apply(&mut headers);
        let mut request = self.http.request(prepared.method, prepared.url);
        if let Some((media_type, bytes)) = prepared.body {
            if let Ok(value) = HeaderValue::from_str(&media_type) {
                headers.insert(CONTENT_TYPE, value);
            }
            request = request.body(bytes);
        }
        let started = Instant::now();
        let limit = self.settings.max_response_bytes;
        let answer = self.run(plugin, request.headers(headers), limit, deadline).await;
        let ms = started.elapsed().as_millis() as u64;
        let outcome = match answer {
            Ok(Answer::Complete { status, body }) => {
                tracing::info!(
                    plugin,
                    tool,
                    status = status.as_u16(),
                    bytes = body.len(),
                    ms,
                    "remote plugin call"
                );
                outcome(status, &body)
            }
            Ok(Answer::TooLarge { status }) => {
                tracing::warn!(
                    plugin,
                    tool,
                    status = status.as_u16(),
                    limit,
                    ms,
                    "remote plugin answer over the size limit"
                );
                ToolOutcome {
                    text: format!(
                        "the answer of {tool} is larger than {limit} bytes and was not read; ask for less \
                         (a filter, a smaller page, fewer fields)"
                    ),
                    is_error: true,
                }
            }
            Err(e) => {
                tracing::warn!(plugin, tool, ms, error = %crate::telemetry::error_chain(&e), "remote plugin call failed");
                return Err(e);
            }
        };
        Ok(outcome)
    }
}

/// The model's view of an HTTP answer: the body for 2xx, `HTTP <code>: <body start>` otherwise.
fn outcome(status: StatusCode, body: &[u8]) -> ToolOutcome {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if status.is_success() {
        let text =
            if text.is_empty() { format!("HTTP {} (no content)", status.as_u16()) } else { text.to_owned() };
        return ToolOutcome { text, is_error: false };
    }
    let mut snippet: String = text.chars().take(ERROR_SNIPPET_CHARS).collect();
    if snippet.len() < text.len() {
        snippet.push('…');
    }
    if snippet.is_empty() {
        snippet = "(empty body)".into();
    }
    ToolOutcome { text: format!("HTTP {}: {snippet}", status.as_u16()), is_error: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_outcomes() {
        let ok = outcome(StatusCode::OK, b"{\"a\":1}");
        assert_eq!((ok.text.as_str(), ok.is_error), ("{\"a\":1}", false));
        assert_eq!(outcome(StatusCode::NO_CONTENT, b"").text, "HTTP 204 (no content)");
        let missing = outcome(StatusCode::NOT_FOUND, b"no such pet\n");
        assert_eq!((missing.text.as_str(), missing.is_error), ("HTTP 404: no such pet", true));
        assert_eq!(outcome(StatusCode::BAD_GATEWAY, b"").text, "HTTP 502: (empty body)");
        let long = outcome(StatusCode::INTERNAL_SERVER_ERROR, "é".repeat(2_000).as_bytes());
        assert_eq!(long.text.chars().count(), "HTTP 500: ".len() + ERROR_SNIPPET_CHARS + 1);
    }

    #[test]
    fn auth_headers_never_print_their_values() {
        let auth = AuthHeaders::new()
            .with("Authorization", SecretString::from("Bearer sk-very-secret"))
            .expect("valid header");
        assert_eq!(format!("{auth:?}"), r#"{"authorization": "[REDACTED]"}"#);
        assert!(AuthHeaders::new().with("X-Key", SecretString::from("a\nb")).is_err());
        assert!(AuthHeaders::new().with("bad name", SecretString::from("v")).is_err());
    }
}
