//! The response cache port: finished responses by agent and canonical input.
//!
//! Owns the key (a hex SHA-256 of agent name, version and the canonical JSON of the input), the
//! entry size cap and the in-memory adapter. It must not decide what is cacheable: the API
//! stores only successful, complete responses, honours `Cache-Control: no-cache` and marks hits.
//!
//! Contract for callers:
//! - `get` / `put` errors mean "Redis is unavailable": treat them as a miss / a skipped store
//!   ([`ResponseCache::lookup`] and [`ResponseCache::store`] do exactly that). The adapter has
//!   already logged a warning and emitted a `RedisBypass` metric, and returned within its timeout.
//! - Values are opaque bytes (the serialised response); entries larger than
//!   [`CacheSettings::max_entry_bytes`] are not stored ([`CachePut::TooLarge`], logged).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::StoreError;

/// Response cache settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// `TA_CACHE_MAX_ENTRY_BYTES` (default 256 KiB): bigger values are not stored.
    pub max_entry_bytes: usize,
    /// `TA_CACHE_TTL` seconds (default 3600): the TTL to use when an agent sets none.
    pub default_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { max_entry_bytes: 256 * 1024, default_ttl: Duration::from_secs(3600) }
    }
}

/// The key of one cached response: 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// SHA-256 over a version tag, the length-prefixed name and version, and
    /// [`canonical_json`] of `input` (so key order and whitespace of the request do not matter,
    /// and `("a:b","c")` never collides with `("a","b:c")`).
    pub fn new(agent_name: &str, agent_version: &str, input: &serde_json::Value) -> Self {
        let mut h = Sha256::new();
        h.update(b"teal-response-cache-v1\0");
        for part in [agent_name, agent_version] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.update(canonical_json(input).as_bytes());
        Self(crate::util::hex(&h.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// JSON with object keys sorted (by their UTF-8 bytes) at every depth and no whitespace.
/// Strings use serde_json's escaping; numbers keep their serde_json text (`1.0` stays `1.0`).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // Serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// What `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePut {
    Stored,
    /// Not stored: `size` is over the `limit` of `TA_CACHE_MAX_ENTRY_BYTES`.
    TooLarge {
        size: usize,
        limit: usize,
    },
}

/// Finished responses by key, each with its own TTL.
#[async_trait::async_trait]
pub trait ResponseCache: Send + Sync {
    /// The stored bytes, or `None` for a miss or an expired entry.
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` for `ttl`, unless it is over the size cap.
    async fn put(&self, key: &CacheKey, value: &[u8], ttl: Duration) -> Result<CachePut, StoreError>;
    /// A real round trip to the backend, for `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Short name of the backend, e.g. "memory" or "redis".
    fn backend(&self) -> &'static str;

    /// [`get`](Self::get) with failures as a miss (the adapter has logged them).
    async fn lookup(&self, key: &CacheKey) -> Option<Vec<u8>> {
        self.get(key).await.ok().flatten()
    }

    /// [`put`](Self::put) with failures ignored (the adapter has logged them).
    async fn store(&self, key: &CacheKey, value: &[u8], ttl: Duration) {
        let _ = self.put(key, value, ttl).await;
    }
}

pub(crate) fn too_large(backend: &'static str, key: &CacheKey, size: usize, limit: usize) -> CachePut {
    tracing::info!(backend, key = %key, size, limit, "response not cached: larger than TA_CACHE_MAX_ENTRY_BYTES");
    CachePut::TooLarge { size, limit }
}

struct Entry {
    value: Vec<u8>,
    expires: Instant,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<CacheKey, Entry>,
    next_seq: u64,
}

/// In-process response cache: bounded (the oldest entry is evicted past `max_entries`) and
/// expiring. The embedded default.
pub struct MemoryResponseCache {
    max_entries: usize,
    max_entry_bytes: usize,
    inner: Mutex<Inner>,
}

impl MemoryResponseCache {
    pub fn new(max_entries: usize, max_entry_bytes: usize) -> Self {
        Self { max_entries: max_entries.max(1), max_entry_bytes, inner: Mutex::new(Inner::default()) }
    }
}

impl Default for MemoryResponseCache {
    fn default() -> Self {
        Self::new(1024, CacheSettings::default().max_entry_bytes)
    }
}

#[async_trait::async_trait]
impl ResponseCache for MemoryResponseCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.inner.lock().await;
        Ok(inner.map.get(key).filter(|e| e.expires > Instant::now()).map(|e| e.value.clone()))
    }

    async fn put(&self, key: &CacheKey, value: &[u8], ttl: Duration) -> Result<CachePut, StoreError> {
        if value.len() > self.max_entry_bytes {
            return Ok(too_large("memory", key, value.len(), self.max_entry_bytes));
        }
        let mut guard = self.inner.lock().await;
        let Inner { map, next_seq } = &mut *guard;
        let now = Instant::now();
        *next_seq += 1;
        if !map.contains_key(key) && map.len() >= self.max_entries {
            map.retain(|_, e| e.expires > now);
            if map.len() >= self.max_entries
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.seq).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(key.clone(), Entry { value: value.to_vec(), expires: now + ttl, seq: *next_seq });
        Ok(CachePut::Stored)
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

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_without_whitespace() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{ "b": 1, "a": { "d": [ {"z": 1, "y": [true, null]} ], "c": "x\"\n\u00e9" }, "A": 1.0, "é": -2 }"#,
        )
        .expect("json");
        assert_eq!(
            canonical_json(&v),
            r#"{"A":1.0,"a":{"c":"x\"\né","d":[{"y":[true,null],"z":1}]},"b":1,"é":-2}"#
        );
        // Array order is meaningful and kept.
        assert_eq!(canonical_json(&json!([3, 1, 2])), "[3,1,2]");
        assert_eq!(canonical_json(&json!("s")), r#""s""#);
        assert_eq!(canonical_json(&json!({})), "{}");
    }

    #[test]
    fn cache_keys_ignore_key_order_and_separate_their_parts() {
        let a: serde_json::Value = serde_json::from_str(r#"{"x":1,"y":{"p":1,"q":2}}"#).expect("json");
        let b: serde_json::Value =
            serde_json::from_str("{\n \"y\": {\"q\":2, \"p\":1}, \"x\": 1}").expect("json");
        let k = CacheKey::new("agent", "0.1", &a);
        assert_eq!(k, CacheKey::new("agent", "0.1", &b));
        assert_eq!(k.as_str().len(), 64);
        assert!(k.as_str().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(k, CacheKey::new("agent", "0.2", &a));
        assert_ne!(k, CacheKey::new("agent", "0.1", &json!({"x": 2, "y": {"p": 1, "q": 2}})));
        assert_ne!(CacheKey::new("a:b", "c", &a), CacheKey::new("a", "b:c", &a));
        // Stable across releases (changing it invalidates every deployed cache); computed
        // independently: sha256(b"teal-response-cache-v1\0" + u64be(1) + b"n" + u64be(1) + b"v"
        // + b'{"a":[1,{"b":null,"c":"x"}]}').
        assert_eq!(
            CacheKey::new("n", "v", &json!({"a": [1, {"c": "x", "b": null}]})).as_str(),
            "654d0a1e04c6c499307eec0b0d858014666d9827a4001d6d53e7683958339844"
        );
    }

    #[tokio::test]
    async fn memory_cache_expires_caps_size_and_evicts_the_oldest() {
        let cache = MemoryResponseCache::new(2, 8);
        let k = |s: &str| CacheKey::new(s, "1", &json!(null));
        let ttl = Duration::from_secs(60);
        assert_eq!(cache.put(&k("a"), b"aaaa", ttl).await.expect("put"), CachePut::Stored);
        assert_eq!(cache.get(&k("a")).await.expect("get").as_deref(), Some(&b"aaaa"[..]));
        assert_eq!(
            cache.put(&k("big"), b"123456789", ttl).await.expect("put"),
            CachePut::TooLarge { size: 9, limit: 8 }
        );
        assert_eq!(cache.get(&k("big")).await.expect("get"), None);
        cache.put(&k("b"), b"b", ttl).await.expect("put");
        cache.put(&k("c"), b"c", ttl).await.expect("put");
        assert_eq!(cache.get(&k("a")).await.expect("get"), None, "oldest evicted");
        assert!(cache.lookup(&k("c")).await.is_some());
        cache.put(&k("gone"), b"x", Duration::ZERO).await.expect("put");
        assert_eq!(cache.get(&k("gone")).await.expect("get"), None, "expired");
    }
}
