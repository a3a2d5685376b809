//! Sessions in Redis: one list of JSON messages per session id, expiring `ttl` after the last
//! append. An append is `RPUSH` + `PEXPIRE` in one `MULTI`, so concurrent appends all land and
//! the TTL is never lost.

use std::time::Duration;

use super::{OnError, RedisConnection, ttl_ms};
use crate::llm::Message;
use crate::store::{SessionId, SessionStore, StoreError};

pub struct RedisSessionStore {
    conn: RedisConnection,
    ttl: Duration,
}

impl RedisSessionStore {
    /// `ttl` is `TA_SESSION_TTL`.
    pub fn new(conn: RedisConnection, ttl: Duration) -> Self {
        Self { conn, ttl }
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn load(&self, id: &SessionId) -> Result<Vec<Message>, StoreError> {
        let key = self.conn.key("session", id.as_str());
        let raw: Vec<Vec<u8>> = self
            .conn
            .run("session_load", OnError::Surface, |mut c| async move {
                ::redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut c).await
            })
            .await?;
        raw.iter()
            .map(|m| {
                serde_json::from_slice(m).map_err(|e| {
                    StoreError::Unavailable(format!(
                        "session {} holds an unreadable message: {e}",
                        id.as_str()
                    ))
                })
            })
            .collect()
    }

    async fn append(&self, id: &SessionId, messages: &[Message]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let encoded: Vec<Vec<u8>> = messages
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Unavailable(format!("message not serialisable: {e}")))?;
        let key = self.conn.key("session", id.as_str());
        let ttl = ttl_ms(self.ttl);
        self.conn
            .run("session_append", OnError::Surface, |mut c| async move {
                ::redis::pipe()
                    .atomic()
                    .cmd("RPUSH")
                    .arg(&key)
                    .arg(encoded)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ttl)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping().await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
