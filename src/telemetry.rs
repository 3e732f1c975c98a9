//! Logging (plain or JSON lines) and Prometheus metrics: names live here, and per-call handles
//! are created once per call so the audio path only does atomic adds.

use std::sync::OnceLock;

use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;

/// Installs the tracing subscriber (once; later calls are no-ops).
/// Installs the log subscriber: `RUST_LOG` (default `info`) filters; colours only on a terminal.
/// A `RUST_LOG` that does not parse is an error naming it (it used to be ignored silently).
pub fn init_logging(format: LogFormat) -> Result<(), crate::config::ConfigError> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(log_filter()?).with_target(false).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.try_init(),
    };
    Ok(())
}

/// Logging for a tool whose standard output is its result (`replay --json`): lines to stderr.
pub fn init_stderr_logging() -> Result<(), crate::config::ConfigError> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter()?)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

/// `RUST_LOG`, or `info`.
fn log_filter() -> Result<tracing_subscriber::EnvFilter, crate::config::ConfigError> {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&spec).map_err(|e| {
            crate::config::ConfigError { variable: "RUST_LOG", problem: format!("{spec:?} is not a log filter ({e})") }
        }),
        _ => Ok(tracing_subscriber::EnvFilter::new("info")),
    }
}

/// Buckets for per-frame latencies and processing times, in seconds (10 µs … 1 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
const CONNECT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_latency_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_processing_seconds".into()), LATENCY_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_connect_seconds".into()), CONNECT_BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed in tests that embed several servers; keep ours.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Folds recorded histogram samples into their buckets every `every`. The exporter keeps each
/// sample until then (or until a scrape), so without this its memory grows with every frame
/// between scrapes — 4 MB in a 300-call run scraped only at the end.
pub async fn upkeep(every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        prometheus().run_upkeep();
    }
}

/// Metric handles for one call's hot path.
pub struct CallMetrics {
    pub frames_from_caller: Counter,
    pub appends_to_model: Counter,
    pub frames_to_caller: Counter,
    pub dropped_to_model_bytes: Counter,
    pub refused_to_caller_bytes: Counter,
    pub barge_ins: Counter,
    pub caller_messages_missing: Counter,
    pub latency_to_model: Histogram,
    pub latency_to_caller: Histogram,
    pub processing_from_caller: Histogram,
    pub processing_from_model: Histogram,
}

impl CallMetrics {
    pub fn new() -> CallMetrics {
        CallMetrics {
            frames_from_caller: counter!("voxbridge_frames_total", "direction" => "from_caller"),
            appends_to_model: counter!("voxbridge_frames_total", "direction" => "to_model"),
            frames_to_caller: counter!("voxbridge_frames_total", "direction" => "to_caller"),
            dropped_to_model_bytes: counter!("voxbridge_dropped_bytes_total", "direction" => "to_model"),
            refused_to_caller_bytes: counter!("voxbridge_dropped_bytes_total", "direction" => "to_caller"),
            barge_ins: counter!("voxbridge_barge_ins_total"),
            caller_messages_missing: counter!("voxbridge_caller_messages_missing_total"),
            latency_to_model: histogram!("voxbridge_added_latency_seconds", "direction" => "to_model"),
            latency_to_caller: histogram!("voxbridge_added_latency_seconds", "direction" => "to_caller"),
            processing_from_caller: histogram!("voxbridge_frame_processing_seconds", "direction" => "from_caller"),
            processing_from_model: histogram!("voxbridge_frame_processing_seconds", "direction" => "from_model"),
        }
    }
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn ignored_frame(reason: &'static str) {
    counter!("voxbridge_ignored_frames_total", "reason" => reason).increment(1);
}

pub fn call_ended(reason: &'static str) {
    counter!("voxbridge_calls_ended_total", "reason" => reason).increment(1);
}

/// True the first time `kind` is seen from `source` (then false), so that a refusal is logged
/// once per source and a flood cannot flood the log; metrics still count every one. Forgets
/// everything past 10,000 entries.
pub fn first_from(kind: &'static str, source: std::net::IpAddr) -> bool {
    static SEEN: std::sync::Mutex<Option<std::collections::HashSet<(&'static str, std::net::IpAddr)>>> =
        std::sync::Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(Default::default);
    if seen.len() >= 10_000 {
        seen.clear();
    }
    seen.insert((kind, source))
}

/// HTTP connections open now (WebSockets leave the count once upgraded).
pub fn http_connections(n: usize) {
    gauge!("voxbridge_http_connections").set(n as f64);
}

/// `accept` failed (out of file descriptors, usually) and the loop backed off.
pub fn accept_error() {
    counter!("voxbridge_accept_errors_total").increment(1);
}

/// A connection closed at once: at the connection cap with no idle connection to shed.
pub fn connection_refused() {
    counter!("voxbridge_connections_refused_total").increment(1);
}

/// A claimed call went back to the queue: its carrier's dial pace was used up.
pub fn dial_paced(provider: &'static str) {
    counter!("voxbridge_dials_paced_total", "provider" => provider).increment(1);
}

/// Model tokens billed on a finished stream, and their price when known (alert on spend).
pub fn model_usage(model: &str, usage: &crate::model::Usage, usd: Option<f64>) {
    let model = model.to_string();
    for (kind, n) in [
        ("input_audio", usage.input_audio_tokens),
        ("output_audio", usage.output_audio_tokens),
        ("input_text", usage.input_text_tokens),
        ("output_text", usage.output_text_tokens),
        ("cached_input", usage.cached_input_tokens),
    ] {
        counter!("voxbridge_model_tokens_total", "model" => model.clone(), "kind" => kind).increment(n);
    }
    if let Some(usd) = usd {
        // Micro-dollars: counters are integers.
        counter!("voxbridge_model_cost_microusd_total", "model" => model).increment((usd * 1e6).round() as u64);
    }
}

/// A write the store refused (`what`: the record kind; `…_lost` once retries gave up).
pub fn store_write_failed(what: &'static str) {
    counter!("voxbridge_store_write_failures_total", "what" => what).increment(1);
}

/// A call of a call's own tool ended: `ok` (a JSON answer) or `error`.
pub fn tool_called(result: &'static str) {
    counter!("voxbridge_tool_calls_total", "result" => result).increment(1);
}

pub fn call_refused(reason: &'static str) {
    counter!("voxbridge_calls_refused_total", "reason" => reason).increment(1);
}

pub fn model_connect(seconds: f64, ok: bool) {
    histogram!("voxbridge_model_connect_seconds").record(seconds);
    if !ok {
        counter!("voxbridge_model_connect_failures_total").increment(1);
    }
}

/// The model socket dropped mid-call and a new session was tried.
/// A model session replaced because of its age (reliability row 6).
pub fn model_rotation() {
    counter!("voxbridge_model_rotations_total").increment(1);
}

pub fn model_reconnect() {
    counter!("voxbridge_model_reconnects_total").increment(1);
}

/// A model session was opened while an outbound call's phone rang.
pub fn model_prewarm() {
    counter!("voxbridge_model_prewarms_total").increment(1);
}

/// A call's chosen model API could not be reached at its start and the other one served it.
pub fn model_failover(from: &'static str, to: &'static str) {
    counter!("voxbridge_model_failovers_total", "from" => from, "to" => to).increment(1);
}

pub fn live_calls(n: usize) {
    metrics::gauge!("voxbridge_live_calls").set(n as f64);
}

pub fn queue_claimed() {
    counter!("voxbridge_queue_claims_total").increment(1);
}

/// A dialler round that dialled nothing because the model's circuit breaker is open.
pub fn dials_held() {
    counter!("voxbridge_dials_held_total").increment(1);
}

pub fn queue_dial_failed(retryable: bool) {
    counter!("voxbridge_queue_dial_failures_total", "retryable" => if retryable { "true" } else { "false" })
        .increment(1);
}

pub fn queue_leases_expired(n: usize) {
    counter!("voxbridge_queue_leases_expired_total").increment(n as u64);
}

pub fn queue_depth(n: i64) {
    metrics::gauge!("voxbridge_queue_depth").set(n as f64);
}

/// A call's status changed on a provider event (`retry` when an attempt was requeued).
pub fn call_transition(status: &'static str) {
    counter!("voxbridge_call_transitions_total", "status" => status).increment(1);
}

/// A carrier webhook answered: `ok` (2xx), `refused` (401/403: signature), `invalid` (other
/// 4xx), `error` (5xx: the carrier retries).
pub fn webhook_answered(provider: &'static str, status: axum::http::StatusCode) {
    let result = match status.as_u16() {
        200..=299 => "ok",
        401 | 403 => "refused",
        400..=499 => "invalid",
        _ => "error",
    };
    counter!("voxbridge_webhooks_total", "provider" => provider, "result" => result).increment(1);
}

/// How far our clock is ahead of a signed webhook's timestamp (negative: behind), last seen.
/// Signatures are refused beyond 300 s, so a drifting clock shows here before calls fail.
pub fn webhook_clock_skew(provider: &'static str, seconds: i64) {
    metrics::gauge!("voxbridge_webhook_clock_skew_seconds", "provider" => provider).set(seconds as f64);
}

pub fn queue_retry(reason: &'static str) {
    counter!("voxbridge_queue_retries_total", "reason" => reason).increment(1);
}

/// A call whose carrier's final status never came was finished by asking the carrier.
pub fn call_swept() {
    counter!("voxbridge_calls_swept_total").increment(1);
}

/// Masks a phone number for logs: keeps the first 2 and last 4 characters.
pub fn redact_number(n: &str) -> String {
    let chars: Vec<char> = n.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let mut s: String = chars[..2].iter().collect();
    s.push_str(&"*".repeat(chars.len() - 6));
    s.extend(&chars[chars.len() - 4..]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_redacted() {
        assert_eq!(redact_number("+15551234567"), "+1******4567");
        assert_eq!(redact_number("123"), "***");
    }
}
