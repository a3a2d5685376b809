//! The rate limit port: a token bucket per caller (API key id).
//!
//! Owns the bucket arithmetic and the in-memory adapter. A bucket holds up to `burst` tokens,
//! refills `rate_per_sec` tokens a second and every request takes one. It must not identify
//! callers: pass the API key *id* from auth (never the key itself) as the subject.
//!
//! The limiter fails open: when its backend is unavailable the request is allowed (the adapter
//! logs a warning and emits `RedisBypass`), so a cache outage never becomes an API outage.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::StoreError;

/// Rate limit settings (`TA_RATE_LIMIT_*`, read by [`crate::settings`]); `None` there means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitSettings {
    /// `TA_RATE_LIMIT_RPS`: tokens added per second.
    pub rate_per_sec: f64,
    /// `TA_RATE_LIMIT_BURST` (default: the rate rounded up, at least 1): bucket capacity.
    pub burst: u32,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// When refused: how long until one token is back (for `Retry-After`). Zero when allowed.
    pub retry_after: Duration,
    /// Whole tokens left after this request.
    pub remaining: u64,
}

impl RateDecision {
    pub(crate) fn open() -> Self {
        Self { allowed: true, retry_after: Duration::ZERO, remaining: 0 }
    }
}

/// A token bucket per subject.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one token from `subject`'s bucket. Never fails: an unavailable backend allows.
    async fn check(&self, subject: &str) -> RateDecision;
    /// A real round trip to the backend, for `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Short name of the backend, e.g. "memory" or "redis".
    fn backend(&self) -> &'static str;
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// In-process token buckets. Bounded: past `max_subjects` buckets, the full ones are dropped
/// (a full bucket is the same as no bucket).
pub struct MemoryRateLimiter {
    settings: RateLimitSettings,
    max_subjects: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl MemoryRateLimiter {
    pub fn new(settings: RateLimitSettings) -> Self {
        Self { settings, max_subjects: 10_000, buckets: Mutex::new(HashMap::new()) }
    }
}

/// Refills `tokens` for `elapsed_ms` and takes one: (allowed, retry_after_ms, tokens after).
/// The same arithmetic as the Redis script.
pub(crate) fn take(tokens: f64, elapsed_ms: f64, s: &RateLimitSettings) -> (bool, u64, f64) {
    let capacity = f64::from(s.burst);
    let tokens = (tokens + elapsed_ms.max(0.0) * s.rate_per_sec / 1000.0).min(capacity);
    if tokens >= 1.0 {
        (true, 0, tokens - 1.0)
    } else {
        (false, ((1.0 - tokens) * 1000.0 / s.rate_per_sec).ceil() as u64, tokens)
    }
}

#[async_trait::async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, subject: &str) -> RateDecision {
        let mut buckets = self.buckets.lock().await;
        let now = Instant::now();
        let s = &self.settings;
        if !buckets.contains_key(subject) && buckets.len() >= self.max_subjects {
            let capacity = f64::from(s.burst);
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * s.rate_per_sec < capacity);
        }
        let bucket =
            buckets.entry(subject.to_owned()).or_insert(Bucket { tokens: f64::from(s.burst), at: now });
        let elapsed_ms = now.duration_since(bucket.at).as_secs_f64() * 1000.0;
        let (allowed, retry_ms, tokens) = take(bucket.tokens, elapsed_ms, s);
        *bucket = Bucket { tokens, at: now };
        RateDecision {
            allowed,
            retry_after: Duration::from_millis(retry_ms),
            remaining: tokens.floor() as u64,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_arithmetic() {
        let s = RateLimitSettings { rate_per_sec: 2.0, burst: 2 };
        assert_eq!(take(2.0, 0.0, &s), (true, 0, 1.0));
        assert_eq!(take(0.0, 0.0, &s), (false, 500, 0.0));
        assert_eq!(take(0.0, 250.0, &s), (false, 250, 0.5));
        assert_eq!(take(0.0, 10_000.0, &s), (true, 0, 1.0), "refill is capped at the burst");
    }

    #[tokio::test]
    async fn memory_limiter_allows_the_burst_then_refuses_per_subject() {
        let limiter = MemoryRateLimiter::new(RateLimitSettings { rate_per_sec: 0.001, burst: 3 });
        for left in [2, 1, 0] {
            let d = limiter.check("key-a").await;
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = limiter.check("key-a").await;
        assert!(!d.allowed);
        assert!(d.retry_after > Duration::from_secs(900), "{d:?}");
        assert!(limiter.check("key-b").await.allowed, "buckets are per subject");
    }
}
