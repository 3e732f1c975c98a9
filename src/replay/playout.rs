//! The fake carrier's playback, pure: audio plays in real time, a mark is echoed when the audio
//! queued before it has played, `clear` discards what is queued and echoes pending marks (as
//! Twilio documents). Tracks what was heard of the current talk spurt for barge-in checks.

use std::collections::VecDeque;

#[derive(Debug)]
enum Entry {
    Audio(u64),
    Mark(String),
}

/// What a `clear` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    pub flushed_marks: Vec<String>,
    /// Audio thrown away unplayed, in bytes.
    pub discarded: u64,
    /// Audio played since playback last started from idle, in bytes.
    pub heard_in_spurt: u64,
}

#[derive(Debug, Default)]
pub struct Playout {
    queue: VecDeque<Entry>,
    queued_audio: u64,
    heard_in_spurt: u64,
    idle: bool,
    heard: Option<Heard>,
}

/// What the caller heard, byte for byte on the playout's clock (kept when asked: tests compare
/// it with the server's recording).
#[derive(Debug, Default)]
struct Heard {
    queued: VecDeque<u8>,
    track: Vec<u8>,
    silence: u8,
}

impl Playout {
    pub fn new() -> Playout {
        Playout { idle: true, ..Default::default() }
    }

    /// A playout that keeps what it plays (`silence` where nothing plays).
    pub fn keeping_heard(silence: u8) -> Playout {
        Playout { idle: true, heard: Some(Heard { silence, ..Default::default() }), ..Default::default() }
    }

    /// The audio of the last [`push_audio`](Self::push_audio), when the playout keeps it.
    pub fn push_content(&mut self, audio: &[u8]) {
        if let Some(h) = self.heard.as_mut() {
            h.queued.extend(audio);
        }
    }

    /// Everything played so far, silence included (`None` unless kept).
    pub fn take_heard(&mut self) -> Option<Vec<u8>> {
        self.heard.as_mut().map(|h| std::mem::take(&mut h.track))
    }

    pub fn push_audio(&mut self, bytes: u64) {
        if self.idle {
            self.heard_in_spurt = 0;
            self.idle = false;
        }
        self.queued_audio += bytes;
        match self.queue.back_mut() {
            Some(Entry::Audio(n)) => *n += bytes,
            _ => self.queue.push_back(Entry::Audio(bytes)),
        }
    }

    /// Queues a mark; returns it at once when nothing is queued before it.
    pub fn push_mark(&mut self, name: String) -> Option<String> {
        if self.queue.is_empty() {
            Some(name)
        } else {
            self.queue.push_back(Entry::Mark(name));
            None
        }
    }

    /// Plays `budget` bytes; marks reached on the way are appended to `echoes`.
    pub fn advance(&mut self, mut budget: u64, echoes: &mut Vec<String>) {
        while let Some(front) = self.queue.front_mut() {
            match front {
                Entry::Mark(_) => {
                    if let Some(Entry::Mark(name)) = self.queue.pop_front() {
                        echoes.push(name);
                    }
                }
                Entry::Audio(n) => {
                    let take = (*n).min(budget);
                    *n -= take;
                    budget -= take;
                    self.queued_audio -= take;
                    self.heard_in_spurt += take;
                    if let Some(h) = self.heard.as_mut() {
                        let k = (take as usize).min(h.queued.len());
                        h.track.extend(h.queued.drain(..k));
                    }
                    if *n == 0 {
                        self.queue.pop_front();
                    } else {
                        return;
                    }
                }
            }
        }
        if let Some(h) = self.heard.as_mut() {
            h.track.resize(h.track.len() + budget as usize, h.silence);
        }
        if self.queued_audio == 0 {
            self.idle = true;
        }
    }

    pub fn clear(&mut self) -> Cleared {
        let flushed_marks = self
            .queue
            .drain(..)
            .filter_map(|e| match e {
                Entry::Mark(m) => Some(m),
                Entry::Audio(_) => None,
            })
            .collect();
        let c = Cleared { flushed_marks, discarded: self.queued_audio, heard_in_spurt: self.heard_in_spurt };
        if let Some(h) = self.heard.as_mut() {
            h.queued.clear();
        }
        self.queued_audio = 0;
        self.idle = true;
        c
    }

    pub fn queued(&self) -> u64 {
        self.queued_audio
    }

    /// Audio still to play before the next queued mark, if one is queued.
    pub fn bytes_until_next_mark(&self) -> Option<u64> {
        let mut bytes = 0;
        for e in &self.queue {
            match e {
                Entry::Audio(n) => bytes += n,
                Entry::Mark(_) => return Some(bytes),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_echo_when_their_audio_has_played() {
        let mut p = Playout::new();
        assert_eq!(p.push_mark("early".into()), Some("early".into()));
        p.push_audio(160);
        assert_eq!(p.push_mark("m1".into()), None);
        p.push_audio(160);
        assert_eq!(p.push_mark("m2".into()), None);
        let mut echoes = Vec::new();
        p.advance(100, &mut echoes);
        assert!(echoes.is_empty());
        p.advance(100, &mut echoes);
        assert_eq!(echoes, vec!["m1".to_string()]);
        let c = p.clear();
        assert_eq!(c, Cleared { flushed_marks: vec!["m2".into()], discarded: 120, heard_in_spurt: 200 });
    }

    #[test]
    fn a_new_spurt_starts_after_idle() {
        let mut p = Playout::new();
        let mut echoes = Vec::new();
        p.push_audio(160);
        p.advance(1000, &mut echoes);
        p.push_audio(160);
        p.advance(40, &mut echoes);
        assert_eq!(p.clear().heard_in_spurt, 40);
    }

    #[test]
    fn a_kept_track_is_what_played_with_silence_between() {
        let mut p = Playout::keeping_heard(0xFF);
        let mut echoes = Vec::new();
        p.advance(2, &mut echoes);
        p.push_audio(4);
        p.push_content(&[1, 2, 3, 4]);
        p.advance(3, &mut echoes);
        p.clear();
        p.advance(2, &mut echoes);
        assert_eq!(p.take_heard().unwrap(), vec![0xFF, 0xFF, 1, 2, 3, 0xFF, 0xFF]);
    }
}
