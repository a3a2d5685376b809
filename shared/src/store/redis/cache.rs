//! The response cache in Redis: `SET key bytes PX ttl` / `GET key`.

use std::time::Duration;

use super::{OnError, RedisConnection, ttl_ms};
use crate::store::cache::too_large;
use crate::store::{CacheKey, CachePut, ResponseCache, StoreError};

pub struct RedisResponseCache {
    conn: RedisConnection,
    max_entry_bytes: usize,
}

impl RedisResponseCache {
    /// `max_entry_bytes` is `TA_CACHE_MAX_ENTRY_BYTES` ([`crate::store::CacheSettings`]).
    pub fn new(conn: RedisConnection, max_entry_bytes: usize) -> Self {
        Self { conn, max_entry_bytes }
    }
}

#[async_trait::async_trait]
impl ResponseCache for RedisResponseCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, StoreError> {
        let k = self.conn.key("cache", key.as_str());
        self.conn
            .run("cache_get", OnError::Bypass, |mut c| async move {
                ::redis::cmd("GET").arg(&k).query_async(&mut c).await
            })
            .await
    }

    async fn put(&self, key: &CacheKey, value: &[u8], ttl: Duration) -> Result<CachePut, StoreError> {
        if value.len() > self.max_entry_bytes {
            return Ok(too_large("redis", key, value.len(), self.max_entry_bytes));
        }
        let k = self.conn.key("cache", key.as_str());
        self.conn
            .run("cache_put", OnError::Bypass, |mut c| async move {
                ::redis::cmd("SET")
                    .arg(&k)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        Ok(CachePut::Stored)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping().await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
