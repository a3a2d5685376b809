//! Admission in Redis: one Lua script per request reads the caller's daily budgets (hash
//! `{p}budget:{subject}`: `day`, `requests`, `tokens`), refills and takes from the caller's
//! bucket (`{p}rate:{subject}`), counts the request and, when asked, reads the kill switches
//! (`{p}switch`), atomically and in one round trip. Time is Redis `TIME`, so every container
//! shares one clock and one day. A run's tokens are added after it by a second script: that is
//! the one extra round trip daily budgets cost (only with `TA_DAILY_TOKEN_BUDGET`).

use std::collections::HashMap;
use std::time::Duration;

use super::switch::switch_key;
use super::{OnError, RedisConnection};
use crate::store::ratelimit::{DailyBudget, DailyBudgets, Outcome};
use crate::store::{Admission, RateLimitSettings, RateLimiter, StoreError};

/// KEYS[1] bucket, KEYS[2] budget hash, KEYS[3] switch hash.
/// ARGV[1] capacity (0: no rate limit), ARGV[2] tokens per second, ARGV[3] daily requests (0:
/// none), ARGV[4] daily tokens (0: none), ARGV[5] read the switches (1/0), ARGV[6..7] the
/// switch fields that refuse.
/// Returns {code, retry_after_ms, limit, used, resets_in_ms, resets_at_ms, switches}; code 0
/// allowed, 1 rate limited, 2 daily requests, 3 daily tokens, 4 switched off (nothing taken).
/// The bucket arithmetic is `ratelimit::take`'s. A budget hash expires a minute after its day.
const ADMIT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local secs = tonumber(t[1])
local now = secs * 1000 + tonumber(t[2]) / 1000
local switches = {}
if ARGV[5] == '1' then
  switches = redis.call('HGETALL', KEYS[3])
  for i = 1, #switches, 2 do
    if switches[i] == ARGV[6] or switches[i] == ARGV[7] then
      return {4, 0, 0, 0, 0, 0, switches}
    end
  end
end
local day = math.floor(secs / 86400)
local resets_at = (day + 1) * 86400000
local resets_in = math.ceil(resets_at - now)
local max_req = tonumber(ARGV[3])
local max_tok = tonumber(ARGV[4])
local budgets = max_req > 0 or max_tok > 0
local today = false
local requests = 0
if budgets then
  local b = redis.call('HMGET', KEYS[2], 'day', 'requests', 'tokens')
  today = tonumber(b[1]) == day
  local tokens = 0
  if today then
    requests = tonumber(b[2]) or 0
    tokens = tonumber(b[3]) or 0
  end
  if max_tok > 0 and tokens >= max_tok then
    return {3, resets_in, max_tok, tokens, resets_in, resets_at, switches}
  end
  if max_req > 0 and requests >= max_req then
    return {2, resets_in, max_req, requests, resets_in, resets_at, switches}
  end
end
local capacity = tonumber(ARGV[1])
if capacity > 0 then
  local rate = tonumber(ARGV[2])
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
  local retry = 0
  if tokens >= 1 then
    tokens = tokens - 1
  else
    retry = math.ceil((1 - tokens) * 1000 / rate)
  end
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.3f', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
  if retry > 0 then
    return {1, retry, 0, 0, 0, 0, switches}
  end
end
if budgets then
  if today then
    redis.call('HINCRBY', KEYS[2], 'requests', 1)
  else
    redis.call('HSET', KEYS[2], 'day', day, 'requests', 1, 'tokens', 0)
  end
  redis.call('PEXPIRE', KEYS[2], resets_in + 60000)
end
return {0, 0, 0, requests + 1, 0, 0, switches}
";

/// KEYS[1] budget hash; ARGV[1] tokens. Adds them to today (a new day starts at 0).
const ADD_TOKENS: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local secs = tonumber(t[1])
local day = math.floor(secs / 86400)
if tonumber(redis.call('HGET', KEYS[1], 'day')) == day then
  redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'day', day, 'requests', 0, 'tokens', ARGV[1])
end
local now = secs * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('PEXPIRE', KEYS[1], (day + 1) * 86400000 - now + 60000)
return 1
";

pub struct RedisRateLimiter {
    conn: RedisConnection,
    rate: Option<RateLimitSettings>,
    daily: DailyBudgets,
    admit: ::redis::Script,
    add_tokens: ::redis::Script,
}

impl RedisRateLimiter {
    pub fn new(conn: RedisConnection, rate: Option<RateLimitSettings>, daily: DailyBudgets) -> Self {
        Self {
            conn,
            rate,
            daily,
            admit: ::redis::Script::new(ADMIT),
            add_tokens: ::redis::Script::new(ADD_TOKENS),
        }
    }
}

type Reply = (i64, i64, i64, i64, i64, i64, Vec<String>);

fn ms(n: i64) -> Duration {
    Duration::from_millis(n.max(0) as u64)
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn admit(&self, subject: &str, switch: Option<&[String; 2]>) -> Admission {
        let keys = [self.conn.key("rate", subject), self.conn.key("budget", subject), switch_key(&self.conn)];
        let (capacity, rate) = self.rate.map_or((0, 0.0), |r| (r.burst, r.rate_per_sec));
        let (requests, tokens) = (self.daily.requests.unwrap_or(0), self.daily.tokens.unwrap_or(0));
        let empty = [String::new(), String::new()];
        let fields = switch.unwrap_or(&empty);
        let script = &self.admit;
        let r = self
            .conn
            .run("rate_limit", OnError::Bypass, |mut c| async move {
                script
                    .key(&keys[..])
                    .arg(capacity)
                    .arg(rate)
                    .arg(requests)
                    .arg(tokens)
                    .arg(u8::from(switch.is_some()))
                    .arg(&fields[0])
                    .arg(&fields[1])
                    .invoke_async::<Reply>(&mut c)
                    .await
            })
            .await;
        // Fail open; `run` has warned and counted it.
        let Ok((code, retry_ms, limit, used, resets_in, resets_at, flat)) = r else {
            return Admission::open();
        };
        let switches = switch.map(|_| {
            let mut map = HashMap::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                map.insert(k, v);
            }
            map
        });
        let budget = |budget| Outcome::OverBudget {
            budget,
            limit: limit.max(0) as u64,
            used: used.max(0) as u64,
            resets_in: ms(resets_in),
            resets_at_ms: resets_at.max(0) as u64,
        };
        let outcome = match code {
            1 => Outcome::RateLimited { retry_after: ms(retry_ms) },
            2 => budget(DailyBudget::Requests),
            3 => budget(DailyBudget::Tokens),
            4 => Outcome::Disabled,
            _ => Outcome::Allowed,
        };
        Admission { outcome, switches }
    }

    async fn add_tokens(&self, subject: &str, tokens: u64) {
        if self.daily.tokens.is_none() || tokens == 0 {
            return;
        }
        let key = self.conn.key("budget", subject);
        let script = &self.add_tokens;
        // Bypassed on failure (logged and counted by `run`): the day's count misses this run.
        let _ = self
            .conn
            .run("budget_add_tokens", OnError::Bypass, |mut c| async move {
                script.key(&key).arg(tokens).invoke_async::<i64>(&mut c).await
            })
            .await;
    }

    fn counts_tokens(&self) -> bool {
        self.daily.tokens.is_some()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping().await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
