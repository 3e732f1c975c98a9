//! The PostgreSQL store, for several instances sharing one queue (ADR 0013): a connection pool,
//! migrations of its own (`migrations/postgres`), every multi-statement change one transaction.
//!
//! Under READ COMMITTED two claimers that both count the running jobs could both see room under
//! the cap. So a claim also takes one of the cap's slots (`0 ≤ slot < cap`, the first free one
//! from a random start), and a partial unique index allows each slot to one job in progress: of two claimers
//! that picked the same slot — or two jobs to the same number, the other unique index — the
//! second fails on commit of the first and tries again. Claims otherwise run side by side, one
//! statement each; rows a claim would wait for (a `PATCH` in progress) are skipped
//! (`FOR UPDATE SKIP LOCKED`). A new or requeued job is announced with `NOTIFY`
//! ([`JOBS_CHANNEL`]) so that an idle instance dials it without waiting for its poll.

mod calls;
pub(crate) mod events;
mod outbound;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::lifecycle::pace::Pace;
use crate::store::{
    AfterFailure, CallNotice, Cancel, Claimed, JobStore, Millis, NewJob, StoreError, failure_rule, sql,
};

/// Connections per instance (the dialler, webhooks, the API and live calls share them).
const POOL: u32 = 16;
/// Connections kept open even when idle: a call's start (its token's sighting, its record, its
/// status) must not wait for new connections to be set up — a TCP and SCRAM handshake each —
/// while its caller's first words wait in a one-second ring.
const POOL_WARM: u32 = 6;
/// How long a statement waits for a connection from the pool before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a claim that lost a race for a slot or a number tries again before it gives the
/// round up (the next poll or announcement tries again).
const CLAIM_TRIES: usize = 8;
/// The channel a new or requeued job is announced on.
pub const JOBS_CHANNEL: &str = "voxbridge_jobs";
/// The channel a command for a live call is announced on (payload: the call id).
pub const COMMANDS_CHANNEL: &str = "voxbridge_commands";
/// The channel on which a call's pre-warmed session is declared unneeded (payload: the call id).
pub const PREWARMS_CHANNEL: &str = "voxbridge_prewarms";

/// The shared job store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// For the listener's own connection.
    url: String,
    health: std::sync::Arc<crate::store::health::WriteHealth>,
}

impl PgStore {
    /// How its writes are going.
    pub fn health(&self) -> &crate::store::health::WriteHealth {
        &self.health
    }

    /// Connects to `url` (`postgres://…`) and migrates the database.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::Url(crate::store::redact_url(url)))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL)
            .min_connections(POOL_WARM)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool, url: url.to_string(), health: Default::default() })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The setting `name`, set to `value` first if it has none (the first writer wins).
    pub async fn shared_setting(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1").bind(name).fetch_one(&self.pool).await?)
    }

    /// Answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Writes one row (readiness): fails while the database refuses writes (a read-only
    /// replica after a failover, a full disk), succeeds again once it takes them.
    pub async fn probe_write(&self, now: Millis) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO store_probe (id, at) VALUES ('probe', $1) ON CONFLICT (id) DO UPDATE SET at = $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Waits for announcements on a dedicated connection (`LISTEN`): a job queued anywhere wakes
    /// `jobs` (as does each reconnection, which may have missed some); one about a call goes to
    /// `calls`. Returns only when the listener cannot be set up (the dialler's poll still finds
    /// every job).
    pub async fn listen(&self, jobs: impl Fn() + Send, calls: impl Fn(CallNotice) + Send) -> Result<(), StoreError> {
        // A connection of its own, not the pool's: one held by the listener for good would keep
        // `close` (which waits for every pooled connection) from ever returning.
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen_all([JOBS_CHANNEL, COMMANDS_CHANNEL, PREWARMS_CHANNEL]).await?;
        // Listening from here on: a job queued before (while this connection was being set up)
        // announced itself to nobody, so the dialler looks once now.
        jobs();
        loop {
            // `try_recv` reconnects by itself and says `None` when it did (notices may be lost).
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == COMMANDS_CHANNEL => calls(CallNotice::Command(n.payload().to_string())),
                Ok(Some(n)) if n.channel() == PREWARMS_CHANNEL => {
                    calls(CallNotice::PrewarmUnneeded(n.payload().to_string()))
                }
                Ok(_) => jobs(),
                Err(e) => {
                    tracing::warn!(error = %e, "announcements: listener failed; polling only until it reconnects");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    jobs();
                }
            }
        }
    }

    /// Leaves `command` (JSON) for live call `call_id` and tells every instance; returns its id.
    pub async fn send_command(&self, call_id: &str, command: &str, now: Millis) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO call_commands (call_id, command, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(call_id)
        .bind(command)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)").bind(COMMANDS_CHANNEL).bind(call_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Tells every instance that `call_id`'s pre-warmed session, wherever it is, is not needed.
    pub async fn prewarm_unneeded(&self, call_id: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(PREWARMS_CHANNEL).bind(call_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Takes (deletes) the commands waiting for `call_id`, oldest first.
    pub async fn take_commands(&self, call_id: &str) -> Result<Vec<String>, StoreError> {
        let mut rows: Vec<(i64, String)> =
            sqlx::query_as("DELETE FROM call_commands WHERE call_id = $1 RETURNING id, command")
                .bind(call_id)
                .fetch_all(&self.pool)
                .await?;
        rows.sort_by_key(|(id, _)| *id);
        Ok(rows.into_iter().map(|(_, c)| c).collect())
    }

    /// Withdraws command `id` if nobody took it: `true` when it was still waiting.
    pub async fn withdraw_command(&self, id: i64) -> Result<bool, StoreError> {
        let n =
            sqlx::query("DELETE FROM call_commands WHERE id = $1").bind(id).execute(&self.pool).await?.rows_affected();
        Ok(n == 1)
    }

    /// Whether command `id` is still waiting.
    pub async fn command_waiting(&self, id: i64) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_commands WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}

impl PgStore {
    /// `sql` (`$1` job id, `$2` lease owner, `$3` a time); `true` when the job was this owner's
    /// running job.
    async fn owned_job_update(&self, sql: &'static str, id: i64, owner: &str, at: Millis) -> Result<bool, StoreError> {
        let n = sqlx::query(sql).bind(id).bind(owner).bind(at).execute(&self.pool).await?.rows_affected();
        Ok(n == 1)
    }
}

/// Creates an empty database named `prefix` + a random suffix (`prefix`: letters, digits, `_`)
/// on the server `server` names and returns its URL (tests and benchmarks give each run its own).
pub async fn create_database(server: &str, prefix: &str) -> Result<String, StoreError> {
    use sqlx::Connection;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Url(format!("database name prefix {prefix:?}")));
    }
    let name = format!("{prefix}_{:016x}", rand::random::<u64>());
    let mut conn = PgConnection::connect(server).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
    let mut url = url::Url::parse(server).map_err(|_| StoreError::Url(crate::store::redact_url(server)))?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// A unique index refused the write (another instance wrote the same key, slot or number first).
pub(super) fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// Announces a new or requeued job (delivered when the transaction commits).
pub(super) async fn announce(tx: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')").bind(JOBS_CHANNEL).execute(&mut *tx).await?;
    Ok(())
}

/// Claims the most urgent due job under the caps, taking the first free slot from a random
/// starting point `$5` (so that concurrent claimers rarely pick the same one; no sort).
const CLAIM: &str = "
UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, slot = free.s
FROM (SELECT s FROM (SELECT (g + $5) % $4 AS s FROM generate_series(0, $4 - 1) AS g) AS ring
      WHERE NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state IN ('running', 'orphaned') AND r.slot = ring.s)
      LIMIT 1) AS free
WHERE jobs.id = (
    SELECT j.id FROM jobs j
    WHERE j.state = 'queued' AND j.run_at <= $3
      AND (SELECT COUNT(*) FROM jobs r WHERE r.state IN ('running', 'orphaned')) < $4
      AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state IN ('running', 'orphaned') AND r.to_number = j.to_number)
      AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = j.call_id
                        AND (c.expires_at <= $3 OR c.campaign IN (SELECT name FROM campaigns WHERE paused)))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT 1
    FOR UPDATE OF j SKIP LOCKED)
RETURNING jobs.id, jobs.call_id, jobs.to_number, jobs.attempts, jobs.max_attempts, jobs.lease_until";

impl JobStore for PgStore {
    async fn enqueue(&self, job: NewJob, now: Millis) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(sql::ENQUEUE_JOB)
            .bind(&job.call_id)
            .bind(&job.to_number)
            .bind(job.priority)
            .bind(job.run_at)
            .bind(job.max_attempts.max(1))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn claim(
        &self,
        owner: &str,
        now: Millis,
        lease_ms: i64,
        max_running: i64,
    ) -> Result<Option<Claimed>, StoreError> {
        let mut tries = 0;
        let row = loop {
            let claimed = sqlx::query(CLAIM)
                .bind(owner)
                .bind(now + lease_ms)
                .bind(now)
                .bind(max_running)
                .bind(rand::random_range(0..max_running.max(1)))
                .fetch_optional(&self.pool)
                .await;
            match claimed {
                Ok(row) => break row,
                // Another instance took that slot or that number first: pick again.
                Err(e) if unique_violation(&e) && tries + 1 < CLAIM_TRIES => tries += 1,
                Err(e) if unique_violation(&e) => break None,
                Err(e) => return Err(e.into()),
            }
        };
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
        let mut tx = self.pool.begin().await?;
        let after = fail_in(&mut tx, id, owner, now, error, retryable, retry_at).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn cancel(&self, id: i64, now: Millis) -> Result<Cancel, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
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
        Ok(sqlx::query_scalar(sql::EXPIRE_LEASES).bind(now).fetch_all(&self.pool).await?)
    }

    async fn requeue_orphan(&self, id: i64, run_at: Millis) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(sql::REQUEUE_ORPHAN).bind(id).bind(run_at).execute(&mut *tx).await?.rows_affected();
        announce(&mut tx).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn queue_position(&self, id: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::QUEUE_POSITION).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn take_dial(&self, carrier: &str, pace: Pace, now: Millis) -> Result<Result<(), Millis>, StoreError> {
        crate::store::run::take_dial(&self.pool, carrier, pace, now).await
    }

    async fn next_run_at(&self, now: Millis) -> Result<Option<Millis>, StoreError> {
        Ok(sqlx::query_scalar(sql::NEXT_RUN_AT).bind(now).fetch_one(&self.pool).await?)
    }

    async fn prune(&self, now: Millis, done_age_ms: i64, failed_age_ms: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql::PRUNE_JOBS)
            .bind(now - done_age_ms)
            .bind(now - failed_age_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// Fails a running job owned by `owner` inside a transaction (the rule: `failure_rule`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn fail_in(
    tx: &mut PgConnection,
    id: i64,
    owner: &str,
    now: Millis,
    error: &str,
    retryable: bool,
    retry_at: Millis,
) -> Result<AfterFailure, StoreError> {
    let row = sqlx::query(
        "SELECT attempts, max_attempts FROM jobs WHERE id = $1 AND state = 'running' AND lease_owner = $2 FOR UPDATE",
    )
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
    if matches!(rule.after, AfterFailure::Requeued { .. }) {
        announce(tx).await?;
    }
    Ok(rule.after)
}
