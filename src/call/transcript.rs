//! Both sides' words with their time into the call, and how much of each assistant item the
//! caller actually heard when they interrupted. Serialized as JSON at the end of the call.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Caller,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub speaker: Speaker,
    pub text: String,
    /// Milliseconds since the stream started.
    pub at_ms: u64,
    /// For an interrupted assistant item: milliseconds of it the caller heard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Transcript {
    pub entries: Vec<Entry>,
    #[serde(skip)]
    heard: Vec<(String, u64)>,
}

impl Transcript {
    pub fn push(&mut self, speaker: Speaker, text: &str, at: Duration, heard_ms: Option<u64>) {
        if text.is_empty() {
            return;
        }
        self.entries.push(Entry { speaker, text: text.to_string(), at_ms: at.as_millis() as u64, heard_ms });
    }

    /// Remembers that `item_id` was cut at `ms` (its transcript may arrive later).
    pub fn note_heard(&mut self, item_id: &str, ms: u64) {
        self.heard.push((item_id.to_string(), ms));
    }

    pub fn heard_ms(&self, item_id: &str) -> Option<u64> {
        self.heard.iter().find(|(i, _)| i == item_id).map(|(_, ms)| *ms)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_order_with_interruptions() {
        let mut t = Transcript::default();
        t.push(Speaker::Caller, "hello", Duration::from_millis(1200), None);
        t.note_heard("item_a", 640);
        t.push(Speaker::Assistant, "Sure, Tuesday", Duration::from_millis(2500), t.heard_ms("item_a"));
        t.push(Speaker::Caller, "", Duration::ZERO, None);
        let v: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(v["entries"][0]["speaker"], "caller");
        assert_eq!(v["entries"][1]["heard_ms"], 640);
        assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    }
}
