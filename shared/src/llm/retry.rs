//! The retry rules every LLM adapter shares (OpenAI-compatible, Bedrock): the attempt loop with
//! its per-attempt timeout and the caller's deadline, the full-jitter backoff, the
//! `Retry-After` header, and one log line per failed attempt.
//!
//! Owns when to try again and for how long to wait; the adapters own what an attempt is and how
//! its failure is classified ([`Attempt`]). Its one promise: a wait never reaches the caller's
//! deadline, and a streamed answer whose text was handed on is never tried again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::{ChatResponse, LlmError};
use crate::telemetry::error_chain;

/// How an adapter retries: per-attempt timeout, retries after the first attempt, backoff caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub timeout: Duration,
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// What one attempt came to.
pub(crate) enum Attempt {
    Done(Result<ChatResponse, LlmError>),
    Retry { error: LlmError, retry_after: Option<Duration> },
}

/// Attempts until one answers or fails for good, within `policy` and `deadline`. A per-attempt
/// timeout after `started` was set (a streamed answer's text was handed on) ends the call with
/// [`LlmError::StreamCutMidAnswer`]. `model` labels the retry metric.
pub(crate) async fn with_retries<F, Fut>(
    policy: &RetryPolicy,
    model: &str,
    deadline: Instant,
    started: &AtomicBool,
    mut attempt: F,
) -> Result<ChatResponse, LlmError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut attempts: u32 = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(LlmError::Deadline);
        }
        let per_attempt = policy.timeout.min(remaining);
        let cut_by_deadline = per_attempt < policy.timeout;
        attempts += 1;
        let outcome = match tokio::time::timeout(per_attempt, attempt(attempts)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) if cut_by_deadline => return Err(LlmError::Deadline),
            Err(_elapsed) if started.load(Ordering::Acquire) => {
                Attempt::Done(Err(LlmError::StreamCutMidAnswer { source: None }))
            }
            Err(_elapsed) => Attempt::Retry { error: LlmError::Timeout { attempts }, retry_after: None },
        };
        let (error, retry_after) = match outcome {
            Attempt::Done(Ok(answer)) => return Ok(answer),
            Attempt::Done(Err(error)) => {
                log_failure(&error, attempts, None, "not retried");
                return Err(error);
            }
            Attempt::Retry { error, retry_after } => (error, retry_after),
        };
        match next(policy, attempts, retry_after, Instant::now(), deadline) {
            Next::Wait(wait) => {
                log_failure(&error, attempts, Some(wait), "retrying");
                crate::telemetry::metrics::llm_retry(model);
                tokio::time::sleep(wait).await;
            }
            Next::NoRetriesLeft => {
                log_failure(&error, attempts, None, "no retries left");
                return Err(error);
            }
            Next::PastDeadline(wait) => {
                log_failure(&error, attempts, Some(wait), "the next retry would pass the deadline");
                return Err(error);
            }
        }
    }
}

/// The HTTP status an error came with, for the log.
fn http_status(error: &LlmError) -> Option<u16> {
    match error {
        LlmError::Status { status, .. } | LlmError::Unauthorized { status } => Some(*status),
        LlmError::RateLimited { .. } => Some(429),
        LlmError::Connect { .. }
        | LlmError::Timeout { .. }
        | LlmError::InvalidResponse(_)
        | LlmError::Encode(_)
        | LlmError::Deadline
        | LlmError::Unsupported { .. }
        | LlmError::KeyUnavailable { .. }
        | LlmError::StreamCut { .. }
        | LlmError::StreamCutMidAnswer { .. } => None,
    }
}

/// One log line for a failed attempt: what comes next, the error's whole cause chain, and the
/// upstream's (scrubbed) error body as a field of its own.
fn log_failure(error: &LlmError, attempt: u32, wait: Option<Duration>, next: &str) {
    tracing::warn!(
        status = http_status(error),
        attempt,
        wait_ms = wait.map(|w| w.as_millis()),
        error = %error_chain(error),
        body = error.upstream_body(),
        "LLM call failed; {next}"
    );
}

/// What comes after a failed attempt that may be retried.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Sleep this long, then try again; waking up is still before the deadline.
    Wait(Duration),
    /// `max_retries` retries are used up.
    NoRetriesLeft,
    /// The wait (the server's `Retry-After`, else the backoff) would reach the deadline.
    PastDeadline(Duration),
}

/// What to do after failed attempt number `attempts` (1-based) at `now`: wait the server's
/// `Retry-After` if it sent one, else the backoff, unless the retries are used up or the wait
/// would reach `deadline`.
fn next(
    s: &RetryPolicy,
    attempts: u32,
    retry_after: Option<Duration>,
    now: Instant,
    deadline: Instant,
) -> Next {
    if attempts > s.max_retries {
        return Next::NoRetriesLeft;
    }
    let wait = retry_after.unwrap_or_else(|| backoff(s, attempts.saturating_sub(1)));
    // `checked_add`: a huge `Retry-After` must not overflow the clock.
    match now.checked_add(wait) {
        Some(resume) if resume < deadline => Next::Wait(wait),
        _ => Next::PastDeadline(wait),
    }
}

/// Full-jitter backoff before retry number `retry` (0-based): uniform in
/// `[0, min(max_backoff, initial_backoff * 2^retry)]`.
fn backoff(s: &RetryPolicy, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    let cap = s.initial_backoff.checked_mul(factor).unwrap_or(s.max_backoff).min(s.max_backoff);
    let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=cap_ms))
}

/// `Retry-After` as delta-seconds, or as an HTTP date counted from `now` (zero when past).
///
/// Dates are read by `httpdate`: the IMF-fixdate senders must use (RFC 9110), and the two
/// obsolete forms recipients must still accept (RFC 850 and asctime).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    /// Two retries, backoff from 1 ms up to 5 ms.
    fn settings(_base: &str) -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_secs(60),
            max_retries: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }
    }

    fn after_epoch(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(
            httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").ok(),
            UNIX_EPOCH.checked_add(Duration::from_secs(784_111_777))
        );
        assert_eq!(
            httpdate::parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT").ok(),
            UNIX_EPOCH.checked_add(Duration::from_secs(1_709_164_800))
        );
        assert_eq!(parse_retry_after("18446744073709551615", now), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST", now), None);
    }

    #[test]
    fn a_wait_never_reaches_the_deadline() {
        let mut s = settings("http://localhost/v1");
        s.max_retries = 10;
        s.initial_backoff = Duration::from_millis(200);
        s.max_backoff = Duration::from_secs(5);
        let now = Instant::now();
        for budget_ms in [0, 1, 150, 400, 1_000, 4_000] {
            let deadline = now + Duration::from_millis(budget_ms);
            for attempts in 1..=10 {
                for retry_after in [None, Some(Duration::ZERO), Some(Duration::from_secs(2))] {
                    match next(&s, attempts, retry_after, now, deadline) {
                        Next::Wait(wait) => assert!(now + wait < deadline, "{budget_ms} ms, {wait:?}"),
                        Next::PastDeadline(wait) => assert!(now + wait >= deadline),
                        Next::NoRetriesLeft => panic!("10 retries are allowed"),
                    }
                }
            }
        }
    }

    #[test]
    fn retry_after_wins_over_the_backoff_and_retries_run_out() {
        let s = settings("http://localhost/v1");
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let seven = Some(Duration::from_secs(7));
        assert_eq!(next(&s, 1, seven, now, later), Next::Wait(Duration::from_secs(7)));
        assert_eq!(
            next(&s, 2, seven, now, now + Duration::from_secs(7)),
            Next::PastDeadline(Duration::from_secs(7))
        );
        assert_eq!(next(&s, 3, None, now, later), Next::NoRetriesLeft, "settings() allows 2 retries");
        assert_eq!(next(&s, 1, Some(Duration::MAX), now, later), Next::PastDeadline(Duration::MAX));
    }

    #[test]
    fn an_http_date_counts_from_now() {
        let now = after_epoch(784_111_770);
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            // The obsolete forms RFC 9110 still asks recipients to read.
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(date, now), Some(Duration::from_secs(7)), "{date}");
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", after_epoch(784_111_778)),
            Some(Duration::ZERO)
        );
        // A weekday that does not match the date is not a date.
        assert_eq!(parse_retry_after("Mon, 06 Nov 1994 08:49:37 GMT", now), None);
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let mut s = settings("http://localhost/v1");
        s.initial_backoff = Duration::from_millis(100);
        s.max_backoff = Duration::from_millis(300);
        for _ in 0..50 {
            assert!(backoff(&s, 0) <= Duration::from_millis(100));
            assert!(backoff(&s, 1) <= Duration::from_millis(200));
            assert!(backoff(&s, 5) <= Duration::from_millis(300));
            assert!(backoff(&s, 200) <= Duration::from_millis(300));
        }
    }
}
