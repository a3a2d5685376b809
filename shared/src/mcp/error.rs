//! Why an MCP operation failed: one variant per kind of failure, each holding its real cause.
//!
//! `Display` is what a client may read (the API turns it into the 502 body): the server's
//! configured name and what failed, never upstream text. The cause (rmcp's error, the secret
//! store's, the header parser's) is the [`std::error::Error::source`], so it reaches the log
//! through [`crate::telemetry::error_chain`] and nowhere else. Tool-level failures (`isError`,
//! a JSON-RPC error to `tools/call`) are not errors here: they are results for the LLM.

use rmcp::service::{ClientInitializeError, ServiceError};

use crate::secrets::SecretError;

/// Why an MCP operation failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No session could be set up: `initialize` was refused, failed at the HTTP level (a 401
    /// included) or got an answer that is not an `initialize` result.
    #[error("MCP server '{server}' is unreachable")]
    Connect {
        server: String,
        #[source]
        source: Box<ClientInitializeError>,
    },
    /// A request could not be delivered, or the connection closed under it.
    #[error("MCP server '{server}' is unreachable")]
    Transport {
        server: String,
        #[source]
        source: ServiceError,
    },
    #[error("MCP server '{server}' did not answer within {timeout_ms} ms")]
    Timeout { server: String, timeout_ms: u128 },
    /// The server answered, but not with what was asked: a JSON-RPC error to `tools/list`, a
    /// response of the wrong type, a cancelled request.
    #[error("MCP server '{server}' failed")]
    Protocol {
        server: String,
        #[source]
        source: ServiceError,
    },
    /// A secret a configured header needs could not be read.
    #[error("MCP server '{server}': secret {secret} could not be read")]
    Secret {
        server: String,
        secret: String,
        #[source]
        source: SecretError,
    },
    /// A configured header does not render to a valid HTTP header.
    #[error("MCP server '{server}' failed")]
    Header {
        server: String,
        #[source]
        source: HeaderError,
    },
    /// Authorization to the server failed at `step` (the server answered 401/403, or a token
    /// could not be had). Never "unreachable": the server answered.
    #[error("MCP server '{server}': authorization failed at {step}")]
    Auth {
        server: String,
        step: AuthStep,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A tool asked for user input (an elicitation, or an `input_required` result) that this
    /// deployment cannot collect yet: the run ends, naming the server and the tool.
    #[error(
        "MCP server '{server}': tool '{tool}' asked for user input ({what}), which this deployment \
         cannot collect yet"
    )]
    InputRequired { server: String, tool: String, what: String },
    /// The caller has not authorized some of the agent's per-user OAuth servers: the run does
    /// not start, and the caller is told where to authorize (Teal's `AuthChallengeResponse`).
    #[error("authorization required for MCP server(s): {}", .0.challenges.iter().map(|c| c.server_name.as_str()).collect::<Vec<_>>().join(", "))]
    AuthorizationRequired(Box<super::AuthorizationNeeded>),
}

/// Where authorization to an MCP server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStep {
    /// Finding the authorization server (protected-resource or authorization-server metadata).
    Discovery,
    /// Asking the token endpoint for a token (client credentials, code exchange).
    TokenRequest,
    /// Refreshing a token.
    Refresh,
    /// The MCP server refused the credentials we sent (HTTP 401/403), also after one refresh.
    Server,
    /// Reading or writing the sealed token store (Redis), or its key.
    TokenStore,
}

impl std::fmt::Display for AuthStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthStep::Discovery => "discovery",
            AuthStep::TokenRequest => "token request",
            AuthStep::Refresh => "refresh",
            AuthStep::Server => "the server (credentials refused)",
            AuthStep::TokenStore => "the token store",
        })
    }
}

/// Why a configured header could not be sent. Names the header, never its value.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("header {header} does not render to a valid HTTP header value")]
    Value {
        header: String,
        #[source]
        source: http::header::InvalidHeaderValue,
    },
    #[error("header name {header} is not a valid HTTP header name")]
    Name {
        header: String,
        #[source]
        source: http::header::InvalidHeaderName,
    },
}

impl McpError {
    /// The server's configured name, for the 502 body and the logs.
    pub fn server(&self) -> &str {
        match self {
            McpError::Connect { server, .. }
            | McpError::Transport { server, .. }
            | McpError::Timeout { server, .. }
            | McpError::Protocol { server, .. }
            | McpError::Secret { server, .. }
            | McpError::Header { server, .. }
            | McpError::Auth { server, .. }
            | McpError::InputRequired { server, .. } => server,
            McpError::AuthorizationRequired(needed) => {
                needed.challenges.first().map_or("", |c| c.server_name.as_str())
            }
        }
    }

    /// A stable machine-readable code for the 502 body.
    pub fn code(&self) -> &'static str {
        match self {
            McpError::Auth { .. } => "mcp_auth_failed",
            McpError::InputRequired { .. } => "mcp_input_required",
            McpError::AuthorizationRequired(_) => "mcp_authorization_required",
            McpError::Connect { .. }
            | McpError::Transport { .. }
            | McpError::Timeout { .. }
            | McpError::Protocol { .. }
            | McpError::Secret { .. }
            | McpError::Header { .. } => "mcp_upstream_failed",
        }
    }

    /// What a failed request's [`ServiceError`] means: the transport (the request did not get
    /// through) or the protocol (it did, and the answer is unusable).
    pub(super) fn from_service(server: &str, source: ServiceError) -> Self {
        let server = server.to_owned();
        if challenge(&source).is_some() {
            McpError::Auth { server, step: AuthStep::Server, source: Some(Box::new(source)) }
        } else if is_transport(&source) {
            McpError::Transport { server, source }
        } else {
            McpError::Protocol { server, source }
        }
    }
}

/// The request did not get through, or its connection closed: the client is no longer usable.
pub(super) fn is_transport(e: &ServiceError) -> bool {
    matches!(e, ServiceError::TransportSend(_) | ServiceError::TransportClosed)
}

/// The `WWW-Authenticate` value of the 401/403 somewhere in `e`'s causes, if that is what failed.
pub(super) fn challenge(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rmcp::transport::streamable_http_client::{AuthRequiredError, InsufficientScopeError};
    let mut source = Some(e);
    while let Some(current) = source {
        if let Some(required) = current.downcast_ref::<AuthRequiredError>() {
            return Some(required.www_authenticate_header.clone());
        }
        if let Some(scope) = current.downcast_ref::<InsufficientScopeError>() {
            return Some(scope.www_authenticate_header.clone());
        }
        if let Some(ServiceError::TransportSend(t)) = current.downcast_ref::<ServiceError>() {
            source = Some(t.error.as_ref());
            continue;
        }
        source = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::error_chain;

    fn server_error(message: &str) -> ServiceError {
        ServiceError::McpError(rmcp::ErrorData::internal_error(message.to_owned(), None))
    }

    #[test]
    fn display_names_the_server_and_the_failure_and_keeps_upstream_text_for_the_log() {
        let e = McpError::from_service("fs", server_error("db password is hunter2"));
        assert!(matches!(e, McpError::Protocol { .. }));
        assert_eq!(e.to_string(), "MCP server 'fs' failed");
        assert_eq!(error_chain(&e), "MCP server 'fs' failed: Mcp error: -32603: db password is hunter2");
        assert_eq!(e.server(), "fs");
    }

    #[test]
    fn a_closed_transport_is_unreachable() {
        let e = McpError::from_service("fs", ServiceError::TransportClosed);
        assert!(matches!(e, McpError::Transport { .. }));
        assert_eq!(error_chain(&e), "MCP server 'fs' is unreachable: Transport closed");
    }

    #[test]
    fn secret_and_header_failures_keep_their_cause() {
        let e = McpError::Secret {
            server: "gh".into(),
            secret: "GH_TOKEN".into(),
            source: SecretError::NotFound { name: "GH_TOKEN".into() },
        };
        assert_eq!(e.to_string(), "MCP server 'gh': secret GH_TOKEN could not be read");
        assert_eq!(
            error_chain(&e),
            "MCP server 'gh': secret GH_TOKEN could not be read: secret GH_TOKEN is not set"
        );

        let invalid = http::HeaderValue::from_str("line\nbreak").expect_err("invalid");
        let e = McpError::Header {
            server: "gh".into(),
            source: HeaderError::Value { header: "Authorization".into(), source: invalid },
        };
        assert_eq!(e.to_string(), "MCP server 'gh' failed");
        assert_eq!(
            error_chain(&e),
            "MCP server 'gh' failed: header Authorization does not render to a valid HTTP header value: \
             failed to parse header value"
        );
    }
}
