//! The admission port: per caller (API key id), a token bucket (rate limit) and daily budgets
//! of requests and LLM tokens, checked together in one call.
//!
//! Owns the bucket and budget arithmetic and the in-memory adapter. A bucket holds up to `burst`
//! tokens, refills `rate_per_sec` tokens a second and every request takes one. A daily budget
//! counts a caller's requests (each admitted one) and tokens (added after each run) per UTC day;
//! a caller at a budget is refused until the day ends. It must not identify callers: pass the
//! API key *id* from auth (never the key itself) as the subject.
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

/// Per caller per UTC day budgets (`TA_DAILY_*_BUDGET`); `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DailyBudgets {
    /// `TA_DAILY_REQUEST_BUDGET`: admitted requests per caller per UTC day.
    pub requests: Option<u64>,
    /// `TA_DAILY_TOKEN_BUDGET`: LLM tokens (prompt + completion) per caller per UTC day.
    pub tokens: Option<u64>,
}

impl DailyBudgets {
    pub fn any(&self) -> bool {
        self.requests.is_some() || self.tokens.is_some()
    }
}

/// Which daily budget refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DailyBudget {
    Requests,
    Tokens,
}

impl DailyBudget {
    /// The variable that sets it.
    pub fn variable(self) -> &'static str {
        match self {
            DailyBudget::Requests => "TA_DAILY_REQUEST_BUDGET",
            DailyBudget::Tokens => "TA_DAILY_TOKEN_BUDGET",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            DailyBudget::Requests => "requests",
            DailyBudget::Tokens => "tokens",
        }
    }
}

/// What admission decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// The bucket is empty: one token is back after `retry_after`.
    RateLimited {
        retry_after: Duration,
    },
    /// A daily budget is used up until `resets_at_ms` (Unix ms, the next UTC midnight), which is
    /// `resets_in` from now.
    OverBudget {
        budget: DailyBudget,
        limit: u64,
        used: u64,
        resets_in: Duration,
        resets_at_ms: u64,
    },
    /// The kill switch read in the same call turns the agent off; nothing was taken.
    Disabled,
}

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub outcome: Outcome,
    /// The kill switches, when they were asked for and read in the same round trip.
    pub switches: Option<HashMap<String, String>>,
}

impl Admission {
    pub(crate) fn open() -> Self {
        Self { outcome: Outcome::Allowed, switches: None }
    }
}

/// A bucket and daily budgets per subject.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Admits one request of `subject`: checks its daily budgets, then takes a token from its
    /// bucket and counts the request. `switch`: also read the kill switches and refuse (taking
    /// nothing) when one of these two fields (`NAME`, `NAME/VERSION`) is on. Never fails: an
    /// unavailable backend allows.
    async fn admit(&self, subject: &str, switch: Option<&[String; 2]>) -> Admission;
    /// Adds a finished run's LLM tokens to `subject`'s day (nothing without a token budget).
    async fn add_tokens(&self, subject: &str, tokens: u64);
    /// Whether tokens are counted (a token budget is set).
    fn counts_tokens(&self) -> bool;
    /// A real round trip to the backend, for `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Short name of the backend, e.g. "memory" or "redis".
    fn backend(&self) -> &'static str;
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Clone, Copy, Default)]
struct Day {
    day: u64,
    requests: u64,
    tokens: u64,
}

const DAY_MS: u64 = 86_400_000;

/// The UTC day of `unix_ms`, and how long until it ends.
pub(crate) fn day_of(unix_ms: u64) -> (u64, Duration) {
    let day = unix_ms / DAY_MS;
    (day, Duration::from_millis((day + 1) * DAY_MS - unix_ms))
}

/// Whether `used` of a day is at its budget: the budget that refuses, first tokens, then requests.
fn over(b: &DailyBudgets, requests: u64, tokens: u64) -> Option<(DailyBudget, u64, u64)> {
    if let Some(limit) = b.tokens
        && tokens >= limit
    {
        return Some((DailyBudget::Tokens, limit, tokens));
    }
    match b.requests {
        Some(limit) if requests >= limit => Some((DailyBudget::Requests, limit, requests)),
        _ => None,
    }
}

/// In-process buckets and budgets. Bounded: past `max_subjects` entries, full buckets and
/// budgets of other days are dropped.
pub struct MemoryRateLimiter {
    rate: Option<RateLimitSettings>,
    daily: DailyBudgets,
    max_subjects: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
    days: Mutex<HashMap<String, Day>>,
}

impl MemoryRateLimiter {
    pub fn new(rate: Option<RateLimitSettings>, daily: DailyBudgets) -> Self {
        Self {
            rate,
            daily,
            max_subjects: 10_000,
            buckets: Mutex::new(HashMap::new()),
            days: Mutex::new(HashMap::new()),
        }
    }

    /// `subject`'s counts for `today` (a new day starts at zero). Bounded: before a new subject
    /// past `max_subjects`, the counts of other days are dropped.
    fn today<'a>(&self, days: &'a mut HashMap<String, Day>, subject: &str, today: u64) -> &'a mut Day {
        if !days.contains_key(subject) && days.len() >= self.max_subjects {
            days.retain(|_, d| d.day == today);
        }
        let d = days.entry(subject.to_owned()).or_default();
        if d.day != today {
            *d = Day { day: today, ..Day::default() };
        }
        d
    }

    async fn take_token(&self, s: &RateLimitSettings, subject: &str) -> (bool, u64) {
        let mut buckets = self.buckets.lock().await;
        let now = Instant::now();
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
        (allowed, retry_ms)
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
    async fn admit(&self, subject: &str, _switch: Option<&[String; 2]>) -> Admission {
        let now_ms = crate::util::unix_ms();
        let (today, resets_in) = day_of(now_ms);
        let mut days = self.days.lock().await;
        if self.daily.any() {
            let d = days.get(subject).copied().filter(|d| d.day == today).unwrap_or_default();
            if let Some((budget, limit, used)) = over(&self.daily, d.requests, d.tokens) {
                let resets_at_ms = (today + 1) * DAY_MS;
                return Admission {
                    outcome: Outcome::OverBudget { budget, limit, used, resets_in, resets_at_ms },
                    switches: None,
                };
            }
        }
        if let Some(s) = &self.rate {
            let (allowed, retry_ms) = self.take_token(s, subject).await;
            if !allowed {
                let outcome = Outcome::RateLimited { retry_after: Duration::from_millis(retry_ms) };
                return Admission { outcome, switches: None };
            }
        }
        if self.daily.any() {
            self.today(&mut days, subject, today).requests += 1;
        }
        Admission::open()
    }

    async fn add_tokens(&self, subject: &str, tokens: u64) {
        if self.daily.tokens.is_none() || tokens == 0 {
            return;
        }
        let (today, _) = day_of(crate::util::unix_ms());
        let mut days = self.days.lock().await;
        self.today(&mut days, subject, today).tokens += tokens;
    }

    fn counts_tokens(&self) -> bool {
        self.daily.tokens.is_some()
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

    #[test]
    fn a_day_ends_at_utc_midnight() {
        assert_eq!(day_of(DAY_MS * 20_000 + 1_000), (20_000, Duration::from_millis(DAY_MS - 1_000)));
    }

    #[tokio::test]
    async fn memory_limiter_allows_the_burst_then_refuses_per_subject() {
        let limiter = MemoryRateLimiter::new(
            Some(RateLimitSettings { rate_per_sec: 0.001, burst: 3 }),
            DailyBudgets::default(),
        );
        for _ in 0..3 {
            assert_eq!(limiter.admit("key-a", None).await.outcome, Outcome::Allowed);
        }
        match limiter.admit("key-a", None).await.outcome {
            Outcome::RateLimited { retry_after } => assert!(retry_after > Duration::from_secs(900)),
            other => panic!("{other:?}"),
        }
        assert_eq!(limiter.admit("key-b", None).await.outcome, Outcome::Allowed, "buckets are per subject");
    }

    #[tokio::test]
    async fn memory_budgets_refuse_at_exactly_the_limit() {
        let limiter = MemoryRateLimiter::new(None, DailyBudgets { requests: Some(2), tokens: Some(100) });
        assert_eq!(limiter.admit("a", None).await.outcome, Outcome::Allowed);
        limiter.add_tokens("a", 99).await;
        assert_eq!(
            limiter.admit("a", None).await.outcome,
            Outcome::Allowed,
            "99 < 100 tokens, 1 < 2 requests"
        );
        match limiter.admit("a", None).await.outcome {
            Outcome::OverBudget { budget: DailyBudget::Requests, limit: 2, used: 2, resets_in, .. } => {
                assert!(resets_in <= Duration::from_millis(DAY_MS));
            }
            other => panic!("{other:?}"),
        }
        limiter.add_tokens("b", 100).await;
        assert!(matches!(
            limiter.admit("b", None).await.outcome,
            Outcome::OverBudget { budget: DailyBudget::Tokens, limit: 100, used: 100, .. }
        ));
    }
}
