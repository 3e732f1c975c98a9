//! Creating an outbound call — the call, its history, its `call.queued` event, its dial job and
//! its idempotency record, in the caller's transaction — written once and expanded for each sqlx
//! database (the backends differ only in how the transaction begins and in their event outbox).

macro_rules! runner {
    ($module:ident, $db:ty) => {
        pub(crate) mod $module {
            use crate::store::outbound::{Created, OutboundCall};
            use crate::store::{Millis, StoreError, sql};

            type Db = $db;

            /// Writes a new outbound call inside a write transaction (see `create_outbound`): an
            /// earlier call with the same `Idempotency-Key` or a live dedupe key is returned instead.
            pub(crate) async fn create_in(
                tx: &mut <Db as sqlx::Database>::Connection,
                call: &OutboundCall,
                idempotency_key: Option<&str>,
                now: Millis,
            ) -> Result<Created, StoreError> {
                if let Some(key) = idempotency_key {
                    let seen: Option<(String, String)> =
                        sqlx::query_as("SELECT call_id, response FROM idempotency_keys WHERE key = $1")
                            .bind(key)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if let Some((id, digest)) = seen {
                        let same = digest.is_empty() || call.request_digest.is_empty() || digest == call.request_digest;
                        return Ok(if same { Created::Existing(id) } else { Created::KeyReused(id) });
                    }
                }
                if let Some(dedupe) = &call.dedupe_key {
                    let since = call.dedupe_window_ms.map_or(Millis::MAX, |w| now - w);
                    let live: Option<String> =
                        sqlx::query_scalar(sql::DEDUPE_MATCH).bind(dedupe).bind(since).fetch_optional(&mut *tx).await?;
                    if let Some(id) = live {
                        return Ok(Created::Existing(id));
                    }
                }
                sqlx::query(sql::INSERT_OUTBOUND_CALL)
                    .bind(&call.id)
                    .bind(&call.provider)
                    .bind(&call.to_number)
                    .bind(&call.from_number)
                    .bind(&call.instructions)
                    .bind(&call.greeting)
                    .bind(&call.voice)
                    .bind(&call.metadata)
                    .bind(&call.dedupe_key)
                    .bind(&call.call_window)
                    .bind(&call.webhook_url)
                    .bind(now)
                    .bind(call.machine_detection)
                    .bind(&call.voicemail_message)
                    .bind(call.expires_at)
                    .bind(&call.campaign)
                    .bind(call.max_duration_s)
                    .bind(call.max_cost_usd)
                    .bind(&call.model)
                    .bind(&call.reasoning_effort)
                    .bind(&call.model_api)
                    .bind(&call.outcome_schema)
                    .bind(&call.tools)
                    .bind(&call.transfer_to)
                    .execute(&mut *tx)
                    .await?;
                crate::store::agents::$module::set_extras(tx, &call.id, &call.extras()).await?;
                sqlx::query(sql::QUEUED_HISTORY).bind(&call.id).bind(now).execute(&mut *tx).await?;
                crate::store::$module::events::enqueue(tx, &call.id, "queued", now).await?;
                sqlx::query(sql::ENQUEUE_JOB)
                    .bind(&call.id)
                    .bind(&call.to_number)
                    .bind(call.priority)
                    .bind(call.run_at)
                    .bind(call.max_attempts.max(1))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let Some(key) = idempotency_key {
                    sqlx::query(
                        "INSERT INTO idempotency_keys (key, call_id, response, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(key)
                    .bind(&call.id)
                    .bind(&call.request_digest)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                Ok(Created::New(call.id.clone()))
            }
        }
    };
}
runner!(sqlite, sqlx::Sqlite);
runner!(postgres, sqlx::Postgres);
