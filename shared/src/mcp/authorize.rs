//! OAuth in the pool: whose connection a per-user server gets, the token on a new client, one
//! refresh when a server refuses it, and the challenges a caller must answer before a run.
//!
//! A server with Teal's per-user OAuth gets one connection (and one catalog, unless the server
//! marks its list public) per caller: the caller is the request's ([`oauth::caller`]), so a
//! caller's token is only ever sent on that caller's connection. Their number is bounded: past
//! [`MAX_CALLERS`] per server URL, idle callers' connections are dropped (they reconnect).

use std::sync::Arc;

use secrecy::SecretString;

use super::McpPool;
use super::error::{AuthStep, McpError};
use super::pool::ServerConn;
use crate::config::{AgentSpec, McpServerConfig, OAuthGrant};
use crate::oauth::{self, Bearer, OAuthError, ServerChallenge};

/// Per-user connections kept per server URL.
pub(super) const MAX_CALLERS: usize = 512;

/// Whether `cfg` is reached with each caller's own token.
pub(super) fn per_user(cfg: &McpServerConfig) -> bool {
    cfg.oauth.as_ref().is_some_and(|o| o.grant == OAuthGrant::AuthorizationCode)
}

/// The caller a connection to `cfg` is for: the request's, for per-user servers.
pub(super) fn caller_for(cfg: &McpServerConfig) -> Option<Arc<str>> {
    per_user(cfg).then(|| oauth::caller::current().map(|a| a.caller)).flatten()
}

/// What the caller must authorize before the run can start, and where to send the request
/// again afterwards (`TA_OAUTH_BASE_URL` + the path that was called).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationNeeded {
    pub challenges: Vec<ServerChallenge>,
    pub resume_url: String,
}

impl McpPool {
    /// The token for a new client of `conn` (`refused`: the one the server just refused).
    pub(super) async fn bearer(
        &self,
        conn: &ServerConn,
        refused: Option<&SecretString>,
    ) -> Result<Bearer, McpError> {
        let cfg = &conn.cfg;
        let oauth = self.inner.oauth.as_ref().ok_or_else(|| McpError::Auth {
            server: cfg.name.clone(),
            step: AuthStep::Discovery,
            source: Some("OAuth is configured for the server but not set up in this process".into()),
        })?;
        oauth
            .bearer(cfg, conn.caller.as_deref(), refused)
            .await
            .map_err(|e| auth_error(cfg, e, refused.is_some()))
    }

    /// The challenges for `agent`'s per-user servers the current caller has not authorized.
    pub(super) async fn challenges(
        &self,
        agent: &AgentSpec,
    ) -> Result<Option<AuthorizationNeeded>, McpError> {
        let Some(oauth) = &self.inner.oauth else {
            return Ok(None);
        };
        let acting = oauth::caller::current();
        if acting.is_none()
            && let Some(cfg) = agent.mcp_servers.iter().find(|c| per_user(c))
        {
            // Outside a request (a pre-warm): nobody to challenge, and no flow is started.
            return Err(McpError::Auth {
                server: cfg.name.clone(),
                step: AuthStep::Server,
                source: Some("per-user OAuth servers are listed for each caller, within a request".into()),
            });
        }
        let mut challenges = Vec::new();
        for cfg in agent.mcp_servers.iter().filter(|c| per_user(c)) {
            let caller = acting.as_ref().map_or("", |a| &a.caller);
            let authorized = match acting {
                Some(_) => oauth.has_authorized(cfg, caller).await.map_err(|e| auth_error(cfg, e, false))?,
                None => false,
            };
            if !authorized {
                challenges.push(oauth.challenge(cfg, caller).await.map_err(|e| auth_error(cfg, e, false))?);
            }
        }
        if challenges.is_empty() {
            return Ok(None);
        }
        let path = acting.map_or_else(String::new, |a| a.path.to_string());
        let resume_url = format!("{}{path}", oauth.settings.base_url.trim_end_matches('/'));
        Ok(Some(AuthorizationNeeded { challenges, resume_url }))
    }
}

impl McpPool {
    /// `/ready` for a per-user server: its authorization server is discoverable.
    pub(super) async fn check_authorization(&self, cfg: &McpServerConfig) -> Result<(), McpError> {
        let oauth = self.inner.oauth.as_ref().ok_or_else(|| McpError::Auth {
            server: cfg.name.clone(),
            step: AuthStep::Discovery,
            source: Some("OAuth is configured for the server but not set up in this process".into()),
        })?;
        oauth.check(cfg).await.map_err(|e| auth_error(cfg, e, false))
    }
}

/// What a failed token request means for the run: the server's name and the step.
fn auth_error(cfg: &McpServerConfig, e: OAuthError, after_refusal: bool) -> McpError {
    let step = match &e {
        OAuthError::Failed { step, .. } => *step,
        // No token (any more) in the middle of a run: the refresh could not give one.
        OAuthError::NeedsAuthorization if after_refusal => AuthStep::Refresh,
        OAuthError::NeedsAuthorization | OAuthError::UnknownState => AuthStep::Server,
    };
    McpError::Auth { server: cfg.name.clone(), step, source: Some(Box::new(e)) }
}
