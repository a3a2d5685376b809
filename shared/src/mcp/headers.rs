//! An MCP server's configured headers, rendered: secrets filled in, the headers the transport
//! owns (`content-type`, `accept`) left to it. Nothing here logs a value.

use std::collections::HashMap;
use std::convert::Infallible;

use secrecy::ExposeSecret;

use super::{HeaderError, McpError, McpPool};
use crate::config::McpServerConfig;

impl McpPool {
    /// Who the tool list was made for: a hash of the rendered headers (tokens included, so two
    /// tenants never share a list, and no token is ever stored).
    pub(super) async fn auth_scope(&self, cfg: &McpServerConfig) -> Result<String, McpError> {
        let headers = self.render_headers(cfg).await?;
        let mut lines: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{}:{}", k.as_str(), String::from_utf8_lossy(v.as_bytes())))
            .collect();
        lines.sort();
        Ok(crate::util::sha256_hex(lines.join("\n").as_bytes()))
    }

    /// The configured headers with their secrets filled in.
    pub(super) async fn render_headers(
        &self,
        cfg: &McpServerConfig,
    ) -> Result<HashMap<http::HeaderName, http::HeaderValue>, McpError> {
        let mut headers = HashMap::new();
        for (name, template) in &cfg.headers {
            if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("accept") {
                tracing::debug!(server = %cfg.name, header = %name, "header is set by the MCP transport; ignoring the configured value");
                continue;
            }
            let mut values = HashMap::new();
            for secret in template.secret_names() {
                let v = self.inner.secrets.get(secret).await.map_err(|source| McpError::Secret {
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
            let value = http::HeaderValue::from_str(&rendered)
                .map_err(|source| header_error(HeaderError::Value { header: name.clone(), source }))?;
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|source| header_error(HeaderError::Name { header: name.clone(), source }))?;
            headers.insert(name, value);
        }
        Ok(headers)
    }
}
