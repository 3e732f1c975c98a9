//! What a replayed call heard, turn by turn, as a caller would judge it: did the AI answer, how
//! soon after the caller's words did each answer start, and was each `clear` the caller cutting
//! in or something else (a model reconnect, a machine's greeting). Pure: times are passed in.

use std::time::{Duration, Instant};

use serde::Serialize;

/// A caller frame counts as speech above this RMS (16-bit full scale 32767; espeak speech in
/// the fixtures is ~3000, line silence and comfort noise below 100).
const VOICED_RMS: f64 = 400.0;
/// A `clear` within this long of the caller's last spoken frame is the caller barging in.
const BARGE_IN_WINDOW: Duration = Duration::from_millis(1500);
/// Unvoiced frames this long end a spurt of caller speech.
const SPURT_GAP: Duration = Duration::from_millis(300);

/// Whether a μ-law frame (base64, as Twilio sends it) holds speech.
pub fn voiced_ulaw_base64(payload: &str) -> bool {
    use base64::Engine;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(payload) else { return false };
    let mut pcm = vec![0i16; bytes.len()];
    let n = crate::media::g711::ulaw_decode_into(&bytes, &mut pcm);
    if n == 0 {
        return false;
    }
    let energy: f64 = pcm[..n].iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (energy / n as f64).sqrt() > VOICED_RMS
}

/// The turn-taking figures of one call.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Turns {
    /// From the stream's start to the AI's first audio.
    pub first_audio_ms: Option<f64>,
    /// For each answer that followed caller speech: from the caller's last spoken frame to the
    /// answer's first audio (what the caller waits through, plus the path to this client).
    pub response_latency_ms: Vec<f64>,
    /// `clear`s while the caller was speaking.
    pub barge_ins: u64,
    /// `clear`s with no caller speech before them (a model reconnect, a machine greeting…).
    pub other_cuts: u64,
    /// For each barge-in: from the caller's first spoken frame of the spurt that cut the AI to
    /// the `clear` (when the AI's audio stopped at the caller), on this client's clock.
    pub barge_in_stop_ms: Vec<f64>,
    /// The caller's current spurt began then.
    #[serde(skip)]
    spurt_started: Option<Instant>,
    #[serde(skip)]
    started: Option<Instant>,
    #[serde(skip)]
    last_voiced: Option<Instant>,
    /// The caller has spoken since the AI last started an answer.
    #[serde(skip)]
    awaiting_answer: bool,
}

impl Turns {
    pub fn started(&mut self, now: Instant) {
        self.started = Some(now);
    }

    /// A caller frame went out.
    pub fn caller_frame(&mut self, voiced: bool, now: Instant) {
        if voiced {
            if self.last_voiced.is_none_or(|t| now.saturating_duration_since(t) > SPURT_GAP) {
                self.spurt_started = Some(now);
            }
            self.last_voiced = Some(now);
            self.awaiting_answer = true;
        }
    }

    /// AI audio arrived; `idle` when nothing of the AI was still queued to play (the start of
    /// an answer rather than more of one).
    pub fn ai_audio(&mut self, idle: bool, now: Instant) {
        if self.first_audio_ms.is_none()
            && let Some(t0) = self.started
        {
            self.first_audio_ms = Some(ms(now - t0));
        }
        if idle && self.awaiting_answer {
            self.awaiting_answer = false;
            if let Some(spoke) = self.last_voiced {
                self.response_latency_ms.push(ms(now.saturating_duration_since(spoke)));
            }
        }
    }

    /// The server sent `clear`; true when it was the caller barging in.
    pub fn clear(&mut self, now: Instant) -> bool {
        let barge_in = self.last_voiced.is_some_and(|t| now.saturating_duration_since(t) <= BARGE_IN_WINDOW);
        if barge_in {
            self.barge_ins += 1;
            if let Some(t) = self.spurt_started {
                self.barge_in_stop_ms.push(ms(now.saturating_duration_since(t)));
            }
        } else {
            self.other_cuts += 1;
        }
        barge_in
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_and_silence_are_told_apart() {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        assert!(!voiced_ulaw_base64(&b64(&[0xFF; 160])), "μ-law silence");
        let tone: Vec<u8> = (0..160).map(|i| if i % 2 == 0 { 0x10 } else { 0x90 }).collect();
        assert!(voiced_ulaw_base64(&b64(&tone)), "a loud square wave");
        assert!(!voiced_ulaw_base64("not base64!"));
    }

    #[test]
    fn answers_are_timed_from_the_callers_last_words_and_cuts_are_told_apart() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = Turns::default();
        t.started(at(0));
        t.ai_audio(true, at(400)); // the greeting: no caller speech before it
        assert_eq!(t.first_audio_ms, Some(400.0));
        assert!(t.response_latency_ms.is_empty());
        t.caller_frame(true, at(2000));
        t.caller_frame(true, at(2500));
        t.caller_frame(false, at(2520));
        t.ai_audio(true, at(3100)); // the answer starts
        t.ai_audio(false, at(3120)); // more of it
        assert_eq!(t.response_latency_ms, [600.0]);
        t.caller_frame(true, at(3500));
        t.caller_frame(true, at(3700));
        assert!(t.clear(at(3900)), "the caller cut in");
        assert_eq!(t.barge_in_stop_ms, [400.0], "from the spurt's first frame to the clear");
        assert!(!t.clear(at(9000)), "long after the caller spoke: a reconnect or similar");
        assert_eq!((t.barge_ins, t.other_cuts), (1, 1));
    }
}
