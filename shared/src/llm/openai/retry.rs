//! The retry policy's pure parts: the full-jitter backoff and the `Retry-After` header.
//!
//! Owns the arithmetic only; it must not sleep, send or log (that is [`super::client`]).

use std::time::{Duration, SystemTime};

use super::OpenAiSettings;

/// Full-jitter backoff before retry number `retry` (0-based): uniform in
/// `[0, min(max_backoff, initial_backoff * 2^retry)]`.
pub(super) fn backoff(s: &OpenAiSettings, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    let cap = s.initial_backoff.checked_mul(factor).unwrap_or(s.max_backoff).min(s.max_backoff);
    let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=cap_ms))
}

/// `Retry-After` as delta-seconds, or as an HTTP date counted from `now` (zero when past).
///
/// Dates are read by `httpdate`: the IMF-fixdate senders must use (RFC 9110), and the two
/// obsolete forms recipients must still accept (RFC 850 and asctime).
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
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
    use crate::llm::openai::fixtures::settings;

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
