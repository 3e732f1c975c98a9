//! The SQLite store: WAL, `synchronous=FULL`, a busy timeout, read back and verified at start;
//! one writer connection plus a small read pool; multi-statement writes are `BEGIN IMMEDIATE`
//! transactions, single statements autocommit (ADR 0005); migrations embedded and applied on open.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::lifecycle::pace::Pace;
use crate::store::{AfterFailure, Cancel, Claimed, JobStore, Millis, NewJob, StoreError, failure_rule, sql};
use group_commit::GroupCommit;

mod calls;
pub(crate) mod events;
pub mod group_commit;
mod outbound;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READERS: u32 = 4;

/// The embedded job store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The hot writes (enqueue, claim, heartbeat, complete, provider events) share commits.
    commits: GroupCommit,
    health: std::sync::Arc<crate::store::health::WriteHealth>,
    /// The dialler to wake when a job is queued or moved ([`Store::listen`](crate::store::Store::listen)).
    jobs: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<tokio::sync::Notify>>>,
}

impl SqliteStore {
    /// Wakes `jobs` whenever a job is queued or moved (the first dialler to ask).
    pub fn wake_on_jobs(&self, jobs: std::sync::Arc<tokio::sync::Notify>) {
        let _ = self.jobs.set(jobs);
    }

    /// A job was queued or moved.
    pub fn jobs_changed(&self) {
        if let Some(jobs) = self.jobs.get() {
            jobs.notify_one();
        }
    }

    /// How its writes are going.
    pub fn health(&self) -> &crate::store::health::WriteHealth {
        &self.health
    }

    /// Opens (creating if missing) the database at `url` (`sqlite://path.db`), migrates it and
    /// verifies the settings durability depends on.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Url(url.to_string()));
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Url(url.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(|conn, _| Box::pin(async move { still_sound(conn).await }))
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(READERS).connect_with(opts).await?;
        let store = SqliteStore {
            commits: GroupCommit::start(writer.clone()),
            writer,
            reader,
            health: Default::default(),
            jobs: Default::default(),
        };
        for pool in [&store.writer, &store.reader] {
            verify(pool, "journal_mode", "wal").await?;
            verify(pool, "synchronous", "2").await?;
            verify(pool, "busy_timeout", &BUSY_TIMEOUT.as_millis().to_string()).await?;
            verify(pool, "foreign_keys", "1").await?;
        }
        Ok(store)
    }

    /// A PRAGMA's current value on the writer connection (for checks and diagnostics).
    pub async fn pragma(&self, name: &'static str) -> Result<String, StoreError> {
        read_pragma(&self.writer, name).await
    }

    pub(super) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub(super) fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    pub(super) fn commits(&self) -> &GroupCommit {
        &self.commits
    }

    /// `PRAGMA integrity_check`: "ok" for a sound database file.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&self.writer).await?)
    }

    /// The setting `name`, set to `value` first if it has none (the first writer wins).
    pub async fn shared_setting(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1").bind(name).fetch_one(&self.writer).await?)
    }

    /// Answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Folds the WAL into the database file and closes every connection (shutdown), so that
    /// `voxbridge.db` alone is a complete copy of the data.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.reader.close().await;
        let checkpoint = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.writer).await;
        self.writer.close().await;
        checkpoint?;
        Ok(())
    }

    /// Writes one row through the writer (readiness): fails while the disk is full or the file
    /// cannot be written, and succeeds again once it can, so `/readyz` tells the truth.
    pub async fn probe_write(&self, now: Millis) -> Result<(), StoreError> {
        self.commits
            .write_one(move |c| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO store_probe (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = ?1",
                    )
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}

/// Whether the writer connection may go back to the pool. A COMMIT that failed with a full disk
/// or an I/O error leaves SQLite rolled back by itself while sqlx still counts an open
/// transaction, so every later `BEGIN` on that connection would fail until a restart. Such a
/// connection is closed instead; the pool opens a fresh one (same settings) for the next write.
async fn still_sound(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    // Runs after the rollback a dropped transaction queued on this connection.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("the writer connection lost track of its transaction (disk full or I/O error?); replacing it");
        return Ok(false);
    }
    Ok(true)
}

async fn read_pragma(pool: &SqlitePool, name: &'static str) -> Result<String, StoreError> {
    let sql = match name {
        "journal_mode" => "PRAGMA journal_mode",
        "synchronous" => "PRAGMA synchronous",
        "busy_timeout" => "PRAGMA busy_timeout",
        "foreign_keys" => "PRAGMA foreign_keys",
        _ => return Ok(String::new()),
    };
    let row = sqlx::query(sql).fetch_one(pool).await?;
    let value: String = row.try_get::<String, _>(0).or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))?;
    Ok(value.to_lowercase())
}

async fn verify(pool: &SqlitePool, pragma: &'static str, expected: &str) -> Result<(), StoreError> {
    let actual = read_pragma(pool, pragma).await?;
    if actual == expected { Ok(()) } else { Err(StoreError::Pragma { pragma, expected: expected.to_string(), actual }) }
}

/// The one claim statement: due, highest priority first, under the global cap, and never a
/// second live call to the same number (also guarded by a partial unique index).
const CLAIM: &str = "
UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1
WHERE id = (
    SELECT j.id FROM jobs j
    WHERE j.state = 'queued' AND j.run_at <= ?3
      AND (SELECT COUNT(*) FROM jobs r WHERE r.state IN ('running', 'orphaned')) < ?4
      AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state IN ('running', 'orphaned') AND r.to_number = j.to_number)
      AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = j.call_id
                        AND (c.expires_at <= ?3 OR c.campaign IN (SELECT name FROM campaigns WHERE paused = 1)))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT 1)
RETURNING id, call_id, to_number, attempts, max_attempts, lease_until";

impl SqliteStore {
    /// `sql` (`$1` job id, `$2` lease owner, `$3` a time) in the next group commit; `true` when
    /// the job was this owner's running job.
    async fn owned_job_update(&self, sql: &'static str, id: i64, owner: &str, at: Millis) -> Result<bool, StoreError> {
        let owner = owner.to_string();
        self.commits
            .write_one(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(sql).bind(id).bind(owner).bind(at).execute(&mut *conn).await?.rows_affected();
                    Ok(n == 1)
                })
            })
            .await
    }
}

impl JobStore for SqliteStore {
    async fn enqueue(&self, job: NewJob, now: Millis) -> Result<i64, StoreError> {
        self.commits
            .write_one(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(sql::ENQUEUE_JOB)
                        .bind(&job.call_id)
                        .bind(&job.to_number)
                        .bind(job.priority)
                        .bind(job.run_at)
                        .bind(job.max_attempts.max(1))
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?;
                    Ok(row.try_get(0)?)
                })
            })
            .await
    }

    async fn claim(
        &self,
        owner: &str,
        now: Millis,
        lease_ms: i64,
        max_running: i64,
    ) -> Result<Option<Claimed>, StoreError> {
        // One statement, so one claim sees every earlier claim of its batch.
        let owner = owner.to_string();
        let row = self
            .commits
            .write_one(move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query(CLAIM)
                        .bind(owner)
                        .bind(now + lease_ms)
                        .bind(now)
                        .bind(max_running)
                        .fetch_optional(&mut *conn)
                        .await?)
                })
            })
            .await?;
        row.map(|r| {
            Ok(Claimed {
                id: r.try_get(0)?,
                call_id: r.try_get(1)?,
                to_number: r.try_get(2)?,
                attempts: r.try_get(3)?,
                max_attempts: r.try_get(4)?,
                lease_until: r.try_get(5)?,
            })
        })
        .transpose()
    }

    async fn heartbeat(&self, id: i64, owner: &str, until: Millis) -> Result<bool, StoreError> {
        self.owned_job_update(sql::HEARTBEAT, id, owner, until).await
    }

    async fn complete(&self, id: i64, owner: &str, now: Millis) -> Result<bool, StoreError> {
        self.owned_job_update(sql::COMPLETE, id, owner, now).await
    }

    async fn fail(
        &self,
        id: i64,
        owner: &str,
        now: Millis,
        error: &str,
        retryable: bool,
        retry_at: Millis,
    ) -> Result<AfterFailure, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = fail_in(&mut tx, id, owner, now, error, retryable, retry_at).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn cancel(&self, id: i64, now: Millis) -> Result<Cancel, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?1").bind(id).fetch_optional(&mut *tx).await?;
        let result = match state.as_deref() {
            Some("queued") => {
                sqlx::query(sql::CANCEL_JOB).bind(id).bind(now).execute(&mut *tx).await?;
                Cancel::Canceled
            }
            Some("running") | Some("orphaned") => Cancel::Running,
            _ => Cancel::Finished,
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn expire_leases(&self, now: Millis) -> Result<Vec<i64>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(sql::EXPIRE_LEASES).bind(now).fetch_all(&self.writer).await?;
        Ok(ids)
    }

    async fn requeue_orphan(&self, id: i64, run_at: Millis) -> Result<bool, StoreError> {
        // An orphan whose attempts are spent fails instead of getting one more.
        let n = sqlx::query(sql::REQUEUE_ORPHAN).bind(id).bind(run_at).execute(&self.writer).await?.rows_affected();
        Ok(n == 1)
    }

    async fn queue_position(&self, id: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::QUEUE_POSITION).bind(id).fetch_optional(&self.reader).await?)
    }

    async fn take_dial(&self, carrier: &str, pace: Pace, now: Millis) -> Result<Result<(), Millis>, StoreError> {
        crate::store::run::take_dial(&self.writer, carrier, pace, now).await
    }

    async fn next_run_at(&self, now: Millis) -> Result<Option<Millis>, StoreError> {
        Ok(sqlx::query_scalar(sql::NEXT_RUN_AT).bind(now).fetch_one(&self.reader).await?)
    }

    async fn prune(&self, now: Millis, done_age_ms: i64, failed_age_ms: i64) -> Result<u64, StoreError> {
        let n = sqlx::query(sql::PRUNE_JOBS)
            .bind(now - done_age_ms)
            .bind(now - failed_age_ms)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n)
    }
}

/// Fails a running job owned by `owner` inside a write transaction: back to the queue at
/// `retry_at` when retryable and attempts remain, else failed for good.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fail_in(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    owner: &str,
    now: Millis,
    error: &str,
    retryable: bool,
    retry_at: Millis,
) -> Result<AfterFailure, StoreError> {
    let row =
        sqlx::query("SELECT attempts, max_attempts FROM jobs WHERE id = ?1 AND state = 'running' AND lease_owner = ?2")
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(row) = row else { return Ok(AfterFailure::NotOwner) };
    let rule = failure_rule(row.try_get(0)?, row.try_get(1)?, retryable, retry_at, now);
    sqlx::query(sql::FAIL_JOB)
        .bind(id)
        .bind(rule.state)
        .bind(rule.run_at)
        .bind(rule.finished_at)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    Ok(rule.after)
}
