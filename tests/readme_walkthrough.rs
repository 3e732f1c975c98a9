//! README's first hour, run as an operator would run it (issue 13): the real binary serves,
//! `voxbridge replay fixtures/*.jsonl` plays every fixture with a truthful line each, a call is
//! created with README's body, it says why it is not dialled, its events arrive, and SIGTERM
//! stops the server cleanly with the data folded into the database file.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_voxbridge"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the server if the test ends early.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

async fn until<F: FnMut() -> bool>(what: &str, f: F) {
    assert!(common::eventually(Duration::from_secs(10), f).await, "timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_on_a_fresh_machine() {
    voxbridge::install_tls();
    let dir = std::env::temp_dir().join(format!("vb-readme-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hook, events) = common::event_receiver().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // README: `voxbridge serve` (flags after the subcommand), no keys, the built-in mock model.
    let mut child = bin()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VOXBRIDGE_DATABASE_URL", format!("sqlite://{}", dir.join("voxbridge.db").display()))
        .env("VOXBRIDGE_WEBHOOK_URL", &hook)
        .env("VOXBRIDGE_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("VOXBRIDGE_WORKER_POLL_MS", "50")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let lines = BufReader::new(child.stdout.take().unwrap());
    let l = Arc::clone(&log);
    std::thread::spawn(move || lines.lines().map_while(Result::ok).for_each(|line| l.lock().unwrap().push(line)));
    let mut server = Server(child);
    let http = common::http_client();
    let logged = |s: &str| log.lock().unwrap().iter().any(|l| l.contains(s));
    until("the server to serve", || logged("voxbridge serving")).await;
    assert!(logged("twilio_stream_url=ws://localhost:8080/media/twilio"), "start-up names the stream URL");
    assert!(!logged("\u{1b}["), "no colour codes when the log is not a terminal");
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);

    // README: `voxbridge replay fixtures/*.jsonl` — every fixture, one truthful line each.
    let mut fixtures: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".jsonl"))
        .collect();
    fixtures.sort();
    let out = bin()
        .arg("replay")
        .args(&fixtures)
        .args(["--url", &base, "--speed", "4"])
        .env_remove("TWILIO_AUTH_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "replay failed:\n{stdout}");
    for f in &fixtures {
        let name = std::path::Path::new(f).file_name().unwrap().to_string_lossy().to_string();
        assert!(
            stdout.lines().any(|l| l.contains(&name) && l.contains(": ok; AI first heard at")),
            "{name}:\n{stdout}"
        );
    }
    assert!(stdout.contains(&format!("calls: {} (0 failed; the AI answered in {})", fixtures.len(), fixtures.len())));

    // README: create a call, see why it is not dialled.
    let body = json!({"to":"+15551234567","from":"+15557654321","instructions":"Confirm the appointment for tomorrow.",
        "greeting":"Hi, this is Ada.","call_window":{"timezone":"America/Los_Angeles","start":"09:00","end":"17:00",
        "days":["mon","tue","wed","thu","fri"]}});
    let resp =
        http.post(format!("{base}/v1/calls")).header("Idempotency-Key", "lead-abc-1").json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let call: Value = resp.json().await.unwrap();
    let id = call["id"].as_str().unwrap().to_string();
    let view: Value = http.get(format!("{base}/v1/calls/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["status"], "queued");
    assert!(view["last_error"].as_str().unwrap().contains("TWILIO_ACCOUNT_SID"), "{view}");
    // …and read its events (the inbound replayed calls sent theirs too).
    let has =
        |id: &str, t: &str| events.lock().unwrap().iter().any(|e| e["data"]["call"]["id"] == id && e["type"] == t);
    until("call.queued", || has(&id, "call.queued")).await;
    until("an inbound call.completed", || events.lock().unwrap().iter().any(|e| e["type"] == "call.completed")).await;
    // The built-in mock's calls cost nothing at a model's prices (the carrier's minutes still count).
    let inbound: Value =
        http.get(format!("{base}/v1/calls?direction=inbound&limit=100")).send().await.unwrap().json().await.unwrap();
    let spoke: Vec<&Value> = inbound["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["usage"]["model"]["output_audio_tokens"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert!(!spoke.is_empty(), "the mock answered: {inbound}");
    for c in spoke {
        assert_eq!(c["cost"]["model_usd"].as_f64(), Some(0.0), "{c}");
    }

    // SIGTERM: a clean stop, the WAL folded into the database file.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    until("the checkpoint", || logged("database checkpointed and closed")).await;
    let wal = dir.join("voxbridge.db-wal");
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0));
    let _ = std::fs::remove_dir_all(dir);
}
