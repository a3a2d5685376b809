//! The retry policy's pure parts: the full-jitter backoff and the `Retry-After` header.
//!
//! Owns the arithmetic only; it must not sleep, send or log (that is [`super::client`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::OpenAiSettings;

/// Full-jitter backoff before retry number `retry` (0-based): uniform in
/// `[0, min(max_backoff, initial_backoff * 2^retry)]`.
pub(super) fn backoff(s: &OpenAiSettings, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    let cap = s.initial_backoff.checked_mul(factor).unwrap_or(s.max_backoff).min(s.max_backoff);
    let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=cap_ms))
}

/// `Retry-After` as delta-seconds, or as an HTTP date (IMF-fixdate) from now.
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (the only format senders must
/// use per RFC 9110).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let (_weekday, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m == month)?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    let days = days_from_civil(year, u32::try_from(month).ok()? + 1, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::openai::fixtures::settings;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            UNIX_EPOCH.checked_add(Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            UNIX_EPOCH.checked_add(Duration::from_secs(1_709_164_800))
        );
        assert_eq!(parse_retry_after("18446744073709551615"), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST"), None);
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
