//! An energy voice-activity detector over 10 ms windows (speech after 30 ms above the threshold,
//! silence after `silence_ms`): the mock model's stand-in for OpenAI's server VAD, and how the
//! bridge knows the caller is talking while a full-duplex model yields.

/// What one window changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at this input position (ms, including the prefix padding).
    Started { audio_start_ms: u64 },
    /// Speech ended at this input position (ms).
    Stopped { audio_end_ms: u64 },
}

/// Windows above the threshold needed to call it speech.
const START_WINDOWS: u32 = 3;
const WINDOW_MS: u64 = 10;

#[derive(Debug)]
pub struct Vad {
    /// Mean absolute amplitude (16-bit scale) that counts as speech.
    threshold: u32,
    silence_windows: u32,
    prefix_ms: u64,
    window_samples: usize,
    acc: u64,
    acc_n: usize,
    /// Input position in ms (the `audio_start_ms` clock).
    pos_ms: u64,
    speaking: bool,
    loud_run: u32,
    quiet_run: u32,
}

impl Vad {
    pub fn new(sample_rate: u32, threshold: u32, silence_ms: u32, prefix_ms: u32) -> Vad {
        Vad {
            threshold,
            silence_windows: (silence_ms as u64 / WINDOW_MS).max(1) as u32,
            prefix_ms: prefix_ms as u64,
            window_samples: (sample_rate as u64 * WINDOW_MS / 1000) as usize,
            acc: 0,
            acc_n: 0,
            pos_ms: 0,
            speaking: false,
            loud_run: 0,
            quiet_run: 0,
        }
    }

    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Feeds samples; `on_event` hears every transition.
    pub fn push(&mut self, samples: &[i16], mut on_event: impl FnMut(VadEvent)) {
        for &s in samples {
            self.acc += s.unsigned_abs() as u64;
            self.acc_n += 1;
            if self.acc_n < self.window_samples {
                continue;
            }
            let loud = self.acc / self.acc_n as u64 > self.threshold as u64;
            self.acc = 0;
            self.acc_n = 0;
            self.pos_ms += WINDOW_MS;
            if self.speaking {
                self.quiet_run = if loud { 0 } else { self.quiet_run + 1 };
                if self.quiet_run >= self.silence_windows {
                    self.speaking = false;
                    self.loud_run = 0;
                    let end = self.pos_ms - self.quiet_run as u64 * WINDOW_MS;
                    on_event(VadEvent::Stopped { audio_end_ms: end });
                }
            } else {
                self.loud_run = if loud { self.loud_run + 1 } else { 0 };
                if self.loud_run >= START_WINDOWS {
                    self.speaking = true;
                    self.quiet_run = 0;
                    let start = (self.pos_ms - START_WINDOWS as u64 * WINDOW_MS).saturating_sub(self.prefix_ms);
                    on_event(VadEvent::Started { audio_start_ms: start });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_a_burst_with_its_boundaries() {
        let mut vad = Vad::new(8000, 300, 200, 100);
        let mut events = Vec::new();
        let silence = vec![0i16; 8000];
        let tone: Vec<i16> = (0..8000).map(|i| if i % 2 == 0 { 3000 } else { -3000 }).collect();
        vad.push(&silence, |e| events.push(e));
        vad.push(&tone, |e| events.push(e));
        vad.push(&silence, |e| events.push(e));
        assert_eq!(events, vec![VadEvent::Started { audio_start_ms: 900 }, VadEvent::Stopped { audio_end_ms: 2000 }]);
        assert!(!vad.is_speaking());
    }
}
