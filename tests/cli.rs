//! The binary's first minute (issue 13): flags after `serve`, bad values reported by the
//! environment variable the operator set, case-insensitive choices, and start-up failures that
//! name their variable — each one line on stderr and exit code 2.

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
