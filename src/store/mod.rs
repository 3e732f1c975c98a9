//! All SQL lives here. The queue's operations are a trait ([`JobStore`]) so a PostgreSQL backend
//! can follow without touching callers; [`sqlite::SqliteStore`] is the embedded default.

pub mod calls;
pub mod events;
pub mod outbound;
pub mod sqlite;

use std::future::Future;

/// Unix milliseconds (UTC): the only time unit persisted.
pub type Millis = i64;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("PRAGMA {pragma} is {actual:?}, expected {expected:?}; refusing to run")]
    Pragma { pragma: &'static str, expected: String, actual: String },
    #[error("bad database URL {0:?}")]
    Url(String),
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub call_id: String,
    pub to_number: String,
    pub priority: i64,
    pub run_at: Millis,
    pub max_attempts: i64,
}

/// A job a worker holds under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub call_id: String,
    pub to_number: String,
    /// Including this one.
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_until: Millis,
}

/// What happened to a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    Requeued {
        run_at: Millis,
    },
    Final,
    /// The lease was no longer ours (expired and taken over): nothing changed.
    NotOwner,
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// It was waiting: now canceled.
    Canceled,
    /// It is being dialled or is live: the caller must hang up through the provider.
    Running,
    /// Already finished (or unknown).
    Finished,
}

/// The queue's persistent operations. Every method is one atomic transaction.
pub trait JobStore: Send + Sync {
    fn enqueue(&self, job: NewJob, now: Millis) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Claims the most urgent due job — highest priority, then earliest `run_at` — unless
    /// `max_running` jobs are running or one is already running for the same number.
    fn claim(
        &self,
        owner: &str,
        now: Millis,
        lease_ms: i64,
        max_running: i64,
    ) -> impl Future<Output = Result<Option<Claimed>, StoreError>> + Send;
    /// Extends a lease; `false` when it is no longer ours.
    fn heartbeat(&self, id: i64, owner: &str, until: Millis) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn complete(&self, id: i64, owner: &str, now: Millis) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records a failed attempt: requeued at `retry_at` when `retryable` and attempts remain,
    /// else final.
    fn fail(
        &self,
        id: i64,
        owner: &str,
        now: Millis,
        error: &str,
        retryable: bool,
        retry_at: Millis,
    ) -> impl Future<Output = Result<AfterFailure, StoreError>> + Send;
    fn cancel(&self, id: i64, now: Millis) -> impl Future<Output = Result<Cancel, StoreError>> + Send;
    /// Running jobs whose lease ran out become `orphaned` (a call may have been dialled: the
    /// reconciler asks the provider before any new attempt). Returns their ids.
    fn expire_leases(&self, now: Millis) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
    /// After reconciliation found no live call: back to the queue at `run_at`.
    fn requeue_orphan(&self, id: i64, run_at: Millis) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// 1-based position among due-or-not queued jobs in claim order; `None` if not queued.
    fn queue_position(&self, id: i64) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
    /// Deletes finished job rows older than the given ages; returns how many.
    fn prune(
        &self,
        now: Millis,
        done_age_ms: i64,
        failed_age_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
