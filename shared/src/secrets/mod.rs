//! Secrets: the [`SecretStore`] port and its adapters.
//!
//! Owns looking up secret values by name (API keys, MCP header tokens). Values are
//! [`SecretString`]s from the moment they are read, so `Debug` prints `[REDACTED]` and nothing here
//! ever logs a value. Locally secrets come from environment variables ([`EnvSecretStore`]); on
//! AWS from Secrets Manager ([`SecretsManagerStore`], TTL-cached, `id#field` for JSON secrets).
//! [`SecretsBackend`] says which one a process uses; [`LayeredSecretStore`] puts one in front of
//! another.

mod aws;

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;

pub use aws::{SecretsManagerSettings, SecretsManagerStore, aws_sdk_config, aws_sdk_config_from};
/// The AWS SDK configuration [`aws_sdk_config`] builds (re-exported for callers without
/// aws-config of their own).
pub use aws_config::SdkConfig;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {name} is not set")]
    NotFound { name: String },
    /// Transient: throttling, 5xx, network (after the SDK's retries).
    #[error("secret {name} could not be read: {detail}")]
    Backend { name: String, detail: String },
    /// Not transient: access denied, decryption failure, `#field` of a non-JSON secret.
    #[error("secret {name} cannot be used: {detail}")]
    Unusable { name: String, detail: String },
}

impl SecretError {
    /// Whether trying again later may succeed (throttling, network), as opposed to a missing secret.
    pub fn is_transient(&self) -> bool {
        matches!(self, SecretError::Backend { .. })
    }
}

/// Reads secrets by name.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    async fn get(&self, name: &str) -> Result<SecretString, SecretError>;

    /// Forgets any cached value of `name` (and of the secret it is a `#field` of), so the next
    /// `get` reads the backend: call it once when an upstream answers 401 (a rotated key).
    fn invalidate(&self, _name: &str) {}
}

/// Where a process reads its secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsBackend {
    /// Environment variables ([`EnvSecretStore`]).
    Env,
    /// AWS Secrets Manager ([`SecretsManagerStore`]).
    SecretsManager,
}

/// `first`, and `then` for the names `first` does not have (`NotFound`). Other errors of `first`
/// are returned as they are: a throttled Secrets Manager must not fall back to a local value.
#[derive(Debug)]
pub struct LayeredSecretStore {
    first: Arc<dyn SecretStore>,
    then: Arc<dyn SecretStore>,
}

impl LayeredSecretStore {
    pub fn new(first: Arc<dyn SecretStore>, then: Arc<dyn SecretStore>) -> Self {
        Self { first, then }
    }
}

#[async_trait::async_trait]
impl SecretStore for LayeredSecretStore {
    async fn get(&self, name: &str) -> Result<SecretString, SecretError> {
        match self.first.get(name).await {
            Err(SecretError::NotFound { .. }) => self.then.get(name).await,
            other => other,
        }
    }

    fn invalidate(&self, name: &str) {
        self.first.invalidate(name);
        self.then.invalidate(name);
    }
}

/// Secrets from environment variables: the secret `NAME` is the variable `NAME`. A fixed map
/// can be layered on top (tests, `teal serve` flags); it wins over the environment.
#[derive(Default)]
pub struct EnvSecretStore {
    overrides: HashMap<String, SecretString>,
}

impl std::fmt::Debug for EnvSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.overrides.keys().collect();
        names.sort();
        f.debug_struct("EnvSecretStore").field("overrides", &names).finish()
    }
}

impl EnvSecretStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value that takes precedence over the environment.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.insert(name.into(), SecretString::from(value.into()));
        self
    }
}

#[async_trait::async_trait]
impl SecretStore for EnvSecretStore {
    async fn get(&self, name: &str) -> Result<SecretString, SecretError> {
        if let Some(v) = self.overrides.get(name) {
            return Ok(v.clone());
        }
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
            _ => Err(SecretError::NotFound { name: name.to_owned() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[tokio::test]
    async fn overrides_win_and_missing_names_are_reported() {
        let store = EnvSecretStore::new().with("TEAL_TEST_TOKEN", "s3cr3t");
        let v = store.get("TEAL_TEST_TOKEN").await.expect("override present");
        assert_eq!(v.expose_secret(), "s3cr3t");
        let err = store.get("TEAL_SURELY_UNSET_VARIABLE_42").await.expect_err("unset");
        assert_eq!(err.to_string(), "secret TEAL_SURELY_UNSET_VARIABLE_42 is not set");
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn layers_fall_through_only_on_not_found() {
        let first: Arc<dyn SecretStore> = Arc::new(EnvSecretStore::new().with("A", "from-first"));
        let then: Arc<dyn SecretStore> =
            Arc::new(EnvSecretStore::new().with("A", "shadowed").with("B", "from-then"));
        let layered = LayeredSecretStore::new(first, then);
        assert_eq!(layered.get("A").await.expect("a").expose_secret(), "from-first");
        assert_eq!(layered.get("B").await.expect("b").expose_secret(), "from-then");
        assert!(matches!(layered.get("TEAL_SURELY_UNSET_C").await, Err(SecretError::NotFound { .. })));
        layered.invalidate("A");
    }

    #[test]
    fn debug_never_shows_values() {
        let store = EnvSecretStore::new().with("K", "value-that-must-not-print");
        let shown = format!("{store:?}");
        assert!(shown.contains('K'));
        assert!(!shown.contains("value-that-must-not-print"));
    }
}
