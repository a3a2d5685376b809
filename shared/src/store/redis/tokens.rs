//! The OAuth token store in Redis: sealed records under `{p}oauth:{key}` (kept for their
//! lifetime), leases under `{p}oauth-lease:{key}` (`SET NX PX`, deleted when given back).
//! Failures surface (the OAuth layer turns them into a clear error or a fresh token request).

use std::time::Duration;

use super::{OnError, RedisConnection, ttl_ms};
use crate::store::{StoreError, TokenStore};

pub struct RedisTokenStore {
    conn: RedisConnection,
}

impl RedisTokenStore {
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn }
    }
}

#[async_trait::async_trait]
impl TokenStore for RedisTokenStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = self.conn.key("oauth", key);
        self.conn
            .run("oauth_get", OnError::Surface, |mut c| async move {
                ::redis::cmd("GET").arg(&k).query_async(&mut c).await
            })
            .await
    }

    async fn put(&self, key: &str, sealed: &[u8], keep_for: Duration) -> Result<(), StoreError> {
        let k = self.conn.key("oauth", key);
        let v = sealed.to_vec();
        self.conn
            .run("oauth_put", OnError::Surface, |mut c| async move {
                ::redis::cmd("SET")
                    .arg(&k)
                    .arg(v)
                    .arg("PX")
                    .arg(ttl_ms(keep_for))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let k = self.conn.key("oauth", key);
        self.conn
            .run("oauth_delete", OnError::Surface, |mut c| async move {
                ::redis::cmd("DEL").arg(&k).query_async::<()>(&mut c).await
            })
            .await
    }

    async fn try_lease(&self, key: &str, lease: Duration) -> Result<bool, StoreError> {
        let k = self.conn.key("oauth-lease", key);
        let set: Option<String> = self
            .conn
            .run("oauth_lease", OnError::Surface, |mut c| async move {
                ::redis::cmd("SET")
                    .arg(&k)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(lease))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let k = self.conn.key("oauth-lease", key);
        self.conn
            .run("oauth_release", OnError::Surface, |mut c| async move {
                ::redis::cmd("DEL").arg(&k).query_async::<()>(&mut c).await
            })
            .await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
