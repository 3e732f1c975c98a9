//! Post-call analysis: after a call that asked for one (`analysis` on the call or its agent)
//! ends, its transcript goes to the OpenAI Responses API with structured output, and the answer
//! — a summary, the data its schema asks for, whether it met its success criteria — becomes the
//! call's `analysis` and the `call.analyzed` event. This module is the pure part (the request,
//! reading the answer); [`worker`] runs it.

pub mod worker;

use serde_json::{Map, Value, json};

use crate::store::calls::TranscriptLine;

/// What a call asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub summary: bool,
    pub schema: Option<Value>,
    pub success_criteria: Option<String>,
    pub model: Option<String>,
}

impl Request {
    /// The stored request (checked when the call was created).
    pub fn parse(text: &str) -> Result<Request, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("unreadable analysis request: {e}"))?;
        Ok(Request {
            summary: v["summary"].as_bool().unwrap_or(false),
            schema: v.get("schema").filter(|s| s.is_object()).cloned(),
            success_criteria: v["success_criteria"].as_str().map(str::to_string),
            model: v["model"].as_str().map(str::to_string),
        })
    }

    /// The JSON Schema of the answer: `summary`, `success` and `data`, as asked.
    fn answer_schema(&self) -> Value {
        let mut properties = Map::new();
        if self.summary {
            properties.insert(
                "summary".into(),
                json!({"type": "string", "description": "Two or three sentences on what happened in the call."}),
            );
        }
        if let Some(c) = &self.success_criteria {
            properties.insert(
                "success".into(),
                json!({"type": "boolean", "description": format!("Whether the call met these criteria: {c}")}),
            );
        }
        if let Some(s) = &self.schema {
            properties.insert("data".into(), s.clone());
        }
        let required: Vec<Value> = properties.keys().map(|k| Value::String(k.clone())).collect();
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }

    /// The Responses API request for `transcript`, with `model` (the call's own, else the
    /// server's `VOXBRIDGE_ANALYSIS_MODEL`).
    pub fn body(&self, transcript: &[TranscriptLine], default_model: &str) -> Value {
        let mut instructions = String::from(
            "You analyse a finished phone call between an AI assistant and a person. Use only what was said in the \
             transcript. Answer with the JSON object the schema describes.",
        );
        if let Some(c) = &self.success_criteria {
            instructions.push_str(&format!(" The call succeeded if: {c}"));
        }
        json!({
            "model": self.model(default_model),
            "instructions": instructions,
            "input": transcript_text(transcript),
            "text": {"format": {"type": "json_schema", "name": "call_analysis", "schema": self.answer_schema(), "strict": false}},
            "store": false,
        })
    }

    pub fn model<'a>(&'a self, default_model: &'a str) -> &'a str {
        self.model.as_deref().unwrap_or(default_model)
    }

    /// The call's `analysis` from the API's answer `body`: `{"summary", "data", "success",
    /// "model", "usage", "cost_usd"}`; `Err` when the answer has no JSON object of the right
    /// shape (retried).
    pub fn read(&self, body: &Value, model: &str, prices: &crate::pricing::Prices) -> Result<Value, String> {
        if body["status"].as_str().is_some_and(|s| s != "completed") {
            return Err(format!("the analysis response is {}", body["status"]));
        }
        let text = body["output"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| item["type"] == "message")
            .flat_map(|item| item["content"].as_array().into_iter().flatten())
            .find(|c| c["type"] == "output_text")
            .and_then(|c| c["text"].as_str())
            .ok_or("the analysis response has no output_text")?;
        let answer: Value = serde_json::from_str(text).map_err(|e| format!("the analysis is not JSON: {e}"))?;
        let mut out = Map::new();
        if self.summary {
            let summary = answer["summary"].as_str().ok_or("the analysis has no summary")?;
            out.insert("summary".into(), summary.into());
        }
        if self.success_criteria.is_some() {
            let success = answer["success"].as_bool().ok_or("the analysis does not say whether the call succeeded")?;
            out.insert("success".into(), success.into());
        }
        if let Some(schema) = &self.schema {
            let data = answer.get("data").cloned().unwrap_or(Value::Null);
            let checked = crate::model::ObjectSchema::new(schema.clone())
                .and_then(|s| s.check(&data.to_string()))
                .map_err(|e| format!("the analysis data does not match the schema: {e}"))?;
            out.insert("data".into(), checked);
        }
        let usage = crate::model::Usage {
            input_text_tokens: body["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_text_tokens: body["usage"]["output_tokens"].as_u64().unwrap_or(0),
            cached_input_tokens: body["usage"]["input_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0),
            ..Default::default()
        };
        out.insert("model".into(), model.into());
        out.insert(
            "usage".into(),
            json!({"input_tokens": usage.input_text_tokens, "output_tokens": usage.output_text_tokens}),
        );
        out.insert("cost_usd".into(), prices.model_usd(model, &usage).map_or(Value::Null, |c| json!(c)));
        Ok(Value::Object(out))
    }
}

/// The transcript as the Responses API reads it: one line per turn, who spoke first.
pub fn transcript_text(lines: &[TranscriptLine]) -> String {
    let mut out = String::new();
    for l in lines {
        let who = if l.speaker == "caller" { "Caller" } else { "Assistant" };
        out.push_str(&format!("{who}: {}\n", l.text.trim()));
    }
    if out.is_empty() { "(nothing was said)".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(speaker: &str, text: &str) -> TranscriptLine {
        TranscriptLine { speaker: speaker.into(), text: text.into(), at_ms: 0, heard_ms: None }
    }

    fn request() -> Request {
        Request::parse(
            r#"{"summary": true, "success_criteria": "A slot was booked.",
                "schema": {"type": "object", "properties": {"slot": {"type": "string"}}, "required": ["slot"]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_request_asks_for_exactly_what_the_call_wants_in_a_strict_shape() {
        let body = request().body(&[line("assistant", "Hi!"), line("caller", "Tuesday please")], "gpt-5-mini");
        assert_eq!(body["model"], "gpt-5-mini");
        assert_eq!(body["input"], "Assistant: Hi!\nCaller: Tuesday please\n");
        let format = &body["text"]["format"];
        assert_eq!((format["type"].as_str(), format["name"].as_str()), (Some("json_schema"), Some("call_analysis")));
        assert_eq!(format["schema"]["required"], json!(["data", "success", "summary"]));
        assert_eq!(format["schema"]["properties"]["data"]["required"], json!(["slot"]));
        assert!(body["instructions"].as_str().unwrap().contains("A slot was booked."));
        let only = Request::parse(r#"{"summary": true, "model": "gpt-5"}"#).unwrap();
        let b = only.body(&[], "gpt-5-mini");
        assert_eq!(b["model"], "gpt-5");
        assert_eq!(b["text"]["format"]["schema"]["required"], json!(["summary"]));
        assert_eq!(b["input"], "(nothing was said)");
    }

    #[test]
    fn the_answer_is_read_checked_and_priced() {
        let answer = |text: &str| {
            json!({"status": "completed", "output": [{"type": "reasoning"}, {"type": "message", "content": [{"type": "output_text", "text": text}]}],
                   "usage": {"input_tokens": 1000, "output_tokens": 100}})
        };
        let prices = crate::pricing::Prices::default();
        let ok = request()
            .read(
                &answer(r#"{"summary": "Booked.", "success": true, "data": {"slot": "tue 9"}}"#),
                "gpt-5-mini",
                &prices,
            )
            .unwrap();
        assert_eq!(ok["summary"], "Booked.");
        assert_eq!((ok["success"].as_bool(), &ok["data"]), (Some(true), &json!({"slot": "tue 9"})));
        assert_eq!(ok["usage"], json!({"input_tokens": 1000, "output_tokens": 100}));
        assert!((ok["cost_usd"].as_f64().unwrap() - (1000.0 * 0.25 + 100.0 * 2.0) / 1e6).abs() < 1e-12, "{ok}");
        let r = request();
        assert!(
            r.read(&answer(r#"{"summary": "x", "success": true, "data": {}}"#), "m", &prices)
                .unwrap_err()
                .contains("schema")
        );
        assert!(r.read(&answer("not json"), "m", &prices).is_err());
        assert!(r.read(&json!({"status": "incomplete"}), "m", &prices).is_err());
        assert!(r.read(&json!({"output": []}), "m", &prices).unwrap_err().contains("output_text"));
    }
}
