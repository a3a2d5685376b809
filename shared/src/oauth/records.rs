//! What the OAuth layer keeps in the [`TokenStore`], sealed: a credential record per caller and
//! server (or per server, for the platform's own token), the state of each authorization in
//! flight, and what the callback needs to know about it. Adapts the store to rmcp's
//! `CredentialStore` / `StateStore`, so rmcp's flows (PKCE, code exchange, refresh) read and write
//! through it. Keys are hashes: no caller id, URL or scope appears in Redis.

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::auth::{
    AuthError, CredentialRefreshGuard, CredentialStore, StateStore, StoredAuthorizationState,
    StoredCredentials,
};
use serde::{Serialize, de::DeserializeOwned};

use super::OAuthError;
use super::seal::Seal;
use crate::config::{McpOAuth, McpServerConfig};
use crate::mcp::AuthStep;
use crate::store::TokenStore;
use crate::util::sha256_hex;

/// The store key of `parts`, under a `kind`.
pub(super) fn key(kind: &str, parts: &[&str]) -> String {
    let mut text = format!("teal-oauth-v1\0{kind}");
    for p in parts {
        text.push('\0');
        text.push_str(p);
    }
    sha256_hex(text.as_bytes())
}

/// The record key of `caller`'s token for `cfg` (`None`: the platform's own, client credentials).
pub(super) fn credential_key(cfg: &McpServerConfig, oauth: &McpOAuth, caller: Option<&str>) -> String {
    let scopes = oauth.scopes.join(" ");
    match caller {
        Some(caller) => key("user", &[caller, cfg.url.as_str(), oauth.auth_server.as_str(), &scopes]),
        None => key("service", &[cfg.url.as_str(), oauth.auth_server.as_str(), &scopes]),
    }
}

/// A sealed record in the store.
#[derive(Clone)]
pub(super) struct Sealed {
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) seal: Arc<Seal>,
}

impl Sealed {
    pub(super) async fn load<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AuthError> {
        let Some(bytes) = self.store.get(key).await.map_err(store_error)? else {
            return Ok(None);
        };
        let plain = match self.seal.open(key, &bytes) {
            Ok(plain) => plain,
            Err(e) => {
                // Sealed with another key (rotated): as good as absent.
                tracing::warn!(error = %e, "an OAuth record in the store does not open; ignoring it");
                return Ok(None);
            }
        };
        serde_json::from_slice(&plain).map(Some).map_err(|e| AuthError::CredentialStoreError(e.to_string()))
    }

    pub(super) async fn save<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        keep_for: Duration,
    ) -> Result<(), AuthError> {
        let plain = serde_json::to_vec(value).map_err(|e| AuthError::CredentialStoreError(e.to_string()))?;
        let sealed =
            self.seal.seal(key, &plain).map_err(|e| AuthError::CredentialStoreError(e.to_string()))?;
        self.store.put(key, &sealed, keep_for).await.map_err(store_error)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), AuthError> {
        self.store.delete(key).await.map_err(store_error)
    }
}

fn store_error(e: crate::store::StoreError) -> AuthError {
    AuthError::CredentialStoreError(e.to_string())
}

/// One credential record, as rmcp's `CredentialStore`; its refresh guard is a lease in the
/// store, so two containers do not spend one refresh token twice.
pub(super) struct Credentials {
    pub(super) sealed: Sealed,
    pub(super) key: String,
    pub(super) keep_for: Duration,
    pub(super) lease: Duration,
}

impl Credentials {
    /// Another handle on the same record (rmcp takes its stores by value).
    pub(super) fn clone_handle(&self) -> Self {
        Self {
            sealed: self.sealed.clone(),
            key: self.key.clone(),
            keep_for: self.keep_for,
            lease: self.lease,
        }
    }

    pub(super) async fn load_stored(&self) -> Result<Option<StoredCredentials>, OAuthError> {
        self.sealed.load(&self.key).await.map_err(|e| OAuthError::at(AuthStep::TokenStore, e))
    }

    pub(super) async fn clear_stored(&self) -> Result<(), OAuthError> {
        self.sealed.delete(&self.key).await.map_err(|e| OAuthError::at(AuthStep::TokenStore, e))
    }
}

#[async_trait::async_trait]
impl CredentialStore for Credentials {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        self.sealed.load(&self.key).await
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        self.sealed.save(&self.key, &credentials, self.keep_for).await
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.sealed.delete(&self.key).await
    }

    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        let lease = Lease::take(&self.sealed.store, &self.key, self.lease).await;
        Ok(lease.map(CredentialRefreshGuard::new))
    }
}

/// A lease on one record, given back when dropped. Waits (bounded by the lease) for another
/// holder to finish; `None` if it never did (then the caller goes ahead uncoordinated).
pub(super) struct Lease {
    store: Arc<dyn TokenStore>,
    key: String,
}

impl Lease {
    pub(super) async fn take(store: &Arc<dyn TokenStore>, key: &str, lease: Duration) -> Option<Self> {
        let started = std::time::Instant::now();
        loop {
            match store.try_lease(key, lease).await {
                Ok(true) => return Some(Self { store: store.clone(), key: key.to_owned() }),
                Ok(false) if started.elapsed() < lease => tokio::time::sleep(LEASE_POLL).await,
                Ok(false) | Err(_) => return None,
            }
        }
    }
}

/// How often a container waiting for another's token request looks again.
pub(super) const LEASE_POLL: Duration = Duration::from_millis(25);

impl Drop for Lease {
    fn drop(&mut self) {
        let (store, key) = (self.store.clone(), std::mem::take(&mut self.key));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = store.release(&key).await;
            });
        }
    }
}

/// Authorizations in flight (PKCE verifier, expected issuer), as rmcp's `StateStore`.
pub(super) struct FlowStates {
    pub(super) sealed: Sealed,
    pub(super) keep_for: Duration,
}

#[async_trait::async_trait]
impl StateStore for FlowStates {
    async fn save(&self, csrf_token: &str, state: StoredAuthorizationState) -> Result<(), AuthError> {
        self.sealed.save(&key("state", &[csrf_token]), &state, self.keep_for).await
    }

    async fn load(&self, csrf_token: &str) -> Result<Option<StoredAuthorizationState>, AuthError> {
        self.sealed.load(&key("state", &[csrf_token])).await
    }

    async fn delete(&self, csrf_token: &str) -> Result<(), AuthError> {
        self.sealed.delete(&key("state", &[csrf_token])).await
    }
}

/// What the callback needs to finish an authorization: who asked, and for which server.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Flow {
    pub(super) caller: String,
    pub(super) server: String,
    pub(super) url: String,
}
