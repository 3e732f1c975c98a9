//! `/v1/calls` under load with per-key rate limits on, through the real HTTP stack and SQLite:
//! 200 clients (one API key each) for a few seconds, each creating calls and reading the list
//! as fast as its answers come back (after a 429, waiting as its `Retry-After` says). Prints latency percentiles of the answers that were served
//! (201 / 200) and of the refusals (429), and the counts. The point: rate limiting refuses
//! cheaply and keeps the served requests fast.
//! Run: `cargo bench --bench api_load [clients] [seconds] [rate_per_key]` (200, 5, 5).

use std::time::{Duration, Instant};

use voxbridge::app::App;
use voxbridge::config::Config;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let clients = args.first().copied().unwrap_or(200) as usize;
    let seconds = args.get(1).copied().unwrap_or(5);
    let rate = args.get(2).copied().unwrap_or(5) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("vb-api-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut c = Config::defaults();
        c.database_url = format!("sqlite://{}", dir.join("a.db").display());
        c.public_url = "https://voice.test".into();
        c.twilio_from_number = Some("+15557654321".into());
        let keys: Vec<String> = (0..clients).map(|i| format!("key-{i:04}-0123456789abcdef")).collect();
        c.api_keys = Some(keys.join(","));
        c.api_rate_limit = std::num::NonZeroU32::new(rate);
        let app = App::build(c).await.expect("app");
        let (addr, _, _) = app.spawn_local().await.expect("serve");
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let (mut served, mut refused) = (Vec::new(), Vec::new());
                    let mut kinds = (Vec::new(), Vec::new());
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        n += 1;
                        let t = Instant::now();
                        let request = if n.is_multiple_of(2) {
                            http.get(format!("http://{addr}/v1/calls?limit=20"))
                        } else {
                            let to = format!("+1555{:03}{:04}", i % 1000, n % 10_000);
                            http.post(format!("http://{addr}/v1/calls")).json(&serde_json::json!({"to": to}))
                        };
                        let answer = request.bearer_auth(&key).send().await.expect("answer");
                        let status = answer.status().as_u16();
                        let us = t.elapsed().as_micros() as u64;
                        // A well-behaved client waits as long as Retry-After says.
                        let retry_after =
                            answer.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        match status {
                            200 => {
                                served.push(us);
                                kinds.1.push(us);
                            }
                            201 => {
                                served.push(us);
                                kinds.0.push(us);
                            }
                            429 => {
                                refused.push(us);
                                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1))).await;
                            }
                            other => panic!("unexpected {other}"),
                        }
                    }
                    (served, refused, kinds)
                })
            })
            .collect();
        let (mut served, mut refused, mut creates, mut lists) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for t in tasks {
            let (s, r, (c, l)) = t.await.expect("client");
            served.extend(s);
            refused.extend(r);
            creates.extend(c);
            lists.extend(l);
        }
        let pct = |v: &mut Vec<u64>, p: f64| {
            v.sort_unstable();
            if v.is_empty() { 0.0 } else { v[((v.len() - 1) as f64 * p) as usize] as f64 / 1000.0 }
        };
        println!(
            "{clients} clients, {seconds} s, {rate} req/s per key (bursts of {}): served {} ({:.0}/s), refused 429: {}",
            rate * 2,
            served.len(),
            served.len() as f64 / seconds as f64,
            refused.len()
        );
        println!(
            "served   p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            pct(&mut served, 0.5),
            pct(&mut served, 0.99),
            pct(&mut served, 1.0)
        );
        for (name, v) in [("  create", &mut creates), ("  list", &mut lists)] {
            println!("{name}  p50 {:.2} ms  p99 {:.2} ms  ({})", pct(v, 0.5), pct(v, 0.99), v.len());
        }
        println!(
            "refused  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            pct(&mut refused, 0.5),
            pct(&mut refused, 0.99),
            pct(&mut refused, 1.0)
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
