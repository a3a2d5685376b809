//! The shared tool catalog in Redis: the entry as JSON under `{p}catalog:{key}` (kept for
//! `keep_for`), the refresh lease under `{p}catalog-lock:{key}` (`SET NX PX`).

use std::time::Duration;

use super::{OnError, RedisConnection, ttl_ms};
use crate::store::{CatalogCache, CatalogEntry, CatalogKey, StoreError};

pub struct RedisCatalogCache {
    conn: RedisConnection,
}

impl RedisCatalogCache {
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn }
    }
}

#[async_trait::async_trait]
impl CatalogCache for RedisCatalogCache {
    async fn get(&self, key: &CatalogKey) -> Result<Option<CatalogEntry>, StoreError> {
        let k = self.conn.key("catalog", key.as_str());
        let raw: Option<Vec<u8>> = self
            .conn
            .run("catalog_get", OnError::Bypass, |mut c| async move {
                ::redis::cmd("GET").arg(&k).query_async(&mut c).await
            })
            .await?;
        Ok(raw.and_then(|bytes| parse(&bytes)))
    }

    async fn get_many(&self, keys: &[CatalogKey]) -> Result<Vec<Option<CatalogEntry>>, StoreError> {
        let ks: Vec<String> = keys.iter().map(|k| self.conn.key("catalog", k.as_str())).collect();
        let raw: Vec<Option<Vec<u8>>> = self
            .conn
            .run("catalog_mget", OnError::Bypass, |mut c| async move {
                ::redis::cmd("MGET").arg(&ks).query_async(&mut c).await
            })
            .await?;
        Ok(raw.into_iter().map(|bytes| bytes.and_then(|b| parse(&b))).collect())
    }

    async fn put(
        &self,
        key: &CatalogKey,
        entry: &CatalogEntry,
        keep_for: Duration,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry)
            .map_err(|e| StoreError::Unavailable(format!("catalog not serialisable: {e}")))?;
        let k = self.conn.key("catalog", key.as_str());
        self.conn
            .run("catalog_put", OnError::Bypass, |mut c| async move {
                ::redis::cmd("SET")
                    .arg(&k)
                    .arg(bytes)
                    .arg("PX")
                    .arg(ttl_ms(keep_for))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    async fn try_lock_refresh(&self, key: &CatalogKey, lease: Duration) -> Result<bool, StoreError> {
        let k = self.conn.key("catalog-lock", key.as_str());
        let token = uuid::Uuid::new_v4().to_string();
        let set: Option<String> = self
            .conn
            .run("catalog_lock", OnError::Bypass, |mut c| async move {
                ::redis::cmd("SET")
                    .arg(&k)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(lease))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping().await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// An entry as stored; one written by another version is a miss, overwritten by the next `put`.
fn parse(bytes: &[u8]) -> Option<CatalogEntry> {
    match serde_json::from_slice(bytes) {
        Ok(entry) => Some(entry),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable tool catalog entry in Redis; treating it as a miss");
            None
        }
    }
}
