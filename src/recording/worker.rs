//! The recordings worker of one instance: uploads the finished recordings in its spool to S3
//! (retrying with back-off, the error reported on the call meanwhile, the file kept until it is
//! stored), seals the `.part` files a crash left (what was recorded is kept), and deletes
//! recordings with their call's retention. It never touches a live call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::spool::{PART, seal};
use super::storage::Storage;
use crate::store::{Store, now_ms};

/// A `.part` not written for this long belongs to no live call (a live one is written every
/// half second at least): it is sealed and kept.
const ABANDONED: Duration = Duration::from_secs(60);
/// Failed uploads before the error is reported on the call (it is still retried).
const REPORT_AFTER: u32 = 3;
/// The longest wait between two tries of an upload.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often retention looks for recordings to delete.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Recordings deleted per retention pass.
const RETENTION_BATCH: i64 = 500;

/// What the worker needs.
#[derive(Clone)]
pub struct WorkerConfig {
    pub storage: Storage,
    /// The first retry's delay (doubling, at most [`MAX_BACKOFF`]); also how often the spool is
    /// looked at without a wake-up.
    pub retry_base: Duration,
    /// Calls created longer ago than this lose their recording (`VOXBRIDGE_CALL_RETENTION_DAYS`).
    pub retain: Duration,
}

/// An upload that failed: when to try again, how often it failed.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    next: Instant,
}

/// Runs until `shutdown` turns true; `wake` starts a pass at once (a recording was finished).
pub async fn run(store: Store, config: WorkerConfig, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff: HashMap<String, Backoff> = HashMap::new();
    let mut last_retention: Option<Instant> = None;
    loop {
        pass(&store, &config, &mut backoff).await;
        if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            retention(&store, &config).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.retry_base) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One look at the spool: abandoned parts sealed, finished files uploaded when due.
async fn pass(store: &Store, config: &WorkerConfig, backoff: &mut HashMap<String, Backoff>) {
    let dir = config.storage.spool_dir();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else { return };
    let mut finished = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if let Some(id) = name.strip_suffix(PART).and_then(|n| n.strip_suffix(".wav")) {
            if super::is_call_id(id) && is_abandoned(&path).await {
                seal_abandoned(store, config, id, &path).await;
                if !config.storage.is_local() {
                    finished.push((id.to_string(), path.with_extension("")));
                }
            }
        } else if let Some(id) = name.strip_suffix(".wav")
            && !config.storage.is_local()
            && super::is_call_id(id)
        {
            finished.push((id.to_string(), path));
        }
    }
    let now = Instant::now();
    for (id, path) in finished {
        if backoff.get(&id).is_some_and(|b| b.next > now) {
            continue;
        }
        match upload(store, config, &id, &path).await {
            Ok(()) => {
                backoff.remove(&id);
            }
            Err(e) => {
                let b = backoff.entry(id.clone()).or_insert(Backoff { failures: 0, next: now });
                b.failures += 1;
                let delay = config.retry_base.saturating_mul(1 << (b.failures - 1).min(10)).min(MAX_BACKOFF);
                b.next = Instant::now() + delay;
                warn!(call_id = id, error = %e, failures = b.failures, retry_in_ms = delay.as_millis() as u64, "recording upload failed");
                if b.failures >= REPORT_AFTER {
                    let report = format!("upload failed {} times (retrying): {e}", b.failures);
                    if let Err(e) = store.recording_failed(&id, &report).await {
                        warn!(call_id = id, error = %e, "cannot note the recording's failure");
                    }
                }
            }
        }
    }
}

async fn is_abandoned(path: &Path) -> bool {
    let Ok(meta) = tokio::fs::metadata(path).await else { return false };
    meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age >= ABANDONED)
}

/// A crash left `part`: what it holds becomes the recording.
async fn seal_abandoned(store: &Store, config: &WorkerConfig, id: &str, part: &Path) {
    match seal(part).await {
        Ok(done) => {
            info!(call_id = id, bytes = done.bytes, "sealed a recording its call's process left unfinished");
            let stored = config.storage.is_local();
            if let Err(e) = store.recording_finished(id, done.bytes, stored, now_ms()).await {
                warn!(call_id = id, error = %e, "cannot note the sealed recording");
            }
        }
        Err(e) => warn!(call_id = id, error = %e, "cannot seal an unfinished recording"),
    }
}

/// Uploads one finished spool file; once stored, the call says so and the file goes.
async fn upload(store: &Store, config: &WorkerConfig, id: &str, path: &PathBuf) -> Result<(), String> {
    let bytes = tokio::fs::metadata(path).await.map_err(|e| e.to_string())?.len();
    config.storage.upload(id, path).await?;
    store.recording_finished(id, bytes, true, now_ms()).await.map_err(|e| format!("stored, but not noted: {e}"))?;
    info!(call_id = id, bytes, "recording stored");
    if let Err(e) = tokio::fs::remove_file(path).await {
        warn!(call_id = id, error = %e, "cannot remove the uploaded recording's spool file");
    }
    Ok(())
}

/// Deletes the recordings of calls past retention (and their spool files).
pub async fn retention(store: &Store, config: &WorkerConfig) {
    let before = now_ms() - config.retain.as_millis() as i64;
    let ids = match store.expired_recordings(before, RETENTION_BATCH).await {
        Ok(ids) => ids,
        Err(e) => return warn!(error = %e, "cannot read the recordings past retention"),
    };
    let mut deleted = 0;
    for id in ids {
        let spooled = config.storage.spool_dir().join(super::file_name(&id));
        let _ = tokio::fs::remove_file(&spooled).await;
        match config.storage.delete(&id).await {
            Ok(()) => match store.recording_deleted(&id).await {
                Ok(()) => deleted += 1,
                Err(e) => warn!(call_id = id, error = %e, "cannot note the recording's deletion"),
            },
            Err(e) => warn!(call_id = id, error = %e, "cannot delete a recording past retention"),
        }
    }
    if deleted > 0 {
        info!(deleted, "retention: deleted recordings");
    }
}
