//! Agents and the numbers bound to them, as every backend stores them: the SQL and the runner
//! are written once ([`runner!`] expands the same body for each sqlx database), the backends
//! only lend their pools (SQLite's single writer, PostgreSQL's pool).

use super::Millis;
use super::StoreError;
use super::backend::Store;

/// One agent, as stored (its current version).
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// `ag_` and 16 hex digits.
    pub id: String,
    pub name: String,
    /// 1 at creation, + 1 with every change.
    pub version: i64,
    /// JSON object text: the agent's call fields, validated (`control::agent_request`).
    pub config: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A phone number bound to an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// E.164.
    pub e164: String,
    pub agent_id: String,
    /// `twilio` or `telnyx`; `None`: inbound calls on either.
    pub provider: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What removing an agent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Done,
    Missing,
    /// Still used: by a number, or by a call not yet ended (named).
    InUse(String),
}

/// What changing an agent did.
#[derive(Debug, Clone, PartialEq)]
pub enum Changed {
    Done(Agent),
    Missing,
    /// Another change landed since `version` was read: read again and retry.
    Stale,
}

/// The agent a call was made from: its id, the version it started with, the variables its
/// templates were filled with (JSON object text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUse {
    pub agent_id: String,
    pub agent_version: i64,
    pub variables: String,
}

/// What an inbound call is configured with when an agent serves it (the same columns an outbound
/// call's request fills; `None`: the server's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallConfig {
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    pub model: Option<String>,
    pub model_api: Option<String>,
    pub reasoning_effort: Option<String>,
    /// JSON texts, as an outbound call keeps them.
    pub outcome_schema: Option<String>,
    pub tools: Option<String>,
    pub transfer_to: Option<String>,
    pub max_duration_s: Option<i64>,
    pub max_cost_usd: Option<f64>,
    /// Post-call analysis asked for (JSON text; written with the agent, [`CallExtras`]).
    pub analysis: Option<String>,
    /// The AI may press keys (`press_digits`; likewise).
    pub dtmf_out: bool,
    /// The call is recorded (likewise).
    pub record: bool,
}

/// What a call has beyond a plain call's columns: the agent it was made from, the analysis it
/// asked for, whether the AI may press keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallExtras<'a> {
    pub agent: Option<&'a AgentUse>,
    pub analysis: Option<&'a str>,
    pub dtmf_out: bool,
    pub record: bool,
}

impl CallExtras<'_> {
    fn is_empty(&self) -> bool {
        self.agent.is_none() && self.analysis.is_none() && !self.dtmf_out && !self.record
    }
}

/// An agent's columns, in [`Agent`]'s order.
macro_rules! agent_columns {
    () => {
        "id, name, version, config, created_at, updated_at"
    };
}

/// Expands the runner for one sqlx database: the same statements, bound and read the same way.
macro_rules! runner {
    ($module:ident, $db:ty) => {
        pub(crate) mod $module {
            use sqlx::{Pool, Row};

            use super::*;

            type Db = $db;

            fn agent_row(r: &<Db as sqlx::Database>::Row) -> Result<Agent, sqlx::Error> {
                Ok(Agent {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    version: r.try_get(2)?,
                    config: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    updated_at: r.try_get(5)?,
                })
            }

            fn number_row(r: &<Db as sqlx::Database>::Row) -> Result<Number, sqlx::Error> {
                Ok(Number {
                    e164: r.try_get(0)?,
                    agent_id: r.try_get(1)?,
                    provider: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    updated_at: r.try_get(4)?,
                })
            }

            async fn keep_version(
                tx: &mut <Db as sqlx::Database>::Connection,
                a: &Agent,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO agent_versions (agent_id, version, name, config, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&a.id)
                .bind(a.version)
                .bind(&a.name)
                .bind(&a.config)
                .bind(a.updated_at)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }

            pub(crate) async fn create_agent(pool: &Pool<Db>, a: &Agent) -> Result<(), StoreError> {
                let mut tx = pool.begin().await?;
                sqlx::query(concat!("INSERT INTO agents (", agent_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6)"))
                    .bind(&a.id)
                    .bind(&a.name)
                    .bind(a.version)
                    .bind(&a.config)
                    .bind(a.created_at)
                    .bind(a.updated_at)
                    .execute(&mut *tx)
                    .await?;
                keep_version(&mut tx, a).await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn agent(pool: &Pool<Db>, id: &str) -> Result<Option<Agent>, StoreError> {
                let row = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                Ok(row.as_ref().map(agent_row).transpose()?)
            }

            pub(crate) async fn agents(pool: &Pool<Db>) -> Result<Vec<Agent>, StoreError> {
                let rows = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents ORDER BY created_at, id"))
                    .fetch_all(pool)
                    .await?;
                Ok(rows.iter().map(agent_row).collect::<Result<_, _>>()?)
            }

            /// Version `version` of the agent becomes `name` and `config` at `now`.
            pub(crate) async fn change_agent(
                pool: &Pool<Db>,
                id: &str,
                version: i64,
                name: &str,
                config: &str,
                now: Millis,
            ) -> Result<Changed, StoreError> {
                let mut tx = pool.begin().await?;
                let row = sqlx::query(concat!(
                    "UPDATE agents SET name = $3, config = $4, version = version + 1, updated_at = $5
                     WHERE id = $1 AND version = $2 RETURNING ",
                    agent_columns!()
                ))
                .bind(id)
                .bind(version)
                .bind(name)
                .bind(config)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(changed) = row.as_ref().map(agent_row).transpose()? else {
                    let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM agents WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    return Ok(if exists.is_some() { Changed::Stale } else { Changed::Missing });
                };
                keep_version(&mut tx, &changed).await?;
                tx.commit().await?;
                Ok(Changed::Done(changed))
            }

            /// Removes the agent unless a number or a live call uses it.
            pub(crate) async fn remove_agent(pool: &Pool<Db>, id: &str) -> Result<Removed, StoreError> {
                let mut tx = pool.begin().await?;
                let number: Option<String> = sqlx::query_scalar("SELECT e164 FROM numbers WHERE agent_id = $1 LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(n) = number {
                    return Ok(Removed::InUse(format!("number {n} is bound to it")));
                }
                let call: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM calls WHERE agent_id = $1
                     AND status IN ('queued', 'dialing', 'ringing', 'in_progress') LIMIT 1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(c) = call {
                    return Ok(Removed::InUse(format!("call {c} has not ended")));
                }
                let gone = sqlx::query("DELETE FROM agents WHERE id = $1").bind(id).execute(&mut *tx).await;
                let gone = match gone {
                    Ok(done) => done.rows_affected(),
                    // A number bound in the meantime (another instance).
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                        return Ok(Removed::InUse("a number is bound to it".into()));
                    }
                    Err(e) => return Err(e.into()),
                };
                sqlx::query("DELETE FROM agent_versions WHERE agent_id = $1").bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(if gone == 1 { Removed::Done } else { Removed::Missing })
            }

            /// Binds `n.e164` to its agent (`Ok(false)`: no such agent).
            pub(crate) async fn put_number(pool: &Pool<Db>, n: &Number) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO numbers (e164, agent_id, provider, created_at, updated_at)
                     SELECT $1, $2, $3, $4, $4 WHERE EXISTS (SELECT 1 FROM agents WHERE id = $2)
                     ON CONFLICT (e164) DO UPDATE
                         SET agent_id = excluded.agent_id, provider = excluded.provider, updated_at = excluded.updated_at",
                )
                .bind(&n.e164)
                .bind(&n.agent_id)
                .bind(&n.provider)
                .bind(n.updated_at)
                .execute(pool)
                .await;
                match done {
                    Ok(done) => Ok(done.rows_affected() == 1),
                    // The agent removed in the meantime.
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }

            pub(crate) async fn numbers(pool: &Pool<Db>) -> Result<Vec<Number>, StoreError> {
                let rows = sqlx::query("SELECT e164, agent_id, provider, created_at, updated_at FROM numbers ORDER BY e164")
                    .fetch_all(pool)
                    .await?;
                Ok(rows.iter().map(number_row).collect::<Result<_, _>>()?)
            }

            pub(crate) async fn number(pool: &Pool<Db>, e164: &str) -> Result<Option<Number>, StoreError> {
                let row = sqlx::query("SELECT e164, agent_id, provider, created_at, updated_at FROM numbers WHERE e164 = $1")
                    .bind(e164)
                    .fetch_optional(pool)
                    .await?;
                Ok(row.as_ref().map(number_row).transpose()?)
            }

            pub(crate) async fn remove_number(pool: &Pool<Db>, e164: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM numbers WHERE e164 = $1").bind(e164).execute(pool).await?;
                Ok(done.rows_affected() == 1)
            }

            /// The agent serving inbound calls to `e164` on `provider`.
            pub(crate) async fn agent_for_number(
                pool: &Pool<Db>,
                e164: &str,
                provider: &str,
            ) -> Result<Option<Agent>, StoreError> {
                let row = sqlx::query(
                    "SELECT a.id, a.name, a.version, a.config, a.created_at, a.updated_at
                     FROM numbers n JOIN agents a ON a.id = n.agent_id
                     WHERE n.e164 = $1 AND (n.provider IS NULL OR n.provider = $2)",
                )
                .bind(e164)
                .bind(provider)
                .fetch_optional(pool)
                .await?;
                Ok(row.as_ref().map(agent_row).transpose()?)
            }

            /// What call `id` has beyond a plain call's columns (inside the transaction that
            /// writes it; nothing to write when it has none).
            pub(crate) async fn set_extras(
                tx: &mut <Db as sqlx::Database>::Connection,
                id: &str,
                extras: &CallExtras<'_>,
            ) -> Result<(), StoreError> {
                if extras.is_empty() {
                    return Ok(());
                }
                sqlx::query(
                    "UPDATE calls SET agent_id = $2, agent_version = $3, variables = $4, analysis_request = $5,
                         dtmf_out = $6, record = $7
                     WHERE id = $1",
                )
                .bind(id)
                .bind(extras.agent.map(|a| a.agent_id.as_str()))
                .bind(extras.agent.map(|a| a.agent_version))
                .bind(extras.agent.map(|a| a.variables.as_str()))
                .bind(extras.analysis)
                .bind(extras.dtmf_out)
                .bind(extras.record)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }

            /// Inbound call `id` is served with `c` (inside the transaction that writes it).
            pub(crate) async fn configure_call(
                tx: &mut <Db as sqlx::Database>::Connection,
                id: &str,
                c: &CallConfig,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE calls SET instructions = $2, greeting = $3, voice = $4, model = $5, model_api = $6,
                         reasoning_effort = $7, outcome_schema = $8, tools = $9, transfer_to = $10,
                         max_duration_s = $11, max_cost_usd = $12
                     WHERE id = $1",
                )
                .bind(id)
                .bind(&c.instructions)
                .bind(&c.greeting)
                .bind(&c.voice)
                .bind(&c.model)
                .bind(&c.model_api)
                .bind(&c.reasoning_effort)
                .bind(&c.outcome_schema)
                .bind(&c.tools)
                .bind(&c.transfer_to)
                .bind(c.max_duration_s)
                .bind(c.max_cost_usd)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }
        }
    };
}
runner!(sqlite, sqlx::Sqlite);
runner!(postgres, sqlx::Postgres);

/// Runs `$f` of this module's runner on the backend's pool: SQLite's `writer` or `reader`
/// (`$pool`), PostgreSQL's one pool.
macro_rules! on {
    ($self:ident, $pool:ident, $f:ident($($arg:expr),*)) => {
        match $self {
            Store::Sqlite(s) => sqlite::$f(s.$pool(), $($arg),*).await,
            Store::Postgres(p) => postgres::$f(p.pool(), $($arg),*).await,
        }
    };
}

/// Agents and numbers, on whichever backend the store is.
impl Store {
    pub async fn create_agent(&self, a: &Agent) -> Result<(), StoreError> {
        let result = on!(self, writer, create_agent(a));
        self.health().note("create_agent", &result, true);
        result
    }

    pub async fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        on!(self, reader, agent(id))
    }

    pub async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        on!(self, reader, agents())
    }

    pub async fn change_agent(
        &self,
        id: &str,
        version: i64,
        name: &str,
        config: &str,
        now: Millis,
    ) -> Result<Changed, StoreError> {
        let result = on!(self, writer, change_agent(id, version, name, config, now));
        self.health().note("change_agent", &result, false);
        result
    }

    pub async fn remove_agent(&self, id: &str) -> Result<Removed, StoreError> {
        on!(self, writer, remove_agent(id))
    }

    pub async fn put_number(&self, n: &Number) -> Result<bool, StoreError> {
        let result = on!(self, writer, put_number(n));
        self.health().note("put_number", &result, false);
        result
    }

    pub async fn numbers(&self) -> Result<Vec<Number>, StoreError> {
        on!(self, reader, numbers())
    }

    pub async fn number(&self, e164: &str) -> Result<Option<Number>, StoreError> {
        on!(self, reader, number(e164))
    }

    pub async fn remove_number(&self, e164: &str) -> Result<bool, StoreError> {
        on!(self, writer, remove_number(e164))
    }

    /// The agent serving inbound calls to `e164` on `provider`, if the number is bound.
    pub async fn agent_for_number(&self, e164: &str, provider: &str) -> Result<Option<Agent>, StoreError> {
        on!(self, reader, agent_for_number(e164, provider))
    }
}
