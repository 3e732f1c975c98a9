//! `voxbridge replay`: recorded fixture calls played against a running server as the carrier
//! would, concurrently with spread starts, with a progress bar and a report.

pub mod client;
pub mod playout;
pub mod probe;
pub mod report;
pub mod telnyx;
pub mod telnyx_api;
pub mod turns;
pub mod twilio_api;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::fixture::{Fixture, FixtureError};
pub use client::{CallReport, Target};
pub use report::Report;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub fixtures: Vec<PathBuf>,
    pub target: Target,
    /// Calls in flight at once. Every fixture is played at least once: the run has
    /// max(concurrency, fixtures) calls, call i playing fixture i mod fixtures.
    pub concurrency: usize,
    /// Call starts are spread evenly over this time.
    pub ramp: Duration,
    pub progress: bool,
    /// Keep each call's report in the result.
    pub per_call: bool,
}

/// The shared HTTP client (TLS via rustls/ring).
pub(crate) fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        crate::install_tls();
        reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default()
    })
}

async fn scrape(url: &str) -> Option<report::Scrape> {
    let text = http().get(format!("{}/metrics", url.trim_end_matches('/'))).send().await.ok()?.text().await.ok()?;
    Some(report::parse_metrics(&text))
}

/// Runs the replay and returns the report.
pub async fn run(opts: ReplayOptions) -> Result<Report, FixtureError> {
    let fixtures: Vec<(String, Arc<client::Prepared>)> = opts
        .fixtures
        .iter()
        .map(|p| {
            let fixture = Fixture::read(p)?;
            // Twilio frames can become Telnyx frames (replay transcodes), not the other way round.
            let telnyx_recording = fixture.header.as_ref().is_some_and(|h| h.provider == "telnyx");
            if telnyx_recording && opts.target.telnyx.is_none() {
                return Err(FixtureError::NeedsTelnyx { path: p.display().to_string() });
            }
            Ok((p.display().to_string(), Arc::new(client::Prepared::new(&fixture))))
        })
        .collect::<Result<_, FixtureError>>()?;
    let n = opts.concurrency.max(1).max(fixtures.len());
    let in_flight = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let before = scrape(&opts.target.url).await;
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(n as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} calls done ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (name, fixture) = fixtures[i % fixtures.len()].clone();
        let target = opts.target.clone();
        let delay = opts.ramp.mul_f64(i as f64 / n as f64);
        let in_flight = Arc::clone(&in_flight);
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            let _slot = in_flight.acquire_owned().await;
            client::run_call(&target, &name, fixture, i).await
        });
    }
    let mut report = Report { concurrency: opts.concurrency.max(1), speed: opts.target.speed, ..Default::default() };
    let mut samples = report::TurnSamples::default();
    while let Some(res) = tasks.join_next().await {
        let call = res
            .unwrap_or_else(|e| CallReport { error: Some(format!("replay task failed: {e}")), ..Default::default() });
        report.add(&call, &mut samples);
        if opts.per_call {
            report.per_call.push(call);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.finish(&samples);
    report.wall_seconds = started.elapsed().as_secs_f64();
    // Let the server finish its teardown counters before reading them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let (Some(b), Some(a)) = (before, scrape(&opts.target.url).await) {
        report.server = Some(report::server_figures(&b, &a, report.frames_sent));
    }
    Ok(report)
}
