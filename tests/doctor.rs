//! `voxbridge doctor` (issue 26), the real binary against fake Twilio, Telnyx and OpenAI APIs on
//! loopback: a correct deployment passes every check (exit 0); a misconfigured one fails each
//! wrong thing on its own line with the fix (exit 1).

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What the fake carriers and OpenAI hold.
#[derive(Clone)]
struct Fake {
    twilio_voice_url: String,
    telnyx_webhook: String,
    models: Vec<&'static str>,
}

type Shared = Arc<Mutex<Fake>>;

fn basic(headers: &HeaderMap) -> String {
    headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// `Basic base64("ACtest:tok")`.
const TWILIO_AUTH: &str = "Basic QUN0ZXN0OnRvaw==";

async fn twilio_account(headers: HeaderMap, Path(sid): Path<String>) -> Response {
    if basic(&headers) != TWILIO_AUTH {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"code": 20003, "message": "Authenticate"})))
            .into_response();
    }
    axum::Json(json!({"sid": sid.trim_end_matches(".json"), "status": "active"})).into_response()
}

async fn twilio_numbers(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if basic(&headers) != TWILIO_AUTH {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let voice_url = fake.lock().unwrap().twilio_voice_url.clone();
    let number = q.get("PhoneNumber").cloned().unwrap_or_default();
    axum::Json(
        json!({"incoming_phone_numbers": [{"phone_number": number, "voice_url": voice_url, "voice_method": "POST"}]}),
    )
    .into_response()
}

async fn telnyx_app(State(fake): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if basic(&headers) != "Bearer KEYtest" {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"errors": [{"title": "Authentication failed"}]})))
            .into_response();
    }
    if id != "conn-1" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let url = fake.lock().unwrap().telnyx_webhook.clone();
    axum::Json(json!({"data": {"id": id, "record_type": "call_control_application", "webhook_event_url": url}}))
        .into_response()
}

async fn openai_model(State(fake): State<Shared>, headers: HeaderMap, Path(model): Path<String>) -> Response {
    if basic(&headers) != "Bearer sk-test" {
        let e = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}});
        return (StatusCode::UNAUTHORIZED, axum::Json(e)).into_response();
    }
    if !fake.lock().unwrap().models.contains(&model.as_str()) {
        let e = json!({"error": {"message": format!("The model '{model}' does not exist"), "code": "model_not_found"}});
        return (StatusCode::NOT_FOUND, axum::Json(e)).into_response();
    }
    axum::Json(json!({"id": model, "object": "model", "owned_by": "system"})).into_response()
}

async fn fakes(fake: Fake) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(fake));
    let app = axum::Router::new()
        .route("/2010-04-01/Accounts/{sid}", axum::routing::get(twilio_account))
        .route("/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json", axum::routing::get(twilio_numbers))
        .route("/v2/call_control_applications/{id}", axum::routing::get(telnyx_app))
        .route("/v1/models/{model}", axum::routing::get(openai_model))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, shared)
}

/// Runs `voxbridge doctor` with `env` over a clean environment: its exit status and lines.
async fn doctor(env: &[(&str, String)]) -> (bool, Vec<String>) {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_voxbridge"))
            .arg("doctor")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    (out.status.success(), lines)
}

/// `name`'s line is a failure saying `has`, with a fix.
fn fail(lines: &[String], name: &str, has: &str) {
    let l = line(lines, name);
    assert!(l.starts_with("FAIL: ") && l.contains(has) && l.contains(" fix: "), "{name}: {lines:#?}");
}

fn line<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(&format!(" {name}:")) || l.starts_with(&format!("FAIL: {name}:")))
        .map_or("", |l| l)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_deployment_passes_and_a_wrong_one_fails_each_mistake_with_its_fix() {
    let public = "http://localhost:8080";
    let (base, fake) = fakes(Fake {
        twilio_voice_url: format!("{public}/twilio/voice"),
        telnyx_webhook: format!("{public}/webhooks/telnyx"),
        models: vec!["gpt-realtime", "gpt-5-mini"],
    })
    .await;
    let dir = std::env::temp_dir().join(format!("vb-doctor-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env: Vec<(&str, String)> = vec![
        ("VOXBRIDGE_PUBLIC_URL", public.into()),
        ("VOXBRIDGE_DATABASE_URL", format!("sqlite://{}", dir.join("vb.db").display())),
        ("TWILIO_ACCOUNT_SID", "ACtest".into()),
        ("TWILIO_AUTH_TOKEN", "tok".into()),
        ("TWILIO_FROM_NUMBER", "+15557654321".into()),
        ("TWILIO_API_BASE", base.clone()),
        ("TELNYX_API_KEY", "KEYtest".into()),
        ("TELNYX_CONNECTION_ID", "conn-1".into()),
        ("TELNYX_API_BASE", base.clone()),
        ("OPENAI_API_KEY", "sk-test".into()),
        ("VOXBRIDGE_REALTIME_URL", format!("{}/v1/realtime", base.replace("http://", "ws://"))),
        ("VOXBRIDGE_MAX_LIVE_CALLS", "10".into()),
        ("VOXBRIDGE_RECORDINGS", format!("local:{}", dir.join("recordings").display())),
    ];
    let (ok, lines) = doctor(&env).await;
    assert!(ok, "{lines:#?}");
    for name in [
        "configuration",
        "database",
        "public URL",
        "Twilio credentials",
        "Twilio number +15557654321",
        "clock against Twilio",
        "Telnyx key",
        "Telnyx connection",
        "OpenAI model gpt-realtime",
        "OpenAI model gpt-5-mini",
        "open-file limit",
        "recordings",
    ] {
        assert!(line(&lines, name).starts_with("ok "), "{name}: {lines:#?}");
    }
    assert!(line(&lines, "public URL").contains("skipped"), "a local public URL is not checked from outside");

    // Misconfigured: the number's webhook elsewhere, the Telnyx app pointing elsewhere, a model
    // the key does not have, a database that cannot be created, a public URL over plain http.
    {
        let mut f = fake.lock().unwrap();
        f.twilio_voice_url = "https://old-host.example.com/voice".into();
        f.telnyx_webhook = "https://old-host.example.com/telnyx".into();
    }
    env.push(("VOXBRIDGE_REALTIME_MODEL", "gpt-realtime-2".into()));
    env.retain(|(k, _)| *k != "VOXBRIDGE_DATABASE_URL");
    env.push(("VOXBRIDGE_DATABASE_URL", "sqlite:///nonexistent-dir/sub/vb.db".into()));
    // Recordings to an S3 endpoint where nothing listens.
    env.retain(|(k, _)| *k != "VOXBRIDGE_RECORDINGS");
    env.push(("VOXBRIDGE_RECORDINGS", "s3://calls/rec".into()));
    env.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into()));
    env.push(("AWS_ACCESS_KEY_ID", "test".into()));
    env.push(("AWS_SECRET_ACCESS_KEY", "test".into()));
    let (ok, lines) = doctor(&env).await;
    assert!(!ok, "{lines:#?}");
    fail(&lines, "recordings", "s3://calls/rec refuses a write");
    fail(&lines, "Twilio number +15557654321", "https://old-host.example.com/voice");
    fail(&lines, "Telnyx connection", "https://old-host.example.com/telnyx");
    fail(&lines, "OpenAI model gpt-realtime-2", "does not exist");
    fail(&lines, "database", "cannot open");
    assert!(line(&lines, "OpenAI model gpt-5-mini").starts_with("ok "), "{lines:#?}");
    assert!(lines.last().unwrap().ends_with("5 failed"), "{lines:#?}");

    // Wrong credentials: said, and nothing further is asked of that carrier.
    env.push(("TWILIO_AUTH_TOKEN", "wrong".into()));
    env.push(("OPENAI_API_KEY", "sk-wrong".into()));
    env.push(("VOXBRIDGE_PUBLIC_URL", "http://voice.example.com".into()));
    let (ok, lines) = doctor(&env).await;
    assert!(!ok);
    fail(&lines, "Twilio credentials", "Authenticate");
    assert!(line(&lines, "Twilio number +15557654321").is_empty(), "{lines:#?}");
    fail(&lines, "OpenAI model gpt-realtime-2", "Incorrect API key");
    fail(&lines, "public URL", "is not https");
    let _ = std::fs::remove_dir_all(dir);
}
