//! Recordings end to end: an inbound call whose number's agent says `record: true`, played at
//! real time by the fake carrier, with a barge-in. The WAV the API serves has the caller on the
//! left exactly as sent and, on the right, exactly what the fake carrier played (its own playout
//! clock: `clear` drops what had not played), cut at the barge-in; `Range` works; the events name
//! it; retention deletes it. S3 (an S3-compatible server, `moto`, started by the test): a call
//! while S3 is down is unaffected, its upload is retried across a restart of the server, then
//! stored, and served from S3.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;
use voxbridge::media::g711::ulaw_decode;
use voxbridge::replay;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vb-rec-{name}-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Replays `name` as Twilio, keeping what the fake carrier played.
async fn replay_keeping_heard(addr: std::net::SocketAddr, name: &str, auth_token: Option<&str>) -> replay::Report {
    let mut opts = replay_options(addr, name, 1.0, auth_token, "/twilio/voice", None);
    opts.target.keep_heard = true;
    replay::run(opts).await.expect("fixture loads")
}

/// An agent that records, bound to the number inbound replays call; its events go to `events`.
async fn recording_agent(base: &str, events: Option<&str>) {
    let http = http_client();
    let mut body = json!({"name": "Recorded desk", "instructions": "Be brief.", "record": true});
    if let Some(url) = events {
        body["webhook_url"] = url.into();
    }
    let agent = http.post(format!("{base}/v1/agents")).json(&body).send().await.unwrap();
    assert_eq!(agent.status(), 201);
    let agent: Value = agent.json().await.unwrap();
    let put = http.put(format!("{base}/v1/numbers/+15557654321")).json(&json!({"agent_id": agent["id"]})).send().await;
    assert_eq!(put.unwrap().status(), 200);
}

/// The only call, once its recording is at `recording_url` (or `within` passes).
async fn recorded_call(base: &str, within: Duration) -> Value {
    let http = http_client();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let list: Value = http.get(format!("{base}/v1/calls")).send().await.unwrap().json().await.unwrap();
        if let Some(call) = list["calls"].get(0)
            && call["recording_url"].is_string()
        {
            return call.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no recording in time: {list}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn mono(bytes: &[u8]) -> Vec<f64> {
    bytes.iter().map(|&b| f64::from(ulaw_decode(b))).collect()
}

/// The shift of `got` against `reference[from..to]` (within `center` ± `max`) that leaves the
/// least error.
fn best_shift(reference: &[f64], got: &[f64], from: usize, to: usize, center: i64, max: i64) -> i64 {
    let error = |shift: i64| -> f64 {
        (from..to)
            .map(|i| {
                let j = i as i64 + shift;
                let g = if j >= 0 && (j as usize) < got.len() { got[j as usize] } else { 0.0 };
                (reference[i] - g).powi(2)
            })
            .sum()
    };
    (center - max..=center + max).min_by(|a, b| error(*a).total_cmp(&error(*b))).unwrap()
}

/// Signal to error, in dB, of `got` shifted by `shift` against `reference[from..to]`.
fn snr(reference: &[f64], got: &[f64], from: usize, to: usize, shift: i64) -> (f64, f64) {
    let (mut signal, mut noise) = (0.0, 0.0);
    for (i, r) in reference.iter().enumerate().take(to).skip(from) {
        let j = i as i64 + shift;
        let g = if j >= 0 && (j as usize) < got.len() { got[j as usize] } else { 0.0 };
        signal += r.powi(2);
        noise += (r - g).powi(2);
    }
    (signal, noise)
}

/// Runs of sound in `x` (gaps shorter than 50 ms inside a run).
fn spurts(x: &[f64]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, v) in x.iter().enumerate() {
        if *v != 0.0 {
            match out.last_mut() {
                Some((_, end)) if i - *end < 400 => *end = i + 1,
                _ => out.push((i, i + 1)),
            }
        }
    }
    out
}

fn channels(wav: &[u8]) -> (hound::WavSpec, Vec<f64>, Vec<f64>) {
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).expect("a WAV file");
    let spec = reader.spec();
    let s: Vec<f64> = reader.into_samples::<i16>().map(|s| f64::from(s.unwrap())).collect();
    (spec, s.iter().step_by(2).copied().collect(), s.iter().skip(1).step_by(2).copied().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barge_in_call_is_recorded_as_the_caller_heard_it() {
    let dir = temp_dir("local");
    let (events_url, events) = event_receiver().await;
    let mut c = config(AudioMode::G711);
    c.recordings = format!("local:{}", dir.display());
    c.webhook_allow_private = true;
    let h = start(c, mock_options()).await;
    let base = format!("http://{}", h.addr);
    recording_agent(&base, Some(&events_url)).await;

    let report = replay_keeping_heard(h.addr, "barge-in", None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let played = &report.per_call[0];
    assert_eq!(played.clears.len(), 1, "one barge-in: {:?}", played.clears);
    let heard = mono(played.heard.as_deref().expect("the fake carrier kept what it played"));

    let call = recorded_call(&base, Duration::from_secs(10)).await;
    let id = call["id"].as_str().unwrap();
    assert_eq!(call["record"], true);
    assert_eq!(call["recording_url"], format!("/v1/calls/{id}/recording"));
    let http = http_client();
    let wav = http.get(format!("{base}{}", call["recording_url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(wav.status(), 200);
    assert_eq!(wav.headers()["content-type"], "audio/wav");
    assert_eq!(wav.headers()["accept-ranges"], "bytes");
    let wav = wav.bytes().await.unwrap().to_vec();
    let (spec, left, right) = channels(&wav);
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));

    // Its length is the call's: the stream's, as the fake carrier timed it.
    let seconds = left.len() as f64 / 8000.0;
    let streamed = heard.len() as f64 / 8000.0;
    eprintln!("recording {seconds:.3} s, stream {streamed:.3} s, call duration_s {}", call["duration_s"]);
    assert!((seconds - streamed).abs() < 0.3, "recording {seconds:.3} s vs stream {streamed:.3} s");

    // Left: the caller, exactly as sent.
    let caller = mono(&fixture_audio("barge-in"));
    let first = |x: &[f64]| x.iter().position(|v| *v != 0.0).unwrap() as i64;
    let (voiced, _) = spurts(&caller)[0];
    let rough = first(&left) - first(&caller);
    let shift = best_shift(&caller, &left, voiced, (voiced + 8000).min(caller.len()), rough, 80);
    let n = (caller.len() as i64).min(left.len() as i64 - shift) as usize;
    let (signal, noise) = snr(&caller, &left, 0, n, shift);
    let left_db = 10.0 * (signal / noise.max(1e-9)).log10();
    eprintln!("left: shift {shift} samples, SNR {left_db:.1} dB");
    assert!(left_db >= 35.0, "the caller's channel: {left_db:.1} dB");

    // Right: what the carrier played, talk spurt by talk spurt, cut where the carrier cut it.
    let talk = spurts(&heard);
    assert!(talk.len() >= 2, "the AI spoke more than once: {talk:?}");
    let (mut signal, mut noise) = (0.0, 0.0);
    let clear_at = (played.clears[0].at_ms * 8) as usize;
    for &(from, to) in &talk {
        let body_end = to.saturating_sub(80).max(from + 1); // the last 10 ms: where a cut lands
        let shift = best_shift(&heard, &right, from, body_end.min(from + 8000), 0, 400);
        let (s, e) = snr(&heard, &right, from, body_end, shift);
        signal += s;
        noise += e;
        let after = (to as i64 + shift) as usize;
        if to.abs_diff(clear_at) < 400 {
            // The barge-in: what was queued at the carrier and never played is not there.
            let rest: f64 =
                right[(after + 160).min(right.len())..(after + 1600).min(right.len())].iter().map(|v| v * v).sum();
            assert!(rest == 0.0, "audio the caller never heard is in the recording after the cut at {to}");
            let heard_in_recording = right[..(after + 160).min(right.len())].iter().rposition(|v| *v != 0.0).unwrap();
            let cut_error_ms = (heard_in_recording as f64 - after as f64).abs() / 8.0;
            eprintln!("barge-in: the recording's cut is {cut_error_ms:.1} ms from the carrier's");
            assert!(cut_error_ms <= 20.0, "cut {cut_error_ms:.1} ms away");
        }
    }
    let right_db = 10.0 * (signal / noise.max(1e-9)).log10();
    eprintln!("right: {} spurts, SNR {right_db:.1} dB", talk.len());
    assert!(right_db >= 35.0, "the AI's channel: {right_db:.1} dB");

    // Range: the header alone; the rest; past the end.
    let part = http.get(format!("{base}/v1/calls/{id}/recording")).header("Range", "bytes=0-43").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 0-43/{}", wav.len()));
    assert_eq!(part.bytes().await.unwrap().as_ref(), &wav[..44]);
    let tail = http.get(format!("{base}/v1/calls/{id}/recording")).header("Range", "bytes=44-").send().await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &wav[44..]);
    let past = http.get(format!("{base}/v1/calls/{id}/recording")).header("Range", "bytes=99999999-").send().await;
    let past = past.unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(past.headers()["content-range"], format!("bytes */{}", wav.len()));
    // Not for strangers.
    let stranger = reqwest::Client::new().get(format!("{base}/v1/calls/{id}/recording")).send().await.unwrap();
    assert_eq!(stranger.status(), 401);

    // The events name it: `call.completed` carries the URL, then `call.recording_ready`.
    assert!(
        eventually(Duration::from_secs(10), || {
            let seen = events.lock().unwrap();
            seen.iter().any(|e| e["type"] == "call.recording_ready")
                && seen.iter().any(|e| e["type"] == "call.completed")
        })
        .await,
        "events: {:?}",
        events.lock().unwrap()
    );
    let seen = events.lock().unwrap().clone();
    let completed = seen.iter().find(|e| e["type"] == "call.completed").unwrap();
    assert_eq!(completed["data"]["call"]["recording_url"], format!("/v1/calls/{id}/recording"));

    // Retention: past it, the recording goes, then the call may.
    let store = h.bridge.store.clone().unwrap();
    let recorder = h.bridge.recordings.clone().unwrap();
    let worker = voxbridge::recording::worker::WorkerConfig {
        storage: recorder.storage,
        retry_base: Duration::from_millis(50),
        retain: Duration::ZERO,
    };
    voxbridge::recording::worker::retention(&store, &worker).await;
    assert!(!dir.join(format!("{id}.wav")).exists(), "the file is deleted");
    let call: Value = http.get(format!("{base}/v1/calls/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(call["recording_url"], Value::Null);
    let gone = http.get(format!("{base}/v1/calls/{id}/recording")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_is_refused_while_recordings_are_off() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let base = format!("http://{}", h.addr);
    let http = http_client();
    for (path, body) in [
        ("/v1/calls", json!({"to": "+15551230000", "from": "+15557654321", "record": true})),
        ("/v1/agents", json!({"name": "a", "record": true})),
    ] {
        let r = http.post(format!("{base}{path}")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 422, "{path}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().starts_with("record: recordings are off"), "{e}");
    }
}

/// An S3-compatible server (`moto` in server mode), or `None` where it is not installed (CI
/// installs it).
struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import moto.server, flask_cors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI must install moto[server]");
        eprintln!("moto[server] is not installed here: the S3 test is skipped");
    }
    ok
}

async fn start_moto(port: u16) -> Moto {
    let child = std::process::Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto starts");
    let moto = Moto(child);
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.put(format!("http://127.0.0.1:{port}/calls")).send().await
            && r.status().is_success()
        {
            return moto;
        }
        assert!(tokio::time::Instant::now() < deadline, "moto never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spool_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_during_a_call_the_upload_is_retried_across_a_restart_then_stored() {
    if !moto_available() {
        return;
    }
    use common::process::*;
    let model = voxbridge::mock_realtime::spawn_local(mock_options()).await.unwrap();
    let s3_port = free_port();
    let spool = temp_dir("spool");
    let db = temp_database_url();
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let spool_s = spool.display().to_string();
    let env = [
        ("VOXBRIDGE_RECORDINGS", "s3://calls/recordings"),
        ("VOXBRIDGE_RECORDINGS_SPOOL", spool_s.as_str()),
        ("VOXBRIDGE_RECORDINGS_RETRY_MS", "100"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let port = free_port();
    let server = Server(spawn_server_with(port, &db, "http://127.0.0.1:9", &model.url(), &env));
    wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    recording_agent(&base, None).await;

    // S3 is down for the whole call: the call is as good as any.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let report = replay_keeping_heard(addr, "barge-in", Some("tok")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let call = recorded_call(&base, Duration::from_secs(10)).await;
    let id = call["id"].as_str().unwrap().to_string();
    assert_eq!(call["status"], "completed", "{call}");
    // The upload fails, is retried, and says so on the call; the file waits in the spool and is
    // served from there meanwhile.
    let http = http_client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let error = loop {
        let c: Value = http.get(format!("{base}/v1/calls/{id}")).send().await.unwrap().json().await.unwrap();
        if let Some(e) = c["recording_error"].as_str() {
            break e.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no upload failure reported: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("reported: {error}");
    assert!(error.contains("retrying"), "{error}");
    let local = http.get(format!("{base}/v1/calls/{id}/recording")).send().await.unwrap();
    assert_eq!(local.status(), 200);
    let wav = local.bytes().await.unwrap();
    assert_eq!(spool_files(&spool), vec![format!("{id}.wav")]);

    // The server restarts before S3 comes back: the new process uploads what the old one left.
    drop(server);
    let _s3 = start_moto(s3_port).await;
    let _server = Server(spawn_server_with(port, &db, "http://127.0.0.1:9", &model.url(), &env));
    wait_ready(port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !spool_files(&spool).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never uploaded: {:?}", spool_files(&spool));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c: Value = http.get(format!("{base}/v1/calls/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(c["recording_error"], Value::Null, "{c}");
    // Served from S3 now (the spool is empty), byte for byte what was recorded; ranges too.
    let stored = http.get(format!("{base}/v1/calls/{id}/recording")).send().await.unwrap();
    assert_eq!(stored.status(), 200);
    assert_eq!(stored.bytes().await.unwrap(), wav);
    let object = reqwest::get(format!("{endpoint}/calls/recordings/{id}.wav")).await.unwrap();
    assert_eq!(object.status(), 200, "the object is in the bucket");
    let part = http.get(format!("{base}/v1/calls/{id}/recording")).header("Range", "bytes=-100").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &wav[wav.len() - 100..]);
}
