//! The post-call analysis queue, kept in the calls themselves: a call that asked for one
//! (`analysis_request`) and has ended is due until its `analysis` is written; `analysis_next_at`
//! is both its back-off and the lease of the instance working on it, so any instance picks up
//! what another left (a restart, a crash). Written once for both backends ([`runner!`]).

use super::backend::Store;
use super::{Millis, StoreError};

/// An analysis to do now: the call, what it asked for (JSON text), and the how-manieth try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub call_id: String,
    pub request: String,
    pub attempt: i64,
}

macro_rules! runner {
    ($module:ident, $db:ty) => {
        pub(crate) mod $module {
            use sqlx::Pool;

            use super::*;

            type Db = $db;

            /// Ended calls whose analysis is due at `now` (the transcript of one that ended less
            /// than `settle_ms` ago may still be on its way).
            pub(crate) async fn due(
                pool: &Pool<Db>,
                now: Millis,
                settle_ms: Millis,
                limit: i64,
            ) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM calls
                     WHERE analysis_request IS NOT NULL AND analysis IS NULL AND ended_at IS NOT NULL
                       AND answered_at IS NOT NULL AND ended_at <= $1 - $2
                       AND status NOT IN ('queued', 'dialing', 'ringing', 'in_progress')
                       AND (analysis_next_at IS NULL OR analysis_next_at <= $1)
                     ORDER BY ended_at LIMIT $3",
                )
                .bind(now)
                .bind(settle_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?)
            }

            /// Takes call `id`'s analysis until `until`, if no one holds it.
            pub(crate) async fn claim(
                pool: &Pool<Db>,
                id: &str,
                now: Millis,
                until: Millis,
            ) -> Result<Option<Claimed>, StoreError> {
                let row: Option<(i64, String)> = sqlx::query_as(
                    "UPDATE calls SET analysis_next_at = $3, analysis_attempts = analysis_attempts + 1
                     WHERE id = $1 AND analysis IS NULL AND analysis_request IS NOT NULL
                       AND (analysis_next_at IS NULL OR analysis_next_at <= $2)
                     RETURNING analysis_attempts, analysis_request",
                )
                .bind(id)
                .bind(now)
                .bind(until)
                .fetch_optional(pool)
                .await?;
                Ok(row.map(|(attempt, request)| Claimed { call_id: id.to_string(), request, attempt }))
            }

            /// Call `id`'s analysis is `result` (JSON text), and `call.analyzed` is sent.
            pub(crate) async fn finish(pool: &Pool<Db>, id: &str, result: &str, now: Millis) -> Result<(), StoreError> {
                let mut tx = pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE calls SET analysis = $2, analysis_next_at = NULL WHERE id = $1 AND analysis IS NULL",
                )
                .bind(id)
                .bind(result)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    crate::store::$module::events::enqueue(&mut tx, id, "analyzed", now).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// Call `id`'s analysis is tried again at `at`.
            pub(crate) async fn retry(pool: &Pool<Db>, id: &str, at: Millis) -> Result<(), StoreError> {
                sqlx::query("UPDATE calls SET analysis_next_at = $2 WHERE id = $1 AND analysis IS NULL")
                    .bind(id)
                    .bind(at)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        }
    };
}
runner!(sqlite, sqlx::Sqlite);
runner!(postgres, sqlx::Postgres);

impl Store {
    /// Ended calls whose analysis is due.
    pub async fn due_analyses(&self, now: Millis, settle_ms: Millis, limit: i64) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => sqlite::due(s.reader(), now, settle_ms, limit).await,
            Store::Postgres(p) => postgres::due(p.pool(), now, settle_ms, limit).await,
        }
    }

    /// Takes call `id`'s analysis until `until` (`None`: another instance has it, or it is done).
    pub async fn claim_analysis(&self, id: &str, now: Millis, until: Millis) -> Result<Option<Claimed>, StoreError> {
        match self {
            Store::Sqlite(s) => sqlite::claim(s.writer(), id, now, until).await,
            Store::Postgres(p) => postgres::claim(p.pool(), id, now, until).await,
        }
    }

    /// Stores call `id`'s analysis (JSON text) and sends `call.analyzed`.
    pub async fn finish_analysis(&self, id: &str, result: &str, now: Millis) -> Result<(), StoreError> {
        let result = match self {
            Store::Sqlite(s) => sqlite::finish(s.writer(), id, result, now).await,
            Store::Postgres(p) => postgres::finish(p.pool(), id, result, now).await,
        };
        self.health().note("finish_analysis", &result, true);
        result
    }

    /// Call `id`'s analysis waits until `at`.
    pub async fn retry_analysis(&self, id: &str, at: Millis) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => sqlite::retry(s.writer(), id, at).await,
            Store::Postgres(p) => postgres::retry(p.pool(), id, at).await,
        }
    }
}
