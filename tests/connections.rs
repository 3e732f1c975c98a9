//! Connection hygiene (issue 8): idle, slow and keep-alive connections are closed after the
//! header-read timeout; at the connection cap, idle sockets make room so `/healthz` keeps
//! answering. Real server, raw TCP sockets on loopback.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use voxbridge::config::AudioMode;

/// Reads until the server closes the socket; the bytes it sent first.
async fn until_closed(tcp: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.expect("the server closed the connection in time");
    got
}

async fn healthz(addr: std::net::SocketAddr) -> u16 {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    client.get(format!("http://{addr}/healthz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_keep_alive_connections_are_closed_after_the_header_timeout() {
    let mut c = config(AudioMode::G711);
    c.header_read_timeout_ms = 300;
    let h = start(c, mock_options()).await;
    // Silent from the start.
    let mut silent = TcpStream::connect(h.addr).await.unwrap();
    // A request head that never ends (slowloris).
    let mut slow = TcpStream::connect(h.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One answered request, then idle on keep-alive.
    let mut kept = TcpStream::connect(h.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    for tcp in [&mut silent, &mut slow] {
        assert!(until_closed(tcp, Duration::from_secs(5)).await.is_empty(), "closed without an answer");
    }
    let answered = String::from_utf8(until_closed(&mut kept, Duration::from_secs(5)).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert_eq!(healthz(h.addr).await, 200, "the server itself is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_sockets_make_room_and_healthz_keeps_answering() {
    let mut c = config(AudioMode::G711);
    c.max_connections = 20;
    c.header_read_timeout_ms = 60_000; // the cap, not the timeout, is under test
    let h = start(c, mock_options()).await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(h.addr).await.unwrap());
    }
    for _ in 0..5 {
        assert_eq!(healthz(h.addr).await, 200, "a new request gets in past 100 idle sockets");
    }
    // The oldest idle sockets were the ones shed: they read EOF.
    assert!(until_closed(&mut idle[0], Duration::from_secs(5)).await.is_empty());
    let metrics = reqwest::get(format!("http://{}/metrics", h.addr)).await.unwrap().text().await.unwrap();
    let open: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("voxbridge_http_connections "))
        .expect("the gauge is exported")
        .trim()
        .parse()
        .unwrap();
    assert!(open <= 20.0, "{open} connections open, cap 20");
    // A media stream is not bound by the HTTP cap once upgraded: a call still runs.
    let report = replay(&h, "dtmf", 8.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_shed_at_the_cap_let_go_of_their_sockets_at_once() {
    let mut c = config(AudioMode::G711);
    c.max_connections = 10;
    c.header_read_timeout_ms = 60_000; // shedding, not the timeout, must free them
    let h = start(c, mock_options()).await;
    let mut slow = Vec::new();
    for _ in 0..30 {
        let mut tcp = TcpStream::connect(h.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(tcp);
    }
    assert_eq!(healthz(h.addr).await, 200);
    // At most 10 stay open: the 20 or more shed slow clients have their sockets closed well
    // before the 60 s timeout. (Which ones are shed depends on when the server read each partial
    // head, so they are counted rather than named.)
    let closed = futures_util::future::join_all(slow.iter_mut().map(|tcp| async move {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }))
    .await;
    let n = closed.iter().filter(|c| **c).count();
    assert!(n >= 20, "{n} of 30 slow clients let go within 5 s");
}

/// Issue 21: with an open-file limit below what the caps can use, the caps are lowered to fit
/// it, so a flood of idle connections meets the shedding at the connection cap instead of
/// `accept` failing with EMFILE (before: `/healthz` hung for as long as the flood lasted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_open_file_limit_a_flood_still_leaves_room_for_healthz() {
    use std::process::{Command, Stdio};
    voxbridge::install_tls();
    let port = process::free_port();
    let dir = std::env::temp_dir().join(format!("vb-nofile-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_voxbridge");
    // The hard limit too: the server cannot raise it back.
    let child = Command::new("sh")
        .args(["-c", &format!("ulimit -Sn 300 && ulimit -Hn 300 && exec {bin} serve")])
        .env("VOXBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("VOXBRIDGE_DATABASE_URL", format!("sqlite://{}", dir.join("voxbridge.db").display()))
        .env("VOXBRIDGE_HEADER_READ_TIMEOUT_MS", "60000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _server = process::Server(child);
    process::wait_ready(port).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // More idle sockets than the descriptors the server has.
    let mut flood = Vec::new();
    for _ in 0..400 {
        match TcpStream::connect(addr).await {
            Ok(tcp) => flood.push(tcp),
            Err(e) => panic!("connect: {e}"),
        }
    }
    assert_eq!(healthz(addr).await, 200, "healthz answers during the flood");
    drop(flood);
}
