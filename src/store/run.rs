//! Statements both backends run, run once: generic over the sqlx database, so the binding and
//! the reading of the answer are written once like the SQL itself (`sql.rs`). What differs per
//! backend — how a write transaction begins, which pool reads — stays with the caller, which
//! hands in a pool or a connection.

use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::events::Attempted;
use super::{Millis, StoreError, sql};
use crate::lifecycle::pace::Pace;

/// [`JobStore::take_dial`](super::JobStore::take_dial) on `pool`.
pub(crate) async fn take_dial<DB>(
    pool: &Pool<DB>,
    carrier: &str,
    pace: Pace,
    now: Millis,
) -> Result<Result<(), Millis>, StoreError>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let now_us = now * 1_000;
    let taken: Option<i64> = sqlx::query_scalar(sql::TAKE_DIAL)
        .bind(carrier)
        .bind(now_us)
        .bind(pace.interval_us)
        .bind(pace.tolerance_us)
        .fetch_optional(pool)
        .await?;
    if taken.is_some() {
        return Ok(Ok(()));
    }
    let tat: Option<i64> = sqlx::query_scalar(sql::DIAL_TAT).bind(carrier).fetch_optional(pool).await?;
    Ok(Err(tat.map_or(now + 1, |t| pace.next_allowed(t))))
}

/// [`EventOutbox::event_attempted`](super::EventOutbox::event_attempted) inside the caller's
/// write transaction `tx`: the event's state and a line in its log.
pub(crate) async fn event_attempted<DB>(
    tx: &mut DB::Connection,
    id: i64,
    outcome: Attempted<'_>,
    now: Millis,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    let q = match outcome {
        Attempted::Delivered => sqlx::query(sql::EVENT_DELIVERED).bind(id),
        Attempted::Retry(error, retry_at) => {
            sqlx::query(sql::EVENT_RETRY).bind(id).bind(retry_at).bind(error.to_string())
        }
        Attempted::GaveUp(error) | Attempted::Refused(error) => {
            sqlx::query(sql::EVENT_FAILED).bind(id).bind(error.to_string())
        }
    };
    q.execute(&mut *tx).await?;
    sqlx::query(sql::EVENT_ATTEMPT)
        .bind(id)
        .bind(now)
        .bind(outcome.result())
        .bind(outcome.error().map(str::to_string))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// [`EventOutbox::event_log`](super::EventOutbox::event_log) read from `pool`.
pub(crate) async fn event_log<DB>(pool: &Pool<DB>, call_id: &str) -> Result<Vec<super::events::EventRecord>, StoreError>
where
    DB: Database,
    DB::Row: super::row::Cells,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    let events = sqlx::query(sql::EVENT_LOG).bind(call_id).fetch_all(pool).await?;
    let attempts = sqlx::query(sql::EVENT_LOG_ATTEMPTS).bind(call_id).fetch_all(pool).await?;
    let (events, attempts) = (
        super::row::all(&events, super::row::event_record)?,
        super::row::all(&attempts, super::row::delivery_attempt)?,
    );
    Ok(super::events::with_attempts(events, attempts))
}

/// [`EventOutbox::redeliver`](super::EventOutbox::redeliver) on `pool`.
pub(crate) async fn redeliver<DB>(pool: &Pool<DB>, event_id: &str, now: Millis) -> Result<Option<String>, StoreError>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    Ok(sqlx::query_scalar(sql::REDELIVER).bind(event_id).bind(now).fetch_optional(pool).await?)
}
