//! Connection settings of the OpenAI-compatible adapter, and why a client could not be built.
//!
//! Owns the [`OpenAiSettings`] struct with its defaults and [`ClientError`]. It must not read
//! the environment (that is [`crate::settings`], the one reader of every `TA_*` variable) and
//! must not do I/O: these are plain values handed to [`super::OpenAiClient::new`].

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// The base URL used when `TA_BASE_URL` is unset but `TA_API_KEY` is set.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

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
    /// The retry rules these settings give.
    pub fn retry_policy(&self) -> crate::llm::retry::RetryPolicy {
        crate::llm::retry::RetryPolicy {
            timeout: self.timeout,
            max_retries: self.max_retries,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
        }
    }

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
