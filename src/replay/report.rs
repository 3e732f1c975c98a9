//! The replay report: per-call figures summed, and the server's own counters and latency
//! histograms read from `/metrics` before and after the run (percentiles interpolated within
//! Prometheus buckets, so they are as fine as the buckets: 10 µs … 1 s).

use std::collections::BTreeMap;

use serde::Serialize;

use super::client::CallReport;

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
    pub barge_ins: u64,
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
        latency_to_model: histogram_delta(before, after, "voxbridge_added_latency_seconds", "to_model"),
        latency_to_caller: histogram_delta(before, after, "voxbridge_added_latency_seconds", "to_caller"),
        processing_from_caller: histogram_delta(before, after, "voxbridge_frame_processing_seconds", "from_caller"),
        processing_from_model: histogram_delta(before, after, "voxbridge_frame_processing_seconds", "from_model"),
    }
}

impl Report {
    pub fn add(&mut self, call: &CallReport) {
        self.calls += 1;
        self.frames_sent += call.frames_sent;
        self.media_received += call.media_received;
        self.audio_received_ms += call.audio_received_ms;
        self.marks_echoed += call.marks_echoed;
        self.barge_ins += call.clears.len() as u64;
        if let Some(e) = &call.error {
            self.failed_calls += 1;
            if self.errors.len() < 10 && !self.errors.contains(e) {
                self.errors.push(e.clone());
            }
        }
    }

    /// A human summary.
    pub fn text(&self) -> String {
        let mut s = format!(
            "calls: {} ({} failed), concurrency {}, speed {}x, {:.1} s\nframes sent {}, media received {} ({:.1} s of audio), marks echoed {}, barge-ins {}\n",
            self.calls,
            self.failed_calls,
            self.concurrency,
            self.speed,
            self.wall_seconds,
            self.frames_sent,
            self.media_received,
            self.audio_received_ms / 1000.0,
            self.marks_echoed,
            self.barge_ins
        );
        if let Some(sv) = &self.server {
            let p = |p: &Percentiles| {
                format!("p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms (n={})", p.p50_ms, p.p90_ms, p.p99_ms, p.count)
            };
            s.push_str(&format!(
                "server: frames from caller {}, appends to model {}, frames to caller {}, lost {}, dropped to model {} B, barge-ins {}\n  added latency caller→model: {}\n  added latency model→caller: {}\n",
                sv.frames_from_caller, sv.appends_to_model, sv.frames_to_caller, sv.lost_frames, sv.dropped_to_model_bytes, sv.barge_ins,
                p(&sv.latency_to_model), p(&sv.latency_to_caller)
            ));
        }
        for e in &self.errors {
            s.push_str(&format!("error: {e}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
