//! A call's recording as the store knows it (`recording_state` on the call): `pending` once the
//! file is complete on the disk of the instance that recorded it (still to be uploaded),
//! `stored` where `VOXBRIDGE_RECORDINGS` keeps it (and `call.recording_ready` sent), `deleted`
//! by retention; `recording_error` says what went wrong (a failing upload is retried and its
//! error kept meanwhile). Written once for both backends ([`runner!`]).

use super::backend::Store;
use super::{Millis, StoreError};

/// States a recording can be in.
pub const PENDING: &str = "pending";
pub const STORED: &str = "stored";
pub const DELETED: &str = "deleted";

macro_rules! runner {
    ($module:ident, $db:ty) => {
        pub(crate) mod $module {
            use sqlx::Pool;

            use super::*;

            type Db = $db;

            /// Call `id`'s recording is complete (`bytes` long): `stored`, or `pending` upload.
            pub(crate) async fn finished(
                pool: &Pool<Db>,
                id: &str,
                bytes: i64,
                stored: bool,
                now: Millis,
            ) -> Result<(), StoreError> {
                let mut tx = pool.begin().await?;
                let state = if stored { STORED } else { PENDING };
                let done = sqlx::query(
                    "UPDATE calls SET recording_state = $2, recording_bytes = $3, recording_error = NULL
                     WHERE id = $1 AND (recording_state IS NULL OR recording_state = 'pending')",
                )
                .bind(id)
                .bind(state)
                .bind(bytes)
                .execute(&mut *tx)
                .await?;
                if stored && done.rows_affected() == 1 {
                    crate::store::$module::events::enqueue(&mut tx, id, "recording_ready", now).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// Something went wrong with call `id`'s recording (kept until it is stored).
            pub(crate) async fn failed(pool: &Pool<Db>, id: &str, error: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE calls SET recording_error = $2 WHERE id = $1")
                    .bind(id)
                    .bind(error)
                    .execute(pool)
                    .await?;
                Ok(())
            }

            /// Recordings of calls created before `before` (retention), at most `limit`.
            pub(crate) async fn expired(
                pool: &Pool<Db>,
                before: Millis,
                limit: i64,
            ) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM calls WHERE recording_state IN ('pending', 'stored') AND created_at < $1
                       AND status NOT IN ('queued', 'dialing', 'ringing', 'in_progress')
                     ORDER BY created_at LIMIT $2",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await?)
            }

            /// Call `id`'s recording was deleted.
            pub(crate) async fn deleted(pool: &Pool<Db>, id: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE calls SET recording_state = 'deleted', recording_error = NULL WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await?;
                Ok(())
            }

            /// Call `id`'s recording state (`None`: no such call; `Some(None)`: none).
            pub(crate) async fn state(pool: &Pool<Db>, id: &str) -> Result<Option<Option<String>>, StoreError> {
                Ok(sqlx::query_scalar("SELECT recording_state FROM calls WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?)
            }
        }
    };
}
runner!(sqlite, sqlx::Sqlite);
runner!(postgres, sqlx::Postgres);

impl Store {
    /// Call `id`'s recording is complete: stored (and `call.recording_ready` sent), or pending
    /// its upload.
    pub async fn recording_finished(&self, id: &str, bytes: u64, stored: bool, now: Millis) -> Result<(), StoreError> {
        let bytes = bytes as i64;
        let result = match self {
            Store::Sqlite(s) => sqlite::finished(s.writer(), id, bytes, stored, now).await,
            Store::Postgres(p) => postgres::finished(p.pool(), id, bytes, stored, now).await,
        };
        self.health().note("recording_finished", &result, true);
        result
    }

    /// What went wrong with call `id`'s recording.
    pub async fn recording_failed(&self, id: &str, error: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => sqlite::failed(s.writer(), id, error).await,
            Store::Postgres(p) => postgres::failed(p.pool(), id, error).await,
        }
    }

    /// Recordings retention deletes (calls created before `before`).
    pub async fn expired_recordings(&self, before: Millis, limit: i64) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => sqlite::expired(s.reader(), before, limit).await,
            Store::Postgres(p) => postgres::expired(p.pool(), before, limit).await,
        }
    }

    pub async fn recording_deleted(&self, id: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => sqlite::deleted(s.writer(), id).await,
            Store::Postgres(p) => postgres::deleted(p.pool(), id).await,
        }
    }

    /// Call `id`'s recording state: `None` when there is no such call.
    pub async fn recording_state(&self, id: &str) -> Result<Option<Option<String>>, StoreError> {
        match self {
            Store::Sqlite(s) => sqlite::state(s.reader(), id).await,
            Store::Postgres(p) => postgres::state(p.pool(), id).await,
        }
    }
}
