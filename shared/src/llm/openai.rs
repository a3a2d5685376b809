//! The OpenAI-compatible chat-completions adapter: OpenAI, Azure OpenAI, Ollama, vLLM.
//!
//! Owns three things and keeps them apart: the settings read once from the environment
//! ([`OpenAiSettings`], read by [`crate::settings`]), the pure wire translation ([`request_body`] and
//! [`parse_response`], golden-tested with insta), and the HTTP call with its retry policy
//! ([`OpenAiClient`], one pooled `reqwest::Client` for the life of the process).
//!
//! Retries cover HTTP 429/500/502/503/504, connection errors and per-attempt timeouts, with
//! full-jitter exponential backoff that honours `Retry-After`. It must never sleep past the
//! caller's deadline, never retry a 401/403 or another 4xx, and never print the API key: the key
//! lives in a [`SecretString`] and in a header value marked sensitive, and is not logged.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;

use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, Message, Role, ToolCall, Usage};

/// The base URL used when `TA_BASE_URL` is unset but `TA_API_KEY` is set.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// How much of an error body is kept in [`LlmError::Status`].
const MAX_ERROR_BODY_CHARS: usize = 500;

/// How long an idle pooled connection is kept (Lambda environments are frozen between calls;
/// a connection older than this is likely closed by the other side anyway).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Connection settings of the OpenAI-compatible adapter.
///
/// `Debug` never shows the key: [`SecretString`] prints `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// e.g. `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama), or the Azure
    /// resource endpoint `https://NAME.openai.azure.com` in Azure mode.
    pub base_url: Url,
    /// Sent as `Authorization: Bearer …`, or as `api-key: …` in Azure mode. `None` for local
    /// servers that need no key.
    pub api_key: Option<SecretString>,
    /// Azure mode when set: the `api-version` query parameter, and the model name is the
    /// deployment name in the path.
    pub azure_api_version: Option<String>,
    /// Timeout of one attempt (connect, send, and read the whole answer). Default 60 s.
    pub timeout: Duration,
    /// Retries after the first attempt. Default 4.
    pub max_retries: u32,
    /// First backoff cap; doubles with each retry. Default 250 ms.
    pub initial_backoff: Duration,
    /// Upper bound of the backoff cap. Default 10 s.
    pub max_backoff: Duration,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The key cannot be sent in an HTTP header (control characters, newline…). The key itself
    /// is not part of the message.
    #[error("the LLM API key contains characters not allowed in an HTTP header")]
    InvalidApiKey,
    /// The HTTP client could not be built (TLS initialisation).
    #[error("cannot build the LLM HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

impl OpenAiSettings {
    /// Settings with the defaults: no key, not Azure, 60 s per attempt, 4 retries, backoff from
    /// 250 ms up to 10 s.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            api_key: None,
            azure_api_version: None,
            timeout: Duration::from_secs(60),
            max_retries: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pure translation
// ---------------------------------------------------------------------------------------------

/// The chat-completions request body for `req`, in the OpenAI wire shape.
///
/// Assistant tool calls become `{id, type: "function", function: {name, arguments}}`; tool
/// results carry `tool_call_id`; `tools` is present only when non-empty; `temperature` and
/// `max_tokens` only when set. An assistant turn with tool calls and no text sends
/// `content: null`; any other missing content is sent as `""`.
pub fn request_body(req: &ChatRequest<'_>) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(req.messages.iter().map(wire_message).collect()));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = req.temperature.and_then(f32_to_json) {
        body.insert("temperature".into(), t);
    }
    if let Some(m) = req.max_tokens {
        body.insert("max_tokens".into(), json!(m));
    }
    Value::Object(body)
}

fn wire_message(m: &Message) -> Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    let content = match (&m.content, m.tool_calls.is_empty()) {
        (Some(text), _) => json!(text),
        (None, false) => Value::Null,
        (None, true) => json!(""),
    };
    out.insert("content".into(), content);
    if !m.tool_calls.is_empty() {
        let calls = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments },
                })
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &m.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
    }
    Value::Object(out)
}

/// `0.2f32` as the JSON number `0.2`, not `0.20000000298023224`. `None` when not finite.
fn f32_to_json(x: f32) -> Option<Value> {
    let widened = x.to_string().parse::<f64>().unwrap_or(f64::from(x));
    serde_json::Number::from_f64(widened).map(Value::Number)
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    /// A JSON text per the spec; some servers send an object instead.
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// Parses a chat-completions answer: the first choice's message (content may be null; a
/// refusal stands in for missing content), its tool calls, the usage (zero when absent) and
/// the finish reason.
///
/// Tolerates what compatible servers do differently: arguments sent as a JSON object are
/// re-serialised to text, missing arguments become `{}`, a missing call id becomes `call_{i}`.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, LlmError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| LlmError::InvalidResponse(format!("{e}; body starts with: {}", snippet(body, 200))))?;
    let Some(choice) = wire.choices.into_iter().next() else {
        return Err(LlmError::InvalidResponse(format!(
            "no choices; body starts with: {}",
            snippet(body, 200)
        )));
    };
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: c.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{i}")),
            name: c.function.name,
            arguments: match c.function.arguments {
                Value::String(s) => s,
                Value::Null => "{}".to_owned(),
                other => other.to_string(),
            },
        })
        .collect();
    let usage = wire
        .usage
        .map(|u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens.unwrap_or(u.prompt_tokens + u.completion_tokens),
        })
        .unwrap_or_default();
    Ok(ChatResponse {
        message: Message {
            role: Role::Assistant,
            content: choice.message.content.or(choice.message.refusal),
            tool_calls,
            tool_call_id: None,
        },
        usage,
        finish_reason: choice.finish_reason,
    })
}

/// The first `max_chars` characters of a (possibly non-UTF-8) body, marked when cut.
fn snippet(body: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

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

/// What one attempt came to.
enum Attempt {
    Done(Result<ChatResponse, LlmError>),
    Retry { error: LlmError, retry_after: Option<Duration>, status: Option<u16> },
}

impl OpenAiClient {
    /// Builds the pooled HTTP client (TCP nodelay, idle connections kept
    /// [`POOL_IDLE_TIMEOUT`]) and the authentication header.
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
        let http = reqwest::Client::builder()
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

    async fn attempt(&self, url: &Url, payload: &[u8], attempts: u32) -> Attempt {
        let mut request =
            self.inner.http.post(url.clone()).header(CONTENT_TYPE, "application/json").body(payload.to_vec());
        if let Some((name, value)) = &self.inner.auth {
            request = request.header(*name, value.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return retry_on_transport(&e, attempts),
        };
        let status = response.status();
        let retry_after =
            response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        if status.is_success() {
            return match response.bytes().await {
                Ok(body) => Attempt::Done(parse_response(&body)),
                Err(e) => retry_on_transport(&e, attempts),
            };
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Attempt::Done(Err(LlmError::Unauthorized { status: status.as_u16() }));
        }
        let body = match response.bytes().await {
            Ok(b) => snippet(&b, MAX_ERROR_BODY_CHARS),
            Err(_) => String::new(),
        };
        let code = status.as_u16();
        match code {
            429 => {
                Attempt::Retry { error: LlmError::RateLimited { attempts }, retry_after, status: Some(code) }
            }
            500 | 502 | 503 | 504 => Attempt::Retry {
                error: LlmError::Status { status: code, body, attempts },
                retry_after,
                status: Some(code),
            },
            _ => Attempt::Done(Err(LlmError::Status { status: code, body, attempts })),
        }
    }

    /// Full-jitter backoff before retry number `retry` (0-based): uniform in
    /// `[0, min(max_backoff, initial_backoff * 2^retry)]`.
    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        let s = &self.inner.settings;
        let cap = s.initial_backoff.checked_mul(factor).unwrap_or(s.max_backoff).min(s.max_backoff);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=cap_ms))
    }
}

fn retry_on_transport(e: &reqwest::Error, attempts: u32) -> Attempt {
    let error = if e.is_timeout() {
        LlmError::Timeout { attempts }
    } else {
        LlmError::Connect { detail: crate::telemetry::error_chain(e), attempts }
    };
    Attempt::Retry { error, retry_after: None, status: None }
}

/// `Retry-After` as delta-seconds, or as an HTTP date (IMF-fixdate) from now.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (the only format senders must
/// use per RFC 9110).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let (_weekday, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m == month)?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    let days = days_from_civil(year, u32::try_from(month).ok()? + 1, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[async_trait::async_trait]
impl LlmClient for OpenAiClient {
    async fn complete(&self, request: ChatRequest<'_>, deadline: Instant) -> Result<ChatResponse, LlmError> {
        let url = self.endpoint(request.model);
        let payload = serde_json::to_vec(&request_body(&request))
            .map_err(|e| LlmError::InvalidResponse(format!("cannot serialise the request: {e}")))?;
        let mut attempts: u32 = 0;
        loop {
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() {
                return Err(LlmError::Deadline);
            }
            let per_attempt = self.inner.settings.timeout.min(remaining);
            let cut_by_deadline = per_attempt < self.inner.settings.timeout;
            attempts += 1;
            let outcome = match tokio::time::timeout(per_attempt, self.attempt(&url, &payload, attempts))
                .await
            {
                Ok(outcome) => outcome,
                Err(_elapsed) if cut_by_deadline => return Err(LlmError::Deadline),
                Err(_elapsed) => {
                    Attempt::Retry { error: LlmError::Timeout { attempts }, retry_after: None, status: None }
                }
            };
            let (error, retry_after, status) = match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retry { error, retry_after, status } => (error, retry_after, status),
            };
            if attempts > self.inner.settings.max_retries {
                return Err(error);
            }
            let wait = retry_after.unwrap_or_else(|| self.backoff(attempts - 1));
            // `checked_add`: a huge `Retry-After` must not overflow the clock.
            if Instant::now().checked_add(wait).is_none_or(|resume| resume >= deadline) {
                tracing::warn!(
                    ?status,
                    attempt = attempts,
                    wait_ms = wait.as_millis(),
                    "LLM call failed; the next retry would pass the deadline"
                );
                return Err(error);
            }
            tracing::warn!(?status, attempt = attempts, wait_ms = wait.as_millis(), error = %error, "LLM call failed; retrying");
            tokio::time::sleep(wait).await;
        }
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
mod tests {
    use super::*;
    use crate::llm::{Llm, ToolSpec};
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const KEY: &str = "sk-test-very-secret-key-1234";

    fn snapshot_settings() -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        // Same snapshot file names whichever crate compiles this module.
        s.set_prepend_module_to_snapshot(false);
        // Same key order whether or not some crate turns on serde_json's `preserve_order`.
        s.set_sort_maps(true);
        s
    }

    fn settings(base: &str) -> OpenAiSettings {
        let mut s = OpenAiSettings::new(Url::parse(base).expect("test URL"));
        s.api_key = Some(SecretString::from(KEY));
        s.initial_backoff = Duration::from_millis(1);
        s.max_backoff = Duration::from_millis(5);
        s.max_retries = 2;
        s
    }

    fn client(base: &str) -> OpenAiClient {
        OpenAiClient::new(settings(base)).expect("client")
    }

    fn in_secs(s: u64) -> Instant {
        Instant::now() + Duration::from_secs(s)
    }

    fn read_file_tool() -> ToolSpec {
        ToolSpec {
            name: "fs_read_file".into(),
            description: "Read a UTF-8 file under the sandbox root".into(),
            parameters: json!({
                "type": "object",
                "properties": {"path": {"type": "string", "description": "Relative path"}},
                "required": ["path"],
            }),
        }
    }

    fn tool_conversation() -> Vec<Message> {
        vec![
            Message::system("You are a helpful agent."),
            Message::user("What is in hello.txt?"),
            Message {
                role: Role::Assistant,
                content: None,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "fs_read_file".into(),
                    arguments: r#"{"path":"hello.txt"}"#.into(),
                }],
                tool_call_id: None,
            },
            Message::tool_result("call_1", "Hello, world!"),
        ]
    }

    fn request<'a>(messages: &'a [Message], tools: &'a [ToolSpec]) -> ChatRequest<'a> {
        ChatRequest { model: "gpt-4o-mini", messages, tools, temperature: None, max_tokens: None }
    }

    fn completion(content: Value, tool_calls: Option<Value>, finish: &str) -> Value {
        let mut message = json!({"role": "assistant", "content": content});
        if let Some(calls) = tool_calls {
            message["tool_calls"] = calls;
        }
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        })
    }

    fn hello() -> Value {
        completion(json!("Hello!"), None, "stop")
    }

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

    // ---- pure translation ----

    #[test]
    fn request_body_with_tools_and_a_tool_result() {
        let messages = tool_conversation();
        let tools = [read_file_tool()];
        let mut req = request(&messages, &tools);
        req.temperature = Some(0.2);
        req.max_tokens = Some(512);
        snapshot_settings()
            .bind(|| insta::assert_json_snapshot!("openai_request_body_with_tools", request_body(&req)));
    }

    #[test]
    fn request_body_without_tools_or_options() {
        let messages = [Message::user("Hello")];
        let body = request_body(&request(&messages, &[]));
        snapshot_settings().bind(|| insta::assert_json_snapshot!("openai_request_body_minimal", body));
    }

    #[test]
    fn parse_a_tool_call_answer() {
        let body = completion(
            Value::Null,
            Some(json!([{
                "id": "call_abc",
                "type": "function",
                "function": {"name": "fs_read_file", "arguments": "{\"path\":\"hello.txt\"}"},
            }])),
            "tool_calls",
        );
        let r = parse_response(body.to_string().as_bytes()).expect("valid");
        assert_eq!(r.message.role, Role::Assistant);
        assert_eq!(r.message.content, None);
        assert_eq!(
            r.message.tool_calls,
            vec![ToolCall {
                id: "call_abc".into(),
                name: "fs_read_file".into(),
                arguments: r#"{"path":"hello.txt"}"#.into()
            }]
        );
        assert_eq!(r.usage, Usage { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 });
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn parse_without_usage_gives_zero_usage() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]});
        let r = parse_response(body.to_string().as_bytes()).expect("valid");
        assert_eq!(r.message, Message::assistant("hi"));
        assert_eq!(r.usage, Usage::default());
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn parse_tolerates_object_arguments_and_missing_ids() {
        let body = json!({"choices": [{"message": {"content": "", "tool_calls": [
            {"function": {"name": "a", "arguments": {"x": 1}}},
            {"id": "", "function": {"name": "b"}},
        ]}}]});
        let r = parse_response(body.to_string().as_bytes()).expect("valid");
        assert_eq!(
            r.message.tool_calls,
            vec![
                ToolCall { id: "call_0".into(), name: "a".into(), arguments: r#"{"x":1}"#.into() },
                ToolCall { id: "call_1".into(), name: "b".into(), arguments: "{}".into() },
            ]
        );
        assert_eq!(r.finish_reason, None);
    }

    #[test]
    fn parse_rejects_invalid_json_and_answers_without_choices() {
        assert!(matches!(parse_response(b"<html>oops</html>"), Err(LlmError::InvalidResponse(_))));
        assert!(matches!(parse_response(br#"{"choices": []}"#), Err(LlmError::InvalidResponse(_))));
        assert!(matches!(
            parse_response(br#"{"error": {"message": "x"}}"#),
            Err(LlmError::InvalidResponse(_))
        ));
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            UNIX_EPOCH.checked_add(Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            UNIX_EPOCH.checked_add(Duration::from_secs(1_709_164_800))
        );
        assert_eq!(parse_retry_after("18446744073709551615"), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST"), None);
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let mut s = settings("http://localhost/v1");
        s.initial_backoff = Duration::from_millis(100);
        s.max_backoff = Duration::from_millis(300);
        let c = OpenAiClient::new(s).expect("client");
        for _ in 0..50 {
            assert!(c.backoff(0) <= Duration::from_millis(100));
            assert!(c.backoff(1) <= Duration::from_millis(200));
            assert!(c.backoff(5) <= Duration::from_millis(300));
            assert!(c.backoff(200) <= Duration::from_millis(300));
        }
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
        let sent: Value = serde_json::from_slice(&received[0].body).expect("json body");
        assert_eq!(sent, request_body(&request(&messages, &tools)));
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
        let messages = [Message::user("hi")];
        let r = OpenAiClient::new(s)
            .expect("client")
            .complete(request(&messages, &[]), in_secs(10))
            .await
            .expect("ok");
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
        let messages = [Message::user("hi")];
        OpenAiClient::new(s)
            .expect("client")
            .complete(request(&messages, &[]), in_secs(10))
            .await
            .expect("ok");
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
        let messages = [Message::user("hi")];
        let r = client(&server.uri()).complete(request(&messages, &[]), in_secs(10)).await.expect("ok");
        assert_eq!(r.message.content.as_deref(), Some("Hello!"));
        assert_eq!(server.received_requests().await.expect("recording").len(), 2);
    }

    #[tokio::test]
    async fn persistent_429s_end_as_rate_limited() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(429)).expect(3).mount(&server).await;
        let messages = [Message::user("hi")];
        let err =
            client(&server.uri()).complete(request(&messages, &[]), in_secs(10)).await.expect_err("fails");
        assert!(matches!(err, LlmError::RateLimited { attempts: 3 }), "{err:?}");
    }

    #[tokio::test]
    async fn server_errors_are_retried_max_retries_times_then_reported() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
            .expect(3)
            .mount(&server)
            .await;
        let messages = [Message::user("hi")];
        let err =
            client(&server.uri()).complete(request(&messages, &[]), in_secs(10)).await.expect_err("fails");
        match err {
            LlmError::Status { status, body, attempts } => {
                assert_eq!((status, body.as_str(), attempts), (500, "upstream exploded", 3));
            }
            other => panic!("expected Status, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unauthorized_is_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(401)).expect(1).mount(&server).await;
        let messages = [Message::user("hi")];
        let err =
            client(&server.uri()).complete(request(&messages, &[]), in_secs(10)).await.expect_err("fails");
        assert!(matches!(err, LlmError::Unauthorized { status: 401 }), "{err:?}");
        assert_eq!(server.received_requests().await.expect("recording").len(), 1);
    }

    #[tokio::test]
    async fn other_client_errors_are_not_retried_and_keep_a_truncated_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_string("e".repeat(2000)))
            .expect(1)
            .mount(&server)
            .await;
        let messages = [Message::user("hi")];
        let err =
            client(&server.uri()).complete(request(&messages, &[]), in_secs(10)).await.expect_err("fails");
        match err {
            LlmError::Status { status: 400, body, attempts: 1 } => {
                assert_eq!(body.chars().count(), MAX_ERROR_BODY_CHARS + 1)
            }
            other => panic!("expected Status 400, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_invalid_answer_is_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
            .expect(1)
            .mount(&server)
            .await;
        let messages = [Message::user("hi")];
        let err =
            client(&server.uri()).complete(request(&messages, &[]), in_secs(10)).await.expect_err("fails");
        assert!(matches!(err, LlmError::InvalidResponse(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_slow_server_is_cut_off_at_the_deadline() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(hello()).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        let messages = [Message::user("hi")];
        let started = Instant::now();
        let err = client(&server.uri())
            .complete(request(&messages, &[]), started + Duration::from_millis(300))
            .await
            .expect_err("fails");
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
        let messages = [Message::user("hi")];
        let started = Instant::now();
        let err = OpenAiClient::new(s)
            .expect("client")
            .complete(request(&messages, &[]), in_secs(10))
            .await
            .expect_err("fails");
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
        assert!(matches!(err, LlmError::Timeout { attempts: 2 }), "{err:?}");
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_deadline_returns_the_last_error_at_once() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(503).insert_header("retry-after", "30").set_body_string("busy"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let messages = [Message::user("hi")];
        let started = Instant::now();
        let err =
            client(&server.uri()).complete(request(&messages, &[]), in_secs(5)).await.expect_err("fails");
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
        assert!(matches!(err, LlmError::Status { status: 503, attempts: 1, .. }), "{err:?}");
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

    #[tokio::test]
    async fn retries_are_logged_without_the_key() {
        let logs = CaptureLogs::default();
        let _guard = tracing::subscriber::set_default(logs.clone());
        // With a single registered dispatcher, tracing computes a call site's interest from the
        // default of whichever thread hits it first: a parallel test could cache "never" for our
        // warn! call sites. A second live dispatcher makes it ask every registered dispatcher.
        let _second = tracing::Dispatch::new(CaptureLogs::default());
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
        let messages = [Message::user("hi")];
        let c = client(&server.uri());
        c.complete(request(&messages, &[]), in_secs(10)).await.expect("ok");
        let text = logs.text();
        assert!(text.contains("retrying") && text.contains("attempt=1"), "{text}");
        assert!(!text.contains(KEY), "{text}");
    }

    #[tokio::test]
    async fn an_unreachable_server_ends_as_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let messages = [Message::user("hi")];
        let err = client(&format!("http://{addr}/v1"))
            .complete(request(&messages, &[]), in_secs(10))
            .await
            .expect_err("fails");
        assert!(matches!(err, LlmError::Connect { attempts: 3, .. }), "{err:?}");
        assert!(!err.to_string().contains(KEY));
    }
}
