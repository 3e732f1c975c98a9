//! The deploy files keep the machine always on and give the drain time to finish
//! (reliability.md #24, #26): checked here so an edit cannot silently undo them.

use std::path::PathBuf;

fn read(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

#[test]
fn fly_toml_is_always_on_with_a_deliberate_shutdown() {
    let fly: toml::Table = read("fly.toml").parse().unwrap();
    assert_eq!(fly["kill_signal"].as_str(), Some("SIGTERM"));
    let kill_timeout = fly["kill_timeout"].as_integer().unwrap();
    let drain: i64 = fly["env"]["VOXBRIDGE_DRAIN_TIMEOUT_S"].as_str().unwrap().parse().unwrap();
    // After the drain, calls still live end; a Telnyx caller hears the apology first.
    let after = voxbridge::providers::carrier::APOLOGY_WAIT.as_secs() as i64 + 2;
    assert!(
        drain + after <= kill_timeout && kill_timeout <= 300,
        "drain {drain} s + {after} s must finish inside kill_timeout {kill_timeout} s"
    );
    let http = &fly["http_service"];
    assert_eq!(http["internal_port"].as_integer(), Some(8080));
    assert_eq!(http["auto_stop_machines"].as_str(), Some("off"));
    assert_eq!(http["min_machines_running"].as_integer(), Some(1));
    assert_eq!(http["checks"][0]["path"].as_str(), Some("/healthz"));
    assert!(fly.get("env").and_then(|e| e.get("OPENAI_API_KEY")).is_none(), "secrets never in fly.toml");
}

#[test]
fn dockerfile_runs_as_non_root_with_an_exec_form_entrypoint() {
    let d = read("Dockerfile");
    assert!(d.matches("FROM ").count() >= 2, "multi-stage");
    assert!(d.lines().any(|l| l.starts_with("USER ") && !l.contains("root")));
    assert!(d.contains("ENTRYPOINT [\""), "exec form so SIGTERM reaches the binary");
    assert!(d.contains("VOLUME [\"/data\"]"), "the database directory is a volume");
    assert!(d.contains("STOPSIGNAL SIGTERM"));
    // Whether the build stage compiles from what it copies is checked by running it:
    // scripts/check_docker_build.sh (CI).
}

#[test]
fn railway_gives_the_drain_time_to_finish() {
    let railway: toml::Table = read("railway.toml").parse().unwrap();
    let deploy = &railway["deploy"];
    let draining = deploy["drainingSeconds"].as_integer().expect("a number (Railway refuses a string)");
    let after = voxbridge::providers::carrier::APOLOGY_WAIT.as_secs() as i64 + 2;
    assert!(280 + after <= draining, "drainingSeconds {draining} must cover the 280 s drain and {after} s more");
    assert_eq!(deploy["healthcheckPath"].as_str(), Some("/readyz"));
    assert_eq!(railway["build"]["builder"].as_str(), Some("DOCKERFILE"));
}

#[test]
fn fly_postgres_runs_two_machines_without_a_volume_and_routes_by_readiness() {
    let fly: toml::Table = read("fly.postgres.toml").parse().unwrap();
    let single: toml::Table = read("fly.toml").parse().unwrap();
    let http = &fly["http_service"];
    assert!(http["min_machines_running"].as_integer().unwrap() >= 2, "one serves while the other is replaced");
    assert_eq!(http["auto_stop_machines"].as_str(), Some("off"));
    assert_eq!(http["checks"][0]["path"].as_str(), Some("/readyz"), "a draining machine gets no new requests");
    assert!(fly.get("mounts").is_none(), "no volume: the state is in PostgreSQL");
    assert!(fly["env"].get("VOXBRIDGE_DATABASE_URL").is_none(), "the database URL holds a password: a secret");
    assert_eq!(fly["deploy"]["strategy"].as_str(), Some("rolling"));
    assert_eq!(fly["deploy"]["max_unavailable"].as_integer(), Some(1));
    // The drain has the same time as on one machine.
    for key in ["kill_signal", "kill_timeout"] {
        assert_eq!(fly[key], single[key], "{key}");
    }
    assert_eq!(fly["env"]["VOXBRIDGE_DRAIN_TIMEOUT_S"], single["env"]["VOXBRIDGE_DRAIN_TIMEOUT_S"]);
    assert_eq!(fly["build"]["dockerfile"].as_str(), Some("Dockerfile"));
}

#[test]
fn railway_postgres_runs_two_replicas_with_the_drain_and_readiness() {
    let railway: toml::Table = read("railway.postgres.toml").parse().unwrap();
    let deploy = &railway["deploy"];
    assert!(deploy["numReplicas"].as_integer().unwrap() >= 2);
    assert_eq!(deploy["healthcheckPath"].as_str(), Some("/readyz"));
    let draining = deploy["drainingSeconds"].as_integer().expect("a number (Railway refuses a string)");
    let after = voxbridge::providers::carrier::APOLOGY_WAIT.as_secs() as i64 + 2;
    assert!(280 + after <= draining, "drainingSeconds {draining} must cover the 280 s drain and {after} s more");
    assert!(deploy["overlapSeconds"].as_integer().is_some(), "the new deployment serves before the old one stops");
    assert_eq!(railway["build"]["builder"].as_str(), Some("DOCKERFILE"));
}
