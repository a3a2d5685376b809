//! Shared state ports: conversation sessions, the response cache, the shared MCP tool catalog
//! and per-caller rate limits, each with an in-memory adapter (the embedded default for
//! `teal serve` and tests: real, bounded and expiring) and a Redis adapter (ElastiCache).
//!
//! [`SessionStore`] keeps the history of a `session_id` so a follow-up message continues the
//! conversation. [`ResponseCache`] keeps finished responses by [`CacheKey`]; [`CatalogCache`]
//! keeps MCP `tools/list` results across containers with stale-while-revalidate; [`RateLimiter`]
//! is a token bucket per API key. [`Stores::build`] picks the adapters from [`StoreSettings`].
//!
//! What must not live here: HTTP, agents (beyond messages), deciding *what* is cacheable. Those
//! belong to the API. Redis failures are bounded by a short timeout: the cache, the catalog and
//! the rate limiter degrade (miss / miss / allow) with a warning and a `RedisBypass` metric,
//! sessions fail with [`StoreError::Unavailable`].

mod build;
mod cache;
mod catalog;
mod memory;
pub mod metrics;
mod ratelimit;
mod redis;

pub(crate) use self::redis::redact_url;
pub use self::redis::{
    RedisCatalogCache, RedisConnection, RedisRateLimiter, RedisResponseCache, RedisSessionStore,
    RedisSettings,
};
pub use build::{StoreSettings, Stores};
pub use cache::{CacheKey, CachePut, CacheSettings, MemoryResponseCache, ResponseCache, canonical_json};
pub use catalog::{
    CatalogCache, CatalogEntry, CatalogKey, CatalogLookup, CatalogSettings, MemoryCatalogCache,
    lookup_catalog,
};
pub use memory::MemorySessionStore;
pub use ratelimit::{MemoryRateLimiter, RateDecision, RateLimitSettings, RateLimiter};

use crate::llm::Message;

/// A validated session id: 1–128 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_len = !s.is_empty() && s.len() <= 128;
        let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if ok_len && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'".to_owned())
        }
    }

    /// A fresh random id (UUID v4).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why the session store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Conversation history per session.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// The stored history, oldest first (empty for an unknown session).
    async fn load(&self, id: &SessionId) -> Result<Vec<Message>, StoreError>;
    /// Appends messages atomically: concurrent appends to one session all land.
    async fn append(&self, id: &SessionId, messages: &[Message]) -> Result<(), StoreError>;
    /// A real round trip to the backend, for `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Short name of the backend, e.g. "memory" or "redis".
    fn backend(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_parsed_not_trusted() {
        assert!(SessionId::parse("abc-DEF_1.2:3").is_ok());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse("has space").is_err());
        assert!(SessionId::parse(&"x".repeat(129)).is_err());
        assert_ne!(SessionId::generate(), SessionId::generate());
    }
}
