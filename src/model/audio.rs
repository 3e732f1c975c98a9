//! The model's audio format, shared by both OpenAI protocols (each writes it its own way).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use crate::media::StreamFormat;

/// The model's audio format for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelAudio {
    /// `audio/pcmu`: G.711 μ-law 8 kHz, passed through from Twilio untouched.
    Pcmu,
    /// `audio/pcma`: G.711 A-law 8 kHz.
    Pcma,
    /// `audio/pcm` at 24 kHz, 16-bit little-endian.
    Pcm24k,
}

impl ModelAudio {
    pub fn format(self) -> StreamFormat {
        match self {
            ModelAudio::Pcmu => StreamFormat::PCMU_8K,
            ModelAudio::Pcma => StreamFormat::PCMA_8K,
            ModelAudio::Pcm24k => StreamFormat::PCM_24K,
        }
    }

    /// The Realtime `format` object.
    pub fn wire(self) -> serde_json::Value {
        match self {
            ModelAudio::Pcmu => json!({"type": "audio/pcmu"}),
            ModelAudio::Pcma => json!({"type": "audio/pcma"}),
            ModelAudio::Pcm24k => json!({"type": "audio/pcm", "rate": 24000}),
        }
    }

    /// The format for a call whose carrier speaks `carrier`: in g711 mode PCMU and PCMA pass
    /// straight through; every other carrier format is decoded and resampled to 24 kHz PCM.
    pub fn for_carrier(self, carrier: StreamFormat) -> ModelAudio {
        match (self, carrier) {
            (ModelAudio::Pcm24k, _) => ModelAudio::Pcm24k,
            (_, StreamFormat::PCMU_8K) => ModelAudio::Pcmu,
            (_, StreamFormat::PCMA_8K) => ModelAudio::Pcma,
            _ => ModelAudio::Pcm24k,
        }
    }

    /// Reads a session's `audio.input.format` object.
    pub fn from_wire(v: &serde_json::Value) -> Option<ModelAudio> {
        match v["type"].as_str()? {
            "audio/pcmu" => Some(ModelAudio::Pcmu),
            "audio/pcma" => Some(ModelAudio::Pcma),
            "audio/pcm" if v["rate"].as_u64().unwrap_or(24_000) == 24_000 => Some(ModelAudio::Pcm24k),
            _ => None,
        }
    }
}

impl ModelAudio {
    /// The GPT-Live `audio.format` object (G.711 names its rate there).
    pub fn live_wire(self) -> serde_json::Value {
        match self {
            ModelAudio::Pcmu => json!({"type": "audio/pcmu", "rate": 8000}),
            ModelAudio::Pcma => json!({"type": "audio/pcma", "rate": 8000}),
            ModelAudio::Pcm24k => json!({"type": "audio/pcm", "rate": 24000}),
        }
    }
}

/// `{"type":"<kind>","audio":"<base64 of audio>"}`: the one event sent per 20 ms frame, by both
/// protocols. Written around the base64 directly: its alphabet needs no JSON escaping, so
/// serde_json's per-byte escape scan (2–3 % of the server's CPU in `pcm16`, where a frame is
/// 1,280 characters) and a copy through an intermediate string are skipped.
pub fn append_event(kind: &str, audio: &[u8]) -> String {
    const OPEN: &str = r#"{"type":""#;
    const MID: &str = r#"","audio":""#;
    const CLOSE: &str = r#""}"#;
    let mut event =
        String::with_capacity(OPEN.len() + kind.len() + MID.len() + audio.len().div_ceil(3) * 4 + CLOSE.len());
    event.push_str(OPEN);
    event.push_str(kind);
    event.push_str(MID);
    B64.encode_string(audio, &mut event);
    event.push_str(CLOSE);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_event_is_the_json_serde_would_write_with_no_spare_capacity() {
        for audio in [&[][..], &[0xFF], &[0xFF, 0xFE], &[1, 2, 3], &[0x3E; 960]] {
            let event = append_event("input_audio_buffer.append", audio);
            let expected = serde_json::json!({"type": "input_audio_buffer.append", "audio": B64.encode(audio)});
            assert_eq!(serde_json::from_str::<serde_json::Value>(&event).unwrap(), expected);
            assert_eq!(event.len(), event.capacity(), "sized exactly: {event}");
        }
    }
}
