//! Secrets: the [`SecretStore`] port and its adapters.
//!
//! Owns looking up secret values by name (API keys, MCP header tokens). Values are
//! [`SecretString`]s from the moment they are read, so `Debug` prints `[REDACTED]` and nothing here
//! ever logs a value. Locally secrets come from environment variables ([`EnvSecretStore`]); the
//! Secrets Manager adapter (with a TTL cache) is added beside it for AWS.

use std::collections::HashMap;

use secrecy::SecretString;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {name} is not set")]
    NotFound { name: String },
    #[error("secret {name} could not be read: {detail}")]
    Backend { name: String, detail: String },
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

    #[test]
    fn debug_never_shows_values() {
        let store = EnvSecretStore::new().with("K", "value-that-must-not-print");
        let shown = format!("{store:?}");
        assert!(shown.contains('K'));
        assert!(!shown.contains("value-that-must-not-print"));
    }
}
