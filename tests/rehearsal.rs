//! README's rehearsal walk (issue 23), run as README shows it with the real binaries: the
//! server with no OpenAI key (the built-in mock following `examples/rehearsal.json`) and Telnyx
//! (or Twilio) pointed at `voxbridge replay --provider telnyx --outbound`, which plays the phone
//! network; an
//! agent from `examples/rehearsal-agent.json` and a call made from it. The agent's tool is
//! called with the script's arguments, its outcome reported, its transfer asked for, and the
//! call costs nothing at a model's prices.

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

/// Kills a process if the test ends early.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// The server's variables for `carrier`, its API at the replay's stand-in on `api`.
fn carrier_env(carrier: &str, api: &str) -> Vec<(&'static str, String)> {
    let base = format!("http://{api}");
    match carrier {
        "telnyx" => vec![
            ("TELNYX_API_KEY", "rehearsal".into()),
            ("TELNYX_CONNECTION_ID", "rehearsal".into()),
            ("TELNYX_FROM_NUMBER", "+15557654321".into()),
            ("TELNYX_API_BASE", base),
            ("VOXBRIDGE_DEFAULT_PROVIDER", "telnyx".into()),
        ],
        _ => vec![
            ("TWILIO_ACCOUNT_SID", "ACrehearsal".into()),
            ("TWILIO_AUTH_TOKEN", "rehearsal".into()),
            ("TWILIO_FROM_NUMBER", "+15557654321".into()),
            ("TWILIO_API_BASE", base),
        ],
    }
}

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The lines a process writes to `stream`, as they come.
fn lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = Arc::clone(&seen);
    std::thread::spawn(move || {
        BufReader::new(stream).lines().map_while(Result::ok).for_each(|l| s.lock().unwrap().push(l))
    });
    seen
}

/// The business's calendar endpoint (the agent's tool): keeps each call, answers two slots.
async fn calendar() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/calendar",
        axum::routing::post(move |body: String| {
            let s = Arc::clone(&s);
            async move {
                s.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(Value::Null));
                axum::Json(json!({"free": ["09:00", "14:30"]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/calendar", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_rehearsal_runs_an_agent_with_tools_outcome_and_transfer_without_a_phone() {
    rehearse("telnyx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rehearsal_plays_twilios_side_of_an_outbound_call_too() {
    rehearse("twilio").await;
}

/// README's walk on `carrier`'s stand-in API.
async fn rehearse(carrier: &str) {
    voxbridge::install_tls();
    let dir = std::env::temp_dir().join(format!("vb-rehearsal-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (port, api_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let api = format!("127.0.0.1:{api_port}");
    // README step 2: the server, no OpenAI key, Telnyx pointed at the replay's stand-in API.
    let mut server = bin();
    server
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VOXBRIDGE_PUBLIC_URL", &base)
        .env("VOXBRIDGE_DATABASE_URL", format!("sqlite://{}", dir.join("voxbridge.db").display()))
        .env("VOXBRIDGE_MOCK_SCRIPT", example("rehearsal.json"))
        .env("VOXBRIDGE_WEBHOOK_ALLOW_PRIVATE", "true")
        .envs(carrier_env(carrier, &api))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = Proc(server.spawn().unwrap());
    common::process::wait_ready(port).await;

    // README step 3: the replay plays the callee and waits for the server's dial.
    let mut replay = bin()
        .args(["replay", &format!("{}/fixtures/several-turns.jsonl", env!("CARGO_MANIFEST_DIR"))])
        .args(["--url", &base, "--provider", carrier, "--outbound", "--speed", "4"])
        .args([&format!("--{carrier}-api-listen"), &api])
        .env("TWILIO_AUTH_TOKEN", "rehearsal")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = (lines(replay.stdout.take().unwrap()), lines(replay.stderr.take().unwrap()));
    let replay = Proc(replay);
    let serving = || err.lock().unwrap().iter().any(|l| l.contains("API serving"));
    assert!(common::eventually(Duration::from_secs(10), serving).await, "the replay serves its API");

    // README step 4: the agent (its tool pointed at the business's endpoint) and a call from it.
    let (tool_url, tool_calls) = calendar().await;
    let mut agent: Value =
        serde_json::from_str(&std::fs::read_to_string(example("rehearsal-agent.json")).unwrap()).unwrap();
    agent["tools"][0]["url"] = tool_url.into();
    let http = reqwest::Client::new();
    let resp = http.post(format!("{base}/v1/agents")).json(&agent).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let agent: Value = resp.json().await.unwrap();
    let body = json!({"to": "+15551230001", "agent_id": agent["id"], "variables": {"first_name": "Ada", "clinic": "Acme Dental"}});
    let resp = http.post(format!("{base}/v1/calls")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let call: Value = resp.json().await.unwrap();
    let id = call["id"].as_str().unwrap().to_string();
    assert_eq!(
        call["instructions"],
        "You call Ada to book a check-up at Acme Dental. Use check_calendar for free slots."
    );

    // The replay plays the whole call and reports it.
    let mut replay = replay;
    let status = tokio::task::spawn_blocking(move || {
        let s = replay.0.wait();
        (s, replay)
    })
    .await
    .unwrap()
    .0
    .unwrap();
    let stdout = out.lock().unwrap().join("\n");
    assert!(status.success(), "replay failed:\n{stdout}\n{}", err.lock().unwrap().join("\n"));
    assert!(stdout.contains("several-turns.jsonl: ok"), "{stdout}");

    // README step 5: what the call did.
    let ended = || {
        let (http, url) = (http.clone(), format!("{base}/v1/calls/{id}"));
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let mut c = ended().await;
    for _ in 0..200 {
        if !c["ended_at"].is_null() && c["usage"]["model"]["output_audio_tokens"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        c = ended().await;
    }
    let calls = tool_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "the tool was called once: {calls:?}");
    assert_eq!(
        (calls[0]["tool"].as_str(), &calls[0]["arguments"]),
        (Some("check_calendar"), &json!({"day": "tuesday"}))
    );
    assert_eq!(calls[0]["call_id"], id.as_str());
    assert_eq!(c["outcome"], json!({"booked": true, "slot": "tuesday 09:00"}), "{c}");
    assert_eq!(c["transferred_to"], "+15550001111", "{c}");
    assert_eq!(c["status"], "transferred", "{c}");
    assert_eq!(c["cost"]["model_usd"].as_f64(), Some(0.0), "a rehearsal costs nothing at a model's prices: {c}");
    let transcript: Value =
        http.get(format!("{base}/v1/calls/{id}/transcript")).send().await.unwrap().json().await.unwrap();
    let said: Vec<&str> = transcript["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["speaker"] == "assistant")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(said.contains(&"Let me look at the calendar for you."), "{transcript}");
    let _ = std::fs::remove_dir_all(dir);
}
