//! What model calls cost: prices per model (`TA_MODEL_PRICES`) and costs in whole
//! pico-dollars, so a cost budget (`spec.agent.max_cost_usd`) is compared exactly.

use std::collections::HashMap;
use std::fmt;

use super::Usage;

/// An amount of US dollars in pico-dollars (10⁻¹² $): exact for every price with at most six
/// decimals per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cost(u64);

const PICO_DIGITS: u32 = 12;

impl Cost {
    pub const fn from_picodollars(pico: u64) -> Self {
        Self(pico)
    }

    pub const fn picodollars(self) -> u64 {
        self.0
    }

    /// Dollars written as a plain decimal (`0.5`, `12`, `0.000001`), at most 12 decimals.
    pub fn parse_usd(text: &str) -> Option<Self> {
        parse_decimal(text, PICO_DIGITS).map(Self)
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, rhs: Self) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}

/// Dollars as a plain decimal without trailing zeros: `0.5`, `2`, `0.0000125`.
impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = 10u64.pow(PICO_DIGITS);
        let (whole, frac) = (self.0 / unit, self.0 % unit);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:012}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl serde::Serialize for Cost {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cost {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cost::parse_usd(&text).ok_or_else(|| serde::de::Error::custom("expected dollars as a decimal string"))
    }
}

/// `text` (`12`, `0.25`) times 10^`digits`, when it is a plain decimal with at most `digits`
/// decimals that fits in 64 bits.
pub(crate) fn parse_decimal(text: &str, digits: u32) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !plain(whole) || !plain(frac) || frac.len() > digits as usize {
        return None;
    }
    let scale = 10u64.pow(digits);
    let frac_value =
        if frac.is_empty() { 0 } else { frac.parse::<u64>().ok()? * 10u64.pow(digits - frac.len() as u32) };
    whole.parse::<u64>().ok()?.checked_mul(scale)?.checked_add(frac_value)
}

/// One model's price, in pico-dollars per token (a price of `x` $ per million tokens is `x`·10⁶).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input_per_token: u64,
    pub output_per_token: u64,
}

impl Price {
    /// What a call with `usage` cost.
    pub fn cost(self, usage: Usage) -> Cost {
        Cost(
            usage
                .prompt_tokens
                .saturating_mul(self.input_per_token)
                .saturating_add(usage.completion_tokens.saturating_mul(self.output_per_token)),
        )
    }
}

/// Prices by model, keyed by the model as an agent writes it (`gpt-4o`,
/// `bedrock:anthropic.claude-3-haiku-20240307-v1:0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelPrices(HashMap<String, Price>);

impl ModelPrices {
    pub fn new(prices: HashMap<String, Price>) -> Self {
        Self(prices)
    }

    pub fn get(&self, model: &str) -> Option<Price> {
        self.0.get(model).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_and_bounded() {
        assert_eq!(parse_decimal("2.5", 6), Some(2_500_000));
        assert_eq!(parse_decimal("10", 6), Some(10_000_000));
        assert_eq!(parse_decimal("0.000001", 6), Some(1));
        for bad in ["0.0000001", "1e-3", "-1", ".5", "", "1.2.3", "99999999999999999999"] {
            assert_eq!(parse_decimal(bad, 6), None, "{bad}");
        }
        let c = Cost::parse_usd("0.000045").expect("cost");
        assert_eq!((c.picodollars(), c.to_string()), (45_000_000, "0.000045".to_owned()));
        assert_eq!(Cost::parse_usd("3").map(|c| c.to_string()), Some("3".to_owned()));
        assert_eq!(serde_json::to_value(c).expect("json"), "0.000045");
        // A paused run keeps its cost in the task store: it reads back as it was written.
        assert_eq!(serde_json::from_value::<Cost>(serde_json::json!("0.000045")).expect("read"), c);
    }

    #[test]
    fn a_call_costs_its_input_and_output_tokens_at_their_prices() {
        let price = Price { input_per_token: 2_500_000, output_per_token: 10_000_000 };
        let usage = Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
        assert_eq!(price.cost(usage), Cost::parse_usd("0.000075").expect("cost"));
    }
}
