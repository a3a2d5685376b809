//! Byte sizes: parsing `MCP_FILESYSTEM_MAX_FILE_SIZE` and printing sizes in refusals.
//!
//! Units are binary and case-insensitive: `KB`, `MB`, `GB`, `TB` mean 1024, 1024², 1024³ and
//! 1024⁴ bytes (`K`/`KiB`, `M`/`MiB`… are synonyms; `B` or no unit means bytes), so `10MB` is
//! 10 485 760 bytes, the way `ls -lh` and most file managers count. A decimal part is allowed
//! (`1.5MB`) and rounded down to whole bytes. Zero is refused: a limit that refuses every
//! non-empty file is a mistake, not a policy.

use std::fmt;

const UNITS: [(&str, u64); 4] = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)];

/// A limit in bytes, as configured (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(u64);

impl ByteSize {
    /// The default limit: 10 MB (10 485 760 bytes).
    pub const DEFAULT: Self = Self(10 << 20);

    /// `None` for zero.
    pub fn new(bytes: u64) -> Option<Self> {
        (bytes > 0).then_some(Self(bytes))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `10MB`, `512 KB`, `1.5GiB`, `4096`… (see the module docs). The error is the
    /// reason only; the caller names the variable.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let multiplier: u64 = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KB" | "KIB" => 1 << 10,
            "M" | "MB" | "MIB" => 1 << 20,
            "G" | "GB" | "GIB" => 1 << 30,
            "T" | "TB" | "TIB" => 1 << 40,
            _ => return Err(format!("unknown unit {:?}", unit.trim())),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || !fraction.chars().all(|c| c.is_ascii_digit()) {
            return Err("expected a number".to_owned());
        }
        let too_big = || "too large".to_owned();
        let whole: u128 = whole.parse().map_err(|_| too_big())?;
        let mut bytes = whole * u128::from(multiplier);
        if !fraction.is_empty() {
            let digits = u32::try_from(fraction.len()).map_err(|_| too_big())?;
            let scale = 10u128.checked_pow(digits).ok_or_else(too_big)?;
            let numerator: u128 = fraction.parse().map_err(|_| too_big())?;
            bytes += numerator * u128::from(multiplier) / scale;
        }
        let bytes = u64::try_from(bytes).map_err(|_| too_big())?;
        Self::new(bytes).ok_or_else(|| "must be at least 1 byte".to_owned())
    }
}

/// `10 MB`, `1.5 MB`, `512 KB`, `100 B`: exact multiples without a decimal.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in UNITS {
            if self.0 >= size {
                return if self.0.is_multiple_of(size) {
                    write!(f, "{} {unit}", self.0 / size)
                } else {
                    write!(f, "{} {unit}", one_decimal(self.0, size))
                };
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// An actual size in a refusal: `12.0 MB (12582912 bytes)`, or `500 bytes` below 1 KB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in UNITS {
            if self.0 >= size {
                return write!(f, "{} {unit} ({} bytes)", one_decimal(self.0, size), self.0);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// `value / unit` with one decimal, rounded down (so a size just over a limit never prints as
/// the limit itself, e.g. 10 MB + 1 byte is `10.0 MB`, not `10.1 MB`), in integers.
fn one_decimal(value: u64, unit: u64) -> String {
    let tenths = u128::from(value) * 10 / u128::from(unit);
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<u64, String> {
        ByteSize::parse(text).map(ByteSize::bytes)
    }

    #[test]
    fn units_are_binary_and_case_insensitive() {
        assert_eq!(parse("10MB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse("512KB"), Ok(512 * 1024));
        assert_eq!(parse("1GB"), Ok(1 << 30));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("100b"), Ok(100));
        assert_eq!(parse(" 2 mib "), Ok(2 << 20));
        assert_eq!(parse("1k"), Ok(1024));
        assert_eq!(parse("1.5MB"), Ok(1_572_864));
        assert_eq!(parse("0.5KB"), Ok(512));
        assert_eq!(parse("2TB"), Ok(2 << 40));
    }

    #[test]
    fn nonsense_zero_and_overflow_are_refused_with_a_reason() {
        assert_eq!(parse("10XB"), Err("unknown unit \"XB\"".to_owned()));
        assert_eq!(parse("MB"), Err("expected a number".to_owned()));
        assert_eq!(parse(""), Err("expected a number".to_owned()));
        assert_eq!(parse("-1"), Err("unknown unit \"-1\"".to_owned()));
        assert_eq!(parse("1.2.3MB"), Err("expected a number".to_owned()));
        assert_eq!(parse("0"), Err("must be at least 1 byte".to_owned()));
        assert_eq!(parse("0.0001KB"), Err("must be at least 1 byte".to_owned()));
        assert_eq!(parse("99999999999999999999GB"), Err("too large".to_owned()));
        assert_eq!(parse("20000000TB"), Err("too large".to_owned()));
    }

    #[test]
    fn limits_print_exact_multiples_without_decimals() {
        let show = |text: &str| ByteSize::parse(text).map(|b| b.to_string());
        assert_eq!(show("10MB").as_deref(), Ok("10 MB"));
        assert_eq!(show("1.5MB").as_deref(), Ok("1.5 MB"));
        assert_eq!(show("1024").as_deref(), Ok("1 KB"));
        assert_eq!(show("100").as_deref(), Ok("100 B"));
        assert_eq!(ByteSize::DEFAULT.to_string(), "10 MB");
    }

    #[test]
    fn sizes_print_one_decimal_rounded_down_and_the_exact_bytes() {
        assert_eq!(Size(12_582_912).to_string(), "12.0 MB (12582912 bytes)");
        assert_eq!(Size((10 << 20) + 1).to_string(), "10.0 MB (10485761 bytes)");
        assert_eq!(Size(2048).to_string(), "2.0 KB (2048 bytes)");
        assert_eq!(Size(1536).to_string(), "1.5 KB (1536 bytes)");
        assert_eq!(Size(500).to_string(), "500 bytes");
    }
}
