//! Each server's tool catalog: listed with `tools/list` and namespaced, kept for the server's
//! `ttlMs` when it gives one (else the catalog TTL); and, when configured, shared with other
//! containers through a [`CatalogCache`].
//!
//! Owns when a server is listed again and how a shared entry is read and written: a list the
//! server marks `cacheScope: public` is shared by every caller, any other list only by callers
//! with the same credential (the hash of the rendered headers), and a `ttlMs` of 0 is never
//! stored. It must not build an agent's tool set (see `tools`) nor know how a session is set up
//! (see `connect`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::CacheScope;
use rmcp::service::ServiceError;

use super::convert::tool_spec;
use super::headers::Headers;
use super::pool::ServerConn;
use super::revision;
use super::{McpError, McpPool};
use crate::config::McpServerConfig;
use crate::llm::ToolSpec;
use crate::store::{CatalogCache, CatalogEntry, CatalogKey, CatalogLookup, CatalogSettings, lookup_catalog};
use crate::telemetry::metrics;

pub(super) struct SharedCatalog {
    pub(super) cache: Arc<dyn CatalogCache>,
    pub(super) settings: CatalogSettings,
}

/// One server's tools as listed (every one: each agent applies its own allow/deny), namespaced,
/// since when and for how long. Shared by every request until it is stale; a new list is a new
/// `Catalog` (which is how an agent's cached tool set knows it is out of date).
pub(super) struct Catalog {
    fetched: Instant,
    fresh_for: Duration,
    pub(super) tools: Vec<CatalogTool>,
}

/// One tool: its spec for the LLM (namespaced name) and its name on the server.
pub(super) struct CatalogTool {
    pub(super) spec: ToolSpec,
    pub(super) name: String,
}

/// A `tools/list` result, every page: the tools, the server's cache hints, its revision.
pub(super) struct Listed {
    tools: Vec<rmcp::model::Tool>,
    ttl_ms: Option<u64>,
    public: bool,
    protocol: Option<String>,
}

impl McpPool {
    /// `conn`'s catalog: the cached one while fresh, else listed again (from the shared catalog
    /// when configured).
    pub(super) async fn catalog(&self, conn: &Arc<ServerConn>) -> Result<Arc<Catalog>, McpError> {
        let mut cached = conn.catalog.lock().await;
        if let Some(c) = cached.as_ref()
            && c.fetched.elapsed() < c.fresh_for
        {
            return Ok(c.clone());
        }
        let (listed, age, ttl_ms) = self.shared_or_list(conn).await?;
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
        let fresh_for = ttl_ms.map_or(self.inner.settings.catalog_ttl, Duration::from_millis);
        let catalog = Arc::new(Catalog { fetched, fresh_for, tools });
        *cached = Some(catalog.clone());
        Ok(catalog)
    }

    /// The server's tools from the shared catalog when it has them (with their age and the
    /// server's `ttlMs`), else listed from the server and shared. A stale shared entry is used
    /// at once; the caller holding the refresh lease lists the server in the background.
    async fn shared_or_list(
        &self,
        conn: &Arc<ServerConn>,
    ) -> Result<(Vec<rmcp::model::Tool>, Duration, Option<u64>), McpError> {
        let Some(shared) = &self.inner.shared else {
            metrics::catalog_lookup(&conn.cfg.name, "miss");
            let listed = self.list(conn, None).await?;
            return Ok((listed.tools, Duration::ZERO, listed.ttl_ms));
        };
        // Rendered once: for the scope now, and to connect with if the server must be listed.
        let headers = self.render_headers(conn).await?;
        let url = conn.cfg.url.as_str();
        let keys = [CatalogKey::new(url, &headers.scope()), CatalogKey::public(url)];
        let lookup = lookup_catalog(shared.cache.as_ref(), &keys, &shared.settings).await;
        let result = match &lookup {
            CatalogLookup::Fresh(_) => "hit",
            CatalogLookup::Stale { .. } => "stale",
            CatalogLookup::Missing => "miss",
        };
        metrics::catalog_lookup(&conn.cfg.name, result);
        let entry = match lookup {
            CatalogLookup::Fresh(entry) => entry,
            CatalogLookup::Stale { entry, refresh } => {
                if refresh {
                    let (pool, conn, headers) = (self.clone(), conn.clone(), headers.clone());
                    tokio::spawn(async move { pool.list_and_share(&conn, &headers).await });
                }
                entry
            }
            CatalogLookup::Missing => {
                let listed = self.list_and_share(conn, &headers).await?;
                return Ok((listed.tools, Duration::ZERO, listed.ttl_ms));
            }
        };
        let tools: Vec<rmcp::model::Tool> =
            entry.tools.iter().filter_map(|t| serde_json::from_value(t.clone()).ok()).collect();
        if tools.len() != entry.tools.len() {
            tracing::warn!(server = %conn.cfg.name, "shared catalog entry unreadable; listing the server");
            let listed = self.list_and_share(conn, &headers).await?;
            return Ok((listed.tools, Duration::ZERO, listed.ttl_ms));
        }
        // The revision it was listed in: this container then reaches the server without a probe.
        if let Some(v) = entry.protocol.as_deref().and_then(revision::parse)
            && self.inner.revisions.get(url, Duration::MAX) == revision::Known::Nothing
        {
            self.learn_revision(&conn.cfg, v, entry.age(), false).await;
        }
        Ok((tools, entry.age(), entry.ttl_ms))
    }

    async fn list_and_share(&self, conn: &Arc<ServerConn>, headers: &Headers) -> Result<Listed, McpError> {
        let listed = self.list(conn, Some(headers)).await?;
        if let Some(shared) = &self.inner.shared
            && listed.ttl_ms != Some(0)
        {
            let url = conn.cfg.url.as_str();
            let key =
                if listed.public { CatalogKey::public(url) } else { CatalogKey::new(url, &headers.scope()) };
            let json: Vec<serde_json::Value> =
                listed.tools.iter().filter_map(|t| serde_json::to_value(t).ok()).collect();
            let entry = CatalogEntry::new(json, listed.protocol.clone(), listed.ttl_ms);
            let keep_for = shared.settings.keep_for.max(Duration::from_millis(listed.ttl_ms.unwrap_or(0)));
            // Failures are logged by the adapter; the next container lists the server itself.
            let _ = shared.cache.put(&key, &entry, keep_for).await;
        }
        Ok(listed)
    }

    /// `tools/list`, every page. `headers`: already rendered, if a session must be set up.
    async fn list(&self, conn: &Arc<ServerConn>, headers: Option<&Headers>) -> Result<Listed, McpError> {
        let listed = self
            .with_client(conn, headers, |live| async move {
                let merged = live.list_all_tools_with_cache_hint().await?;
                let protocol = live.peer_info().map(|info| info.protocol_version.as_str().to_owned());
                Ok((merged, protocol))
            })
            .await?;
        match listed {
            Ok((merged, protocol)) => Ok(Listed {
                tools: merged.items,
                ttl_ms: merged.ttl_ms,
                public: merged.cache_scope == Some(CacheScope::Public),
                protocol,
            }),
            Err(e) => {
                Err(McpError::Protocol { server: conn.cfg.name.clone(), source: ServiceError::McpError(e) })
            }
        }
    }

    /// A real round trip to `cfg`'s server (an uncached `tools/list`), for `/ready`. A server
    /// with per-user OAuth cannot be listed without a caller: its authorization server's
    /// metadata is checked instead (0 tools).
    pub async fn check(&self, cfg: &McpServerConfig) -> Result<usize, McpError> {
        if super::authorize::per_user(cfg) {
            return self.check_authorization(cfg).await.map(|()| 0);
        }
        let conn = self.conn(cfg);
        let n = self.list(&conn, None).await?.tools.len();
        Ok(n)
    }
}
