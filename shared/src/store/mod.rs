//! Shared state ports: conversation sessions, stateful tasks, the response cache, the shared MCP
//! tool catalog and per-caller rate limits, each with an in-memory adapter (the embedded default for
//! `teal serve` and tests: real, bounded and expiring) and a Redis adapter (ElastiCache).
//!
//! [`SessionStore`] keeps the history of a `session_id` so a follow-up message continues the
//! conversation. [`TaskStore`] keeps the tasks of the `tealagents/v1alpha1` API, with optimistic
//! concurrency. [`ResponseCache`] keeps finished responses by [`CacheKey`]; [`CatalogCache`]
//! keeps MCP `tools/list` results across containers with stale-while-revalidate; [`RateLimiter`]
//! admits requests per API key (a token bucket and daily budgets); [`TokenStore`] keeps sealed OAuth tokens and leases.
//! [`Stores::build`] picks the adapters from [`StoreSettings`].
//!
//! What must not live here: HTTP, agents (beyond messages), deciding *what* is cacheable. Those
//! belong to the API. Redis failures are bounded by a short timeout: the cache, the catalog and
//! the rate limiter degrade (miss / miss / allow) with a warning and a `RedisBypass` metric,
//! sessions and tasks fail with [`StoreError::Unavailable`] (tasks wrap it in
//! [`TaskStoreError::Unavailable`]).

mod build;
mod cache;
mod catalog;
mod memory;
mod ratelimit;
mod redis;
mod switch;
mod tasks;
mod tokens;

pub(crate) use self::redis::redact_url;
pub use self::redis::{
    KeyDump, KeyKind, KeyRead, KeyValue, RedisCatalogCache, RedisConnection, RedisRateLimiter,
    RedisResponseCache, RedisSessionStore, RedisSettings, RedisSwitchStore, RedisTaskStore, RedisTokenStore,
    RestoreCounts,
};
pub use build::{StoreSettings, Stores};
pub use cache::{CacheKey, CachePut, CacheSettings, MemoryResponseCache, ResponseCache, canonical_json};
pub use catalog::{
    CatalogCache, CatalogEntry, CatalogKey, CatalogLookup, CatalogSettings, MemoryCatalogCache,
    lookup_catalog,
};
pub use memory::MemorySessionStore;
pub use ratelimit::{
    Admission, DailyBudget, DailyBudgets, MemoryRateLimiter, Outcome, RateLimitSettings, RateLimiter,
};
pub use switch::{MAX_SWITCHES, MemorySwitchStore, SwitchStore};
pub use tasks::{
    AgentTask, DEFAULT_MAX_TASK_BYTES, MemoryTaskStore, RequestId, TaskContent, TaskId, TaskItem, TaskRole,
    TaskStatus, TaskStore, TaskStoreError,
};
pub use tokens::{MemoryTokenStore, TokenStore};

use crate::llm::Message;

/// Why an id was refused: it must be 1-128 characters of `[A-Za-z0-9._:-]` (a UUID fits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'")]
pub struct InvalidId;

/// Declares an id type that can only hold a valid id: built by `parse` (or `generate`), and
/// deserialised through the same check, so the rest of the code trusts it (and can put it in a
/// Redis key).
macro_rules! validated_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                Self::try_from(s.to_owned())
            }

            /// A fresh random id (UUID v4).
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(s: String) -> Result<Self, InvalidId> {
                let ok_len = !s.is_empty() && s.len() <= 128;
                let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
                if ok_len && ok_chars { Ok(Self(s)) } else { Err(InvalidId) }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use validated_id;

validated_id!(
    /// A validated session id: 1–128 characters of `[A-Za-z0-9._:-]`.
    SessionId
);

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
        // Deserialising goes through the same check.
        assert!(serde_json::from_str::<SessionId>(r#""has space""#).is_err());
        let id: SessionId = serde_json::from_str(r#""s-1""#).expect("valid");
        assert_eq!(serde_json::to_string(&id).expect("json"), r#""s-1""#);
    }
}
