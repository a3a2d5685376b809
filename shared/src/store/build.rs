//! Choosing the store adapters once per process: Redis when `TA_REDIS_URL` is set, in-memory
//! otherwise.

use std::sync::Arc;
use std::time::Duration;

use super::{
    CacheSettings, CatalogCache, CatalogSettings, DailyBudgets, MemoryCatalogCache, MemoryRateLimiter,
    MemoryResponseCache, MemorySessionStore, MemoryTaskStore, MemoryTokenStore, RateLimitSettings,
    RateLimiter, RedisCatalogCache, RedisConnection, RedisRateLimiter, RedisResponseCache, RedisSessionStore,
    RedisSettings, RedisSwitchStore, RedisTaskStore, RedisTokenStore, ResponseCache, SessionStore,
    SwitchStore, TaskStore, TokenStore,
};
use crate::secrets::SecretStore;
use crate::settings::SettingsError;

/// Total size of the tasks the in-memory adapter keeps (local runs).
const MEMORY_TASK_BYTES: usize = 64 << 20;

/// Every store setting, read once at start.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `TA_REDIS_*`; `None` (no `TA_REDIS_URL`) selects the in-memory adapters.
    pub redis: Option<RedisSettings>,
    pub cache: CacheSettings,
    pub catalog: CatalogSettings,
    /// `TA_RATE_LIMIT_*`; `None` is unlimited.
    pub rate_limit: Option<RateLimitSettings>,
    /// `TA_DAILY_REQUEST_BUDGET`, `TA_DAILY_TOKEN_BUDGET`: per caller per UTC day.
    pub daily: DailyBudgets,
    /// `TA_SESSION_TTL` seconds (default 3600).
    pub session_ttl: Duration,
}

impl StoreSettings {
    /// Whether requests are admitted through a limiter (a rate limit or a daily budget is set).
    pub fn limits(&self) -> bool {
        self.rate_limit.is_some() || self.daily.any()
    }
}

/// The chosen adapters, to put in `AppState`.
#[derive(Clone)]
pub struct Stores {
    pub sessions: Arc<dyn SessionStore>,
    /// Stateful tasks (`tealagents/v1alpha1`), expiring like sessions.
    pub tasks: Arc<dyn TaskStore>,
    pub cache: Arc<dyn ResponseCache>,
    pub catalog: Arc<dyn CatalogCache>,
    /// Sealed OAuth tokens and flows in flight.
    pub tokens: Arc<dyn TokenStore>,
    /// `None`: no rate limit and no daily budget configured.
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    /// The kill switches: only with Redis (a process alone has nobody to be told by).
    pub switches: Option<Arc<dyn SwitchStore>>,
    /// The shared connection when Redis is used (for `/ready` and tests).
    pub redis: Option<RedisConnection>,
}

impl Stores {
    /// Redis adapters sharing one connection when `settings.redis` is set (the AUTH token is read
    /// from `secrets`; Redis itself is connected in the background), in-memory ones otherwise.
    pub async fn build(
        settings: &StoreSettings,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Self, SettingsError> {
        let Some(redis) = &settings.redis else {
            return Ok(Self::memory(settings));
        };
        let conn = RedisConnection::connect(redis, secrets).await?;
        Ok(Self {
            sessions: Arc::new(RedisSessionStore::new(conn.clone(), settings.session_ttl)),
            tasks: Arc::new(RedisTaskStore::new(conn.clone(), settings.session_ttl)),
            cache: Arc::new(RedisResponseCache::new(conn.clone(), settings.cache.max_entry_bytes)),
            catalog: Arc::new(RedisCatalogCache::new(conn.clone())),
            tokens: Arc::new(RedisTokenStore::new(conn.clone())),
            rate_limiter: settings.limits().then(|| {
                Arc::new(RedisRateLimiter::new(conn.clone(), settings.rate_limit, settings.daily))
                    as Arc<dyn RateLimiter>
            }),
            switches: Some(Arc::new(RedisSwitchStore::new(conn.clone()))),
            redis: Some(conn),
        })
    }

    /// The in-memory adapters (local runs, tests).
    pub fn memory(settings: &StoreSettings) -> Self {
        Self {
            sessions: Arc::new(MemorySessionStore::new(
                settings.session_ttl,
                super::memory::DEFAULT_MEMORY_SESSION_BYTES,
            )),
            tasks: Arc::new(MemoryTaskStore::new(settings.session_ttl, MEMORY_TASK_BYTES)),
            cache: Arc::new(MemoryResponseCache::new(1024, settings.cache.max_entry_bytes)),
            catalog: Arc::new(MemoryCatalogCache::default()),
            tokens: Arc::new(MemoryTokenStore::default()),
            rate_limiter: settings.limits().then(|| {
                Arc::new(MemoryRateLimiter::new(settings.rate_limit, settings.daily)) as Arc<dyn RateLimiter>
            }),
            switches: None,
            redis: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Env, Settings};

    #[tokio::test]
    async fn memory_adapters_without_a_redis_url() {
        let s = Settings::read(&Env::from_pairs([("TA_RATE_LIMIT_RPS", "5")])).expect("ok").stores;
        let stores = Stores::build(&s, Arc::new(crate::secrets::EnvSecretStore::new())).await.expect("built");
        assert_eq!(stores.sessions.backend(), "memory");
        assert_eq!(stores.tasks.backend(), "memory");
        assert_eq!(stores.cache.backend(), "memory");
        assert_eq!(stores.catalog.backend(), "memory");
        assert_eq!(stores.rate_limiter.as_ref().map(|r| r.backend()), Some("memory"));
        assert!(stores.redis.is_none());
    }
}
