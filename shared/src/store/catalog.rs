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

/// Which catalog: a server URL and the auth scope the list was made with (a hash of the
/// credential: two tenants with different tokens may see different tools), or the URL alone for
/// a list the server said is public. Stored as a hex SHA-256, so neither the URL nor the scope
/// appears in Redis key names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CatalogKey(String);

impl CatalogKey {
    /// The list `server_url` gave to the credential whose hash is `auth_scope`.
    pub fn new(server_url: &str, auth_scope: &str) -> Self {
        Self::hashed(b"teal-tool-catalog-v1\0", server_url, auth_scope)
    }

    /// The list `server_url` marked `cacheScope: public`: the same for every caller.
    pub fn public(server_url: &str) -> Self {
        Self::hashed(b"teal-tool-catalog-public-v1\0", server_url, "")
    }

    /// What `server_url` is known to speak (an entry without tools; see [`CatalogEntry::protocol`]).
    pub fn server(server_url: &str) -> Self {
        Self::hashed(b"teal-mcp-server-v1\0", server_url, "")
    }

    fn hashed(domain: &[u8], server_url: &str, auth_scope: &str) -> Self {
        let mut h = Sha256::new();
        h.update(domain);
        h.update((server_url.len() as u64).to_be_bytes());
        h.update(server_url.as_bytes());
        h.update(auth_scope.as_bytes());
        Self(crate::util::hex(&h.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One server's `tools/list` result: the tools as MCP sent them (JSON objects), when, how long
/// the server said it may be reused, and which protocol revision the server spoke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub tools: Vec<serde_json::Value>,
    pub fetched_at_unix_ms: u64,
    /// The revision the server answered in (`2026-07-28`, `2025-11-25`, …), so a container that
    /// reads this entry reaches the server without probing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The server's `ttlMs` for this list; `None`: it gave none (`TA_CATALOG_TTL` applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

impl CatalogEntry {
    /// `tools` as listed now.
    pub fn new(tools: Vec<serde_json::Value>, protocol: Option<String>, ttl_ms: Option<u64>) -> Self {
        Self { tools, fetched_at_unix_ms: unix_ms(), protocol, ttl_ms }
    }

    /// Time since the list was fetched (zero if the clock went backwards).
    pub fn age(&self) -> Duration {
        Duration::from_millis(unix_ms().saturating_sub(self.fetched_at_unix_ms))
    }

    /// How long the list is fresh: the server's `ttlMs`, else `default`.
    pub fn fresh_for(&self, default: Duration) -> Duration {
        self.ttl_ms.map_or(default, Duration::from_millis)
    }

    pub fn is_fresh(&self, default: Duration) -> bool {
        self.age() < self.fresh_for(default)
    }
}

/// Tool lists by server and auth scope, shared across containers.
#[async_trait::async_trait]
pub trait CatalogCache: Send + Sync {
    /// The entry, fresh or stale, while it is kept.
    async fn get(&self, key: &CatalogKey) -> Result<Option<CatalogEntry>, StoreError>;
    /// The entries of `keys`, in order, in one round trip where the backend can.
    async fn get_many(&self, keys: &[CatalogKey]) -> Result<Vec<Option<CatalogEntry>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }
    /// Stores `entry`, kept for `keep_for`.
    async fn put(&self, key: &CatalogKey, entry: &CatalogEntry, keep_for: Duration)
    -> Result<(), StoreError>;
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

/// The stale-while-revalidate decision for the first of `keys` that holds an entry (one round
/// trip for all of them). Cache failures count as [`CatalogLookup::Missing`] (the adapter has
/// logged them).
pub async fn lookup_catalog(
    cache: &dyn CatalogCache,
    keys: &[CatalogKey],
    settings: &CatalogSettings,
) -> CatalogLookup {
    let found = match cache.get_many(keys).await {
        Ok(entries) => keys.iter().zip(entries).find_map(|(k, e)| e.map(|e| (k, e))),
        Err(_) => None,
    };
    match found {
        Some((_, entry)) if entry.is_fresh(settings.fresh_for) => CatalogLookup::Fresh(entry),
        Some((key, entry)) => {
            // If the lock cannot be taken because the cache just failed, refreshing is the safe
            // side: the result is only a `put`.
            let refresh = cache.try_lock_refresh(key, settings.refresh_lease).await.unwrap_or(true);
            CatalogLookup::Stale { entry, refresh }
        }
        None => CatalogLookup::Missing,
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
        entry: &CatalogEntry,
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
        inner.entries.insert(key.clone(), (entry.clone(), now + keep_for));
        Ok(())
    }

    async fn try_lock_refresh(&self, key: &CatalogKey, lease: Duration) -> Result<bool, StoreError> {
        Ok(super::tokens::take_lease(&mut self.inner.lock().await.locks, key.clone(), lease))
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
        let keys = [key.clone()];
        assert_eq!(lookup_catalog(&cache, &keys, &settings).await, CatalogLookup::Missing);
        let entry = CatalogEntry::new(vec![json!({"name": "read"})], None, None);
        cache.put(&key, &entry, settings.keep_for).await.expect("put");
        let CatalogLookup::Fresh(e) = lookup_catalog(&cache, &keys, &settings).await else {
            panic!("fresh expected")
        };
        assert_eq!(e.tools, [json!({"name": "read"})]);

        let stale = CatalogSettings { fresh_for: Duration::ZERO, ..settings.clone() };
        let first = lookup_catalog(&cache, &keys, &stale).await;
        let second = lookup_catalog(&cache, &keys, &stale).await;
        assert!(matches!(first, CatalogLookup::Stale { refresh: true, .. }), "{first:?}");
        assert!(matches!(second, CatalogLookup::Stale { refresh: false, .. }), "{second:?}");

        // Another scope is another catalog.
        let other = CatalogKey::new("http://mcp:8080/mcp", "scope-b");
        assert_ne!(other, key);
        assert_eq!(cache.get(&other).await.expect("get"), None);
    }

    #[tokio::test]
    async fn a_server_ttl_overrides_the_default_and_the_first_key_found_wins() {
        let cache = MemoryCatalogCache::default();
        let url = "http://mcp:8080/mcp";
        let (private, public) = (CatalogKey::new(url, "scope-a"), CatalogKey::public(url));
        assert_ne!(public, CatalogKey::server(url));
        let settings = CatalogSettings::default();
        let short = CatalogEntry::new(vec![json!({"name": "public"})], Some("2026-07-28".into()), Some(0));
        cache.put(&public, &short, settings.keep_for).await.expect("put");
        let keys = [private.clone(), public.clone()];
        let CatalogLookup::Stale { entry, refresh: true } = lookup_catalog(&cache, &keys, &settings).await
        else {
            panic!("ttlMs 0 is never fresh, whatever TA_CATALOG_TTL says")
        };
        assert_eq!(entry.protocol.as_deref(), Some("2026-07-28"));
        let own = CatalogEntry::new(vec![json!({"name": "private"})], None, None);
        cache.put(&private, &own, settings.keep_for).await.expect("put");
        let CatalogLookup::Fresh(entry) = lookup_catalog(&cache, &keys, &settings).await else {
            panic!("fresh expected")
        };
        assert_eq!(entry.tools, [json!({"name": "private"})], "the caller's own list comes first");
        // Entries written before these fields existed still read.
        let old: CatalogEntry = serde_json::from_str(r#"{"tools":[],"fetched_at_unix_ms":1}"#).expect("old");
        assert_eq!((old.protocol, old.ttl_ms), (None, None));
    }
}
