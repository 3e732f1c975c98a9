//! Group commit for the SQLite writer: writes issued concurrently wait in a queue, one task runs
//! all that are waiting in a single `BEGIN IMMEDIATE` transaction — each inside its own
//! savepoint, so one failing write rolls back alone — and answers every caller after the one
//! COMMIT. With `synchronous=FULL` each commit is an fsync; a batch shares it (ADR 0008).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use sqlx::{Acquire, Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Most writes committed together (bounds a batch's latency and its transaction's size).
const MAX_BATCH: usize = 128;
/// Writes waiting for a batch before callers wait to enqueue.
const QUEUE: usize = 4096;

/// What a write does with the batch's outcome: answer its caller.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A queued write: runs its statements, says how that went, and how to answer.
type Run = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (Ran, Finish)> + Send>;

/// How a write's statements went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Ok,
    /// Failed, the transaction intact (a constraint, a missing row, a decoding error).
    Failed,
    /// Failed in a way that may have ended the transaction (SQLite rolls back by itself on I/O
    /// errors, a full disk, no memory): nothing more may run in this batch.
    Broke,
}

struct Job {
    run: Run,
    /// More than one statement: run inside a savepoint so that a failure takes back all of
    /// them. (SQLite undoes a failing single statement by itself.)
    savepoint: bool,
}

/// The queue in front of the writer connection.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    /// Batches committed (or tried) so far.
    batches: Arc<AtomicU64>,
}

impl GroupCommit {
    /// Starts the batching task on `pool` (the single writer connection).
    pub fn start(pool: SqlitePool) -> GroupCommit {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let batches = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(pool, rx, Arc::clone(&batches)));
        GroupCommit { jobs, batches }
    }

    /// Batches run so far (each one transaction, one fsync).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Runs `op` in the next batch and returns its result once the batch is durable. The
    /// statements of `op` are atomic (a savepoint) and see the batch's earlier writes.
    pub async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        self.submit(op, true).await
    }

    /// [`write`](Self::write) for an `op` of exactly one statement (no savepoint needed).
    pub async fn write_one<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        self.submit(op, false).await
    }

    async fn submit<T, F>(&self, op: F, savepoint: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move {
                let result = op(conn).await;
                let ran = match &result {
                    Ok(_) => Ran::Ok,
                    Err(e) if may_end_transaction(e) => Ran::Broke,
                    Err(_) => Ran::Failed,
                };
                let finish: Finish = Box::new(move |commit| {
                    let _ = answer.send(commit.map_err(StoreError::Commit).and(result));
                });
                (ran, finish)
            })
        });
        self.jobs
            .send(Job { run, savepoint })
            .await
            .map_err(|_| StoreError::Commit("the writer task has stopped".into()))?;
        answered.await.map_err(|_| StoreError::Commit("the batch failed before this write ran".into()))?
    }
}

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Job>, batches: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut finishers = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batches.fetch_add(1, Ordering::Relaxed);
        let outcome = run_batch(&pool, &mut batch, &mut finishers).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, writes = finishers.len(), "a group commit failed");
        }
        batch.clear(); // writes not reached: dropped, their callers hear that the batch failed
        for finish in finishers.drain(..) {
            finish(outcome.clone());
        }
    }
}

/// Runs the batch in one transaction. On an error the transaction is dropped (rolled back) and
/// every write that ran is answered with it; the writes not reached are dropped.
async fn run_batch(pool: &SqlitePool, batch: &mut Vec<Job>, finishers: &mut Vec<Finish>) -> Result<(), String> {
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    if let [single] = batch.as_slice()
        && !single.savepoint
    {
        // Alone, one statement commits by itself (autocommit): no BEGIN / COMMIT round trips.
        let job = batch.pop().expect("one job");
        let (_, finish) = (job.run)(&mut conn).await;
        finishers.push(finish);
        return Ok(());
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(|e| e.to_string())?;
    for job in batch.drain(..) {
        let ran = if job.savepoint {
            let mut savepoint = tx.begin().await.map_err(|e| e.to_string())?;
            let (ran, finish) = (job.run)(savepoint.acquire().await.map_err(|e| e.to_string())?).await;
            finishers.push(finish);
            match ran {
                Ran::Ok => savepoint.commit().await.map_err(|e| e.to_string())?,
                Ran::Failed => savepoint.rollback().await.map_err(|e| e.to_string())?,
                Ran::Broke => {}
            }
            ran
        } else {
            let (ran, finish) = (job.run)(tx.acquire().await.map_err(|e| e.to_string())?).await;
            finishers.push(finish);
            ran
        };
        if ran == Ran::Broke {
            return Err("a write failed in a way that may have ended the transaction; nothing committed".into());
        }
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// Whether `e` may have ended the transaction it happened in (see [`Ran::Broke`]).
fn may_end_transaction(e: &StoreError) -> bool {
    use sqlx::error::ErrorKind;
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => matches!(db.kind(), ErrorKind::Other),
        StoreError::Database(
            sqlx::Error::RowNotFound
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. },
        ) => false,
        StoreError::Database(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};

    async fn pool() -> (SqlitePool, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("vb-group-commit-{}.db", rand::random::<u64>()));
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER UNIQUE); CREATE TABLE log (x INTEGER)").execute(&pool).await.unwrap();
        (pool, path)
    }

    fn insert(g: &GroupCommit, x: i64) -> impl Future<Output = Result<u64, StoreError>> + use<> {
        let g = g.clone();
        async move {
            g.write(move |c| {
                Box::pin(async move {
                    // Two statements: when the second fails, the savepoint takes back the first.
                    sqlx::query("INSERT INTO log (x) VALUES (?1)").bind(x).execute(&mut *c).await?;
                    Ok(sqlx::query("INSERT INTO t (x) VALUES (?1)").bind(x).execute(&mut *c).await?.rows_affected())
                })
            })
            .await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_a_failing_one_rolls_back_alone() {
        let (pool, path) = pool().await;
        let g = GroupCommit::start(pool.clone());
        // 200 writers at once; every fifth repeats an x already written: a UNIQUE violation.
        let writes: Vec<_> = (0..200).map(|i| if i % 5 == 4 { i - 1 } else { i }).map(|x| insert(&g, x)).collect();
        let results = futures_util::future::join_all(writes).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(failed, 40, "the duplicates fail, nothing else");
        let (rows, logged): (i64, i64) = sqlx::query_as("SELECT (SELECT COUNT(*) FROM t), (SELECT COUNT(*) FROM log)")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((rows, logged), (160, 160), "every other write committed whole, the failed ones not at all");
        assert!(g.batches() < 200, "{} batches for 200 writes", g.batches());
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn a_write_sees_the_writes_before_it_in_its_batch() {
        let (pool, path) = pool().await;
        let g = GroupCommit::start(pool.clone());
        let (a, b) = tokio::join!(insert(&g, 7), insert(&g, 7));
        assert!(a.is_ok() != b.is_ok(), "exactly one of two identical inserts wins: {a:?} {b:?}");
        // A failing single statement (no savepoint) leaves the batch's other writes in place.
        let one = |x: i64| {
            let g = g.clone();
            async move {
                g.write_one(move |c| {
                    Box::pin(async move {
                        Ok(sqlx::query("INSERT INTO t (x) VALUES (?1)").bind(x).execute(&mut *c).await?.rows_affected())
                    })
                })
                .await
            }
        };
        let (a, b, c) = tokio::join!(one(8), one(7), one(9));
        assert!(a.is_ok() && b.is_err() && c.is_ok(), "{a:?} {b:?} {c:?}");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 3);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn a_write_that_may_have_ended_the_transaction_fails_its_whole_batch() {
        let (pool, path) = pool().await;
        let g = GroupCommit::start(pool.clone());
        let broken = g.write_one(|c| {
            Box::pin(async move {
                Ok(sqlx::query("INSERT INTO nowhere VALUES (1)").execute(&mut *c).await?.rows_affected())
            })
        });
        // One batch (a single-threaded runtime queues both before the writer runs).
        let (good, bad) = tokio::join!(insert(&g, 1), broken);
        assert!(matches!(good, Err(StoreError::Commit(_))), "{good:?}");
        assert!(bad.is_err());
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 0, "nothing of that batch committed");
        assert!(insert(&g, 1).await.is_ok(), "the next batch starts clean");
        let _ = std::fs::remove_file(path);
    }
}
