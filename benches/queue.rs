//! Queue throughput on a real SQLite file with `synchronous=FULL`: enqueue N jobs, then claim +
//! complete until the queue is empty (each claim and each completion is its own durable
//! transaction). Prints jobs/s. Goal: ≥ 3,000 jobs/s on the 2-core dev machine.
//! Run: `cargo bench --bench queue` (N from the first argument, default 5000).

use std::time::Instant;

use voxbridge::store::sqlite::SqliteStore;
use voxbridge::store::{JobStore, NewJob};

fn main() {
    let n: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("vb-queue-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = SqliteStore::open(&format!("sqlite://{}", dir.join("q.db").display())).await.expect("store");
        println!(
            "synchronous = {} (2 = FULL), journal_mode = {}",
            store.pragma("synchronous").await.unwrap(),
            store.pragma("journal_mode").await.unwrap()
        );
        let t0 = Instant::now();
        for i in 0..n {
            let job = NewJob {
                call_id: format!("c{i}"),
                to_number: format!("+1555{:07}", i),
                priority: i % 3,
                run_at: 0,
                max_attempts: 3,
            };
            store.enqueue(job, 0).await.expect("enqueue");
        }
        let enq = t0.elapsed();
        let t1 = Instant::now();
        let mut done = 0;
        while let Some(job) = store.claim("bench", 1, 60_000, 1_000).await.expect("claim") {
            store.complete(job.id, "bench", 2).await.expect("complete");
            done += 1;
        }
        let drain = t1.elapsed();
        assert_eq!(done, n, "every job claimed once");
        println!("enqueue: {n} jobs in {:.2} s = {:.0} jobs/s", enq.as_secs_f64(), n as f64 / enq.as_secs_f64());
        println!(
            "claim + complete: {n} jobs in {:.2} s = {:.0} jobs/s",
            drain.as_secs_f64(),
            n as f64 / drain.as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
