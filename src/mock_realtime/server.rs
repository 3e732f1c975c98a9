//! The mock model's WebSocket server (`GET /v1/realtime`): one task per connection driving a
//! [`MockSession`]. Refuses the retired beta shape like the real service (close 4000).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

use super::Conversation;
use super::conversation::{MockOptions, MockSession};
use super::live::LiveMock;
use super::log::MockLog;

#[derive(Clone)]
struct MockState {
    opts: MockOptions,
    log: MockLog,
}

/// A running mock: its address (use `ws://{addr}/v1/realtime`) and what it saw.
#[derive(Debug, Clone)]
pub struct MockHandle {
    pub addr: SocketAddr,
    pub log: MockLog,
}

impl MockHandle {
    pub fn url(&self) -> String {
        format!("ws://{}/v1/realtime", self.addr)
    }

    /// Its GPT-Live endpoint.
    pub fn live_url(&self) -> String {
        format!("ws://{}/v1/live/sessions", self.addr)
    }
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(listener: TcpListener, opts: MockOptions, log: MockLog) -> std::io::Result<()> {
    let app = Router::new()
        .route("/v1/realtime", get(upgrade))
        .route("/v1/live/sessions", get(upgrade_live))
        .with_state(MockState { opts, log });
    axum::serve(listener.tap_io(|tcp| crate::connections::no_delay(tcp)), app).await
}

/// Starts the mock on a free loopback port in this process.
pub async fn spawn_local(opts: MockOptions) -> std::io::Result<MockHandle> {
    spawn_local_with(opts, MockLog::default()).await
}

/// [`spawn_local`] keeping what it sees in `log` ([`MockLog::bounded`] for a long-running mock).
pub async fn spawn_local_with(opts: MockOptions, log: MockLog) -> std::io::Result<MockHandle> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, opts, log.clone()));
    Ok(MockHandle { addr, log })
}

async fn upgrade(State(state): State<MockState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if state.opts.realtime_down_after.is_some_and(|n| state.log.count() >= n) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let beta = headers.contains_key("openai-beta");
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    // Small read buffer: tungstenite zero-fills it on every read; appends are ~1 KiB.
    ws.read_buffer_size(8 * 1024).on_upgrade(move |socket| connection(socket, state, beta, auth))
}

async fn upgrade_live(State(state): State<MockState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    ws.read_buffer_size(8 * 1024).on_upgrade(move |socket| live_connection(socket, state, auth))
}

/// One GPT-Live connection: paced output whether or not anything comes in.
async fn live_connection(socket: WebSocket, state: MockState, auth: Option<String>) {
    let conn_log = state.log.open();
    conn_log.lock().unwrap_or_else(|e| e.into_inner()).authorization = auth;
    let session = LiveMock::new(state.opts, Arc::clone(&conn_log));
    converse(socket, session, Vec::new(), None).await;
    conn_log.lock().unwrap_or_else(|e| e.into_inner()).closed_at = Some(Instant::now());
}

async fn connection(socket: WebSocket, state: MockState, beta: bool, auth: Option<String>) {
    let conn_log = state.log.open();
    conn_log.lock().unwrap_or_else(|e| e.into_inner()).authorization = auth;
    if beta {
        let (mut tx, _) = socket.split();
        let err = r#"{"type":"error","error":{"type":"invalid_request_error","code":"beta_api_shape_disabled","message":"The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."}}"#;
        let _ = tx.send(Message::Text(err.into())).await;
        let _ = tx.send(Message::Close(Some(CloseFrame { code: 4000, reason: "beta".into() }))).await;
        return;
    }
    let first = state.log.count() == 1;
    let drop_at = state.opts.drop_first_after.filter(|_| first).map(|d| tokio::time::Instant::now() + d);
    let mut session = MockSession::new(state.opts, Arc::clone(&conn_log));
    let hello = vec![session.hello()];
    converse(socket, session, hello, drop_at).await;
    conn_log.lock().unwrap_or_else(|e| e.into_inner()).closed_at = Some(Instant::now());
}

/// Sends `out`, then what the conversation says to each client frame and at each deadline,
/// until either side closes (or `drop_at`: dropped without a close frame, as an outage looks).
async fn converse(
    socket: WebSocket,
    mut session: impl Conversation,
    mut out: Vec<String>,
    drop_at: Option<tokio::time::Instant>,
) {
    let (mut tx, mut rx) = socket.split();
    'conn: loop {
        for text in out.drain(..) {
            if tx.send(Message::Text(text.into())).await.is_err() {
                break 'conn;
            }
        }
        if session.is_closed() {
            let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "closed".into() }))).await;
            break;
        }
        let deadline = session.next_deadline();
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(text))) => session.on_client_text(&text, Instant::now(), &mut out),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d.into()).await, None => std::future::pending().await } } => {
                session.poll(Instant::now(), &mut out);
            }
            _ = async { match drop_at { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                break; // dropped: no close frame
            }
        }
    }
}
