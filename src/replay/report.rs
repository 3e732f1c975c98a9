//! The replay report: per-call figures summed, and the server's own counters and latency
//! histograms read from `/metrics` before and after the run (percentiles interpolated within
//! Prometheus buckets, so they are as fine as the buckets: 10 µs … 1 s).

use std::collections::BTreeMap;

use serde::Serialize;

use super::client::CallReport;
use crate::probe::Lost;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub calls: usize,
    pub failed_calls: usize,
    pub concurrency: usize,
    pub speed: f64,
    pub wall_seconds: f64,
    pub frames_sent: u64,
    pub media_received: u64,
    pub audio_received_ms: f64,
    pub marks_echoed: u64,
    /// `clear`s while the caller was speaking.
    pub barge_ins: u64,
    /// `clear`s with no caller speech before them (a model reconnect, a machine greeting…).
    pub other_cuts: u64,
    /// Calls in which the AI was heard at all.
    pub ai_answered: usize,
    /// Stream start → the AI's first audio, over the calls that heard it.
    pub first_audio: Percentiles,
    /// The caller's last spoken frame → the answer's first audio, over every answered turn.
    pub response_latency: Percentiles,
    /// The caller starts talking over the AI → its audio stops at the caller (the `clear`), over
    /// every barge-in.
    pub barge_in_stop: Percentiles,
    /// Every frame timed one way, end to end, by its content (`--serve-model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_way: Option<OneWay>,
    pub server: Option<ServerFigures>,
    pub errors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_call: Vec<CallReport>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

/// One direction's frames: how many, how long each took, the largest, the ones that never came.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Direction {
    pub frames: u64,
    pub latency: Percentiles,
    pub max_ms: f64,
    pub lost: Lost,
}

/// The probe frames' figures over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OneWay {
    pub caller_to_model: Direction,
    pub model_to_caller: Direction,
    /// Model frames the server dropped because the caller talked over them (expected).
    pub cleared: u64,
    /// Model frames of answers the caller hung up on (expected).
    pub cut_by_hangup: u64,
    pub undecodable: u64,
}

/// What the server counted during the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerFigures {
    pub frames_from_caller: u64,
    pub appends_to_model: u64,
    pub frames_to_caller: u64,
    /// Frames we sent that the server did not count as received.
    pub lost_frames: u64,
    pub dropped_to_model_bytes: u64,
    pub refused_to_caller_bytes: u64,
    pub barge_ins: u64,
    /// Model sessions replaced mid-call.
    pub model_reconnects: u64,
    /// Caller frames the carrier numbered but never delivered, as the server counted them.
    pub caller_messages_missing: u64,
    /// Caller frame received → model append written.
    pub latency_to_model: Percentiles,
    /// Model delta received → caller media written.
    pub latency_to_caller: Percentiles,
    pub processing_from_caller: Percentiles,
    pub processing_from_model: Percentiles,
}

/// Parsed Prometheus text: `name{labels}` → value.
pub type Scrape = BTreeMap<String, f64>;

pub fn parse_metrics(text: &str) -> Scrape {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn delta(before: &Scrape, after: &Scrape, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// Percentiles of a histogram's change between two scrapes.
pub fn histogram_delta(before: &Scrape, after: &Scrape, name: &str, direction: &str) -> Percentiles {
    let prefix = format!("{name}_bucket{{direction=\"{direction}\",le=\"");
    let mut buckets: Vec<(f64, f64)> = after
        .keys()
        .filter_map(|k| {
            let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, delta(before, after, k)))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count = buckets.last().map_or(0.0, |b| b.1);
    let q = |q: f64| -> f64 {
        let target = q * count;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &buckets {
            if c >= target && c > 0.0 {
                if le.is_infinite() {
                    return prev.0 * 1000.0;
                }
                let frac = if c > prev.1 { (target - prev.1) / (c - prev.1) } else { 1.0 };
                return (prev.0 + (le - prev.0) * frac.clamp(0.0, 1.0)) * 1000.0;
            }
            prev = (le, c);
        }
        0.0
    };
    Percentiles { count: count as u64, p50_ms: q(0.50), p90_ms: q(0.90), p99_ms: q(0.99) }
}

pub fn server_figures(before: &Scrape, after: &Scrape, frames_sent: u64) -> ServerFigures {
    let d = |k: &str| delta(before, after, k).max(0.0) as u64;
    let from_caller = d("voxbridge_frames_total{direction=\"from_caller\"}");
    ServerFigures {
        frames_from_caller: from_caller,
        appends_to_model: d("voxbridge_frames_total{direction=\"to_model\"}"),
        frames_to_caller: d("voxbridge_frames_total{direction=\"to_caller\"}"),
        lost_frames: frames_sent.saturating_sub(from_caller),
        dropped_to_model_bytes: d("voxbridge_dropped_bytes_total{direction=\"to_model\"}"),
        refused_to_caller_bytes: d("voxbridge_dropped_bytes_total{direction=\"to_caller\"}"),
        barge_ins: d("voxbridge_barge_ins_total"),
        model_reconnects: d("voxbridge_model_reconnects_total"),
        caller_messages_missing: d("voxbridge_caller_messages_missing_total"),
        latency_to_model: histogram_delta(before, after, "voxbridge_added_latency_seconds", "to_model"),
        latency_to_caller: histogram_delta(before, after, "voxbridge_added_latency_seconds", "to_caller"),
        processing_from_caller: histogram_delta(before, after, "voxbridge_frame_processing_seconds", "from_caller"),
        processing_from_model: histogram_delta(before, after, "voxbridge_frame_processing_seconds", "from_model"),
    }
}

/// Percentiles of samples (nearest rank), in the samples' unit (ms).
pub fn percentiles(samples: &[f64]) -> Percentiles {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_by(f64::total_cmp);
    let q = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles { count: v.len() as u64, p50_ms: q(0.50), p90_ms: q(0.90), p99_ms: q(0.99) }
}

impl Report {
    /// Adds one call's figures; `samples` collects the turn timings across calls.
    pub fn add(&mut self, call: &CallReport, samples: &mut TurnSamples) {
        self.calls += 1;
        self.frames_sent += call.frames_sent;
        self.media_received += call.media_received;
        self.audio_received_ms += call.audio_received_ms;
        self.marks_echoed += call.marks_echoed;
        self.barge_ins += call.turns.barge_ins;
        self.other_cuts += call.turns.other_cuts;
        if let Some(first) = call.turns.first_audio_ms {
            self.ai_answered += 1;
            samples.first_audio.push(first);
        }
        samples.response.extend_from_slice(&call.turns.response_latency_ms);
        samples.barge_in.extend_from_slice(&call.turns.barge_in_stop_ms);
        if let Some(o) = &call.one_way {
            let w = self.one_way.get_or_insert_default();
            w.caller_to_model.frames += o.to_model_frames;
            w.caller_to_model.lost.add(&o.lost_to_model);
            w.model_to_caller.frames += o.to_caller_frames;
            w.model_to_caller.lost.add(&o.lost_to_caller);
            w.cleared += o.cleared;
            w.cut_by_hangup += o.cut_by_hangup;
            w.undecodable += o.undecodable;
            samples.to_model.extend_from_slice(&o.to_model_ms);
            samples.to_caller.extend_from_slice(&o.to_caller_ms);
        }
        self.first_audio = percentiles(&samples.first_audio);
        self.response_latency = percentiles(&samples.response);
        self.barge_in_stop = percentiles(&samples.barge_in);
        if let Some(e) = &call.error {
            self.failed_calls += 1;
            if self.errors.len() < 10 && !self.errors.contains(e) {
                self.errors.push(e.clone());
            }
        }
    }

    /// The run is over: percentiles of what was gathered only once.
    pub fn finish(&mut self, samples: &TurnSamples) {
        if let Some(w) = self.one_way.as_mut() {
            let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
            w.caller_to_model.latency = percentiles(&samples.to_model);
            w.caller_to_model.max_ms = max(&samples.to_model);
            w.model_to_caller.latency = percentiles(&samples.to_caller);
            w.model_to_caller.max_ms = max(&samples.to_caller);
        }
    }

    /// A human summary: one line per call (when kept), then the totals.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.per_call {
            s.push_str(&call_line(c));
            s.push('\n');
        }
        s.push_str(&format!(
            "calls: {} ({} failed; the AI answered in {}), concurrency {}, speed {}x, {:.1} s\nframes sent {}, media received {} ({:.1} s of audio), marks echoed {}, barge-ins {}, other playback cuts {}\n",
            self.calls,
            self.failed_calls,
            self.ai_answered,
            self.concurrency,
            self.speed,
            self.wall_seconds,
            self.frames_sent,
            self.media_received,
            self.audio_received_ms / 1000.0,
            self.marks_echoed,
            self.barge_ins,
            self.other_cuts
        ));
        if self.first_audio.count > 0 {
            s.push_str(&format!(
                "first AI audio after the stream started: p50 {:.0} ms, p90 {:.0} ms; answer after the caller's last words: p50 {:.0} ms, p90 {:.0} ms (n={})\n",
                self.first_audio.p50_ms,
                self.first_audio.p90_ms,
                self.response_latency.p50_ms,
                self.response_latency.p90_ms,
                self.response_latency.count
            ));
        }
        if self.barge_in_stop.count > 0 {
            s.push_str(&format!(
                "caller starts talking over the AI → its audio stops at the caller: p50 {:.0} ms, p90 {:.0} ms (n={})\n",
                self.barge_in_stop.p50_ms, self.barge_in_stop.p90_ms, self.barge_in_stop.count
            ));
        }
        if let Some(w) = &self.one_way {
            let d = |d: &Direction| {
                format!(
                    "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={} of {} frames); lost {} (start {}, mid {}, end {})",
                    d.latency.p50_ms,
                    d.latency.p90_ms,
                    d.latency.p99_ms,
                    d.max_ms,
                    d.latency.count,
                    d.frames,
                    d.lost.total(),
                    d.lost.start,
                    d.lost.mid,
                    d.lost.end
                )
            };
            s.push_str(&format!(
                "one way, end to end, every frame by its content:\n  caller→model: {}\n  model→caller: {}\n  model frames cleared by barge-ins {}, cut by the hang-up {}; undecodable stretches {}\n",
                d(&w.caller_to_model),
                d(&w.model_to_caller),
                w.cleared,
                w.cut_by_hangup,
                w.undecodable
            ));
        }
        if let Some(sv) = &self.server {
            let p = |p: &Percentiles| {
                format!("p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms (n={})", p.p50_ms, p.p90_ms, p.p99_ms, p.count)
            };
            s.push_str(&format!(
                "server: frames from caller {}, appends to model {}, frames to caller {}, lost {}, missing {}, dropped to model {} B, barge-ins {}, model reconnects {}\n  added latency caller→model: {}\n  added latency model→caller: {}\n",
                sv.frames_from_caller, sv.appends_to_model, sv.frames_to_caller, sv.lost_frames, sv.caller_messages_missing,
                sv.dropped_to_model_bytes, sv.barge_ins, sv.model_reconnects,
                p(&sv.latency_to_model), p(&sv.latency_to_caller)
            ));
        }
        for e in &self.errors {
            s.push_str(&format!("error: {e}\n"));
        }
        s
    }
}

/// Turn timings gathered across calls.
#[derive(Debug, Default)]
pub struct TurnSamples {
    first_audio: Vec<f64>,
    response: Vec<f64>,
    barge_in: Vec<f64>,
    to_model: Vec<f64>,
    to_caller: Vec<f64>,
}

/// One call as a caller would describe it.
pub fn call_line(c: &CallReport) -> String {
    let outcome = match &c.error {
        Some(e) => format!("FAILED: {e}"),
        None => "ok".to_string(),
    };
    let answered = match c.turns.first_audio_ms {
        Some(ms) => format!("AI first heard at {ms:.0} ms"),
        None => "AI never heard".to_string(),
    };
    let mut line = format!("{}: {outcome}; {answered}", c.fixture);
    if !c.turns.response_latency_ms.is_empty() {
        let answers: Vec<String> = c.turns.response_latency_ms.iter().map(|ms| format!("{ms:.0}")).collect();
        line.push_str(&format!("; answers after the caller's words: {} ms", answers.join(", ")));
    }
    for clear in &c.clears {
        let what = if clear.by_caller { "barge-in" } else { "playback cut (not the caller)" };
        line.push_str(&format!(
            "; {what} at {} ms, {:.0} ms of the answer heard",
            clear.at_ms, clear.heard_in_spurt_ms
        ));
    }
    if let Some(code) = c.server_close_code {
        line.push_str(&format!("; closed {code}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_line_says_what_a_caller_would() {
        let mut ok =
            CallReport { fixture: "barge-in.jsonl".into(), server_close_code: Some(1000), ..Default::default() };
        ok.turns.first_audio_ms = Some(412.0);
        ok.turns.response_latency_ms = vec![830.0];
        ok.clears.push(super::super::client::ClearSeen {
            at_ms: 5200,
            heard_in_spurt_ms: 1180.0,
            discarded_ms: 900.0,
            by_caller: true,
        });
        let line = call_line(&ok);
        assert_eq!(
            line,
            "barge-in.jsonl: ok; AI first heard at 412 ms; answers after the caller's words: 830 ms; barge-in at 5200 ms, 1180 ms of the answer heard; closed 1000"
        );
        let failed = CallReport {
            fixture: "dtmf.jsonl".into(),
            error: Some("the server ended the stream with 1011 model unavailable".into()),
            ..Default::default()
        };
        assert_eq!(
            call_line(&failed),
            "dtmf.jsonl: FAILED: the server ended the stream with 1011 model unavailable; AI never heard"
        );
        let p = percentiles(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((p.count, p.p50_ms, p.p90_ms), (5, 3.0, 5.0));
    }

    #[test]
    fn percentiles_interpolate_within_bucket_deltas() {
        let before = parse_metrics(
            "x_bucket{direction=\"a\",le=\"0.001\"} 10\nx_bucket{direction=\"a\",le=\"0.002\"} 10\nx_bucket{direction=\"a\",le=\"+Inf\"} 10\n",
        );
        let after = parse_metrics(
            "# TYPE x histogram\nx_bucket{direction=\"a\",le=\"0.001\"} 60\nx_bucket{direction=\"a\",le=\"0.002\"} 110\nx_bucket{direction=\"a\",le=\"+Inf\"} 110\n",
        );
        let p = histogram_delta(&before, &after, "x", "a");
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 1.0).abs() < 1e-9, "{p:?}");
        assert!((p.p90_ms - 1.8).abs() < 1e-9, "{p:?}");
    }
}
