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
    /// The model's item this assistant entry came from (a later barge-in cut finds it).
    #[serde(skip)]
    pub item_id: Option<String>,
    /// Built from deltas and still growing until the other side speaks.
    #[serde(skip)]
    open: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Transcript {
    pub entries: Vec<Entry>,
    #[serde(skip)]
    heard: Vec<(String, u64)>,
}

impl Transcript {
    pub fn push(&mut self, speaker: Speaker, text: &str, at: Duration, heard_ms: Option<u64>) {
        self.push_item(speaker, text, at, heard_ms, None);
    }

    /// An assistant item's words. The model sends them ahead of playback, usually before any
    /// barge-in: a cut noted earlier applies now, a later one through [`note_heard`](Self::note_heard).
    pub fn push_assistant(&mut self, item_id: &str, text: &str, at: Duration) {
        let heard = self.heard_ms(item_id);
        self.push_item(Speaker::Assistant, text, at, heard, Some(item_id.to_string()));
    }

    fn push_item(
        &mut self,
        speaker: Speaker,
        text: &str,
        at: Duration,
        heard_ms: Option<u64>,
        item_id: Option<String>,
    ) {
        if text.is_empty() {
            return;
        }
        self.entries.push(Entry {
            speaker,
            text: text.to_string(),
            at_ms: at.as_millis() as u64,
            heard_ms,
            item_id,
            open: false,
        });
    }

    /// Words as a model streams them (GPT-Live): they join the speaker's line until the other
    /// side speaks, then a new line begins.
    pub fn push_delta(&mut self, speaker: Speaker, text: &str, at: Duration) {
        if text.is_empty() {
            return;
        }
        for e in self.entries.iter_mut().rev().take_while(|e| e.open) {
            if e.speaker == speaker {
                e.text.push_str(text);
                return;
            }
        }
        // The other side's open line (if any) stays open only while it has the last word.
        if let Some(last) = self.entries.last_mut() {
            last.open = last.open && last.speaker == speaker;
        }
        self.entries.push(Entry {
            speaker,
            text: text.to_string(),
            at_ms: at.as_millis() as u64,
            heard_ms: None,
            item_id: None,
            open: true,
        });
    }

    /// Records that `item_id` was cut at `ms`: on its entry if its words came already, else
    /// for when they come.
    pub fn note_heard(&mut self, item_id: &str, ms: u64) {
        for e in self.entries.iter_mut().filter(|e| e.item_id.as_deref() == Some(item_id)) {
            e.heard_ms = Some(ms);
        }
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

    #[test]
    fn deltas_build_one_line_per_turn() {
        let mut t = Transcript::default();
        t.push_delta(Speaker::Assistant, "Hello, ", Duration::from_millis(100));
        t.push_delta(Speaker::Assistant, "how can I help?", Duration::from_millis(400));
        t.push_delta(Speaker::Caller, "I'd like ", Duration::from_millis(2000));
        t.push_delta(Speaker::Caller, "to book.", Duration::from_millis(2300));
        t.push_delta(Speaker::Assistant, "Sure.", Duration::from_millis(3000));
        let lines: Vec<(Speaker, &str, u64)> =
            t.entries.iter().map(|e| (e.speaker, e.text.as_str(), e.at_ms)).collect();
        assert_eq!(
            lines,
            vec![
                (Speaker::Assistant, "Hello, how can I help?", 100),
                (Speaker::Caller, "I'd like to book.", 2000),
                (Speaker::Assistant, "Sure.", 3000)
            ]
        );
    }

    #[test]
    fn a_cut_after_the_words_arrived_still_says_what_was_heard() {
        let mut t = Transcript::default();
        t.push_assistant("item_b", "Your appointment is on Tuesday at nine, and", Duration::from_millis(3000));
        t.push_assistant("item_c", "Anything else?", Duration::from_millis(6000));
        assert_eq!(t.entries[0].heard_ms, None, "heard in full so far");
        t.note_heard("item_b", 1180);
        assert_eq!(t.entries[0].heard_ms, Some(1180));
        assert_eq!(t.entries[1].heard_ms, None, "another item is untouched");
        let v: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(v["entries"][0]["heard_ms"], 1180);
        assert!(v["entries"][0].get("item_id").is_none(), "internal");
    }
}
