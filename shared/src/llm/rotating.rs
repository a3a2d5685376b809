//! An OpenAI-compatible client whose API key lives in a [`SecretStore`]: when the LLM answers
//! 401/403 the key was probably rotated, so the secret is invalidated, read again, and the call
//! retried once with a client built on the new key. One such retry per call, never a loop.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use secrecy::ExposeSecret;

use super::{
    ChatRequest, ChatResponse, ClientError, LlmClient, LlmError, OpenAiClient, OpenAiSettings, TextSink,
};
use crate::secrets::{SecretError, SecretStore};

/// Why a client could not be built from the secret's key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the LLM key secret {secret} could not be read")]
    Read {
        secret: String,
        #[source]
        source: SecretError,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
}

pub struct RotatingKeyLlm {
    secret: String,
    secrets: Arc<dyn SecretStore>,
    settings: OpenAiSettings,
    current: RwLock<Arc<OpenAiClient>>,
}

impl std::fmt::Debug for RotatingKeyLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingKeyLlm").field("secret", &self.secret).finish_non_exhaustive()
    }
}

impl RotatingKeyLlm {
    /// Reads the key `secret` now (a cold-start failure is better than a first-request one).
    pub async fn new(
        settings: OpenAiSettings,
        secret: impl Into<String>,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Self, KeyError> {
        let secret = secret.into();
        let client = Self::client(&settings, &secret, secrets.as_ref()).await?;
        Ok(Self { secret, secrets, settings, current: RwLock::new(Arc::new(client)) })
    }

    async fn client(
        settings: &OpenAiSettings,
        secret: &str,
        secrets: &dyn SecretStore,
    ) -> Result<OpenAiClient, KeyError> {
        let key = secrets
            .get(secret)
            .await
            .map_err(|source| KeyError::Read { secret: secret.to_owned(), source })?;
        let mut settings = settings.clone();
        settings.api_key = Some(key.expose_secret().to_owned().into());
        Ok(OpenAiClient::new(settings)?)
    }

    fn current(&self) -> Arc<OpenAiClient> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl RotatingKeyLlm {
    /// `call` with the current client; on a 401/403, once with a client on the key read again.
    /// A refusal comes before any answer text, so a streamed call is safe to repeat too.
    async fn with_key<F, Fut>(&self, call: F) -> Result<ChatResponse, LlmError>
    where
        F: Fn(Arc<OpenAiClient>) -> Fut,
        Fut: Future<Output = Result<ChatResponse, LlmError>>,
    {
        match call(self.current()).await {
            Err(LlmError::Unauthorized { status }) => {
                tracing::warn!(status, secret = %self.secret, "LLM refused the key; reading the secret again once");
                self.secrets.invalidate(&self.secret);
                let fresh = match Self::client(&self.settings, &self.secret, self.secrets.as_ref()).await {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "could not read the rotated LLM key");
                        return Err(LlmError::Unauthorized { status });
                    }
                };
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                call(fresh).await
            }
            other => other,
        }
    }
}

#[async_trait::async_trait]
impl LlmClient for RotatingKeyLlm {
    async fn complete(&self, request: ChatRequest<'_>, deadline: Instant) -> Result<ChatResponse, LlmError> {
        self.with_key(|c| async move { c.complete(request, deadline).await }).await
    }

    async fn stream(
        &self,
        request: ChatRequest<'_>,
        deadline: Instant,
        on_text: TextSink<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.with_key(|c| async move { c.stream(request, deadline, on_text).await }).await
    }

    fn describe(&self) -> String {
        format!("{} (key from secret {})", self.current().describe(), self.secret)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use secrecy::SecretString;
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::llm::Message;
    use crate::secrets::SecretError;

    /// A secret store whose value the test rotates, counting reads and invalidations.
    #[derive(Debug, Default)]
    struct Rotating {
        value: Mutex<String>,
        invalidations: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl SecretStore for Rotating {
        async fn get(&self, _name: &str) -> Result<SecretString, SecretError> {
            Ok(SecretString::from(self.value.lock().expect("lock").clone()))
        }
        fn invalidate(&self, _name: &str) {
            *self.invalidations.lock().expect("lock") += 1;
        }
    }

    fn ok_body() -> serde_json::Value {
        serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]})
    }

    #[tokio::test]
    async fn a_rotated_key_is_read_again_once_and_the_call_succeeds() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header("authorization", "Bearer new-key"))
            .respond_with(ResponseTemplate::new(200).set_body_json(ok_body()))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(header("authorization", "Bearer old-key"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        let secrets = Arc::new(Rotating { value: Mutex::new("old-key".into()), ..Default::default() });
        let settings = OpenAiSettings::new(format!("{}/v1", server.uri()).parse().expect("url"));
        let llm = RotatingKeyLlm::new(settings, "llm-key", secrets.clone()).await.expect("built");

        *secrets.value.lock().expect("lock") = "new-key".into();
        let messages = [Message::user("hello")];
        let req = ChatRequest::new("m", &messages, &[]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let answer = llm.complete(req, deadline).await.expect("retried with the new key");
        assert_eq!(answer.message.content.as_deref(), Some("hi"));
        assert_eq!(*secrets.invalidations.lock().expect("lock"), 1);
        // The new client is kept: no second 401 on the next call.
        llm.complete(req, deadline).await.expect("new key kept");
        assert_eq!(*secrets.invalidations.lock().expect("lock"), 1);
        assert_eq!(server.received_requests().await.expect("recorded").len(), 3);
    }

    #[tokio::test]
    async fn a_key_that_stays_wrong_fails_after_one_refresh() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(401)).mount(&server).await;
        let secrets = Arc::new(Rotating { value: Mutex::new("bad".into()), ..Default::default() });
        let settings = OpenAiSettings::new(format!("{}/v1", server.uri()).parse().expect("url"));
        let llm = RotatingKeyLlm::new(settings, "llm-key", secrets.clone()).await.expect("built");
        let messages = [Message::user("hello")];
        let req = ChatRequest::new("m", &messages, &[]);
        let err = llm.complete(req, Instant::now() + Duration::from_secs(5)).await.expect_err("still 401");
        assert!(matches!(err, LlmError::Unauthorized { status: 401 }), "{err}");
        assert_eq!(server.received_requests().await.expect("recorded").len(), 2, "one retry, not a loop");
    }
}
