//! The process's model providers, chosen per call: the agent's own `provider:` block
//! ([`Endpoint`]: OpenAI, Azure OpenAI, any OpenAI-compatible server, Bedrock, each with its own
//! key source), else by its `model`: `bedrock:<model-id>` goes to Amazon Bedrock, any other
//! name to the deployment's OpenAI-compatible endpoint (`TA_BASE_URL`/`TA_API_KEY`, or the
//! offline model locally).
//!
//! Owns the dispatch and the clients' life: one client per distinct endpoint, built once per
//! container on the first call that needs it (a container whose agents never use Bedrock never
//! loads its SDK config) and kept. It must not translate requests (the adapters do).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use url::Url;

#[cfg(feature = "bedrock")]
use super::bedrock::BedrockClient;
use super::retry::RetryPolicy;
use super::{
    ChatRequest, ChatResponse, LlmClient, LlmError, OpenAiClient, OpenAiSettings, RotatingKeyLlm, TextSink,
};
use crate::secrets::SecretStore;

/// Where one agent's model is served (`spec.agent.provider`, our extension of Teal's YAML).
/// Keys are never in the YAML: `api_key_secret` names a secret (an environment variable with
/// the env backend, a Secrets Manager id in AWS), read when the client is built and again once
/// on a 401.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `type: openai` (base URL default `https://api.openai.com/v1`) or `openai-compatible`.
    OpenAi { base_url: Url, api_key_secret: Option<String> },
    /// `type: azure-openai`: the resource endpoint, `api_version`; the model is the deployment.
    AzureOpenAi { base_url: Url, api_version: String, api_key_secret: Option<String> },
    /// `type: bedrock`: the function's IAM role; `region` else the environment's.
    Bedrock { region: Option<String> },
}

/// Why an agent's provider could not be reached before any call was made.
fn key_unreadable(secret: &str) -> LlmError {
    LlmError::KeyUnavailable { secret: secret.to_owned() }
}

/// How the Bedrock client connects: an endpoint override (tests, VPC endpoints), the region
/// (else the environment's), and the retry rules the OpenAI-compatible adapter uses too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockSettings {
    /// `TA_BEDROCK_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// `TA_BEDROCK_REGION`; unset: `AWS_REGION` through the SDK's chain.
    pub region: Option<String>,
    /// `TA_LLM_TIMEOUT`, `TA_LLM_MAX_RETRIES`, as for the OpenAI-compatible endpoint.
    pub retry: RetryPolicy,
}

/// One endpoint's client, built once.
type ClientCell = tokio::sync::OnceCell<Arc<dyn LlmClient>>;

/// The deployment's default client, Bedrock, and the clients of agents' own endpoints.
pub struct Providers {
    /// `None`: no OpenAI-compatible endpoint is configured (a Bedrock-only deployment).
    default: Option<Arc<dyn LlmClient>>,
    bedrock: Bedrock,
    /// Agents' own endpoints, one client each, built on first use.
    endpoints: Mutex<HashMap<Endpoint, Arc<ClientCell>>>,
    secrets: Option<Arc<dyn SecretStore>>,
}

struct Bedrock {
    settings: BedrockSettings,
    /// `TA_AWS_ENDPOINT_URL`, for the SDK config every AWS client shares.
    #[cfg_attr(not(feature = "bedrock"), allow(dead_code))]
    aws_endpoint_url: Option<String>,
    #[cfg(feature = "bedrock")]
    client: tokio::sync::OnceCell<Arc<BedrockClient>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("default", &self.default.as_ref().map(|d| d.describe()))
            .finish_non_exhaustive()
    }
}

/// Which provider a model name selects, and the name that provider knows it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider<'a> {
    Default(&'a str),
    Bedrock(&'a str),
}

impl<'a> Provider<'a> {
    pub fn of(model: &'a str) -> Self {
        match model.strip_prefix("bedrock:") {
            Some(id) => Provider::Bedrock(id),
            None => Provider::Default(model),
        }
    }
}

impl Providers {
    /// `default` serves every model without a provider prefix.
    pub fn new(
        default: Option<Arc<dyn LlmClient>>,
        bedrock: BedrockSettings,
        aws_endpoint_url: Option<String>,
    ) -> Self {
        let bedrock = Bedrock {
            settings: bedrock,
            aws_endpoint_url,
            #[cfg(feature = "bedrock")]
            client: tokio::sync::OnceCell::new(),
        };
        Self { default, bedrock, endpoints: Mutex::default(), secrets: None }
    }

    /// Where agents' `api_key_secret`s are read.
    pub fn with_secrets(mut self, secrets: Arc<dyn SecretStore>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// With a Bedrock client built already (tests, or a caller with its own SDK config).
    #[cfg(feature = "bedrock")]
    pub fn with_bedrock(
        default: Option<Arc<dyn LlmClient>>,
        client: BedrockClient,
        settings: BedrockSettings,
    ) -> Self {
        let bedrock = Bedrock {
            settings,
            aws_endpoint_url: None,
            client: tokio::sync::OnceCell::new_with(Some(Arc::new(client))),
        };
        Self { default, bedrock, endpoints: Mutex::default(), secrets: None }
    }

    /// The client for a request: its agent's endpoint, else by its model; and the model name to
    /// send (without a `bedrock:` prefix).
    async fn route<'m>(
        &self,
        model: &'m str,
        endpoint: Option<&Endpoint>,
    ) -> Result<(Arc<dyn LlmClient>, &'m str), LlmError> {
        let name = match Provider::of(model) {
            Provider::Bedrock(id) => id,
            Provider::Default(name) => name,
        };
        match (endpoint, Provider::of(model)) {
            (Some(endpoint), _) => Ok((self.endpoint(endpoint).await?, name)),
            (None, Provider::Bedrock(_)) => Ok((self.bedrock(None).await?, name)),
            (None, Provider::Default(_)) => match &self.default {
                Some(client) => Ok((client.clone(), name)),
                None => Err(LlmError::Unsupported {
                    what: "models without the bedrock: prefix (set TA_API_KEY or TA_BASE_URL for them)",
                }),
            },
        }
    }

    /// The deployment's Bedrock client (`region: None`), or one for another region.
    #[cfg(feature = "bedrock")]
    async fn bedrock(&self, region: Option<&str>) -> Result<Arc<dyn LlmClient>, LlmError> {
        let b = &self.bedrock;
        let build = |region: Option<String>| async move {
            let sdk = crate::secrets::aws_sdk_config(b.aws_endpoint_url.as_deref()).await;
            let mut settings = b.settings.clone();
            if region.is_some() {
                settings.region = region;
            }
            Arc::new(BedrockClient::new(&sdk, &settings))
        };
        match region {
            None => Ok(b.client.get_or_init(|| build(None)).await.clone()),
            Some(r) => Ok(build(Some(r.to_owned())).await),
        }
    }

    #[cfg(not(feature = "bedrock"))]
    async fn bedrock(&self, _region: Option<&str>) -> Result<Arc<dyn LlmClient>, LlmError> {
        Err(LlmError::Unsupported { what: "bedrock models in this build (the bedrock feature is off)" })
    }

    /// The client of an agent's own endpoint, built on first use and kept.
    async fn endpoint(&self, endpoint: &Endpoint) -> Result<Arc<dyn LlmClient>, LlmError> {
        let cell = self
            .endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.build(endpoint)).await.cloned()
    }

    async fn build(&self, endpoint: &Endpoint) -> Result<Arc<dyn LlmClient>, LlmError> {
        let (base_url, api_version, secret) = match endpoint {
            Endpoint::Bedrock { region } => return self.bedrock(region.as_deref()).await,
            Endpoint::OpenAi { base_url, api_key_secret } => (base_url, None, api_key_secret),
            Endpoint::AzureOpenAi { base_url, api_version, api_key_secret } => {
                (base_url, Some(api_version.clone()), api_key_secret)
            }
        };
        let retry = self.bedrock.settings.retry;
        let mut settings = OpenAiSettings::new(base_url.clone());
        settings.azure_api_version = api_version;
        settings.timeout = retry.timeout;
        settings.max_retries = retry.max_retries;
        match (secret, &self.secrets) {
            (Some(secret), Some(secrets)) => RotatingKeyLlm::new(settings, secret.clone(), secrets.clone())
                .await
                .map(|c| Arc::new(c) as Arc<dyn LlmClient>)
                .map_err(|e| {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "an agent's LLM key could not be read");
                    key_unreadable(secret)
                }),
            (Some(secret), None) => Err(key_unreadable(secret)),
            (None, _) => OpenAiClient::new(settings)
                .map(|c| Arc::new(c) as Arc<dyn LlmClient>)
                .map_err(|_| LlmError::Unsupported { what: "this endpoint (its HTTP client could not be built)" }),
        }
    }
}

#[async_trait::async_trait]
impl LlmClient for Providers {
    async fn complete(&self, request: ChatRequest<'_>, deadline: Instant) -> Result<ChatResponse, LlmError> {
        let (client, model) = self.route(request.model, request.endpoint).await?;
        client.complete(ChatRequest { model, endpoint: None, ..request }, deadline).await
    }

    async fn stream(
        &self,
        request: ChatRequest<'_>,
        deadline: Instant,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let (client, model) = self.route(request.model, request.endpoint).await?;
        client.stream(ChatRequest { model, endpoint: None, ..request }, deadline, on_text).await
    }

    fn describe(&self) -> String {
        self.default.as_ref().map_or_else(|| "bedrock: models only".to_owned(), |d| d.describe())
    }
}
