//! Amazon Bedrock behind the [`LlmClient`] port: Converse for the buffered call, ConverseStream
//! for the streamed one, through `aws-sdk-bedrockruntime` with the function's IAM role (the
//! default credential chain; no key to store) and the region from the environment.
//!
//! Owns the SDK client (built once per container), the classification of the SDK's failures
//! into [`LlmError`] (throttling and 5xx retried under the shared [`crate::llm::retry`] rules;
//! the SDK's own retries are off so there is one policy and one deadline), and the streamed
//! attempt. The translation to and from Converse's shapes is [`convert`]'s. It must not read
//! the environment ([`crate::settings`] does) and never logs request or answer text.

mod convert;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamOutput as StreamStart;

use crate::llm::BedrockSettings;
use crate::llm::retry::{Attempt, RetryPolicy, with_retries};
use crate::llm::{BoxError, ChatRequest, ChatResponse, LlmClient, LlmError, TextSink};
use convert::{ConverseInput, StreamAssembler};

/// The Bedrock adapter: one SDK client for the life of the container.
#[derive(Debug, Clone)]
pub struct BedrockClient {
    sdk: aws_sdk_bedrockruntime::Client,
    retry: RetryPolicy,
    region: String,
}

impl BedrockClient {
    /// A client on `sdk` (credentials and region from the default chain), with the SDK's
    /// retries off (ours apply) and only a connect timeout of its own (the per-attempt timeout
    /// and the deadline are ours).
    pub fn new(sdk: &SdkConfig, settings: &BedrockSettings) -> Self {
        let mut config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(2)).build());
        if let Some(url) = &settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        if let Some(region) = &settings.region {
            config = config.region(aws_config::Region::new(region.clone()));
        }
        let config = config.build();
        let region = config.region().map(ToString::to_string).unwrap_or_else(|| "no region".to_owned());
        Self { sdk: aws_sdk_bedrockruntime::Client::from_conf(config), retry: settings.retry, region }
    }

    async fn converse(&self, model: &str, input: &ConverseInput, attempts: u32) -> Attempt {
        let sent = self
            .sdk
            .converse()
            .model_id(model)
            .set_system(Some(input.system.clone()))
            .set_messages(Some(input.messages.clone()))
            .set_tool_config(input.tools.clone())
            .set_inference_config(input.inference.clone())
            .send()
            .await;
        match sent {
            Ok(out) => Attempt::Done(convert::response(out.output(), out.stop_reason(), out.usage())),
            Err(e) => classify(e, attempts),
        }
    }

    async fn converse_stream(
        &self,
        model: &str,
        input: &ConverseInput,
        attempts: u32,
        on_text: TextSink<'_>,
        started: &AtomicBool,
    ) -> Attempt {
        let sent = self
            .sdk
            .converse_stream()
            .model_id(model)
            .set_system(Some(input.system.clone()))
            .set_messages(Some(input.messages.clone()))
            .set_tool_config(input.tools.clone())
            .set_inference_config(input.inference.clone())
            .send()
            .await;
        let StreamStart { mut stream, .. } = match sent {
            Ok(out) => out,
            Err(e) => return classify(e, attempts),
        };
        let mut answer = StreamAssembler::default();
        loop {
            match stream.recv().await {
                Ok(Some(event)) => match answer.push(event) {
                    Ok(Some(text)) => {
                        started.store(true, Ordering::Release);
                        on_text(&text);
                    }
                    Ok(None) => {}
                    Err(e) => return Attempt::Done(Err(e)),
                },
                Ok(None) => break,
                Err(e) if started.load(Ordering::Acquire) => {
                    return Attempt::Done(Err(LlmError::StreamCutMidAnswer { source: Some(Box::new(e)) }));
                }
                // Before any text: throttling is a 429 like any other, the rest a broken stream.
                Err(e)
                    if e.code() == Some("ThrottlingException") || e.code() == Some("throttlingException") =>
                {
                    return Attempt::Retry { error: LlmError::RateLimited { attempts }, retry_after: None };
                }
                Err(e) => {
                    let error = LlmError::StreamCut { attempts, source: Some(Box::new(e)) };
                    return Attempt::Retry { error, retry_after: None };
                }
            }
        }
        if !answer.is_complete() {
            let source = None;
            return if started.load(Ordering::Acquire) {
                Attempt::Done(Err(LlmError::StreamCutMidAnswer { source }))
            } else {
                Attempt::Retry { error: LlmError::StreamCut { attempts, source }, retry_after: None }
            };
        }
        Attempt::Done(Ok(answer.finish()))
    }
}

/// What an SDK failure comes to: throttling (429) and 5xx are retried, as are transport
/// failures and timeouts; access denied (401/403) and other 4xx are not. The service's message
/// is kept for the log only ([`LlmError::upstream_body`]).
fn classify<E>(error: SdkError<E, HttpResponse>, attempts: u32) -> Attempt
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code().map(str::to_owned);
    let body = format!("{}: {}", code.as_deref().unwrap_or("unknown"), error.message().unwrap_or_default());
    match (&error, status) {
        (SdkError::TimeoutError(_), _) => {
            Attempt::Retry { error: LlmError::Timeout { attempts }, retry_after: None }
        }
        (SdkError::DispatchFailure(_) | SdkError::ResponseError(_), _) => {
            let source: BoxError = Box::new(error);
            Attempt::Retry { error: LlmError::Connect { source, attempts }, retry_after: None }
        }
        (_, Some(429)) => Attempt::Retry { error: LlmError::RateLimited { attempts }, retry_after: None },
        (_, _) if code.as_deref() == Some("ThrottlingException") => {
            Attempt::Retry { error: LlmError::RateLimited { attempts }, retry_after: None }
        }
        (_, Some(status @ (401 | 403))) => Attempt::Done(Err(LlmError::Unauthorized { status })),
        (_, Some(status @ 500..=599)) => {
            Attempt::Retry { error: LlmError::Status { status, body, attempts }, retry_after: None }
        }
        (_, Some(status)) => Attempt::Done(Err(LlmError::Status { status, body, attempts })),
        (_, None) => {
            let source: BoxError = Box::new(error);
            Attempt::Retry { error: LlmError::Connect { source, attempts }, retry_after: None }
        }
    }
}

#[async_trait::async_trait]
impl LlmClient for BedrockClient {
    async fn complete(&self, request: ChatRequest<'_>, deadline: Instant) -> Result<ChatResponse, LlmError> {
        let input = convert::converse_input(&request)?;
        let never = AtomicBool::new(false);
        with_retries(&self.retry, request.model, deadline, &never, |attempts| {
            self.converse(request.model, &input, attempts)
        })
        .await
    }

    async fn stream(
        &self,
        request: ChatRequest<'_>,
        deadline: Instant,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let input = convert::converse_input(&request)?;
        let started = AtomicBool::new(false);
        with_retries(&self.retry, request.model, deadline, &started, |attempts| {
            self.converse_stream(request.model, &input, attempts, on_text, &started)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("bedrock in {}", self.region)
    }
}

#[cfg(test)]
mod tests;
