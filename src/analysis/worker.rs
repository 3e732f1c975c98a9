//! The analysis worker: every poll it takes the calls whose analysis is due (any instance may;
//! the store's lease keeps each with one), sends each transcript to the Responses API, and
//! stores the answer — or, after [`MAX_ATTEMPTS`] failures with back-off, `{"error": …}`. It
//! never touches a live call.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::warn;

use super::Request;
use crate::store::analysis::Claimed;
use crate::store::{CallRecords, Store, now_ms};

/// How the worker reaches the Responses API.
#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    /// `VOXBRIDGE_ANALYSIS_URL`.
    pub url: String,
    /// `VOXBRIDGE_ANALYSIS_MODEL`.
    pub model: String,
    /// `OPENAI_API_KEY` (sent as a bearer key).
    pub api_key: Option<String>,
    pub poll: Duration,
    /// One request, connect to last byte.
    pub timeout: Duration,
    /// The first retry's delay (doubling, at most a minute).
    pub retry_base: Duration,
    pub prices: crate::pricing::Prices,
}

/// Tries before the analysis is given up (`{"error": …}` on the call).
pub const MAX_ATTEMPTS: i64 = 5;
/// A call that ended this recently may still be saving its transcript.
const SETTLE_MS: i64 = 1_000;
/// Analyses started per poll.
const BATCH: i64 = 8;

/// Runs until `shutdown` turns true.
pub async fn run(store: Store, config: AnalysisConfig, mut shutdown: watch::Receiver<bool>) {
    let client = reqwest::Client::builder().timeout(config.timeout).build().unwrap_or_default();
    loop {
        let now = now_ms();
        match store.due_analyses(now, SETTLE_MS, BATCH).await {
            Ok(ids) => {
                for id in ids {
                    // Held while it is worked on: twice the request's timeout.
                    let until = now + 2 * config.timeout.as_millis() as i64;
                    match store.claim_analysis(&id, now, until).await {
                        Ok(Some(job)) => {
                            let (store, config, client) = (store.clone(), config.clone(), client.clone());
                            tokio::spawn(async move { analyse(&store, &config, &client, job).await });
                        }
                        Ok(None) => {}
                        Err(e) => warn!(error = %e, call_id = id, "cannot take the call's analysis"),
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot read the analyses due"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.poll) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One try of one call's analysis.
async fn analyse(store: &Store, config: &AnalysisConfig, client: &reqwest::Client, job: Claimed) {
    let call_id = job.call_id.as_str();
    let result = attempt(store, config, client, &job).await;
    let written = match result {
        Ok(analysis) => store.finish_analysis(call_id, &analysis.to_string(), now_ms()).await,
        Err(e) if job.attempt >= MAX_ATTEMPTS => {
            warn!(call_id, error = %e, attempts = job.attempt, "post-call analysis given up");
            let given_up = json!({"error": e, "attempts": job.attempt});
            store.finish_analysis(call_id, &given_up.to_string(), now_ms()).await
        }
        Err(e) => {
            let delay =
                config.retry_base.saturating_mul(1 << (job.attempt - 1).clamp(0, 10)).min(Duration::from_secs(60));
            warn!(call_id, error = %e, attempt = job.attempt, retry_in_ms = delay.as_millis() as u64, "post-call analysis failed");
            store.retry_analysis(call_id, now_ms() + delay.as_millis() as i64).await
        }
    };
    if let Err(e) = written {
        warn!(call_id, error = %e, "cannot store the call's analysis (tried again when its lease ends)");
    }
}

async fn attempt(
    store: &Store,
    config: &AnalysisConfig,
    client: &reqwest::Client,
    job: &Claimed,
) -> Result<Value, String> {
    let request = Request::parse(&job.request)?;
    let transcript = store.transcript(&job.call_id).await.map_err(|e| format!("cannot read the transcript: {e}"))?;
    let model = request.model(&config.model).to_string();
    let mut http = client.post(&config.url).json(&request.body(&transcript, &config.model));
    if let Some(key) = &config.api_key {
        http = http.bearer_auth(key);
    }
    let resp = http.send().await.map_err(|e| format!("the analysis request failed: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| format!("the analysis answer ({status}) is not JSON: {e}"))?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(format!("the analysis API answered {status}: {message}"));
    }
    request.read(&body, &model, &config.prices)
}
