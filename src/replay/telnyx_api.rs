//! A stand-in for Telnyx's Call Control API on loopback, for `replay --provider telnyx` and
//! the tests: records every command (dial, answer, hang-up…) with its JSON body and answers as
//! Telnyx does (`data.call_control_id`, `data.result`, `data.is_alive`, `errors[]`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// One command voxbridge sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// `dial`, or the action name (`answer`, `hangup`, …).
    pub action: String,
    /// The call it was for (for `dial`, the id this fake assigned).
    pub call_control_id: String,
    pub body: Value,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Inner {
    commands: Mutex<Vec<Command>>,
    /// Dials already handed to a replayed call.
    taken: Mutex<Vec<String>>,
    /// Error answers to give to the next requests, in order (`(status, errors[0].code)`).
    failures: Mutex<Vec<(u16, String)>>,
    changed: Notify,
}

/// The running fake; clones share it.
#[derive(Clone)]
pub struct FakeTelnyx {
    /// `http://127.0.0.1:port` — the server's `TELNYX_API_BASE`.
    pub url: String,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FakeTelnyx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTelnyx").field("url", &self.url).finish_non_exhaustive()
    }
}

impl FakeTelnyx {
    /// Serves on `addr` (e.g. `127.0.0.1:0`) until the process ends.
    pub async fn spawn(addr: &str) -> std::io::Result<FakeTelnyx> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .route("/v2/calls", post(dial))
            .route("/v2/calls/{id}", get(call_status))
            .route("/v2/calls/{id}/actions/{action}", post(action))
            .route("/v2/connections/{id}/active_calls", get(active_calls))
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FakeTelnyx { url, inner })
    }

    pub fn commands(&self) -> Vec<Command> {
        self.inner.commands.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes the next request fail with `status` and error `code`.
    pub fn fail_next(&self, status: u16, code: &str) {
        self.inner.failures.lock().unwrap_or_else(|e| e.into_inner()).push((status, code.into()));
    }

    /// Waits up to `within` for a command matching `pred` (already recorded ones count).
    pub async fn wait_for(&self, within: Duration, pred: impl Fn(&Command) -> bool) -> Option<Command> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.inner.changed.notified();
            if let Some(c) = self.commands().into_iter().find(|c| pred(c)) {
                return Some(c);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

impl FakeTelnyx {
    /// The oldest dial not yet taken, waiting up to `within` for one.
    pub async fn take_dial(&self, within: Duration) -> Option<Command> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.inner.changed.notified();
            {
                let mut taken = self.inner.taken.lock().unwrap_or_else(|e| e.into_inner());
                let dial =
                    self.commands().into_iter().find(|c| c.action == "dial" && !taken.contains(&c.call_control_id));
                if let Some(dial) = dial {
                    taken.push(dial.call_control_id.clone());
                    return Some(dial);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

fn record(
    inner: &Inner,
    action: &str,
    id: &str,
    body: Value,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, Json<Value>)> {
    let failure = {
        let mut f = inner.failures.lock().unwrap_or_else(|e| e.into_inner());
        (!f.is_empty()).then(|| f.remove(0))
    };
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    inner.commands.lock().unwrap_or_else(|e| e.into_inner()).push(Command {
        action: action.into(),
        call_control_id: id.into(),
        body,
        authorization,
    });
    inner.changed.notify_waiters();
    match failure {
        Some((status, code)) => Err((
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(json!({"errors": [{"code": code, "title": "fake failure", "detail": format!("fake error {code}")}]})),
        )),
        None => Ok(()),
    }
}

async fn dial(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let n = inner.commands.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|c| c.action == "dial").count() + 1;
    let id = format!("v3:fake-dial-{n}");
    match record(&inner, "dial", &id, body, &headers) {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"data": {"call_control_id": id, "call_leg_id": format!("leg-{n}"),
                "call_session_id": format!("session-{n}"), "is_alive": false, "record_type": "call"}})),
        ),
        Err(e) => e,
    }
}

async fn action(
    State(inner): State<Arc<Inner>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> (StatusCode, Json<Value>) {
    let body = body.map_or(Value::Null, |Json(b)| b);
    match record(&inner, &action, &id, body, &headers) {
        Ok(()) => (StatusCode::OK, Json(json!({"data": {"result": "ok"}}))),
        Err(e) => e,
    }
}

async fn call_status(State(inner): State<Arc<Inner>>, Path(id): Path<String>, headers: HeaderMap) -> Json<Value> {
    // Recorded as a `status` command (a read; it never fails).
    let _ = record(&inner, "status", &id, Value::Null, &headers);
    let hung_up = inner
        .commands
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|c| c.action == "hangup" && c.call_control_id == id);
    Json(json!({"data": {"call_control_id": id, "is_alive": !hung_up, "record_type": "call"}}))
}

/// `GET /v2/connections/{id}/active_calls`: every dialled call not hung up, one per page (so
/// the client's paging is exercised), with its `client_state`.
async fn active_calls(
    State(inner): State<Arc<Inner>>,
    Path(_connection): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Json<Value> {
    let commands = inner.commands.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let live: Vec<&Command> = commands
        .iter()
        .filter(|c| c.action == "dial")
        .filter(|d| !commands.iter().any(|c| c.action == "hangup" && c.call_control_id == d.call_control_id))
        .collect();
    let after: usize = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "page[after]")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = live
        .iter()
        .skip(after)
        .take(1)
        .map(|d| {
            json!({"call_control_id": d.call_control_id, "client_state": d.body["client_state"],
            "call_leg_id": "leg", "call_session_id": "session", "call_duration": 1, "record_type": "call"})
        })
        .collect();
    let more = after + 1 < live.len();
    let next = after + 1;
    Json(json!({"data": page, "meta": {"cursors": {"after": next.to_string(), "before": after.to_string()},
        "total_items": live.len(), "next": if more { Value::from(format!("/v2/connections/x/active_calls?page[after]={next}")) } else { Value::Null }}}))
}
