//! `TA_MODEL_PRICES`: what each model costs, for cost budgets (`spec.agent.max_cost_usd`).
//!
//! A JSON object keyed by the model as agents write it, each with its US-dollar price per
//! million input and output tokens: `{"gpt-4o": {"input_per_million": 2.5,
//! "output_per_million": 10}}`. Prices are plain decimals with at most six decimals, so costs
//! are exact.

use std::collections::HashMap;

use crate::llm::price::parse_decimal;
use crate::llm::{ModelPrices, Price};

use super::{Env, SettingsError};

const NAME: &str = "TA_MODEL_PRICES";
/// Bounds on the variable (Lambda's environment holds 4 KiB in all; files may be longer).
const MAX_BYTES: usize = 64 * 1024;
const MAX_MODELS: usize = 1000;
const FIELDS: [&str; 2] = ["input_per_million", "output_per_million"];

pub(super) fn read(env: &Env) -> Result<ModelPrices, SettingsError> {
    let Some(text) = env.var(NAME) else {
        return Ok(ModelPrices::default());
    };
    let unusable = |detail: String| SettingsError::Unusable { name: NAME, detail };
    if text.len() > MAX_BYTES {
        return Err(unusable(format!("longer than {MAX_BYTES} bytes")));
    }
    let shape = "a JSON object of model -> {\"input_per_million\": USD, \"output_per_million\": USD}";
    let models: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| unusable(format!("expected {shape}: {e}")))?;
    if models.len() > MAX_MODELS {
        return Err(unusable(format!("more than {MAX_MODELS} models")));
    }
    let mut prices = HashMap::with_capacity(models.len());
    for (model, fields) in models {
        let wrong = |what: String| unusable(format!("model `{model}`: {what}"));
        let serde_json::Value::Object(fields) = fields else {
            return Err(wrong(format!("expected {{{}}}", FIELDS.join(", "))));
        };
        if let Some(extra) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(wrong(format!("unknown field `{extra}` (it takes {})", FIELDS.join(" and "))));
        }
        let per_token = |field: &str| {
            match fields.get(field) {
            // A number's shortest form (`2.5`, `10`, `1e-7`): a plain decimal or refused.
            Some(serde_json::Value::Number(n)) => parse_decimal(&n.to_string(), 6)
                .filter(|p| *p <= 1_000_000_000_000)
                .ok_or_else(|| wrong(format!("{field} must be a number of US dollars from 0 to 1000000 with at most 6 decimals, not {n}"))),
            Some(other) => Err(wrong(format!("{field} must be a number, not {other}"))),
            None => Err(wrong(format!("{field} is missing"))),
        }
        };
        let price = Price { input_per_token: per_token(FIELDS[0])?, output_per_token: per_token(FIELDS[1])? };
        prices.insert(model, price);
    }
    Ok(ModelPrices::new(prices))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_with(value: &str) -> Result<ModelPrices, String> {
        read(&Env::from_pairs([(NAME, value)])).map_err(|e| e.to_string())
    }

    #[test]
    fn prices_are_read_per_model_as_written() {
        let p = read_with(
            r#"{"gpt-4o": {"input_per_million": 2.5, "output_per_million": 10},
                "bedrock:anthropic.claude-3-haiku-20240307-v1:0": {"input_per_million": 0.25, "output_per_million": 1.25}}"#,
        )
        .expect("prices");
        assert_eq!(p.get("gpt-4o"), Some(Price { input_per_token: 2_500_000, output_per_token: 10_000_000 }));
        assert_eq!(
            p.get("bedrock:anthropic.claude-3-haiku-20240307-v1:0"),
            Some(Price { input_per_token: 250_000, output_per_token: 1_250_000 })
        );
        assert_eq!(p.get("gpt-4o-mini"), None);
        assert_eq!(read(&Env::default()).expect("unset"), ModelPrices::default());
    }

    #[test]
    fn bad_prices_name_the_variable_and_the_model() {
        let e = read_with("[1]").expect_err("not an object");
        assert!(e.starts_with("TA_MODEL_PRICES: expected a JSON object of model"), "{e}");
        let e =
            read_with(r#"{"m": {"input_per_million": -1, "output_per_million": 1}}"#).expect_err("negative");
        assert_eq!(
            e,
            "TA_MODEL_PRICES: model `m`: input_per_million must be a number of US dollars from 0 to 1000000 \
             with at most 6 decimals, not -1"
        );
        let e = read_with(r#"{"m": {"input_per_million": 1}}"#).expect_err("missing");
        assert_eq!(e, "TA_MODEL_PRICES: model `m`: output_per_million is missing");
        let e =
            read_with(r#"{"m": {"input_per_million": "1", "output_per_million": 1}}"#).expect_err("string");
        assert_eq!(e, "TA_MODEL_PRICES: model `m`: input_per_million must be a number, not \"1\"");
        let e = read_with(r#"{"m": {"input_per_million": 1, "output_per_million": 1, "currency": "EUR"}}"#)
            .expect_err("extra");
        assert!(
            e.ends_with("unknown field `currency` (it takes input_per_million and output_per_million)"),
            "{e}"
        );
        let e = read_with(r#"{"m": {"input_per_million": 0.0000001, "output_per_million": 1}}"#)
            .expect_err("decimals");
        assert!(e.contains("at most 6 decimals, not 1e-7"), "{e}");
        let e = read_with(&format!("{{\"m\": \"{}\"}}", "x".repeat(MAX_BYTES))).expect_err("too long");
        assert_eq!(e, "TA_MODEL_PRICES: longer than 65536 bytes");
        let many = (0..=MAX_MODELS)
            .map(|i| format!("\"m{i}\": {{\"input_per_million\": 1, \"output_per_million\": 1}}"))
            .collect::<Vec<_>>()
            .join(",");
        let e = read_with(&format!("{{{many}}}")).expect_err("too many");
        assert_eq!(e, "TA_MODEL_PRICES: more than 1000 models");
    }
}
