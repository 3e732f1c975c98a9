//! A server process SIGKILLed mid-call, restarted on the same database: the dead worker's lease
//! expires, the call is reconciled with the provider (`GET …/Calls/{sid}.json`) and nobody is
//! dialled twice. The database passes `PRAGMA integrity_check`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use common::process::{free_port, spawn_server, wait_ready};
use common::*;
use serde_json::{Value, json};

#[derive(Default)]
struct Fake {
    dials: usize,
    fetched: Vec<String>,
    live_status: String,
    /// The first create never answers (the server dies inside its round trip).
    hang_first_create: bool,
    /// Whether that first call exists at Twilio (listed by `GET Calls.json?To=…`).
    first_placed: bool,
    listed: usize,
}

/// Fake Twilio: create-call counts dials; fetch-call answers the scripted status.
async fn fake_twilio(status: &str) -> (String, Arc<Mutex<Fake>>) {
    fake_twilio_with(Fake { live_status: status.into(), ..Default::default() }).await
}

async fn fake_twilio_with(fake: Fake) -> (String, Arc<Mutex<Fake>>) {
    let state = Arc::new(Mutex::new(fake));
    let (s1, s2, s3) = (Arc::clone(&state), Arc::clone(&state), Arc::clone(&state));
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls.json",
            post(move || {
                let s = Arc::clone(&s1);
                async move {
                    let (n, hang) = {
                        let mut f = s.lock().unwrap();
                        f.dials += 1;
                        (f.dials, f.hang_first_create && f.dials == 1)
                    };
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    (axum::http::StatusCode::CREATED, axum::Json(json!({"sid": format!("CA_kill_{n}")})))
                }
            })
            .get(move |axum::extract::RawQuery(q): axum::extract::RawQuery| {
                let s = Arc::clone(&s3);
                async move {
                    let mut f = s.lock().unwrap();
                    f.listed += 1;
                    let q: Vec<(String, String)> =
                        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect();
                    let to = q.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone()).unwrap_or_default();
                    let rfc2822 = |t: jiff::Timestamp| {
                        jiff::fmt::rfc2822::to_string(&t.to_zoned(jiff::tz::TimeZone::UTC)).unwrap()
                    };
                    let now = jiff::Timestamp::now();
                    // An older call to the same number (another day's) and, if placed, ours.
                    let mut calls = vec![json!({"sid": "CA_yesterday", "to": to, "status": "completed",
                        "date_created": rfc2822(now - jiff::SignedDuration::from_hours(24))})];
                    if f.first_placed {
                        calls.insert(
                            0,
                            json!({"sid": "CA_kill_1", "to": to, "status": f.live_status,
                            "date_created": rfc2822(now)}),
                        );
                    }
                    axum::Json(json!({"calls": calls, "page": 0, "page_size": 50}))
                }
            }),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{sid}",
            get(move |Path((_, sid)): Path<(String, String)>| {
                let s = Arc::clone(&s2);
                async move {
                    let mut f = s.lock().unwrap();
                    f.fetched.push(sid.clone());
                    axum::Json(json!({"sid": sid.trim_end_matches(".json"), "status": f.live_status}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

async fn killed_mid_call_then_restarted(provider_says: &str, expected: &str) {
    voxbridge::install_tls();
    let mock = voxbridge::mock_realtime::spawn_local(mock_options()).await.unwrap();
    let (twilio, fake) = fake_twilio(provider_says).await;
    let db = temp_database_url();
    let port = free_port();
    let mut first = spawn_server(port, &db, &twilio, &mock.url());
    wait_ready(port).await;
    let http = http_client();
    let created: Value = http
        .post(format!("http://127.0.0.1:{port}/v1/calls"))
        .json(&json!({"to": "+15551230009"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(5), || fake.lock().unwrap().dials == 1).await, "dialled once");
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.kill().unwrap(); // SIGKILL: no drain, the lease is left behind
    first.wait().unwrap();

    let port = free_port();
    let mut second = spawn_server(port, &db, &twilio, &mock.url());
    wait_ready(port).await;
    let reconciled = eventually(Duration::from_secs(5), || !fake.lock().unwrap().fetched.is_empty()).await;
    assert!(reconciled, "the orphaned call was checked with the provider");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.lock().unwrap().dials, 1, "nobody was dialled twice");
    assert_eq!(fake.lock().unwrap().fetched[0], "CA_kill_1.json");
    let call: Value =
        http.get(format!("http://127.0.0.1:{port}/v1/calls/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(call["status"], expected, "{call}");
    second.kill().unwrap();
    second.wait().unwrap();

    if db.starts_with("sqlite:") {
        // The SQLite file survived the SIGKILL sound (PostgreSQL is a server of its own).
        let store = voxbridge::store::sqlite::SqliteStore::open(&db).await.unwrap();
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_ended_while_its_worker_was_dead_is_finished_not_redialled() {
    killed_mid_call_then_restarted("completed", "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_still_live_after_a_crash_is_adopted_not_redialled() {
    killed_mid_call_then_restarted("in-progress", "dialing").await;
}

/// SIGKILL inside the create round trip (Twilio placed the call; its sid never reached the
/// store). The restarted server lists the calls to that number since the attempt began, finds
/// it, and applies its status: the callee who talked to the AI is not called again. When Twilio
/// has no such call, the attempt is re-queued uncounted and dialled once more.
async fn killed_inside_the_create_round_trip(placed: bool) {
    voxbridge::install_tls();
    let mock = voxbridge::mock_realtime::spawn_local(mock_options()).await.unwrap();
    let fake =
        Fake { live_status: "completed".into(), hang_first_create: true, first_placed: placed, ..Default::default() };
    let (twilio, fake) = fake_twilio_with(fake).await;
    let db = temp_database_url();
    let port = free_port();
    let mut first = spawn_server(port, &db, &twilio, &mock.url());
    wait_ready(port).await;
    let http = http_client();
    let created: Value = http
        .post(format!("http://127.0.0.1:{port}/v1/calls"))
        .json(&json!({"to": "+15551230010", "max_attempts": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(5), || fake.lock().unwrap().dials == 1).await, "dialled");
    first.kill().unwrap(); // the create is still waiting for its answer
    first.wait().unwrap();

    let port = free_port();
    let mut second = spawn_server(port, &db, &twilio, &mock.url());
    wait_ready(port).await;
    let get = |port: u16, id: String| {
        let http = http.clone();
        async move {
            http.get(format!("http://127.0.0.1:{port}/v1/calls/{id}"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut call = get(port, id.clone()).await;
    for _ in 0..250 {
        if (placed && call["status"] == "completed") || (!placed && fake.lock().unwrap().dials == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        call = get(port, id.clone()).await;
    }
    assert!(fake.lock().unwrap().listed >= 1, "Twilio's calls to the number were listed");
    if placed {
        assert_eq!(call["status"], "completed", "{call}");
        assert_eq!(call["provider_call_id"], "CA_kill_1", "the attempt's own call, not yesterday's");
        assert_eq!(fake.lock().unwrap().fetched, ["CA_kill_1.json"]);
        assert_eq!(fake.lock().unwrap().dials, 1, "nobody was dialled twice");
    } else {
        assert_eq!(fake.lock().unwrap().dials, 2, "never placed: dialled again");
        let call = get(port, id.clone()).await;
        assert_eq!(call["attempts"], 1, "the lost attempt is not counted (max_attempts 1 still dials): {call}");
    }
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_the_create_round_trip_the_placed_call_is_found_by_number_not_redialled() {
    killed_inside_the_create_round_trip(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_the_create_round_trip_a_call_never_placed_is_dialled_again() {
    killed_inside_the_create_round_trip(false).await;
}
