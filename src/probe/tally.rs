//! What one call's probe frames say, once the call is over: one-way latency of every frame
//! each way, and the frames that never arrived — at the start, in the middle, at the end.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::book::ModelFrame;

const FRAME_TIME: Duration = Duration::from_millis(20);
/// How much later than its frames' own length an answer may finish playing (the playout lead,
/// pacing).
const PLAYOUT_SLACK: Duration = Duration::from_millis(500);

/// Frames that never arrived, by where they were.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lost {
    /// Before the first frame that arrived (of the call, or of an answer).
    pub start: u64,
    /// Between frames that arrived.
    pub mid: u64,
    /// After the last frame that arrived.
    pub end: u64,
}

impl Lost {
    pub fn total(&self) -> u64 {
        self.start + self.mid + self.end
    }

    pub fn add(&mut self, o: &Lost) {
        self.start += o.start;
        self.mid += o.mid;
        self.end += o.end;
    }

    /// Where the gaps in `arrived` are.
    fn of(arrived: impl ExactSizeIterator<Item = bool> + Clone) -> Lost {
        let n = arrived.len() as u64;
        let first = arrived.clone().position(|a| a);
        let Some(first) = first else { return Lost { start: n, ..Default::default() } };
        let last = arrived.clone().enumerate().filter(|(_, a)| *a).map(|(i, _)| i).last().unwrap_or(first);
        let total_missing = arrived.filter(|a| !a).count() as u64;
        let start = first as u64;
        let end = n - 1 - last as u64;
        Lost { start, mid: total_missing - start - end, end }
    }
}

/// One call's figures, both ways.
#[derive(Debug, Default, Clone, Serialize)]
pub struct OneWayCall {
    /// Caller frames sent, and how long each took to reach the model (ms).
    pub to_model_frames: u64,
    #[serde(skip)]
    pub to_model_ms: Vec<f64>,
    pub lost_to_model: Lost,
    /// Model frames sent while the caller was on the line, and how long each took to reach
    /// the caller (ms).
    pub to_caller_frames: u64,
    #[serde(skip)]
    pub to_caller_ms: Vec<f64>,
    pub lost_to_caller: Lost,
    /// Model frames the server dropped because the caller talked over them (a `clear`).
    pub cleared: u64,
    /// Model frames of the answer the caller hung up on, or sent after.
    pub cut_by_hangup: u64,
    /// Stretches of audio that held no probe frame (either way).
    pub undecodable: u64,
}

/// The caller's side: sent frames and when the model had each.
pub fn caller_to_model(sent: &[Instant], arrived: &[Option<Instant>], out: &mut OneWayCall) {
    let arrived_at = |i: usize| arrived.get(i).copied().flatten();
    out.to_model_frames += sent.len() as u64;
    out.to_model_ms.extend(
        sent.iter().enumerate().filter_map(|(i, s)| arrived_at(i).map(|a| ms(a.saturating_duration_since(*s)))),
    );
    out.lost_to_model.add(&Lost::of((0..sent.len()).map(|i| arrived_at(i).is_some())));
}

/// The model's side of one connection: its frames, when the caller had each (by index), the
/// `clear`s the caller saw and when the caller hung up.
pub fn model_to_caller(
    frames: &[ModelFrame],
    heard: &HashMap<u32, Instant>,
    clears: &[Instant],
    hung_up: Instant,
    out: &mut OneWayCall,
) {
    // The frames that were sent, grouped by answer in order.
    let mut answers: Vec<(u32, Vec<(u32, Instant)>)> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let Some(sent) = f.sent else { continue };
        match answers.last_mut() {
            Some((r, v)) if *r == f.response => v.push((i as u32, sent)),
            _ => answers.push((f.response, vec![(i as u32, sent)])),
        }
    }
    for (n, (_, sent)) in answers.iter().enumerate() {
        let first_sent = sent[0].1;
        let next_start = answers.get(n + 1).map(|(_, v)| v[0].1);
        // Frames sent once the caller hung up were never going to be heard; neither was the
        // rest of the answer the caller hung up on.
        let (before, after): (Vec<_>, Vec<_>) = sent.iter().partition(|(_, s)| *s < hung_up);
        out.cut_by_hangup += after.len() as u64;
        if before.is_empty() {
            continue;
        }
        out.to_caller_frames += before.len() as u64;
        out.to_caller_ms
            .extend(before.iter().filter_map(|(i, s)| heard.get(i).map(|h| ms(h.saturating_duration_since(*s)))));
        let mut lost = Lost::of(before.iter().map(|(i, _)| heard.contains_key(i)));
        // The caller hung up before the answer could have finished playing.
        let plays_until = first_sent + FRAME_TIME * sent.len() as u32 + PLAYOUT_SLACK;
        let hung_up_during = next_start.is_none_or(|t| t >= hung_up) && hung_up < plays_until;
        let cleared = clears.iter().any(|c| *c >= first_sent && next_start.is_none_or(|t| *c <= t));
        if cleared {
            out.cleared += lost.end;
            lost.end = 0;
        } else if hung_up_during {
            out.cut_by_hangup += lost.end;
            lost.end = 0;
        }
        out.lost_to_caller.add(&lost);
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn caller_frames_lost_at_the_start_in_the_middle_and_at_the_end_are_told_apart() {
        let t0 = Instant::now();
        let sent: Vec<Instant> = (0..8).map(|i| at(t0, 20 * i)).collect();
        let arrived: Vec<Option<Instant>> = [None, Some(21), Some(41), None, Some(81), Some(101), Some(121), None]
            .into_iter()
            .map(|a| a.map(|ms| at(t0, ms)))
            .collect();
        let mut out = OneWayCall::default();
        caller_to_model(&sent, &arrived, &mut out);
        assert_eq!(out.lost_to_model, Lost { start: 1, mid: 1, end: 1 });
        assert_eq!(out.to_model_frames, 8);
        assert_eq!(out.to_model_ms, vec![1.0; 5]);
        // A record shorter than what was sent: the rest never arrived.
        let mut out = OneWayCall::default();
        caller_to_model(&sent, &arrived[..3], &mut out);
        assert_eq!(out.lost_to_model, Lost { start: 1, mid: 0, end: 5 });
    }

    #[test]
    fn an_answers_unheard_end_is_lost_unless_a_clear_or_the_hang_up_explains_it() {
        let t0 = Instant::now();
        // Two answers of four frames; the caller heard the first two of each.
        let frames: Vec<ModelFrame> = (0..8u32)
            .map(|i| ModelFrame { sent: Some(at(t0, 20 * i as u64 + if i >= 4 { 1000 } else { 0 })), response: i / 4 })
            .collect();
        let heard: HashMap<u32, Instant> =
            [(0, 5), (1, 25), (4, 1085), (5, 1105)].into_iter().map(|(i, ms)| (i, at(t0, ms))).collect();
        let hung_up = at(t0, 1200);
        let mut out = OneWayCall::default();
        model_to_caller(&frames, &heard, &[], hung_up, &mut out);
        assert_eq!(out.lost_to_caller, Lost { start: 0, mid: 0, end: 2 }, "the first answer's end went missing");
        assert_eq!(out.cut_by_hangup, 2, "the caller hung up during the second answer");
        assert_eq!(out.to_caller_ms, vec![5.0; 4]);
        assert_eq!(out.to_caller_frames, 8);

        let mut out = OneWayCall::default();
        model_to_caller(&frames, &heard, &[at(t0, 40)], hung_up, &mut out);
        assert_eq!(out.lost_to_caller.total(), 0);
        assert_eq!(out.cleared, 2, "a clear during the first answer dropped its end");

        // Frames sent after the hang-up are not expected at all.
        let mut out = OneWayCall::default();
        model_to_caller(&frames, &heard, &[], at(t0, 1050), &mut out);
        assert_eq!(out.to_caller_frames, 4);
        assert_eq!(out.cut_by_hangup, 4);
        assert_eq!(out.lost_to_caller.end, 2, "an answer that had long finished playing is no excuse");
    }

    #[test]
    fn a_frame_missing_inside_an_answer_is_lost_mid_answer() {
        let t0 = Instant::now();
        let frames: Vec<ModelFrame> = (0..4).map(|i| ModelFrame { sent: Some(at(t0, 20 * i)), response: 0 }).collect();
        let heard: HashMap<u32, Instant> = [(1, 22), (3, 62)].into_iter().map(|(i, ms)| (i, at(t0, ms))).collect();
        let mut out = OneWayCall::default();
        model_to_caller(&frames, &heard, &[], at(t0, 500), &mut out);
        assert_eq!(out.lost_to_caller, Lost { start: 1, mid: 1, end: 0 });
    }
}
