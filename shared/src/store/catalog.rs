//! The shared MCP tool catalog port: `tools/list` results shared by every container, with
//! stale-while-revalidate.
//!
//! Owns the key (server URL + auth scope), the entry (the tools' JSON and when they were
//! fetched), the refresh lock and the freshness decision ([`lookup_catalog`]). It must not talk
//! MCP or filter tools: the pool lists, filters and namespaces.
//!
//! Entries are kept for [`CatalogSettings::keep_for`] (24 h) but fresh only for
//! [`CatalogSettings::fresh_for`] (`TA_CATALOG_TTL`): a stale entry is still served while the one
//! caller that won [`CatalogCache::try_lock_refresh`] lists the server again and `put`s the
//! result. The lock is a lease: it is never released, it expires, so a caller whose refresh
//! failed makes the others wait one lease before they try.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::StoreError;
use crate::util::unix_ms;

/// Catalog settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSettings {
    /// `TA_CATALOG_TTL` seconds (default 300): how long an entry is fresh.
    pub fresh_for: Duration,
    /// `TA_CATALOG_KEEP` seconds (default 86400): how long an entry is kept (served stale).
    pub keep_for: Duration,
    /// `TA_CATALOG_REFRESH_LEASE` seconds (default 30): how long one caller owns a refresh.
    pub refresh_lease: Duration,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            fresh_for: Duration::from_secs(300),
            keep_for: Duration::from_secs(24 * 3600),
            refresh_lease: Duration::from_secs(30),
        }
    }
}

/// Which catalog: a server URL and the auth scope the list was made with (a hash of the rendered
/// headers: two tenants with different tokens may see different tools). Stored as a hex SHA-256,
/// so neither the URL nor the scope appears in Redis key names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatalogKey(String);

impl CatalogKey {
    pub fn new(server_url: &str, auth_scope: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"teal-tool-catalog-v1\0");
        h.update((server_url.len() as u64).to_be_bytes());
        h.update(server_url.as_bytes());
        h.update(auth_scope.as_bytes());
        Self(crate::util::hex(&h.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One server's `tools/list` result: the tools as MCP sent them (JSON objects) and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub tools: Vec<serde_json::Value>,
    pub fetched_at_unix_ms: u64,
}

impl CatalogEntry {
    /// Time since the list was fetched (zero if the clock went backwards).
    pub fn age(&self) -> Duration {
        Duration::from_millis(unix_ms().saturating_sub(self.fetched_at_unix_ms))
    }

    pub fn is_fresh(&self, fresh_for: Duration) -> bool {
        self.age() < fresh_for
    }
}

/// Tool lists by server and auth scope, shared across containers.
#[async_trait::async_trait]
pub trait CatalogCache: Send + Sync {
    /// The entry, fresh or stale, while it is kept.
    async fn get(&self, key: &CatalogKey) -> Result<Option<CatalogEntry>, StoreError>;
    /// Stores `tools` as fetched now, kept for `keep_for`.
    async fn put(
        &self,
        key: &CatalogKey,
        tools: &[serde_json::Value],
        keep_for: Duration,
    ) -> Result<(), StoreError>;
    /// Takes the refresh lease of `key` for `lease` if nobody holds it (`SET NX PX`): `true`
    /// means "you refresh".
    async fn try_lock_refresh(&self, key: &CatalogKey, lease: Duration) -> Result<bool, StoreError>;
    /// A real round trip to the backend, for `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Short name of the backend, e.g. "memory" or "redis".
    fn backend(&self) -> &'static str;
}

/// What a caller should do with the shared catalog of one server.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogLookup {
    /// Use it.
    Fresh(CatalogEntry),
    /// Use it now. If `refresh`, this caller holds the lease: list the server and `put` (in the
    /// background, or inline if you can afford it); otherwise someone else is on it.
    Stale { entry: CatalogEntry, refresh: bool },
    /// Nothing usable (none stored, or the cache is unavailable): list the server and `put`.
    Missing,
}

/// The stale-while-revalidate decision for `key`. Cache failures count as [`CatalogLookup::Missing`]
/// (the adapter has logged them).
pub async fn lookup_catalog(
    cache: &dyn CatalogCache,
    key: &CatalogKey,
    settings: &CatalogSettings,
) -> CatalogLookup {
    match cache.get(key).await {
        Ok(Some(entry)) if entry.is_fresh(settings.fresh_for) => CatalogLookup::Fresh(entry),
        Ok(Some(entry)) => {
            // If the lock cannot be taken because the cache just failed, refreshing is the safe
            // side: the result is only a `put`.
            let refresh = cache.try_lock_refresh(key, settings.refresh_lease).await.unwrap_or(true);
            CatalogLookup::Stale { entry, refresh }
        }
        Ok(None) | Err(_) => CatalogLookup::Missing,
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CatalogKey, (CatalogEntry, Instant)>,
    locks: HashMap<CatalogKey, Instant>,
}

/// In-process catalog cache: the embedded default (one container shares with itself). Bounded:
/// past `max_entries`, expired entries and then the oldest fetch are dropped.
pub struct MemoryCatalogCache {
    max_entries: usize,
    inner: Mutex<Inner>,
}

impl MemoryCatalogCache {
    pub fn new(max_entries: usize) -> Self {
        Self { max_entries: max_entries.max(1), inner: Mutex::new(Inner::default()) }
    }
}

impl Default for MemoryCatalogCache {
    fn default() -> Self {
        Self::new(256)
    }
}

#[async_trait::async_trait]
impl CatalogCache for MemoryCatalogCache {
    async fn get(&self, key: &CatalogKey) -> Result<Option<CatalogEntry>, StoreError> {
        let inner = self.inner.lock().await;
        Ok(inner.entries.get(key).filter(|(_, until)| *until > Instant::now()).map(|(e, _)| e.clone()))
    }

    async fn put(
        &self,
        key: &CatalogKey,
        tools: &[serde_json::Value],
        keep_for: Duration,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().await;
        let now = Instant::now();
        if !inner.entries.contains_key(key) && inner.entries.len() >= self.max_entries {
            inner.entries.retain(|_, (_, until)| *until > now);
            if inner.entries.len() >= self.max_entries
                && let Some(oldest) = inner
                    .entries
                    .iter()
                    .min_by_key(|(_, (e, _))| e.fetched_at_unix_ms)
                    .map(|(k, _)| k.clone())
            {
                inner.entries.remove(&oldest);
            }
        }
        let entry = CatalogEntry { tools: tools.to_vec(), fetched_at_unix_ms: unix_ms() };
        inner.entries.insert(key.clone(), (entry, now + keep_for));
        Ok(())
    }

    async fn try_lock_refresh(&self, key: &CatalogKey, lease: Duration) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().await;
        let now = Instant::now();
        inner.locks.retain(|_, until| *until > now);
        if inner.locks.contains_key(key) {
            return Ok(false);
        }
        inner.locks.insert(key.clone(), now + lease);
        Ok(true)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn stale_entries_are_served_while_one_caller_refreshes() {
        let cache = MemoryCatalogCache::default();
        let key = CatalogKey::new("http://mcp:8080/mcp", "scope-a");
        let settings = CatalogSettings {
            fresh_for: Duration::from_secs(60),
            keep_for: Duration::from_secs(3600),
            refresh_lease: Duration::from_secs(30),
        };
        assert_eq!(lookup_catalog(&cache, &key, &settings).await, CatalogLookup::Missing);
        cache.put(&key, &[json!({"name": "read"})], settings.keep_for).await.expect("put");
        let CatalogLookup::Fresh(e) = lookup_catalog(&cache, &key, &settings).await else {
            panic!("fresh expected")
        };
        assert_eq!(e.tools, [json!({"name": "read"})]);

        let stale = CatalogSettings { fresh_for: Duration::ZERO, ..settings.clone() };
        let first = lookup_catalog(&cache, &key, &stale).await;
        let second = lookup_catalog(&cache, &key, &stale).await;
        assert!(matches!(first, CatalogLookup::Stale { refresh: true, .. }), "{first:?}");
        assert!(matches!(second, CatalogLookup::Stale { refresh: false, .. }), "{second:?}");

        // Another scope is another catalog.
        let other = CatalogKey::new("http://mcp:8080/mcp", "scope-b");
        assert_ne!(other, key);
        assert_eq!(cache.get(&other).await.expect("get"), None);
    }
}
