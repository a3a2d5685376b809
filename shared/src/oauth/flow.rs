//! The flows, through rmcp's `AuthorizationManager`: discovery (with the `iss` check against the
//! configured `auth_server`), the per-user challenge and callback, tokens for calls (refreshed
//! when expired, or when a server refused one), and the platform's client-credentials token
//! (one container asks the token endpoint under a lease; the others wait for its answer).

use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oauth2::TokenResponse;
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadata, ClientCredentialsConfig, OAuthClientConfig,
    OAuthTokenResponse, StoredCredentials,
};
use secrecy::{ExposeSecret, SecretString};

use super::records::{Credentials, Flow, FlowStates, Lease, credential_key, key};
use super::{Authorized, Bearer, OAuth, OAuthError, ServerChallenge};
use crate::config::{McpOAuth, McpServerConfig};
use crate::mcp::AuthStep;

/// A token with less than this left is refreshed before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// How long a per-user record is kept (its refresh token outlives the access token).
const USER_RECORD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The bound of one OAuth operation (rmcp's own HTTP timeout is 30 s per request).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

impl OAuth {
    /// A token for `cfg`'s server: `caller`'s own (authorization code) or the platform's
    /// (client credentials). `refused`: the token the server just refused (HTTP 401): get
    /// another one (refresh, or a new client-credentials token), unless someone already did.
    pub async fn bearer(
        &self,
        cfg: &McpServerConfig,
        caller: Option<&str>,
        refused: Option<&SecretString>,
    ) -> Result<Bearer, OAuthError> {
        let oauth = oauth_of(cfg)?;
        let step = if refused.is_some() { AuthStep::Refresh } else { AuthStep::TokenRequest };
        let work = async {
            match oauth.grant {
                crate::config::OAuthGrant::ClientCredentials => self.service_token(cfg, oauth, refused).await,
                crate::config::OAuthGrant::AuthorizationCode => {
                    self.user_token(cfg, oauth, caller.ok_or(OAuthError::NeedsAuthorization)?, refused).await
                }
            }
        };
        tokio::time::timeout(OPERATION_TIMEOUT, work).await.map_err(|e| OAuthError::at(step, e))?
    }

    /// Whether `cfg`'s authorization server can be discovered (for `/ready`).
    pub async fn check(&self, cfg: &McpServerConfig) -> Result<(), OAuthError> {
        self.metadata(cfg, oauth_of(cfg)?).await.map(|_| ())
    }

    /// Whether `caller` has a token for `cfg`'s server (usable, or refreshable), so a run may
    /// start without a challenge.
    pub async fn has_authorized(&self, cfg: &McpServerConfig, caller: &str) -> Result<bool, OAuthError> {
        let oauth = oauth_of(cfg)?;
        let stored = self.credentials(cfg, oauth, Some(caller)).await?.load_stored().await?;
        Ok(stored.is_some_and(|s| usable(&s).is_some() || (self.settings.refresh && refreshable(&s))))
    }

    /// The authorization URL `caller` must visit for `cfg`'s server (PKCE, `state`, `resource`);
    /// what the callback needs is kept, sealed, for the flow's lifetime.
    pub async fn challenge(
        &self,
        cfg: &McpServerConfig,
        caller: &str,
    ) -> Result<ServerChallenge, OAuthError> {
        let oauth = oauth_of(cfg)?;
        self.require_https(&self.settings.redirect_uri, "TA_OAUTH_REDIRECT_URI")?;
        let mut manager = self.manager(cfg, oauth).await?;
        let sealed = self.sealed().await?;
        manager.set_state_store(FlowStates { sealed: sealed.clone(), keep_for: self.settings.flow_ttl });
        manager.configure_client(self.client_config(cfg, oauth).await?).map_err(at(AuthStep::Discovery))?;
        let scopes: Vec<&str> = oauth.scopes.iter().map(String::as_str).collect();
        let auth_url = manager.get_authorization_url(&scopes).await.map_err(at(AuthStep::Discovery))?;
        let state = url::Url::parse(&auth_url)
            .ok()
            .and_then(|u| u.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()))
            .ok_or_else(|| OAuthError::at(AuthStep::Discovery, "the authorization URL carries no state"))?;
        let flow = Flow { caller: caller.to_owned(), server: cfg.name.clone(), url: cfg.url.to_string() };
        sealed
            .save(&key("flow", &[&state]), &flow, self.settings.flow_ttl)
            .await
            .map_err(at(AuthStep::TokenStore))?;
        Ok(ServerChallenge {
            server_name: cfg.name.clone(),
            auth_server: oauth.auth_server.to_string(),
            scopes: oauth.scopes.clone(),
            auth_url,
        })
    }

    /// Finishes an authorization from the callback's `code`, `state` and `iss`: the server is
    /// found again by `find` (from the flow's server name and URL), the code exchanged with the
    /// PKCE verifier, the issuer and the token's audience checked, the tokens stored for the
    /// caller who was challenged. A `state` works once.
    pub async fn complete(
        &self,
        find: impl Fn(&str, &str) -> Option<McpServerConfig>,
        code: &str,
        state: &str,
        iss: Option<&str>,
    ) -> Result<Authorized, OAuthError> {
        let sealed = self.sealed().await?;
        let flow_key = key("flow", &[state]);
        let flow: Flow = sealed
            .load(&flow_key)
            .await
            .map_err(at(AuthStep::TokenStore))?
            .ok_or(OAuthError::UnknownState)?;
        let cfg = find(&flow.server, &flow.url).ok_or(OAuthError::UnknownState)?;
        let oauth = oauth_of(&cfg)?;
        let mut manager = self.manager(&cfg, oauth).await?;
        manager.set_state_store(FlowStates { sealed: sealed.clone(), keep_for: self.settings.flow_ttl });
        let credentials = self.credentials(&cfg, oauth, Some(&flow.caller)).await?;
        manager.set_credential_store(credentials.clone_handle());
        manager
            .configure_client(self.client_config(&cfg, oauth).await?)
            .map_err(at(AuthStep::TokenRequest))?;
        let exchanged = tokio::time::timeout(
            OPERATION_TIMEOUT,
            manager.exchange_code_for_token_with_issuer(code, state, iss),
        )
        .await
        .map_err(at(AuthStep::TokenRequest))?;
        let token = match exchanged {
            Ok(token) => token,
            Err(AuthError::InternalError(_)) => return Err(OAuthError::UnknownState),
            Err(e) => return Err(OAuthError::at(AuthStep::TokenRequest, e)),
        };
        sealed.delete(&flow_key).await.map_err(at(AuthStep::TokenStore))?;
        if let Err(e) = check_audience(&token, &resource(&cfg, oauth)) {
            credentials.clear_stored().await?;
            return Err(e);
        }
        tracing::info!(server = %cfg.name, "OAuth authorization completed");
        Ok(Authorized {
            server_name: cfg.name.clone(),
            scopes: token
                .scopes()
                .map_or_else(|| oauth.scopes.clone(), |s| s.iter().map(|s| s.to_string()).collect()),
            expires_at: token.expires_in().map(|d| httpdate::fmt_http_date(SystemTime::now() + d)),
        })
    }

    async fn user_token(
        &self,
        cfg: &McpServerConfig,
        oauth: &McpOAuth,
        caller: &str,
        refused: Option<&SecretString>,
    ) -> Result<Bearer, OAuthError> {
        let credentials = self.credentials(cfg, oauth, Some(caller)).await?;
        let stored = credentials.load_stored().await?.ok_or(OAuthError::NeedsAuthorization)?;
        if let Some(bearer) = usable(&stored).filter(|b| !same_token(b, refused)) {
            return Ok(bearer);
        }
        if !self.settings.refresh || !refreshable(&stored) {
            return Err(OAuthError::NeedsAuthorization);
        }
        let mut manager = self.manager(cfg, oauth).await?;
        manager.set_credential_store(credentials.clone_handle());
        manager.configure_client(self.client_config(cfg, oauth).await?).map_err(at(AuthStep::Refresh))?;
        let token = manager.refresh_token().await.map_err(at(AuthStep::Refresh))?;
        tracing::info!(server = %cfg.name, "OAuth token refreshed");
        Ok(bearer_of(&token, 0))
    }

    async fn service_token(
        &self,
        cfg: &McpServerConfig,
        oauth: &McpOAuth,
        refused: Option<&SecretString>,
    ) -> Result<Bearer, OAuthError> {
        let credentials = self.credentials(cfg, oauth, None).await?;
        let stored = credentials.load_stored().await?;
        if let Some(bearer) = stored.as_ref().and_then(usable).filter(|b| !same_token(b, refused)) {
            return Ok(bearer);
        }
        // One container asks; the others wait for its answer, then find it in the store.
        let lease = Lease::take(
            &credentials.sealed.store,
            &key("lease", &[&credentials.key]),
            self.settings.token_lease,
        )
        .await;
        let stored = credentials.load_stored().await?;
        if let Some(bearer) = stored.as_ref().and_then(usable).filter(|b| !same_token(b, refused)) {
            return Ok(bearer);
        }
        let secret = self.client_secret(cfg, oauth).await?.ok_or_else(|| {
            OAuthError::at(AuthStep::TokenRequest, "client_credentials needs oauth_client_secret")
        })?;
        let config = ClientCredentialsConfig::ClientSecret {
            client_id: self.client_id(oauth),
            client_secret: secret.expose_secret().to_owned(),
            scopes: oauth.scopes.clone(),
            resource: Some(resource(cfg, oauth)),
        };
        let mut manager = self.manager(cfg, oauth).await?;
        manager.set_credential_store(credentials.clone_handle());
        manager.validate_client_credentials_metadata(&config).map_err(at(AuthStep::TokenRequest))?;
        manager.configure_client_credentials(&config).map_err(at(AuthStep::TokenRequest))?;
        let token = manager.exchange_client_credentials(&config).await.map_err(at(AuthStep::TokenRequest))?;
        drop(lease);
        check_audience(&token, &resource(cfg, oauth))?;
        tracing::info!(server = %cfg.name, "OAuth client-credentials token obtained");
        Ok(bearer_of(&token, 0))
    }

    /// The credential record of `caller` (or the platform) for `cfg`'s server.
    async fn credentials(
        &self,
        cfg: &McpServerConfig,
        oauth: &McpOAuth,
        caller: Option<&str>,
    ) -> Result<Credentials, OAuthError> {
        Ok(Credentials {
            sealed: self.sealed().await?,
            key: credential_key(cfg, oauth, caller),
            keep_for: if caller.is_some() {
                USER_RECORD_TTL
            } else {
                self.settings.token_lease.max(Duration::from_secs(3600))
            },
            lease: self.settings.token_lease,
        })
    }

    /// A manager for `cfg`'s server with its authorization server's metadata.
    async fn manager(
        &self,
        cfg: &McpServerConfig,
        oauth: &McpOAuth,
    ) -> Result<AuthorizationManager, OAuthError> {
        let metadata = self.metadata(cfg, oauth).await?;
        let mut manager = AuthorizationManager::new_allowing_private_addresses(resource(cfg, oauth).as_str())
            .await
            .map_err(at(AuthStep::Discovery))?;
        manager.set_metadata(metadata);
        Ok(manager)
    }

    /// The authorization server's metadata (RFC 8414), found through the server's
    /// protected-resource metadata (RFC 9728) or, when it publishes none, at `auth_server`.
    /// Its `issuer` must be the configured `auth_server`. Cached for an hour.
    async fn metadata(
        &self,
        cfg: &McpServerConfig,
        oauth: &McpOAuth,
    ) -> Result<AuthorizationMetadata, OAuthError> {
        let cache_key = format!("{}\0{}", cfg.url, oauth.auth_server);
        if let Some((md, at)) = lock(&self.metadata).get(&cache_key)
            && at.elapsed() < super::METADATA_TTL
        {
            return Ok(md.clone());
        }
        self.require_https(oauth.auth_server.as_str(), "auth_server")?;
        let discover = async {
            let resource = resource(cfg, oauth);
            let at_resource = AuthorizationManager::new_allowing_private_addresses(resource.as_str()).await?;
            let found = at_resource.resolve_metadata().await?;
            if found.source.is_discovered() {
                return Ok::<_, AuthError>(found.metadata);
            }
            let at_server =
                AuthorizationManager::new_allowing_private_addresses(oauth.auth_server.as_str()).await?;
            Ok(at_server.resolve_metadata().await?.metadata)
        };
        let md = tokio::time::timeout(OPERATION_TIMEOUT, discover)
            .await
            .map_err(at(AuthStep::Discovery))?
            .map_err(at(AuthStep::Discovery))?;
        if let Some(issuer) = &md.issuer
            && issuer.trim_end_matches('/') != oauth.auth_server.as_str().trim_end_matches('/')
        {
            return Err(OAuthError::at(
                AuthStep::Discovery,
                format!(
                    "the discovered issuer {issuer} is not the configured auth_server {}",
                    oauth.auth_server
                ),
            ));
        }
        lock(&self.metadata).insert(cache_key, (md.clone(), Instant::now()));
        Ok(md)
    }

    async fn client_config(
        &self,
        cfg: &McpServerConfig,
        oauth: &McpOAuth,
    ) -> Result<OAuthClientConfig, OAuthError> {
        let mut config = OAuthClientConfig::new(self.client_id(oauth), self.settings.redirect_uri.clone())
            .with_scopes(oauth.scopes.clone());
        if let Some(secret) = self.client_secret(cfg, oauth).await? {
            config = config.with_client_secret(secret.expose_secret().to_owned());
        }
        Ok(config)
    }

    fn client_id(&self, oauth: &McpOAuth) -> String {
        oauth.client_id.clone().unwrap_or_else(|| self.settings.client_name.clone())
    }

    /// `oauth_client_secret` rendered (its `${secret:NAME}`s read through the SecretStore).
    async fn client_secret(
        &self,
        cfg: &McpServerConfig,
        oauth: &McpOAuth,
    ) -> Result<Option<SecretString>, OAuthError> {
        let Some(template) = &oauth.client_secret else {
            return Ok(None);
        };
        let mut values = std::collections::HashMap::new();
        for name in template.secret_names() {
            let value = self.secrets.get(name).await.map_err(|e| {
                tracing::warn!(server = %cfg.name, secret = name, "OAuth client secret could not be read");
                OAuthError::at(AuthStep::TokenRequest, e)
            })?;
            values.insert(name, value);
        }
        let Ok(rendered) = template
            .render(|n| Ok::<_, Infallible>(values.get(n).map_or("", |v| v.expose_secret()).to_owned()));
        Ok(Some(SecretString::from(rendered)))
    }

    /// `TA_MCP_OAUTH_STRICT_HTTPS_VALIDATION`: https, or a loopback host, unless switched off.
    fn require_https(&self, url: &str, what: &str) -> Result<(), OAuthError> {
        let parsed = url::Url::parse(url).map_err(at(AuthStep::Discovery))?;
        let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if self.settings.strict_https && parsed.scheme() != "https" && !loopback {
            return Err(OAuthError::at(
                AuthStep::Discovery,
                format!("{what} must use https (TA_MCP_OAUTH_STRICT_HTTPS_VALIDATION)"),
            ));
        }
        Ok(())
    }
}

/// A std mutex's guard, poisoned or not (each critical section is one insert or one read).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn oauth_of(cfg: &McpServerConfig) -> Result<&McpOAuth, OAuthError> {
    cfg.oauth
        .as_ref()
        .ok_or_else(|| OAuthError::at(AuthStep::Discovery, "the server has no OAuth configuration"))
}

/// The resource indicator (RFC 8707): `canonical_uri`, else the server's URL.
fn resource(cfg: &McpServerConfig, oauth: &McpOAuth) -> String {
    oauth.resource.as_ref().unwrap_or(&cfg.url).to_string()
}

fn at<E: Into<Box<dyn std::error::Error + Send + Sync>>>(step: AuthStep) -> impl FnOnce(E) -> OAuthError {
    move |e| OAuthError::at(step, e)
}

/// A token response whose `aud` (when it says one) does not name this resource is refused.
fn check_audience(token: &OAuthTokenResponse, resource: &str) -> Result<(), OAuthError> {
    let names = |v: &serde_json::Value| {
        v.as_str() == Some(resource) || v.as_str() == Some(resource.trim_end_matches('/'))
    };
    match token.extra_fields().0.get("aud") {
        None => Ok(()),
        Some(serde_json::Value::Array(list)) if list.iter().any(names) => Ok(()),
        Some(one) if names(one) => Ok(()),
        Some(_) => Err(OAuthError::at(AuthStep::TokenRequest, "the token's audience is not this server")),
    }
}

/// The stored token while it has more than the margin left.
fn usable(stored: &StoredCredentials) -> Option<Bearer> {
    let token = stored.token_response.as_ref()?;
    let bearer = bearer_of(token, stored.token_received_at.unwrap_or(0));
    match bearer.expires_at {
        Some(at) if at.saturating_duration_since(Instant::now()) < REFRESH_MARGIN => None,
        _ => Some(bearer),
    }
}

fn refreshable(stored: &StoredCredentials) -> bool {
    stored.token_response.as_ref().is_some_and(|t| t.refresh_token().is_some())
}

fn same_token(bearer: &Bearer, refused: Option<&SecretString>) -> bool {
    refused.is_some_and(|r| r.expose_secret() == bearer.token.expose_secret())
}

/// The bearer of `token`, received at `received_epoch_secs` (0: now).
fn bearer_of(token: &OAuthTokenResponse, received_epoch_secs: u64) -> Bearer {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let received = if received_epoch_secs == 0 { now } else { received_epoch_secs };
    let expires_at = token.expires_in().map(|lifetime| {
        let left = (received + lifetime.as_secs()).saturating_sub(now);
        Instant::now() + Duration::from_secs(left)
    });
    Bearer { token: SecretString::from(token.access_token().secret().to_owned()), expires_at }
}
