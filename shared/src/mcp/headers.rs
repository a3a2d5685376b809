//! An MCP server's configured headers, rendered: secrets filled in, the headers the transport
//! owns (`content-type`, `accept`) left to it.
//!
//! Rendering reads secrets, so it happens only when a session is set up or a shared catalog
//! needs the auth scope, and a catalog refresh that needs both renders once and passes the
//! result on. Nothing here logs or displays a value.

use std::collections::HashMap;
use std::convert::Infallible;

use http::{HeaderName, HeaderValue};
use secrecy::ExposeSecret;

use super::{HeaderError, McpError};
use crate::config::McpServerConfig;
use crate::secrets::SecretStore;

/// The headers sent to one server, secrets included (hence no `Debug`), and, for an OAuth
/// server, whose credential they stand for (its token is added when a client is made).
#[derive(Clone)]
pub(super) struct Headers(HashMap<HeaderName, HeaderValue>, Option<String>);

impl Headers {
    /// `cfg`'s headers with their secrets read from `secrets`.
    pub(super) async fn render(cfg: &McpServerConfig, secrets: &dyn SecretStore) -> Result<Self, McpError> {
        let mut headers = HashMap::new();
        for (name, template) in &cfg.headers {
            if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("accept") {
                tracing::debug!(server = %cfg.name, header = %name, "header is set by the MCP transport; ignoring the configured value");
                continue;
            }
            let mut values = HashMap::new();
            for secret in template.secret_names() {
                let v = secrets.get(secret).await.map_err(|source| McpError::Secret {
                    server: cfg.name.clone(),
                    secret: secret.to_owned(),
                    source,
                })?;
                values.insert(secret, v);
            }
            // Every secret the template names was read above.
            let Ok(rendered) = template
                .render(|n| Ok::<_, Infallible>(values.get(n).map_or("", |v| v.expose_secret()).to_owned()));
            let header_error = |source| McpError::Header { server: cfg.name.clone(), source };
            let value = HeaderValue::from_str(&rendered)
                .map_err(|source| header_error(HeaderError::Value { header: name.clone(), source }))?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|source| header_error(HeaderError::Name { header: name.clone(), source }))?;
            headers.insert(name, value);
        }
        Ok(Self(headers, None))
    }

    /// The credential these headers stand for, when it is not in them (an OAuth token).
    pub(super) fn with_identity(mut self, identity: String) -> Self {
        self.1 = Some(identity);
        self
    }

    /// Adds the `Authorization: Bearer` of an OAuth token.
    pub(super) fn with_bearer(
        mut self,
        token: &secrecy::SecretString,
    ) -> Result<Self, http::header::InvalidHeaderValue> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))?;
        value.set_sensitive(true);
        self.0.insert(http::header::AUTHORIZATION, value);
        Ok(self)
    }

    /// Who a tool list is made for: a hash of the rendered headers (tokens included, so two
    /// tenants never share a list, and no token is ever stored).
    pub(super) fn scope(&self) -> String {
        if let Some(identity) = &self.1 {
            return crate::util::sha256_hex(format!("oauth\0{identity}").as_bytes());
        }
        let mut lines: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{}", k.as_str(), String::from_utf8_lossy(v.as_bytes())))
            .collect();
        lines.sort();
        crate::util::sha256_hex(lines.join("\n").as_bytes())
    }

    pub(super) fn into_map(self) -> HashMap<HeaderName, HeaderValue> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_documents;
    use crate::secrets::EnvSecretStore;

    fn server(headers: &str) -> McpServerConfig {
        let yaml = format!(
            "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: t\nversion: 1\nspec:\n  agent:\n    model: m\n    \
             system_prompt: s\n    mcp_servers:\n      - name: gh\n        url: http://127.0.0.1:1/mcp\n        \
             headers:\n{headers}"
        );
        parse_documents("test", &yaml).expect("agent").agents.remove(0).agents[0].mcp_servers[0].clone()
    }

    async fn render(cfg: &McpServerConfig, token: &str) -> Result<Headers, McpError> {
        Headers::render(cfg, &EnvSecretStore::new().with("TEAL_HEADERS_TEST_TOKEN", token)).await
    }

    #[tokio::test]
    async fn secrets_are_filled_in_and_transport_headers_left_to_the_transport() {
        let cfg = server(
            "          Authorization: \"Bearer ${secret:TEAL_HEADERS_TEST_TOKEN}\"\n          \
             Content-Type: text/plain\n          X-Team: blue\n",
        );
        let map = render(&cfg, "t0k3n").await.expect("rendered").into_map();
        assert_eq!(map.len(), 2, "content-type is the transport's");
        assert_eq!(map[&http::header::AUTHORIZATION], "Bearer t0k3n");
        assert_eq!(map[&HeaderName::from_static("x-team")], "blue");
    }

    #[tokio::test]
    async fn the_scope_depends_on_the_token_not_on_the_order() {
        let ab = server("          A: \"${secret:TEAL_HEADERS_TEST_TOKEN}\"\n          B: b\n");
        let ba = server("          B: b\n          A: \"${secret:TEAL_HEADERS_TEST_TOKEN}\"\n");
        let scope = |h: Headers| h.scope();
        assert_eq!(
            scope(render(&ab, "one").await.expect("ab")),
            scope(render(&ba, "one").await.expect("ba"))
        );
        assert_ne!(
            scope(render(&ab, "one").await.expect("one")),
            scope(render(&ab, "two").await.expect("two"))
        );
    }

    #[tokio::test]
    async fn a_value_that_is_not_a_header_value_names_the_header_not_the_value() {
        let cfg = server("          Authorization: \"${secret:TEAL_HEADERS_TEST_TOKEN}\"\n");
        let Err(err) = render(&cfg, "bad\nvalue").await else { panic!("a newline is not a header value") };
        assert!(
            matches!(&err, McpError::Header { source: HeaderError::Value { header, .. }, .. } if header == "Authorization")
        );
        assert!(!crate::telemetry::error_chain(&err).contains("bad"), "{err:?}");
    }
}
