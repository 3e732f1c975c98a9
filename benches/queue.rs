//! Queue throughput: enqueue N jobs, then claim + complete until the queue is empty, with 1, 4
//! and 16 concurrent workers — on a real SQLite file with `synchronous=FULL` (each claim and each
//! completion is durable before it returns; concurrent ones share commits, ADR 0008), and with
//! `VOXBRIDGE_BENCH_POSTGRES_URL` set on PostgreSQL too (a fresh database per run), also as two
//! instances (two connection pools, 8 workers each) sharing one queue. Prints jobs/s.
//! Run: `cargo bench --bench queue` (N from the first argument, default 5000).

use std::time::Instant;

use voxbridge::store::Store;
use voxbridge::store::{JobStore, NewJob};

fn main() {
    let n: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let postgres = std::env::var("VOXBRIDGE_BENCH_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    rt.block_on(async move {
        for workers in [1, 4, 16] {
            let dir = std::env::temp_dir().join(format!("vb-queue-bench-{}-{workers}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let store = Store::open(&format!("sqlite://{}", dir.join("q.db").display())).await.expect("store");
            run("sqlite", &[store], n, workers).await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        let Some(server) = postgres else { return };
        for workers in [1, 4, 16] {
            let store = Store::open(&fresh_database(&server).await).await.expect("postgres");
            run("postgres", &[store], n, workers).await;
        }
        let url = fresh_database(&server).await;
        let two = [Store::open(&url).await.expect("instance 1"), Store::open(&url).await.expect("instance 2")];
        run("postgres, 2 instances", &two, n, 16).await;
    });
}

/// A new empty database on `server`.
async fn fresh_database(server: &str) -> String {
    voxbridge::store::postgres::create_database(server, "vb_bench").await.expect("PostgreSQL reachable")
}

/// `workers` claimers spread over `stores` (instances).
async fn run(label: &str, stores: &[Store], n: i64, workers: i64) {
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let store = stores[w as usize % stores.len()].clone();
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
        let store = stores[w as usize % stores.len()].clone();
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
        "{label}: {workers:>2} workers: enqueue {:.0} jobs/s; claim + complete {:.0} jobs/s ({n} jobs)",
        n as f64 / enq.as_secs_f64(),
        n as f64 / drain.as_secs_f64()
    );
}
