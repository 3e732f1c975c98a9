//! Playback accounting and barge-in arithmetic: what the caller has heard of each assistant
//! item, from mark echoes (one mark per 20 ms frame) and the clock between echoes. Pure.
//!
//! Positions are carrier samples sent on this stream. A mark echo confirms a position; between
//! echoes the estimate advances in real time from the later of the echo and the next frame's
//! send time, never past the next unconfirmed mark. Truncation converts an item's heard carrier
//! audio to model milliseconds, minus the outbound path's delay, clamped to what the model sent.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::SampleRate;

#[derive(Debug)]
struct PendingMark {
    seq: u64,
    /// Stream position when this mark's frame has played.
    end: u64,
    sent_at: Instant,
}

#[derive(Debug)]
struct ItemPlay {
    response_id: String,
    item_id: String,
    /// Model-format samples received for this item.
    model_samples: u64,
    /// Carrier samples of this item waiting in the playout path (transcoded, not yet sent).
    queued: u64,
    /// Stream position of the item's first frame (None until a frame is sent).
    start: Option<u64>,
    end: u64,
}

/// A `conversation.item.truncate` to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub item_id: String,
    pub audio_end_ms: u64,
}

/// What a barge-in decided.
#[derive(Debug, Default, PartialEq)]
pub struct Cut {
    pub truncations: Vec<Truncation>,
    /// Responses whose remaining deltas must not reach the caller.
    pub responses: Vec<String>,
}

/// What a mark echo meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkEcho {
    Played,
    /// Echoed because `clear` flushed it: not played.
    Flushed,
    Unknown,
}

/// Playback state of one call's outbound stream.
#[derive(Debug)]
pub struct Playback {
    carrier_rate: SampleRate,
    model_rate: SampleRate,
    /// Outbound path delay in carrier samples (resampler), subtracted from heard audio.
    path_delay: u64,
    sent: u64,
    confirmed: u64,
    confirmed_at: Option<Instant>,
    marks: VecDeque<PendingMark>,
    next_seq: u64,
    /// Marks up to this sequence number were flushed by a `clear`.
    flushed_upto: u64,
    items: Vec<ItemPlay>,
}

impl Playback {
    pub fn new(carrier_rate: SampleRate, model_rate: SampleRate, path_delay: Duration) -> Playback {
        Playback {
            carrier_rate,
            model_rate,
            path_delay: carrier_rate.samples_in(path_delay),
            sent: 0,
            confirmed: 0,
            confirmed_at: None,
            marks: VecDeque::new(),
            next_seq: 1,
            flushed_upto: 0,
            items: Vec::with_capacity(8),
        }
    }

    /// Model audio arrived for an item (before its frames are sent).
    pub fn on_model_audio(&mut self, response_id: &str, item_id: &str, model_samples: u64) {
        let same = |i: &ItemPlay| i.item_id == item_id;
        match self.items.iter_mut().rev().find(|i| same(i)) {
            Some(item) => item.model_samples += model_samples,
            None => self.items.push(ItemPlay {
                response_id: response_id.to_string(),
                item_id: item_id.to_string(),
                model_samples,
                queued: 0,
                start: None,
                end: 0,
            }),
        }
    }

    /// Carrier samples of the latest item entered the playout path. Frames leave it in the
    /// order they entered, so [`on_frame_sent`](Self::on_frame_sent) gives each sent sample to
    /// the item it came from — not to the item received last, which may be a later one while
    /// an earlier one's audio still waits behind the playout lead.
    pub fn on_carrier_queued(&mut self, samples: u64) {
        if let Some(item) = self.items.last_mut() {
            item.queued += samples;
        }
    }

    /// Frames refused because the playout ring was full (the newest audio): they never play.
    pub fn on_carrier_refused(&mut self, samples: u64) {
        if let Some(item) = self.items.last_mut() {
            item.queued = item.queued.saturating_sub(samples);
        }
    }

    /// `samples` carrier samples were sent (one or more frames, oldest audio first); returns
    /// the mark name to send after them.
    pub fn on_frame_sent(&mut self, samples: u64, now: Instant, name: &mut String) {
        let (mut at, mut left) = (self.sent, samples);
        for item in self.items.iter_mut().filter(|i| i.queued > 0) {
            if left == 0 {
                break;
            }
            let take = item.queued.min(left);
            item.start.get_or_insert(at);
            item.end = at + take;
            item.queued -= take;
            at += take;
            left -= take;
        }
        if left > 0 {
            // Audio no item accounted for (padding): it extends the item that played last.
            let played_last = self.items.iter().rposition(|i| i.start.is_some());
            if let Some(item) = played_last.or(self.items.len().checked_sub(1)).map(|i| &mut self.items[i]) {
                item.start.get_or_insert(at);
                item.end = self.sent + samples;
            }
        }
        self.sent += samples;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.marks.push_back(PendingMark { seq, end: self.sent, sent_at: now });
        name.clear();
        name.push('m');
        name.push_str(itoa(seq, &mut [0u8; 20]));
    }

    /// The carrier echoed a mark.
    pub fn on_mark(&mut self, name: &str, now: Instant) -> MarkEcho {
        let Some(seq) = name.strip_prefix('m').and_then(|s| s.parse::<u64>().ok()) else {
            return MarkEcho::Unknown;
        };
        if seq <= self.flushed_upto {
            return MarkEcho::Flushed;
        }
        let Some(pos) = self.marks.iter().position(|m| m.seq == seq) else {
            return MarkEcho::Unknown;
        };
        // Marks play in order: this one and every earlier one have played.
        let end = self.marks[pos].end;
        self.marks.drain(..=pos);
        self.confirmed = self.confirmed.max(end);
        self.confirmed_at = Some(now);
        let confirmed = self.confirmed;
        self.items.retain(|i| i.start.is_none() || i.queued > 0 || i.end > confirmed);
        MarkEcho::Played
    }

    /// Estimated stream position the caller has heard up to.
    pub fn played(&self, now: Instant) -> u64 {
        let Some(next) = self.marks.front() else {
            return self.sent;
        };
        let anchor = match self.confirmed_at {
            Some(t) => t.max(next.sent_at),
            None => next.sent_at,
        };
        let elapsed = self.carrier_rate.samples_in(now.saturating_duration_since(anchor));
        (self.confirmed + elapsed).min(next.end)
    }

    /// Audio sent but not yet heard.
    pub fn ahead(&self, now: Instant) -> Duration {
        self.carrier_rate.duration_of(self.sent - self.played(now))
    }

    /// True while sent audio has not been confirmed played.
    pub fn is_playing(&self) -> bool {
        !self.marks.is_empty()
    }

    /// Caller interrupted: computes each unheard item's truncation point, then forgets all
    /// queued audio (the caller's `clear` drops it and flushes its marks).
    pub fn barge_in(&mut self, now: Instant) -> Cut {
        let played = self.played(now);
        let mut cut = Cut::default();
        for item in &self.items {
            let heard = match item.start {
                Some(start) if played > start => played.min(item.end) - start,
                _ => 0,
            };
            if item.start.is_some() && played >= item.end && item.end > 0 {
                // Fully heard already: nothing to truncate, but its response may still stream.
                if !cut.responses.contains(&item.response_id) {
                    cut.responses.push(item.response_id.clone());
                }
                continue;
            }
            let heard_ms = self.carrier_rate.millis_floor(heard.saturating_sub(self.path_delay));
            let sent_ms = self.model_rate.millis_floor(item.model_samples);
            cut.truncations.push(Truncation { item_id: item.item_id.clone(), audio_end_ms: heard_ms.min(sent_ms) });
            if !cut.responses.contains(&item.response_id) {
                cut.responses.push(item.response_id.clone());
            }
        }
        self.items.clear();
        self.flushed_upto = self.next_seq - 1;
        self.marks.clear();
        self.confirmed = self.sent;
        self.confirmed_at = Some(now);
        cut
    }
}

/// Formats `n` without allocating.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 160;

    fn send_frames(p: &mut Playback, n: usize, at: Instant) -> Vec<String> {
        (0..n)
            .map(|_| {
                let mut name = String::new();
                p.on_frame_sent(FRAME, at, &mut name);
                name
            })
            .collect()
    }

    /// Model audio for an item, and its carrier samples entering the playout path (as the
    /// downlink reports both).
    fn audio(p: &mut Playback, response: &str, item: &str, model_samples: u64, carrier_samples: u64) {
        p.on_model_audio(response, item, model_samples);
        p.on_carrier_queued(carrier_samples);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn marks_confirm_and_the_clock_interpolates_between_them() {
        let t0 = Instant::now();
        let mut p = Playback::new(SampleRate::HZ_8000, SampleRate::HZ_8000, Duration::ZERO);
        audio(&mut p, "r1", "i1", 800, 800);
        let names = send_frames(&mut p, 5, t0);
        assert_eq!(names[0], "m1");
        // Before any echo, playback started when the first frame was sent.
        assert_eq!(p.played(t0 + ms(10)), 80);
        // ...but cannot pass the first unconfirmed mark.
        assert_eq!(p.played(t0 + ms(50)), 160);
        assert_eq!(p.on_mark("m2", t0 + ms(40)), MarkEcho::Played);
        assert_eq!(p.played(t0 + ms(45)), 320 + 40);
        assert_eq!(p.ahead(t0 + ms(45)), ms(55));
        assert_eq!(p.on_mark("nope", t0), MarkEcho::Unknown);
    }

    #[test]
    fn a_late_frame_does_not_play_before_it_was_sent() {
        let t0 = Instant::now();
        let mut p = Playback::new(SampleRate::HZ_8000, SampleRate::HZ_8000, Duration::ZERO);
        audio(&mut p, "r1", "i1", 160, 160);
        let n = send_frames(&mut p, 1, t0);
        p.on_mark(&n[0], t0 + ms(20));
        assert!(!p.is_playing());
        // Buffer ran dry; the next item arrives 500 ms later.
        audio(&mut p, "r2", "i2", 160, 160);
        send_frames(&mut p, 1, t0 + ms(520));
        assert_eq!(p.played(t0 + ms(530)), 160 + 80);
    }

    #[test]
    fn barge_in_truncates_at_the_heard_position_within_a_frame() {
        let t0 = Instant::now();
        let mut p = Playback::new(SampleRate::HZ_8000, SampleRate::HZ_8000, Duration::ZERO);
        audio(&mut p, "r1", "i1", 8000, 8000); // one second from the model
        let names = send_frames(&mut p, 50, t0);
        p.on_mark(&names[29], t0 + ms(600)); // 600 ms confirmed
        let cut = p.barge_in(t0 + ms(613));
        assert_eq!(cut.truncations, vec![Truncation { item_id: "i1".into(), audio_end_ms: 613 }]);
        assert_eq!(cut.responses, vec!["r1".to_string()]);
        // Marks flushed by the clear come back and are recognised as such.
        assert_eq!(p.on_mark(&names[30], t0 + ms(615)), MarkEcho::Flushed);
        assert!(!p.is_playing());
    }

    #[test]
    fn truncation_removes_path_delay_converts_units_and_clamps_to_model_audio() {
        let t0 = Instant::now();
        // 24 kHz model audio resampled to 8 kHz with a 10 ms path delay.
        let mut p = Playback::new(SampleRate::HZ_8000, SampleRate::HZ_24000, ms(10));
        audio(&mut p, "r1", "i1", 24_000 * 3 / 10, 2_400 + 160); // 300 ms sent by the model (+ padding)
        let names = send_frames(&mut p, 16, t0); // 320 ms of carrier audio (300 + flush padding)
        p.on_mark(&names[8], t0 + ms(180));
        let cut = p.barge_in(t0 + ms(200));
        assert_eq!(cut.truncations[0].audio_end_ms, 190);
        let mut p = Playback::new(SampleRate::HZ_8000, SampleRate::HZ_24000, ms(10));
        audio(&mut p, "r1", "i1", 24_000 * 3 / 10, 2_400 + 160);
        let names = send_frames(&mut p, 16, t0);
        p.on_mark(&names[14], t0 + ms(300));
        // Heard 318 ms of carrier audio, 308 ms of model audio, but the model sent only 300.
        let cut = p.barge_in(t0 + ms(318));
        assert_eq!(cut.truncations[0].audio_end_ms, 300);
    }

    #[test]
    fn queued_but_unstarted_items_truncate_to_zero_and_heard_items_are_skipped() {
        let t0 = Instant::now();
        let mut p = Playback::new(SampleRate::HZ_8000, SampleRate::HZ_8000, Duration::ZERO);
        audio(&mut p, "r1", "i1", 160, 160);
        let first = send_frames(&mut p, 1, t0);
        audio(&mut p, "r1", "i2", 1600, 1600);
        send_frames(&mut p, 10, t0);
        audio(&mut p, "r1", "i3", 800, 800); // audio received, no frame sent yet
        p.on_mark(&first[0], t0 + ms(20));
        let cut = p.barge_in(t0 + ms(30));
        let by_item: Vec<(&str, u64)> = cut.truncations.iter().map(|t| (t.item_id.as_str(), t.audio_end_ms)).collect();
        // i1 was fully heard (its mark came back); 10 ms of i2; nothing of i3.
        assert_eq!(by_item, vec![("i2", 10), ("i3", 0)]);
    }

    /// One response, two items (a preamble, then the answer): the answer's audio arrives while
    /// the preamble's frames still wait behind the playout lead. Frames are the preamble's until
    /// its audio is out; a barge-in during the answer truncates the answer at what the caller
    /// heard *of the answer* (before: the preamble's queued frames were counted against it).
    #[test]
    fn frames_belong_to_the_item_they_came_from_when_a_response_has_two_items() {
        let t0 = Instant::now();
        let mut p = Playback::new(SampleRate::HZ_8000, SampleRate::HZ_8000, Duration::ZERO);
        audio(&mut p, "r1", "preamble", 4_000, 4_000); // 500 ms
        let first = send_frames(&mut p, 10, t0); // 200 ms sent (the lead), 300 ms still queued
        audio(&mut p, "r1", "answer", 16_000, 16_000); // 2 s, arriving now
        p.on_mark(&first[9], t0 + ms(200));
        let rest = send_frames(&mut p, 25, t0 + ms(200)); // the preamble's 300 ms, then 200 ms of the answer
        p.on_mark(&rest[19], t0 + ms(600)); // 500 ms of preamble + 100 ms of the answer played
        let cut = p.barge_in(t0 + ms(610));
        let by_item: Vec<(&str, u64)> = cut.truncations.iter().map(|t| (t.item_id.as_str(), t.audio_end_ms)).collect();
        assert_eq!(by_item, vec![("answer", 110)], "the preamble was heard whole; 110 ms of the answer");
    }
}
