//! The kill switches in Redis: one hash `{p}switch` (field = `NAME` or `NAME/VERSION`, value =
//! the note), read whole with `HGETALL` (it holds at most [`MAX_SWITCHES`] fields). Reads bypass
//! Redis on failure (the caller keeps what it knew); writes (the CLI) surface failures.

use std::collections::HashMap;

use super::{OnError, RedisConnection};
use crate::store::switch::MAX_SWITCHES;
use crate::store::{StoreError, SwitchStore};

/// KEYS[1] the hash; ARGV[1] field, ARGV[2] note, ARGV[3] the most fields. 1 set, 0 refused.
const SET: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

pub struct RedisSwitchStore {
    conn: RedisConnection,
    set: ::redis::Script,
}

impl RedisSwitchStore {
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn, set: ::redis::Script::new(SET) }
    }
}

/// The key of the switch hash.
pub(crate) fn switch_key(conn: &RedisConnection) -> String {
    format!("{}switch", conn.prefix())
}

#[async_trait::async_trait]
impl SwitchStore for RedisSwitchStore {
    async fn read_all(&self) -> Result<HashMap<String, String>, StoreError> {
        let key = switch_key(&self.conn);
        self.conn
            .run("switch_read", OnError::Bypass, |mut c| async move {
                ::redis::cmd("HGETALL").arg(&key).query_async(&mut c).await
            })
            .await
    }

    async fn set(&self, target: &str, note: &str) -> Result<bool, StoreError> {
        let key = switch_key(&self.conn);
        let script = &self.set;
        let n: i64 = self
            .conn
            .run("switch_set", OnError::Surface, |mut c| async move {
                script.key(&key).arg(target).arg(note).arg(MAX_SWITCHES).invoke_async(&mut c).await
            })
            .await?;
        Ok(n == 1)
    }

    async fn clear(&self, target: &str) -> Result<bool, StoreError> {
        let key = switch_key(&self.conn);
        let n: i64 = self
            .conn
            .run("switch_clear", OnError::Surface, |mut c| async move {
                ::redis::cmd("HDEL").arg(&key).arg(target).query_async(&mut c).await
            })
            .await?;
        Ok(n == 1)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
