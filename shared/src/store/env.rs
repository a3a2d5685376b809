//! Reading `TA_*` store settings: one error type whose message names the variable at fault.

use std::time::Duration;

/// Why store settings could not be read. Display names the variable, e.g.
/// `invalid env var TA_REDIS_TIMEOUT_MS=abc (a whole number of milliseconds > 0)`.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid env var {name}={value} ({expected})")]
    Invalid { name: &'static str, value: String, expected: &'static str },
    /// A setting that is well-formed but unusable (a secret that cannot be read, a URL the
    /// client refuses). Never holds a secret value.
    #[error("{name}: {detail}")]
    Unusable { name: &'static str, detail: String },
}

pub(crate) type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The variable, trimmed, when set and not empty.
pub(crate) fn var(get: Get<'_>, name: &str) -> Option<String> {
    get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    get: Get<'_>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, SettingsError> {
    match var(get, name) {
        None => Ok(None),
        Some(v) => match v.parse::<T>() {
            Ok(n) if n > T::default() => Ok(Some(n)),
            _ => Err(SettingsError::Invalid { name, value: v, expected }),
        },
    }
}

pub(crate) fn secs(get: Get<'_>, name: &'static str, default: u64) -> Result<Duration, SettingsError> {
    Ok(Duration::from_secs(positive::<u64>(get, name, "a whole number of seconds > 0")?.unwrap_or(default)))
}

pub(crate) fn millis(get: Get<'_>, name: &'static str, default: u64) -> Result<Duration, SettingsError> {
    Ok(Duration::from_millis(
        positive::<u64>(get, name, "a whole number of milliseconds > 0")?.unwrap_or(default),
    ))
}

pub(crate) fn bytes(get: Get<'_>, name: &'static str, default: usize) -> Result<usize, SettingsError> {
    Ok(positive::<usize>(get, name, "a number of bytes > 0")?.unwrap_or(default))
}

pub(crate) fn opt_f64(get: Get<'_>, name: &'static str) -> Result<Option<f64>, SettingsError> {
    let v = positive::<f64>(get, name, "a number > 0")?;
    match v {
        Some(n) if !n.is_finite() => {
            Err(SettingsError::Invalid { name, value: n.to_string(), expected: "a number > 0" })
        }
        other => Ok(other),
    }
}

pub(crate) fn opt_u32(get: Get<'_>, name: &'static str) -> Result<Option<u32>, SettingsError> {
    positive::<u32>(get, name, "a whole number > 0")
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
pub(crate) fn map(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_errors_name_the_variable() {
        let get = map(&[("A", " 5 "), ("B", "0"), ("C", "x"), ("D", "")]);
        assert_eq!(secs(&get, "A", 1).expect("ok"), Duration::from_secs(5));
        assert_eq!(secs(&get, "D", 7).expect("empty is unset"), Duration::from_secs(7));
        assert_eq!(
            millis(&get, "B", 1).expect_err("zero").to_string(),
            "invalid env var B=0 (a whole number of milliseconds > 0)"
        );
        assert_eq!(opt_f64(&get, "C").expect_err("nan").to_string(), "invalid env var C=x (a number > 0)");
        assert_eq!(opt_f64(&map(&[("R", "0.5")]), "R").expect("ok"), Some(0.5));
        assert!(opt_f64(&map(&[("R", "inf")]), "R").is_err());
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
