//! Status-webhook handling rate through the real HTTP stack and SQLite (`synchronous=FULL`) —
//! and PostgreSQL too when `VOXBRIDGE_BENCH_POSTGRES_URL` names a server (a fresh database):
//! N signed Twilio callbacks (distinct SequenceNumbers: each is verified, deduped, applied or
//! found stale, and recorded), 16 in flight. Run: `cargo bench --bench status_webhooks [N]`.

use std::time::Instant;
use voxbridge::store::CallRecords;

use voxbridge::app::App;
use voxbridge::config::Config;
use voxbridge::providers::twilio::signature;
use voxbridge::queue::status::CallStatus;
use voxbridge::store::Store;
use voxbridge::store::calls::NewCallRecord;

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let postgres = std::env::var("VOXBRIDGE_BENCH_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("vb-webhook-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        run("sqlite", format!("sqlite://{}", dir.join("w.db").display()), n).await;
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(server) = postgres {
            let db = voxbridge::store::postgres::create_database(&server, "vb_bench").await.expect("PostgreSQL");
            run("postgres", db, n).await;
        }
    });
}

async fn run(label: &str, db: String, n: usize) {
    {
        let mut c = Config::defaults();
        c.database_url = db.clone();
        c.public_url = "https://voice.test".into();
        c.twilio_auth_token = Some("tok".into());
        let app = App::build(c).await.expect("app");
        let (addr, _, _) = app.spawn_local().await.expect("serve");
        let store = Store::open(&db).await.expect("store");
        let call = NewCallRecord {
            id: "c_bench".into(),
            provider: "twilio".into(),
            inbound: true,
            to_number: "+1".into(),
            from_number: None,
            status: CallStatus::Ringing,
            webhook_url: None,
            provider_call_id: None,
            config: None,
            agent: None,
        };
        store.insert_call(&call, 0).await.expect("call");
        let path = "/webhooks/twilio/status?call_id=c_bench";
        let requests: Vec<(String, Vec<(String, String)>)> = (0..n)
            .map(|i| {
                let status = if i == n / 2 { "completed" } else { "in-progress" };
                let form: Vec<(String, String)> = vec![
                    ("CallSid".into(), "CA_bench".into()),
                    ("CallStatus".into(), status.into()),
                    ("SequenceNumber".into(), i.to_string()),
                ];
                (signature::compute("tok", &format!("https://voice.test{path}"), &form), form)
            })
            .collect();
        let http = reqwest::Client::new();
        let url = format!("http://{addr}{path}");
        let t0 = Instant::now();
        let mut inflight = tokio::task::JoinSet::new();
        for (sig, form) in requests {
            if inflight.len() >= 16 {
                inflight.join_next().await;
            }
            let (http, url) = (http.clone(), url.clone());
            inflight.spawn(async move {
                let r = http.post(url).header("X-Twilio-Signature", sig).form(&form).send().await.expect("request");
                assert_eq!(r.status(), 204);
            });
        }
        while inflight.join_next().await.is_some() {}
        let secs = t0.elapsed().as_secs_f64();
        println!("{label}: status webhooks: {n} in {secs:.2} s = {:.0} per second (16 in flight)", n as f64 / secs);
    }
}
