//! Server processes (the real binary) for tests that kill, restart or run several of them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{API_KEY, PUBLIC_URL};

/// A server process, killed when the test ends (passing or not).
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn spawn_server(port: u16, db: &str, twilio: &str, model: &str) -> Child {
    spawn_server_with(port, db, twilio, model, &[])
}

/// [`spawn_server`] with more environment.
pub fn spawn_server_with(port: u16, db: &str, twilio: &str, model: &str, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .arg("serve")
        .env("VOXBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("VOXBRIDGE_PUBLIC_URL", PUBLIC_URL)
        .env("VOXBRIDGE_API_KEYS", API_KEY)
        .env("VOXBRIDGE_DATABASE_URL", db)
        .env("VOXBRIDGE_REALTIME_URL", model)
        .env("OPENAI_API_KEY", "sk-test")
        .env("TWILIO_ACCOUNT_SID", "ACtest")
        .env("TWILIO_AUTH_TOKEN", "tok")
        .env("TWILIO_FROM_NUMBER", "+15557654321")
        .env("TWILIO_API_BASE", twilio)
        .env("VOXBRIDGE_WORKER_POLL_MS", "20")
        .env("VOXBRIDGE_LEASE_MS", "400")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server binary starts")
}

pub async fn wait_ready(port: u16) {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server on {port} never became ready");
}
