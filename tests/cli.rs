//! The binary's first minute (issue 13): flags after `serve`, bad values reported by the
//! environment variable the operator set, case-insensitive choices, and start-up failures that
//! name their variable — each one line on stderr and exit code 2.

mod common;

use std::process::{Command, Output};

fn voxbridge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let db = std::env::temp_dir().join(format!("vb-cli-{}.db", rand::random::<u64>()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    cmd.args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd.env("VOXBRIDGE_DATABASE_URL", format!("sqlite://{}", db.display()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn first_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_bad_environment_value_is_reported_by_its_variable() {
    let out = voxbridge(&[], &[("VOXBRIDGE_AUDIO_MODE", "bogus")]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(first_line(&out), "VOXBRIDGE_AUDIO_MODE: 'bogus' is not one of pcm16, g711");
    let out = voxbridge(&["serve"], &[("VOXBRIDGE_MAX_LIVE_CALLS", "lots")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(first_line(&out).starts_with("VOXBRIDGE_MAX_LIVE_CALLS: 'lots' is not valid"), "{}", first_line(&out));
    // Typed as a flag, the flag is what is named.
    let out = voxbridge(&["serve", "--audio-mode", "bogus"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--audio-mode"));
}

#[test]
fn start_up_failures_name_their_variable() {
    let out = voxbridge(&["serve"], &[("RUST_LOG", "nonsense=[")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(first_line(&out).starts_with("RUST_LOG: "), "{}", first_line(&out));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // Flags after the subcommand, and choices in any case.
    let out =
        voxbridge(&["serve", "--listen", &addr], &[("VOXBRIDGE_AUDIO_MODE", "G711"), ("VOXBRIDGE_LOG_FORMAT", "JSON")]);
    assert_eq!(out.status.code(), Some(2));
    let line = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default().to_string();
    assert!(line.starts_with(&format!("VOXBRIDGE_LISTEN: cannot listen on {addr}")), "{line}");

    let out = voxbridge(&["serve"], &[("VOXBRIDGE_DATABASE_URL", "sqlite:///proc/voxbridge/nowhere.db")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l.starts_with("VOXBRIDGE_DATABASE_URL: ")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_a_draining_server_at_once() {
    use futures_util::SinkExt;
    use std::io::{BufRead, BufReader};
    voxbridge::install_tls();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let db = std::env::temp_dir().join(format!("vb-cli-{}.db", rand::random::<u64>()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VOXBRIDGE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let lines = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || lines.lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let wait_for = |what: &str| loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(10)).expect(what);
        if line.contains(what) {
            return line;
        }
    };
    wait_for("voxbridge serving");
    // A live call holds the drain open.
    let base = format!("http://127.0.0.1:{port}");
    let (_, start) = common::inbound_start(&base, &common::http_client()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/media/twilio")).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(start.into())).await.unwrap();
    wait_for("stream started");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let draining = wait_for("shutdown requested");
    assert!(draining.contains("up to 280 s") && draining.contains("second signal"), "{draining}");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(130), "exits at once, without waiting 280 s for the live call");
    let _ = std::fs::remove_file(db);
}

/// A clean stop says nothing alarming (issue 26: a spurious `WARN … closed pool` on most stops:
/// the dialler outlived the store); the store is closed last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_warns_of_nothing() {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let db = std::env::temp_dir().join(format!("vb-cli-{}.db", rand::random::<u64>()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VOXBRIDGE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("VOXBRIDGE_WORKER_POLL_MS", "5")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let lines = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || lines.lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let wait_for = |what: &str| loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(10)).expect(what);
        if line.contains(what) {
            return;
        }
    };
    wait_for("voxbridge serving");
    // The Docker image's HEALTHCHECK: `voxbridge health` (the port from VOXBRIDGE_LISTEN).
    let health = || {
        Command::new(env!("CARGO_BIN_EXE_voxbridge"))
            .arg("health")
            .env_clear()
            .env("VOXBRIDGE_LISTEN", format!("0.0.0.0:{port}"))
            .output()
            .unwrap()
    };
    let alive = health();
    assert!(alive.status.success(), "{}", String::from_utf8_lossy(&alive.stderr));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(health().status.code(), Some(1), "nothing answers once it stopped");
    let after: Vec<String> = rx.try_iter().skip_while(|l| !l.contains("shutdown requested")).collect();
    assert!(!after.is_empty(), "the stop was a drain");
    assert!(after.iter().any(|l| l.contains("database checkpointed and closed")), "{after:#?}");
    let alarming: Vec<&String> = after.iter().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    assert!(alarming.is_empty(), "{alarming:#?}");
    let _ = std::fs::remove_file(db);
}

#[test]
fn a_replay_speed_of_zero_is_refused_at_once_instead_of_hanging() {
    for bad in ["0", "-1", "fast"] {
        let out = voxbridge(&["replay", "fixtures/dtmf.jsonl", &format!("--speed={bad}")], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(first_line(&out).contains("--speed"), "{bad}: {}", first_line(&out));
    }
    let out = voxbridge(&["mock-realtime", "--speed", "0"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
