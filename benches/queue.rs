//! Queue throughput on a real SQLite file with `synchronous=FULL`: enqueue N jobs, then claim +
//! complete until the queue is empty, with 1, 4 and 16 concurrent workers (each claim and each
//! completion is durable before it returns; concurrent ones share commits, ADR 0008). Prints
//! jobs/s. Goal: ≥ 3,000 jobs/s claim + complete on the 2-core dev machine.
//! Run: `cargo bench --bench queue` (N from the first argument, default 5000).

use std::time::Instant;

use voxbridge::store::sqlite::SqliteStore;
use voxbridge::store::{JobStore, NewJob};

fn main() {
    let n: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        for workers in [1, 4, 16] {
            run(n, workers).await;
        }
    });
}

async fn run(n: i64, workers: i64) {
    let dir = std::env::temp_dir().join(format!("vb-queue-bench-{}-{workers}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteStore::open(&format!("sqlite://{}", dir.join("q.db").display())).await.expect("store");
    assert_eq!(store.pragma("synchronous").await.unwrap(), "2", "FULL");
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (w..n).step_by(workers as usize) {
                let job = NewJob {
                    call_id: format!("c{i}"),
                    to_number: format!("+1555{:07}", i),
                    priority: i % 3,
                    run_at: 0,
                    max_attempts: 3,
                };
                store.enqueue(job, 0).await.expect("enqueue");
            }
        });
    }
    tasks.join_all().await;
    let enq = t0.elapsed();
    let t1 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.spawn(async move {
            let owner = format!("bench-{w}");
            let mut done = 0;
            while let Some(job) = store.claim(&owner, 1, 60_000, 1_000).await.expect("claim") {
                assert!(store.complete(job.id, &owner, 2).await.expect("complete"), "completed by its owner");
                done += 1;
            }
            done
        });
    }
    let done: i64 = tasks.join_all().await.into_iter().sum();
    let drain = t1.elapsed();
    assert_eq!(done, n, "every job claimed once");
    println!(
        "{workers:>2} workers: enqueue {:.0} jobs/s; claim + complete {:.0} jobs/s ({n} jobs)",
        n as f64 / enq.as_secs_f64(),
        n as f64 / drain.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
