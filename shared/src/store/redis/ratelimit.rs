//! Token buckets in Redis: one Lua script reads the bucket, refills it by the time passed (Redis
//! `TIME`, so every container shares one clock), takes a token and writes it back, atomically.

use std::time::Duration;

use super::{OnError, RedisConnection};
use crate::store::{RateDecision, RateLimitSettings, RateLimiter, StoreError};

/// KEYS[1] bucket; ARGV[1] capacity, ARGV[2] tokens per second.
/// Returns {allowed (0/1), retry_after_ms, whole tokens left}. Same arithmetic as
/// `ratelimit::take`.
const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
local elapsed = now - at
if elapsed < 0 then elapsed = 0 end
tokens = math.min(capacity, tokens + elapsed * rate / 1000)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.3f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {allowed, retry, math.floor(tokens)}
";

pub struct RedisRateLimiter {
    conn: RedisConnection,
    settings: RateLimitSettings,
    script: ::redis::Script,
}

impl RedisRateLimiter {
    pub fn new(conn: RedisConnection, settings: RateLimitSettings) -> Self {
        Self { conn, settings, script: ::redis::Script::new(SCRIPT) }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, subject: &str) -> RateDecision {
        let key = self.conn.key("rate", subject);
        let (capacity, rate) = (self.settings.burst, self.settings.rate_per_sec);
        let script = &self.script;
        let r = self
            .conn
            .run("rate_limit", OnError::Bypass, |mut c| async move {
                script.key(&key).arg(capacity).arg(rate).invoke_async::<(i64, i64, i64)>(&mut c).await
            })
            .await;
        match r {
            Ok((allowed, retry_ms, remaining)) => RateDecision {
                allowed: allowed == 1,
                retry_after: Duration::from_millis(retry_ms.max(0) as u64),
                remaining: remaining.max(0) as u64,
            },
            // Fail open; `run` has warned and counted it.
            Err(_) => RateDecision::open(),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping().await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
