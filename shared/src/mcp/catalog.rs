//! Each server's tool catalog: listed with `tools/list` and namespaced, kept for the
//! catalog TTL; and, when configured, shared with other containers through a [`CatalogCache`].
//!
//! Owns when a server is listed again and how a shared entry is read and written. It must not
//! build an agent's tool set (see `tools`) nor know how a session is set up (see `pool`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::service::ServiceError;

use super::convert::tool_spec;
use super::headers::Headers;
use super::pool::ServerConn;
use super::{McpError, McpPool};
use crate::config::McpServerConfig;
use crate::llm::ToolSpec;
use crate::store::{CatalogCache, CatalogKey, CatalogLookup, CatalogSettings, lookup_catalog};

pub(super) struct SharedCatalog {
    pub(super) cache: Arc<dyn CatalogCache>,
    pub(super) settings: CatalogSettings,
}

/// One server's tools as listed (every one: each agent applies its own allow/deny), namespaced,
/// and since when. Shared by every request until the TTL passes; a new list is a new `Catalog`
/// (which is how an agent's cached tool set knows it is out of date).
pub(super) struct Catalog {
    fetched: Instant,
    pub(super) tools: Vec<CatalogTool>,
}

/// One tool: its spec for the LLM (namespaced name) and its name on the server.
pub(super) struct CatalogTool {
    pub(super) spec: ToolSpec,
    pub(super) name: String,
}

impl McpPool {
    /// `conn`'s catalog: the cached one within the TTL, else listed again (from the shared
    /// catalog when configured).
    pub(super) async fn catalog(&self, conn: &Arc<ServerConn>) -> Result<Arc<Catalog>, McpError> {
        let mut cached = conn.catalog.lock().await;
        if let Some(c) = cached.as_ref()
            && c.fetched.elapsed() < self.inner.settings.catalog_ttl
        {
            return Ok(c.clone());
        }
        let (listed, age) = self.shared_or_list(conn).await?;
        let cfg = &conn.cfg;
        let tools: Vec<CatalogTool> = listed
            .iter()
            .map(|t| CatalogTool {
                spec: tool_spec(cfg.prefix_tools.then_some(cfg.name.as_str()), t),
                name: t.name.to_string(),
            })
            .collect();
        tracing::info!(server = %cfg.name, listed = tools.len(), "MCP tool catalog refreshed");
        let fetched = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let catalog = Arc::new(Catalog { fetched, tools });
        *cached = Some(catalog.clone());
        Ok(catalog)
    }

    /// The server's tools from the shared catalog when it has them (with their age), else listed
    /// from the server and shared. A stale shared entry is used at once; the caller holding the
    /// refresh lease lists the server in the background.
    async fn shared_or_list(
        &self,
        conn: &Arc<ServerConn>,
    ) -> Result<(Vec<rmcp::model::Tool>, Duration), McpError> {
        let Some(shared) = &self.inner.shared else {
            return Ok((self.list(conn, None).await?, Duration::ZERO));
        };
        // Rendered once: for the scope now, and to connect with if the server must be listed.
        let headers = Headers::render(&conn.cfg, self.inner.secrets.as_ref()).await?;
        let key = CatalogKey::new(conn.cfg.url.as_str(), &headers.scope());
        let entry = match lookup_catalog(shared.cache.as_ref(), &key, &shared.settings).await {
            CatalogLookup::Fresh(entry) => entry,
            CatalogLookup::Stale { entry, refresh } => {
                if refresh {
                    let (pool, conn, key, headers) =
                        (self.clone(), conn.clone(), key.clone(), headers.clone());
                    tokio::spawn(async move { pool.list_and_share(&conn, &key, &headers).await });
                }
                entry
            }
            CatalogLookup::Missing => {
                return Ok((self.list_and_share(conn, &key, &headers).await?, Duration::ZERO));
            }
        };
        let tools: Vec<rmcp::model::Tool> =
            entry.tools.iter().filter_map(|t| serde_json::from_value(t.clone()).ok()).collect();
        if tools.len() != entry.tools.len() {
            tracing::warn!(server = %conn.cfg.name, "shared catalog entry unreadable; listing the server");
            return Ok((self.list_and_share(conn, &key, &headers).await?, Duration::ZERO));
        }
        Ok((tools, entry.age()))
    }

    async fn list_and_share(
        &self,
        conn: &Arc<ServerConn>,
        key: &CatalogKey,
        headers: &Headers,
    ) -> Result<Vec<rmcp::model::Tool>, McpError> {
        let tools = self.list(conn, Some(headers)).await?;
        if let Some(shared) = &self.inner.shared {
            let json: Vec<serde_json::Value> =
                tools.iter().filter_map(|t| serde_json::to_value(t).ok()).collect();
            // Failures are logged by the adapter; the next container lists the server itself.
            let _ = shared.cache.put(key, &json, shared.settings.keep_for).await;
        }
        Ok(tools)
    }

    /// `tools/list`, every page. `headers`: already rendered, if a session must be set up.
    async fn list(
        &self,
        conn: &Arc<ServerConn>,
        headers: Option<&Headers>,
    ) -> Result<Vec<rmcp::model::Tool>, McpError> {
        match self.with_client(conn, headers, |client| async move { client.list_all_tools().await }).await? {
            Ok(tools) => Ok(tools),
            Err(e) => {
                Err(McpError::Protocol { server: conn.cfg.name.clone(), source: ServiceError::McpError(e) })
            }
        }
    }

    /// A real round trip to `cfg`'s server (an uncached `tools/list`), for `/ready`.
    pub async fn check(&self, cfg: &McpServerConfig) -> Result<usize, McpError> {
        let conn = self.conn(cfg);
        let n = self.list(&conn, None).await?.len();
        Ok(n)
    }
}
