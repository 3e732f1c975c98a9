//! Ring-time pre-warm: an outbound call's model session is opened and configured, and its
//! greeting requested, while the phone rings (from the moment the carrier accepted the dial), so
//! the model's own delay is spent before the callee answers. What the model sends meanwhile is
//! kept (bounded) and replayed into the call's core when its stream starts on this instance (on
//! Fly the stream is steered here: `control::steer`). A session nobody takes — no answer, busy,
//! or a stream that landed on another instance anyway (which opens its own) — is closed as soon
//! as the attempt ends, or at its deadline: it costs money.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tracing::{info, warn};

use crate::model::realtime::connection::{self, Endpoint, ModelSocket};
use crate::model::{CLOSE_WAIT, ModelCommand, ModelConfig, ModelEvent, Usage};

/// What the model may send before the stream starts that is kept (a greeting is a few hundred
/// KiB at most); beyond it the session is dropped and the call connects afresh.
const MAX_BUFFERED: usize = 4 << 20;

/// A session opened while the phone rang, handed to the call's driver.
pub struct Prewarmed {
    pub socket: ModelSocket,
    /// The model's frames so far, in order (its answer to the start, the greeting).
    pub frames: Vec<String>,
    /// The settings it was opened with (the driver checks they are the call's).
    pub config: ModelConfig,
}

type Take = oneshot::Sender<Prewarmed>;

/// Told what an unused session was billed (the greeting it made, the seconds it was open), so the
/// call's usage stays true.
pub type OnUnused = Box<dyn FnOnce(Usage) + Send>;

/// Where a reserved session is asked for ([`Prewarms::reserve`]).
pub struct Takes(mpsc::Receiver<Take>);

/// This instance's pre-warmed sessions, by call id.
#[derive(Default)]
pub struct Prewarms {
    sessions: Arc<Mutex<HashMap<String, mpsc::Sender<Take>>>>,
}

impl Prewarms {
    /// Holds a place for `call_id`'s session (replacing one it may have had) before its settings
    /// are known: a stream that starts meanwhile waits for the session instead of opening a
    /// second one. [`start`](Self::start) it with what this returns; dropped, the place is freed.
    pub fn reserve(&self, call_id: &str) -> Takes {
        let (tx, rx) = mpsc::channel(1);
        self.lock().insert(call_id.to_string(), tx);
        Takes(rx)
    }

    /// Opens the session reserved for `call_id`, kept until `deadline`. `unused` hears what the
    /// session was billed if nobody takes it.
    pub fn start(
        &self,
        call_id: &str,
        Takes(rx): Takes,
        config: ModelConfig,
        endpoint: Endpoint,
        deadline: Duration,
        unused: OnUnused,
    ) {
        let (call_id, sessions) = (call_id.to_string(), Arc::clone(&self.sessions));
        tokio::spawn(async move {
            if let Some(usage) = hold(&call_id, config, endpoint, rx, Instant::now() + deadline).await
                && !usage.is_zero()
            {
                unused(usage);
            }
            // Gone: its entry goes too (unless a newer session for the call replaced it).
            let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
            if sessions.get(&call_id).is_some_and(mpsc::Sender::is_closed) {
                sessions.remove(&call_id);
            }
        });
    }

    /// The call's pre-warmed session, if it has one that is (or gets) connected.
    pub async fn take(&self, call_id: &str) -> Option<Prewarmed> {
        let tx = self.lock().remove(call_id)?;
        let (give, taken) = oneshot::channel();
        tx.send(give).await.ok()?;
        taken.await.ok()
    }

    /// The attempt ended: its session, if any, is closed now; `false` when it had none here.
    pub fn cancel(&self, call_id: &str) -> bool {
        // Dropping the sender ends the task, which closes the socket.
        self.lock().remove(call_id).is_some()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Take>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Connects, starts the session, asks for the greeting (once the session is ready), and keeps
/// what the model sends until the driver takes it, the attempt ends or the deadline passes. What
/// an unused session was billed, when it is closed unused.
async fn hold(
    call_id: &str,
    config: ModelConfig,
    endpoint: Endpoint,
    mut takes: mpsc::Receiver<Take>,
    deadline: Instant,
) -> Option<Usage> {
    let started = Instant::now();
    let mut pending: Option<Take> = None;
    let mut connect = Box::pin(connection::connect(&endpoint));
    let connected = loop {
        tokio::select! {
            res = &mut connect => break res,
            req = takes.recv(), if pending.is_none() => match req {
                Some(take) => pending = Some(take),
                None => return None,
            },
            _ = tokio::time::sleep_until(deadline.into()) => return None,
        }
    };
    let mut socket = match connected {
        Ok(socket) => socket,
        Err(e) => {
            // The call's driver connects (or fails over) itself when the stream starts.
            warn!(call_id, error = %e, "pre-warm: the model could not be reached");
            return None;
        }
    };
    crate::telemetry::model_prewarm();
    let mut protocol = crate::model::open(config.clone());
    let mut first = Vec::new();
    protocol.encode(ModelCommand::Start { history: &[] }, &mut |f| first.push(f));
    let mut greeting = Vec::new();
    if let Some(g) = &config.greeting {
        protocol.encode(ModelCommand::Greet(g), &mut |f| greeting.push(f));
    }
    if protocol.ready() {
        first.append(&mut greeting);
    }
    for frame in first {
        if socket.send(Message::Text(frame.into())).await.is_err() {
            return None;
        }
    }
    let (mut frames, mut bytes, mut usage) = (Vec::new(), 0usize, Usage::default());
    loop {
        if let Some(take) = pending.take() {
            info!(
                call_id,
                ms = started.elapsed().as_millis() as u64,
                frames = frames.len(),
                "pre-warmed session taken"
            );
            let _ = take.send(Prewarmed { socket, frames, config });
            return None;
        }
        tokio::select! {
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    // The driver replays the frames through its own protocol; this one only
                    // knows when the session is ready, and what it cost should nobody take it.
                    billed(protocol.receive(&text), &mut usage);
                    if protocol.ready() && !greeting.is_empty() {
                        for frame in std::mem::take(&mut greeting) {
                            if socket.send(Message::Text(frame.into())).await.is_err() {
                                return Some(usage);
                            }
                        }
                    }
                    bytes += text.len();
                    if bytes > MAX_BUFFERED {
                        warn!(call_id, "pre-warm: too much buffered; dropping the session");
                        break;
                    }
                    frames.push(text.to_string());
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Some(usage),
            },
            req = takes.recv() => match req {
                Some(take) => pending = Some(take),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.into()) => break,
        }
    }
    // Nobody took it: close it now (the model bills while it is open).
    let mut close = Vec::new();
    protocol.encode(ModelCommand::Close, &mut |f| close.push(f));
    let closing = !close.is_empty();
    for frame in close {
        let _ = socket.send(Message::Text(frame.into())).await;
    }
    if closing {
        // GPT-Live bills the last seconds in `session.closed`.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while !protocol.is_closed() {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => billed(protocol.receive(&text), &mut usage),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        })
        .await;
    }
    let _ = socket.close(None).await;
    info!(call_id, "pre-warmed session closed unused");
    Some(usage)
}

fn billed(event: ModelEvent<'_>, usage: &mut Usage) {
    if let Some(u) = event.billed() {
        usage.add(u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelApi, ModelAudio};

    /// A stream that starts after the dial was answered but before the call's settings were read
    /// (the session not even started) waits for the reserved session rather than finding none.
    #[tokio::test]
    async fn a_take_before_the_session_starts_waits_for_it() {
        let mock = crate::mock_realtime::spawn_local(crate::mock_realtime::MockOptions::default()).await.unwrap();
        let prewarms = Prewarms::default();
        let takes = prewarms.reserve("c_1");
        let config = ModelConfig::defaults(ModelApi::Realtime, "gpt-realtime", ModelAudio::Pcmu);
        let endpoint = Endpoint {
            api: ModelApi::Realtime,
            url: mock.url(),
            model: "gpt-realtime".into(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            retries: 0,
            idle_timeout: Duration::from_secs(30),
        };
        let (taken, ()) = tokio::join!(prewarms.take("c_1"), async {
            // Started only once the take is waiting.
            tokio::task::yield_now().await;
            prewarms.start("c_1", takes, config.clone(), endpoint, Duration::from_secs(30), Box::new(|_| {}));
        });
        let taken = taken.expect("the reserved session was handed over");
        assert_eq!(taken.config, config);
        assert_eq!(mock.log.count(), 1, "one session, not two");
        assert!(prewarms.take("c_1").await.is_none(), "taken once");
        // A place reserved and then dropped unstarted is no session.
        drop(prewarms.reserve("c_2"));
        assert!(prewarms.take("c_2").await.is_none());
    }
}
