//! AWS Secrets Manager behind the [`SecretStore`] port, and the shared AWS SDK configuration.
//!
//! Owns fetching `GetSecretValue` (after the SDK's own retries), a TTL cache per secret id,
//! serving the last value when a refresh fails for a transient reason, and `secret-id#field`
//! selection in JSON secrets. Values become [`SecretString`]s at once and are never logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::{ExposeSecret, SecretString};

use super::{SecretError, SecretStore};

/// The SDK configuration of the process, built once: region and credentials from the usual
/// chain (Lambda's environment), bounded timeouts, and `endpoint_override` (`TA_AWS_ENDPOINT_URL`,
/// e.g. moto) for every client.
pub async fn aws_sdk_config(endpoint_override: Option<&str>) -> SdkConfig {
    aws_sdk_config_from(aws_config::defaults(BehaviorVersion::latest()), endpoint_override).await
}

/// [`aws_sdk_config`] from a prepared loader (tests set dummy credentials and a region on it).
pub async fn aws_sdk_config_from(loader: ConfigLoader, endpoint_override: Option<&str>) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(15))
        .build();
    let mut loader = loader.timeout_config(timeouts);
    if let Some(url) = endpoint_override.filter(|u| !u.is_empty()) {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Secrets Manager settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretsManagerSettings {
    /// `TA_SECRETS_TTL` seconds (default 300): how long a value is reused before it is read again.
    pub ttl: Duration,
}

impl Default for SecretsManagerSettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(300) }
    }
}

struct Cached {
    value: SecretString,
    fetched: Instant,
}

/// Secrets Manager with a TTL cache. A name is a secret id (name or ARN), optionally followed by
/// `#field` to take one top-level field of a JSON secret (`prod/llm#api_key`). Both forms share
/// one cached read of the secret.
pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    /// Bumped by every `invalidate`, so a read that started before it does not fill the cache.
    generation: AtomicU64,
    fetches: AtomicU64,
}

impl std::fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("SecretsManagerStore").field("ttl", &self.ttl).field("cached", &cached).finish()
    }
}

impl SecretsManagerStore {
    pub fn new(client: aws_sdk_secretsmanager::Client, settings: SecretsManagerSettings) -> Self {
        Self {
            client,
            ttl: settings.ttl,
            cache: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
        }
    }

    /// A store using `sdk` (see [`aws_sdk_config`]).
    pub fn from_sdk_config(sdk: &SdkConfig, settings: SecretsManagerSettings) -> Self {
        Self::new(aws_sdk_secretsmanager::Client::new(sdk), settings)
    }

    /// How many `GetSecretValue` calls were made (for tests and metrics).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The whole secret `id`, from the cache while fresh.
    async fn secret(&self, id: &str, name: &str) -> Result<SecretString, SecretError> {
        if let Some(c) = self.lock().get(id)
            && c.fetched.elapsed() < self.ttl
        {
            return Ok(c.value.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        match self.fetch(id, name).await {
            Ok(value) => {
                if !self.ttl.is_zero() && self.generation.load(Ordering::Acquire) == generation {
                    self.lock()
                        .insert(id.to_owned(), Cached { value: value.clone(), fetched: Instant::now() });
                }
                Ok(value)
            }
            Err(e) if e.is_transient() => match self.lock().get(id) {
                Some(stale) => {
                    tracing::warn!(secret = %id, error = %e, age_s = stale.fetched.elapsed().as_secs(), "secret refresh failed; serving the cached value");
                    Ok(stale.value.clone())
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self, id: &str, name: &str) -> Result<SecretString, SecretError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let out = self.client.get_secret_value().secret_id(id).send().await.map_err(|e| classify(name, e))?;
        if let Some(s) = out.secret_string {
            return Ok(SecretString::from(s));
        }
        match out.secret_binary.map(|b| String::from_utf8(b.into_inner())) {
            Some(Ok(s)) => Ok(SecretString::from(s)),
            Some(Err(_)) => Err(SecretError::Unusable {
                name: name.to_owned(),
                detail: "binary secret is not UTF-8 text".into(),
            }),
            None => {
                Err(SecretError::Unusable { name: name.to_owned(), detail: "secret has no value".into() })
            }
        }
    }
}

/// `id#field` -> (`id`, `Some(field)`).
pub(crate) fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.split_once('#') {
        Some((id, field)) => (id, Some(field)),
        None => (name, None),
    }
}

/// One top-level field of a JSON secret: strings as they are, other values as JSON text.
pub(crate) fn select_field(
    name: &str,
    secret: &SecretString,
    field: &str,
) -> Result<SecretString, SecretError> {
    let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(secret.expose_secret())
        .map_err(|_| SecretError::Unusable {
            name: name.to_owned(),
            // The parser's message may quote the secret: never include it.
            detail: "the secret is not a JSON object, so `#field` cannot be selected".into(),
        })?;
    match doc.get(field) {
        Some(serde_json::Value::String(s)) => Ok(SecretString::from(s.clone())),
        Some(serde_json::Value::Null) | None => Err(SecretError::NotFound { name: name.to_owned() }),
        Some(other) => Ok(SecretString::from(other.to_string())),
    }
}

fn classify(name: &str, err: SdkError<GetSecretValueError>) -> SecretError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let detail = DisplayErrorContext(&err).to_string();
    let Some(service) = err.as_service_error() else {
        // Timeouts, connection failures, unreadable responses: worth trying again.
        return SecretError::Backend { name: name.to_owned(), detail };
    };
    if service.is_resource_not_found_exception() {
        return SecretError::NotFound { name: name.to_owned() };
    }
    let code = service.code().unwrap_or_default();
    let transient = service.is_internal_service_error()
        || status.is_some_and(|s| s >= 500 || s == 429)
        || code.contains("Throttl")
        || code == "RequestLimitExceeded";
    if transient {
        SecretError::Backend { name: name.to_owned(), detail }
    } else {
        // Access denied, KMS decryption failures, a secret scheduled for deletion: asking again
        // will not help until someone changes something.
        SecretError::Unusable { name: name.to_owned(), detail }
    }
}

#[async_trait::async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, name: &str) -> Result<SecretString, SecretError> {
        let (id, field) = split_name(name);
        if id.is_empty() {
            return Err(SecretError::NotFound { name: name.to_owned() });
        }
        let secret = self.secret(id, name).await?;
        match field {
            None => Ok(secret),
            Some(f) => select_field(name, &secret, f),
        }
    }

    fn invalidate(&self, name: &str) {
        let (id, _) = split_name(name);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_selected_without_quoting_the_secret() {
        let json = SecretString::from(r#"{"api_key":"k-1","port":6379,"none":null}"#.to_owned());
        assert_eq!(select_field("s#api_key", &json, "api_key").expect("ok").expose_secret(), "k-1");
        assert_eq!(select_field("s#port", &json, "port").expect("ok").expose_secret(), "6379");
        assert!(matches!(select_field("s#none", &json, "none"), Err(SecretError::NotFound { .. })));
        let e = select_field("s#x", &json, "x").expect_err("missing");
        assert_eq!(e.to_string(), "secret s#x is not set");
        let plain = SecretString::from("plain-value-123".to_owned());
        let e = select_field("s#f", &plain, "f").expect_err("not json");
        assert!(!e.to_string().contains("plain-value-123"), "{e}");
        assert!(!e.is_transient());
        assert_eq!(split_name("a/b#c"), ("a/b", Some("c")));
        assert_eq!(
            split_name("arn:aws:secretsmanager:eu-west-1:1:secret:x"),
            ("arn:aws:secretsmanager:eu-west-1:1:secret:x", None)
        );
    }
}
