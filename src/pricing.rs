//! What a call cost: model tokens (or minutes) and carrier minutes priced from a table. The
//! built-in table is dated and approximate — list prices as published by the vendors; set
//! `VOXBRIDGE_PRICES` to your own. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Usage;

/// When the built-in prices were read off the vendors' pricing pages.
pub const BUILT_IN_DATE: &str = "2026-12-02";

/// USD per one million tokens of each kind, and per minute for a model billed by time
/// (GPT-Live; its `text_*` prices are those of its Responses backend, whose tokens it reports).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenPrices {
    pub audio_input: f64,
    pub audio_cached_input: f64,
    pub audio_output: f64,
    pub text_input: f64,
    pub text_output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<f64>,
}

impl TokenPrices {
    /// The cost of `usage` at these prices (cached input audio at its own price).
    pub fn usd(&self, usage: &Usage) -> f64 {
        let uncached = usage.input_audio_tokens.saturating_sub(usage.cached_input_tokens);
        let cached = usage.cached_input_tokens.min(usage.input_audio_tokens);
        (uncached as f64 * self.audio_input
            + cached as f64 * self.audio_cached_input
            + usage.output_audio_tokens as f64 * self.audio_output
            + usage.input_text_tokens as f64 * self.text_input
            + usage.output_text_tokens as f64 * self.text_output)
            / 1_000_000.0
            + self.per_minute.unwrap_or(0.0) * usage.live_seconds / 60.0
    }
}

/// What a call cost, priced from the table (`null` parts: no price known).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cost {
    pub model_usd: Option<f64>,
    pub carrier_usd: Option<f64>,
    /// The post-call analysis's tokens (`null`: none, or not yet).
    pub analysis_usd: Option<f64>,
    pub total_usd: f64,
    /// Always `USD`.
    pub currency: String,
}

/// A live call's running cost: what its model and carrier charge so far (an unknown price
/// counts as nothing).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meter {
    pub model: Option<TokenPrices>,
    pub carrier_per_minute: Option<f64>,
    pub spent_before: f64,
}

impl Meter {
    /// USD spent with `usage` so far and `connected` on the carrier (per started minute).
    pub fn usd(&self, usage: &Usage, connected: std::time::Duration) -> f64 {
        let model = self.model.as_ref().map_or(0.0, |p| p.usd(usage));
        let minutes = (connected.as_secs_f64() / 60.0).ceil().max(1.0);
        let carrier = self.carrier_per_minute.map_or(0.0, |m| minutes * m);
        self.spent_before + model + carrier
    }
}

/// The price table: models by name (per million tokens), carriers by name (USD per minute,
/// billed per started minute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub models: BTreeMap<String, TokenPrices>,
    #[serde(default)]
    pub carriers_per_minute: BTreeMap<String, f64>,
    /// The built-in mock model answers the calls: whatever model a call names costs nothing
    /// (rehearsals are not billed at a real model's prices).
    #[serde(skip)]
    pub models_free: bool,
}

impl Default for Prices {
    /// OpenAI's `gpt-realtime` list price ($32 / $0.40 cached / $64 per 1M audio tokens in / out,
    /// $4 / $16 text), `gpt-live-1.1` ($0.05 per active minute; its default backend
    /// `gpt-5-mini` at $0.25 / $2 per 1M text tokens) and US outbound PSTN list rates
    /// ($0.014/min Twilio, $0.007/min Telnyx), as of [`BUILT_IN_DATE`].
    fn default() -> Prices {
        let realtime = TokenPrices {
            audio_input: 32.0,
            audio_cached_input: 0.40,
            audio_output: 64.0,
            text_input: 4.0,
            text_output: 16.0,
            per_minute: None,
        };
        let live = TokenPrices {
            audio_input: 0.0,
            audio_cached_input: 0.0,
            audio_output: 0.0,
            text_input: 0.25,
            text_output: 2.0,
            per_minute: Some(0.05),
        };
        let backend = TokenPrices { text_input: 0.25, text_output: 2.0, ..TokenPrices::default() };
        Prices {
            date: Some(BUILT_IN_DATE.into()),
            models: [
                ("gpt-realtime".to_string(), realtime),
                ("gpt-live-1.1".to_string(), live),
                // Post-call analysis (`VOXBRIDGE_ANALYSIS_MODEL`): text only.
                ("gpt-5-mini".to_string(), backend),
            ]
            .into(),
            carriers_per_minute: [("twilio".to_string(), 0.014), ("telnyx".to_string(), 0.007)].into(),
            models_free: false,
        }
    }
}

impl Prices {
    /// `VOXBRIDGE_PRICES` (a JSON table like the built-in one), or the built-in table.
    pub fn from_json(raw: Option<&str>) -> Result<Prices, String> {
        match raw.map(str::trim).filter(|r| !r.is_empty()) {
            None => Ok(Prices::default()),
            Some(raw) => serde_json::from_str(raw).map_err(|e| format!("not a price table ({e})")),
        }
    }

    /// The model's cost of `usage`, if its price is known.
    pub fn model_usd(&self, model: &str, usage: &Usage) -> Option<f64> {
        if self.models_free {
            return Some(0.0);
        }
        Some(self.models.get(model)?.usd(usage))
    }

    /// What a live call spends, for its `max_cost_usd`: `model`'s and `carrier`'s prices, with
    /// `spent_before` (earlier attempts and sessions of the call).
    pub fn meter(&self, model: &str, carrier: &str, spent_before: f64) -> Meter {
        Meter {
            model: if self.models_free { Some(TokenPrices::default()) } else { self.models.get(model).cloned() },
            carrier_per_minute: self.carriers_per_minute.get(carrier).copied(),
            spent_before,
        }
    }

    /// The carrier's cost of `seconds` connected (per started minute), if its price is known.
    pub fn carrier_usd(&self, carrier: &str, seconds: f64) -> Option<f64> {
        let per_minute = self.carriers_per_minute.get(carrier)?;
        Some((seconds / 60.0).ceil() * per_minute)
    }

    /// `cost` with a post-call analysis's `usd` added (a cost of its own when there was none).
    pub fn with_analysis(cost: Option<Cost>, usd: Option<f64>) -> Option<Cost> {
        let Some(usd) = usd else { return cost };
        let round = |x: f64| (x * 1_000_000.0).round() / 1_000_000.0;
        let mut c = cost.unwrap_or(Cost {
            model_usd: None,
            carrier_usd: None,
            analysis_usd: None,
            total_usd: 0.0,
            currency: "USD".into(),
        });
        c.analysis_usd = Some(round(usd));
        c.total_usd = round(c.total_usd + usd);
        Some(c)
    }

    /// The contract's `cost` object, or `None` (`null`) when neither price is known.
    pub fn cost(&self, model: Option<&str>, usage: &Usage, carrier: &str, seconds: Option<f64>) -> Option<Cost> {
        let model_usd = model.and_then(|m| self.model_usd(m, usage));
        let carrier_usd = seconds.and_then(|s| self.carrier_usd(carrier, s));
        if model_usd.is_none() && carrier_usd.is_none() {
            return None;
        }
        let round = |x: f64| (x * 1_000_000.0).round() / 1_000_000.0;
        let total = model_usd.unwrap_or(0.0) + carrier_usd.unwrap_or(0.0);
        Some(Cost {
            model_usd: model_usd.map(round),
            carrier_usd: carrier_usd.map(round),
            analysis_usd: None,
            total_usd: round(total),
            currency: "USD".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_minutes_are_priced_from_the_table() {
        let p = Prices::default();
        let u = Usage {
            input_audio_tokens: 100_000,
            cached_input_tokens: 40_000,
            output_audio_tokens: 50_000,
            input_text_tokens: 10_000,
            output_text_tokens: 5_000,
            live_seconds: 0.0,
        };
        // 60k × $32 + 40k × $0.40 + 50k × $64 + 10k × $4 + 5k × $16, per million.
        let expected = (60_000.0 * 32.0 + 40_000.0 * 0.40 + 50_000.0 * 64.0 + 10_000.0 * 4.0 + 5_000.0 * 16.0) / 1e6;
        assert!((p.model_usd("gpt-realtime", &u).unwrap() - expected).abs() < 1e-12);
        assert_eq!(p.model_usd("unknown-model", &u), None);
        assert_eq!(p.carrier_usd("twilio", 61.0), Some(2.0 * 0.014), "per started minute");
        let cost = p.cost(Some("gpt-realtime"), &u, "twilio", Some(61.0)).unwrap();
        assert_eq!(cost.currency, "USD");
        assert!((cost.total_usd - (expected + 0.028)).abs() < 1e-6);
        assert!(p.cost(Some("unknown"), &u, "nobody", Some(10.0)).is_none());
    }

    #[test]
    fn a_live_call_is_priced_per_minute_plus_its_backend_tokens() {
        let p = Prices::default();
        let u = Usage { live_seconds: 90.0, input_text_tokens: 2_000, output_text_tokens: 100, ..Usage::default() };
        let expected = 1.5 * 0.05 + (2_000.0 * 0.25 + 100.0 * 2.0) / 1e6;
        assert!((p.model_usd("gpt-live-1.1", &u).unwrap() - expected).abs() < 1e-12);
        let table = r#"{"models":{"l":{"audio_input":0,"audio_cached_input":0,"audio_output":0,"text_input":0,"text_output":0,"per_minute":0.1}}}"#;
        let p = Prices::from_json(Some(table)).unwrap();
        assert!((p.model_usd("l", &u).unwrap() - 0.15).abs() < 1e-12);
    }

    #[test]
    fn an_operator_table_replaces_the_built_in_one() {
        let p = Prices::from_json(Some(
            r#"{"models":{"m":{"audio_input":1,"audio_cached_input":0,"audio_output":2,"text_input":0,"text_output":0}},"carriers_per_minute":{"twilio":0.01}}"#,
        ))
        .unwrap();
        let u = Usage { input_audio_tokens: 1_000_000, output_audio_tokens: 1_000_000, ..Usage::default() };
        assert_eq!(p.model_usd("m", &u), Some(3.0));
        assert!(Prices::from_json(Some("{nope")).unwrap_err().starts_with("not a price table"));
        assert_eq!(Prices::from_json(None).unwrap(), Prices::default());
    }
}
