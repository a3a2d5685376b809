//! OAuth to MCP servers (outbound): Teal's per-user flow (authorization code + PKCE, one token per
//! caller, server and scopes) and the platform's own token (client credentials), discovery
//! through the server's protected-resource metadata (RFC 9728) and the authorization server's
//! metadata (RFC 8414), resource indicators (RFC 8707), `iss` checks (RFC 9207), refresh.
//!
//! rmcp's `AuthorizationManager` does the protocol (nothing here builds a token request by
//! hand); this module owns where tokens live (sealed in the [`TokenStore`], keyed by hashes, never
//! shared between callers), when they are fetched (one container at a time, under a lease), and
//! how failures read ([`OAuthError`], naming the step). It must not know about MCP sessions: the
//! pool asks it for a [`Bearer`] and tells it when a server refused one. Tokens and secrets are
//! never logged, displayed or returned: [`Bearer`] has no `Debug`, and errors carry no values.

pub mod caller;
mod flow;
mod records;
pub mod seal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use rmcp::transport::auth::AuthorizationMetadata;
use secrecy::SecretString;
use tokio::sync::OnceCell;

use crate::mcp::AuthStep;
use crate::secrets::SecretStore;
use crate::store::TokenStore;
use seal::Seal;

/// Teal's `TA_OAUTH_*` / `TA_MCP_OAUTH_*` switches and ours.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// `TA_OAUTH_REDIRECT_URI`: where the authorization server sends the browser back (our
    /// `GET /oauth/callback`); an absolute http(s) URL.
    pub redirect_uri: String,
    /// `TA_OAUTH_CLIENT_NAME`: the client id when a server gives no `oauth_client_id`.
    pub client_name: String,
    /// `TA_OAUTH_BASE_URL`: the public base of this API, for the challenge's `resume_url`.
    pub base_url: String,
    /// `TA_MCP_OAUTH_ENABLE_TOKEN_REFRESH` (default true): refresh expired per-user tokens.
    pub refresh: bool,
    /// `TA_MCP_OAUTH_STRICT_HTTPS_VALIDATION` (default true): authorization servers and the
    /// redirect URI must be https (or loopback).
    pub strict_https: bool,
    /// `TA_OAUTH_TOKEN_KEY_SECRET`: the secret holding the token key (32 bytes of base64, or a
    /// generated text of 32+ characters).
    pub key_secret: Option<String>,
    /// How long an authorization may take from challenge to callback.
    pub flow_ttl: Duration,
    /// How long one container owns a token request before another may try.
    pub token_lease: Duration,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            redirect_uri: "http://localhost:8000/oauth/callback".to_owned(),
            client_name: "teal-agents".to_owned(),
            base_url: "http://localhost:8000".to_owned(),
            refresh: true,
            strict_https: true,
            key_secret: None,
            flow_ttl: Duration::from_secs(600),
            token_lease: Duration::from_secs(10),
        }
    }
}

/// Why a token could not be had, naming the step. The cause stays in `source` for the log.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// This caller has not authorized this server (or its authorization is gone).
    #[error("authorization needed")]
    NeedsAuthorization,
    #[error("authorization failed at {step}")]
    Failed {
        step: AuthStep,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The callback's `state` is unknown, used or expired.
    #[error("unknown or expired authorization state")]
    UnknownState,
}

impl OAuthError {
    pub(crate) fn at(step: AuthStep, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Failed { step, source: source.into() }
    }
}

/// An access token for one server, and when it stops working. No `Debug`, no `Display`.
#[derive(Clone)]
pub struct Bearer {
    pub token: SecretString,
    pub expires_at: Option<Instant>,
}

/// One server a caller must authorize before the run can start (Teal's `auth_challenges` item).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerChallenge {
    pub server_name: String,
    pub auth_server: String,
    pub scopes: Vec<String>,
    pub auth_url: String,
}

/// A finished authorization, as the callback reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Authorized {
    pub server_name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
}

/// The OAuth layer of a process: settings, the sealed store, discovered metadata. Cheap to share.
pub struct OAuth {
    pub(crate) settings: OAuthSettings,
    store: Arc<dyn TokenStore>,
    secrets: Arc<dyn SecretStore>,
    seal: OnceCell<Arc<Seal>>,
    /// Authorization server metadata by server URL, for an hour (Teal's `metadata_cache_ttl`).
    metadata: StdMutex<HashMap<String, (AuthorizationMetadata, Instant)>>,
}

/// How long discovered metadata is reused.
const METADATA_TTL: Duration = Duration::from_secs(3600);

impl OAuth {
    pub fn new(settings: OAuthSettings, store: Arc<dyn TokenStore>, secrets: Arc<dyn SecretStore>) -> Self {
        Self { settings, store, secrets, seal: OnceCell::new(), metadata: StdMutex::new(HashMap::new()) }
    }

    /// The token key: read once from `TA_OAUTH_TOKEN_KEY_SECRET`, else made for this process.
    async fn seal(&self) -> Result<Arc<Seal>, OAuthError> {
        let seal = self
            .seal
            .get_or_try_init(|| async {
                let seal = match &self.settings.key_secret {
                    Some(name) => {
                        let value = self.secrets.get(name).await.map_err(|e| OAuthError::at(AuthStep::TokenStore, e))?;
                        Seal::from_secret(secrecy::ExposeSecret::expose_secret(&value))
                            .map_err(|e| OAuthError::at(AuthStep::TokenStore, e))?
                    }
                    None => {
                        tracing::warn!("TA_OAUTH_TOKEN_KEY_SECRET is not set: OAuth tokens are sealed with a key of this process and last as long as it");
                        Seal::ephemeral().map_err(|e| OAuthError::at(AuthStep::TokenStore, e))?
                    }
                };
                Ok::<_, OAuthError>(Arc::new(seal))
            })
            .await?;
        Ok(seal.clone())
    }

    async fn sealed(&self) -> Result<records::Sealed, OAuthError> {
        Ok(records::Sealed { store: self.store.clone(), seal: self.seal().await? })
    }
}

#[cfg(test)]
mod tests;
