//! What a call's model sessions were billed for, summed over the call: Realtime tokens (as
//! `response.done` reports them), GPT-Live seconds, and the Live Responses backend's tokens.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub input_audio_tokens: u64,
    pub output_audio_tokens: u64,
    pub input_text_tokens: u64,
    pub output_text_tokens: u64,
    /// Input tokens served from the cache (billed at the cached rate; also counted above).
    pub cached_input_tokens: u64,
    /// GPT-Live session time billed per minute (`session.usage.updated` `seconds`).
    pub live_seconds: f64,
}

impl Usage {
    /// The `usage` object of a Realtime `response.done` (missing fields count zero).
    pub fn from_response(usage: &serde_json::Value) -> Usage {
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let (input, output) = (&usage["input_token_details"], &usage["output_token_details"]);
        Usage {
            input_audio_tokens: n(&input["audio_tokens"]),
            output_audio_tokens: n(&output["audio_tokens"]),
            input_text_tokens: n(&input["text_tokens"]),
            output_text_tokens: n(&output["text_tokens"]),
            cached_input_tokens: n(&input["cached_tokens"]),
            live_seconds: 0.0,
        }
    }

    /// The `usage` object of a Responses API response (the GPT-Live backend): text tokens.
    pub fn from_responses_api(usage: &serde_json::Value) -> Usage {
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        Usage {
            input_text_tokens: n(&usage["input_tokens"]),
            output_text_tokens: n(&usage["output_tokens"]),
            cached_input_tokens: 0,
            ..Usage::default()
        }
    }

    pub fn add(&mut self, other: Usage) {
        self.input_audio_tokens += other.input_audio_tokens;
        self.output_audio_tokens += other.output_audio_tokens;
        self.input_text_tokens += other.input_text_tokens;
        self.output_text_tokens += other.output_text_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.live_seconds += other.live_seconds;
    }

    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_apis_add_up() {
        let mut u = Usage::from_response(
            &serde_json::json!({"input_token_details": {"audio_tokens": 10, "cached_tokens": 4}, "output_token_details": {"audio_tokens": 20, "text_tokens": 3}}),
        );
        u.add(Usage::from_responses_api(
            &serde_json::json!({"input_tokens": 100, "output_tokens": 7, "total_tokens": 107}),
        ));
        u.add(Usage { live_seconds: 61.5, ..Usage::default() });
        assert_eq!((u.input_audio_tokens, u.output_audio_tokens, u.cached_input_tokens), (10, 20, 4));
        assert_eq!((u.input_text_tokens, u.output_text_tokens), (100, 10));
        assert_eq!(u.live_seconds, 61.5);
        assert!(!u.is_zero());
    }
}
