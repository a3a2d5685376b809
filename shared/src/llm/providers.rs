//! The process's model providers, chosen per call by the agent's `model`: `bedrock:<model-id>`
//! goes to Amazon Bedrock, any other name to the deployment's OpenAI-compatible endpoint
//! (`TA_BASE_URL`/`TA_API_KEY`, or the offline model locally).
//!
//! Owns the dispatch and the Bedrock client's life: built once per container, on the first call
//! that needs it (a container whose agents never use Bedrock never loads its SDK config). It
//! must not translate requests (the adapters do).

use std::sync::Arc;
use std::time::Instant;

#[cfg(feature = "bedrock")]
use super::bedrock::BedrockClient;
use super::retry::RetryPolicy;
use super::{ChatRequest, ChatResponse, LlmClient, LlmError, TextSink};

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

/// The deployment's default client and, with the `bedrock` feature, Bedrock.
pub struct Providers {
    /// `None`: no OpenAI-compatible endpoint is configured (a Bedrock-only deployment).
    default: Option<Arc<dyn LlmClient>>,
    bedrock: Bedrock,
}

struct Bedrock {
    settings: BedrockSettings,
    /// `TA_AWS_ENDPOINT_URL`, for the SDK config every AWS client shares.
    aws_endpoint_url: Option<String>,
    #[cfg(feature = "bedrock")]
    client: tokio::sync::OnceCell<BedrockClient>,
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
        Self { default, bedrock }
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
            client: tokio::sync::OnceCell::new_with(Some(client)),
        };
        Self { default, bedrock }
    }

    /// The client for `model`, and the model name to send it.
    async fn route<'m>(&self, model: &'m str) -> Result<(&dyn LlmClient, &'m str), LlmError> {
        match Provider::of(model) {
            Provider::Default(name) => match &self.default {
                Some(client) => Ok((client.as_ref(), name)),
                None => Err(LlmError::Unsupported {
                    what: "models without the bedrock: prefix (set TA_API_KEY or TA_BASE_URL for them)",
                }),
            },
            #[cfg(feature = "bedrock")]
            Provider::Bedrock(id) => {
                let b = &self.bedrock;
                let client = b
                    .client
                    .get_or_init(|| async {
                        let sdk = crate::secrets::aws_sdk_config(b.aws_endpoint_url.as_deref()).await;
                        BedrockClient::new(&sdk, &b.settings)
                    })
                    .await;
                Ok((client, id))
            }
            #[cfg(not(feature = "bedrock"))]
            Provider::Bedrock(_) => Err(LlmError::Unsupported {
                what: "bedrock: models in this build (the bedrock feature is off)",
            }),
        }
    }
}

#[async_trait::async_trait]
impl LlmClient for Providers {
    async fn complete(&self, request: ChatRequest<'_>, deadline: Instant) -> Result<ChatResponse, LlmError> {
        let (client, model) = self.route(request.model).await?;
        client.complete(ChatRequest { model, ..request }, deadline).await
    }

    async fn stream(
        &self,
        request: ChatRequest<'_>,
        deadline: Instant,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let (client, model) = self.route(request.model).await?;
        client.stream(ChatRequest { model, ..request }, deadline, on_text).await
    }

    fn describe(&self) -> String {
        self.default.as_ref().map_or_else(|| "bedrock: models only".to_owned(), |d| d.describe())
    }
}
