//! A stand-in for Twilio's REST API on loopback, for `replay --outbound` (the callee of a call
//! the server places): takes `Calls.json` creates and answers as Twilio does (`sid`, `status`),
//! takes updates (hang-up, redirect), answers status reads and the list the server reconciles
//! with. The replay then plays Twilio's part of each dialled call: its status callbacks, the
//! TwiML fetch, the media stream.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A call the server asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Dial {
    /// The sid this fake gave it.
    pub sid: String,
    /// The form as sent (`To`, `From`, `Url`, `StatusCallback`…).
    pub form: Vec<(String, String)>,
}

impl Dial {
    pub fn field(&self, name: &str) -> &str {
        self.form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
}

/// A form as posted: its fields in order.
type FormFields = Vec<(String, String)>;

#[derive(Default)]
struct Inner {
    dials: Mutex<Vec<Dial>>,
    taken: Mutex<usize>,
    /// Sids the server updated (`Status=completed`: hung up; `Twiml`: redirected).
    updates: Mutex<Vec<(String, FormFields)>>,
    changed: Notify,
}

/// The running fake; clones share it.
#[derive(Clone)]
pub struct FakeTwilio {
    /// `http://127.0.0.1:port` — the server's `TWILIO_API_BASE`.
    pub url: String,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio").field("url", &self.url).finish_non_exhaustive()
    }
}

impl FakeTwilio {
    /// Serves on `addr` (e.g. `127.0.0.1:0`) until the process ends.
    pub async fn spawn(addr: &str) -> std::io::Result<FakeTwilio> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .route("/2010-04-01/Accounts/{account}/Calls.json", post(create).get(list))
            .route("/2010-04-01/Accounts/{account}/Calls/{sid}", post(update).get(fetch))
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FakeTwilio { url, inner })
    }

    /// The oldest dial not yet played, waiting up to `within` for one.
    pub async fn take_dial(&self, within: Duration) -> Option<Dial> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.inner.changed.notified();
            {
                let mut taken = self.inner.taken.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(d) = self.inner.dials.lock().unwrap_or_else(|e| e.into_inner()).get(*taken).cloned() {
                    *taken += 1;
                    return Some(d);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// The updates the server sent for `sid`, in order.
    pub fn updates(&self, sid: &str) -> Vec<FormFields> {
        let all = self.inner.updates.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|(s, _)| s == sid).map(|(_, f)| f.clone()).collect()
    }
}

async fn create(
    State(inner): State<Arc<Inner>>,
    Path(_account): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> (StatusCode, Json<Value>) {
    let sid = format!("CA{:032x}", rand::random::<u128>());
    inner.dials.lock().unwrap_or_else(|e| e.into_inner()).push(Dial { sid: sid.clone(), form });
    inner.changed.notify_waiters();
    (StatusCode::CREATED, Json(json!({"sid": sid, "status": "queued"})))
}

/// `Calls/{sid}.json`: the sid with its `.json`.
fn sid_of(path: &str) -> String {
    path.trim_end_matches(".json").to_string()
}

async fn update(
    State(inner): State<Arc<Inner>>,
    Path((_account, sid)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Json<Value> {
    let sid = sid_of(&sid);
    inner.updates.lock().unwrap_or_else(|e| e.into_inner()).push((sid.clone(), form));
    inner.changed.notify_waiters();
    Json(json!({"sid": sid, "status": "completed"}))
}

async fn fetch(State(inner): State<Arc<Inner>>, Path((_account, sid)): Path<(String, String)>) -> Json<Value> {
    let sid = sid_of(&sid);
    let hung_up = inner
        .updates
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(s, f)| *s == sid && f.iter().any(|(k, v)| k == "Status" && v == "completed"));
    Json(json!({"sid": sid, "status": if hung_up { "completed" } else { "in-progress" }}))
}

async fn list() -> Json<Value> {
    Json(json!({"calls": [], "next_page_uri": null}))
}
