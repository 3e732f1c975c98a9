//! The model side of a call task: connecting while the caller's audio is held, the one
//! `select!` loop of a model session, and one new session when the socket drops mid-call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::{info, warn};

use super::{Call, MODEL_QUEUE, drain_end, sleep_until};
use crate::call::bridge::CallCommand;
use crate::call::core::{CallCore, EndReason, Output};
use crate::call::end_reason::Violation;
use crate::call::writer::{MODEL_FRAMES, Outgoing, close_writer, write_frames};
use crate::model::CLOSE_WAIT;
use crate::model::realtime::connection::{self, ConnectError, ModelSocket};
use crate::providers::CarrierSession;
use crate::telemetry;

/// New sessions tried when the model socket drops mid-call (reliability.md row 4: one, fast).
const MODEL_RECONNECTS: u32 = 1;

/// A model writer: its queue and its task.
pub(super) type ModelWriter = (mpsc::Sender<Outgoing>, tokio::task::JoinHandle<()>);

/// How a model session began.
pub(super) enum Opening {
    Fresh,
    /// A new session replacing a lost one.
    Resumed,
    /// A new session replacing an old one at a quiet moment.
    Rotated,
    /// Opened while the phone rang: what the model sent meanwhile.
    Prewarmed(Vec<String>),
}

/// How a model session ended.
enum Session {
    Ended(EndReason),
    Lost,
    /// Closed on purpose to be replaced (reliability row 6).
    Rotated,
}

/// An output the driver's loop handles itself.
enum ModelOrEnd {
    Model(String),
    End(EndReason),
    /// The session is to be treated as lost (the response watchdog).
    Lost,
    /// The session is to be replaced (it is old; the line is quiet).
    Rotate,
}

impl Call {
    /// Connects to the model while the caller's audio keeps arriving (held in the core's ring)
    /// and what the core has for the carrier goes out. With the server's
    /// `VOXBRIDGE_MODEL_FAILOVER`, an API that cannot be reached (at the call's start, or again
    /// after its session was lost mid-call) gives way to the other one, noted in the call's
    /// history. Why the call ended, if it ended
    /// meanwhile or no model can be reached.
    pub(super) async fn connect_model<S: CarrierSession>(
        &mut self,
        core: &mut CallCore<S>,
        carrier: &mut SplitStream<WebSocket>,
        violation: &mut Option<Violation>,
    ) -> Result<ModelSocket, EndReason> {
        let started = Instant::now();
        // The breaker is open: the caller hears the apology now, not after a timeout.
        if let super::super::model_health::Gate::Skip(why) = self.bridge.model_health.gate(crate::store::now_ms()) {
            warn!(why, "model circuit open; the caller gets the apology at once");
            telemetry::call_refused("model_circuit_open");
            core.end(EndReason::ModelConnectFailed(why));
            return Err(drain_end(core));
        }
        let mut result = self.dial(core, carrier, violation).await?;
        if let Err(e) = &result
            && self.bridge.model_failover
        {
            let from = core.model().api();
            let other = self.bridge.failover_config(core.model().config());
            let note = format!(
                "model failover: {} unreachable ({e}); served by {} ({})",
                from.as_str(),
                other.api.as_str(),
                other.model
            );
            warn!(error = %e, to = other.api.as_str(), "model unreachable; failing over to the other API");
            telemetry::model_failover(from.as_str(), other.api.as_str());
            core.switch_model(crate::model::open(other));
            let (bridge, call_id) = (Arc::clone(&self.bridge), self.call_id.clone());
            tokio::spawn(async move { bridge.note_history(&call_id, &note).await });
            result = self.dial(core, carrier, violation).await?;
        }
        match result {
            Ok(ws) => {
                telemetry::model_connect(started.elapsed().as_secs_f64(), true);
                self.bridge.model_health.note(Ok(()), crate::store::now_ms());
                Ok(ws)
            }
            Err(e) => {
                telemetry::model_connect(started.elapsed().as_secs_f64(), false);
                self.bridge.model_health.note(Err(&e.to_string()), crate::store::now_ms());
                warn!(error = %e, "model connect failed; closing the stream so the caller hears the apology");
                core.end(EndReason::ModelConnectFailed(e.to_string()));
                Err(drain_end(core))
            }
        }
    }

    /// Dials the API the core's protocol speaks, serving the carrier meanwhile.
    async fn dial<S: CarrierSession>(
        &mut self,
        core: &mut CallCore<S>,
        carrier: &mut SplitStream<WebSocket>,
        violation: &mut Option<Violation>,
    ) -> Result<Result<ModelSocket, ConnectError>, EndReason> {
        // The call's own model (`model` in its request), else the API's default.
        let endpoint = self.bridge.endpoint_of(core.model().config());
        // Boxed: the connect future (TLS and WebSocket handshakes) is large, and inline it would
        // size every call's task for the whole call; boxed, it lives only while connecting.
        let mut connect = Box::pin(connection::connect(&endpoint));
        loop {
            self.flush_to_carrier(core)?;
            tokio::select! {
                res = &mut connect => return Ok(res),
                msg = carrier.next() => self.on_carrier(msg, core, violation),
            }
        }
    }

    /// Sends what the core has for the carrier while no model is connected (what it has for the
    /// model waits for the session); why the call ended, once it has.
    fn flush_to_carrier<S: CarrierSession>(&mut self, core: &mut CallCore<S>) -> Result<(), EndReason> {
        while let Some(out) = core.poll_output_without_model() {
            if let Some(ModelOrEnd::End(reason)) = self.act(core, out) {
                return Err(reason);
            }
        }
        Ok(())
    }

    /// Acts on an output for the carrier or the call; hands back a frame for the model or the
    /// end, which the caller handles.
    fn act<S: CarrierSession>(&mut self, core: &mut CallCore<S>, out: Output) -> Option<ModelOrEnd> {
        match out {
            Output::Carrier(text, origin) => {
                if self.carrier_tx.try_send(Outgoing::Frame(text, origin)).is_err() {
                    core.end(EndReason::CarrierTooSlow);
                }
                None
            }
            Output::HangUp => {
                self.hang_up();
                None
            }
            Output::Outcome(outcome) => {
                self.save_outcome(outcome);
                None
            }
            Output::Transfer(to) => {
                self.transfer(to);
                None
            }
            Output::SendDtmf(digits) => {
                self.send_dtmf(digits);
                None
            }
            Output::UserTool { call_id, name, arguments, url, timeout } => {
                self.call_user_tool(call_id, name, arguments, url, timeout);
                None
            }
            Output::Recording { at, pcm } => {
                if let Some(spool) = self.spool.as_mut() {
                    spool.send(at, pcm);
                }
                None
            }
            Output::RotateSession => Some(ModelOrEnd::Rotate),
            Output::ModelStalled => {
                warn!("the model answered nothing to the caller's turn in time; opening a new session");
                Some(ModelOrEnd::Lost)
            }
            Output::Model(text) | Output::ModelStart(text) => Some(ModelOrEnd::Model(text)),
            Output::End(reason) => Some(ModelOrEnd::End(reason)),
        }
    }

    /// Bridges the call to the model; when the model socket drops, one new session is tried
    /// ([`MODEL_RECONNECTS`]) before the call ends.
    pub(super) async fn bridge_audio<S: CarrierSession>(
        &mut self,
        core: &mut CallCore<S>,
        carrier: &mut SplitStream<WebSocket>,
        mut ws: ModelSocket,
        violation: &mut Option<Violation>,
        mut opening: Opening,
    ) -> (EndReason, Option<ModelWriter>) {
        let mut reconnects = MODEL_RECONNECTS;
        loop {
            let (tx, writer) = match self.model_session(core, carrier, ws, violation, opening).await {
                (Session::Ended(reason), writer) => return (reason, Some(writer)),
                (Session::Lost, writer) => writer,
                (Session::Rotated, (tx, writer)) => {
                    // Closed politely (its last bill comes with the close); not a loss: the
                    // reconnect budget is untouched.
                    let _ = tx.try_send(Outgoing::Close(1000, "session rotated"));
                    drop(tx);
                    close_writer(writer).await;
                    if !core.on_model_rotated() {
                        return (drain_end(core), None);
                    }
                    info!("model session replaced at a quiet moment (its age)");
                    telemetry::model_rotation();
                    match self.connect_model(core, carrier, violation).await {
                        Ok(new) => (ws, opening) = (new, Opening::Rotated),
                        Err(reason) => return (reason, None),
                    }
                    continue;
                }
            };
            // The old socket is gone: its writer has nothing left to deliver.
            drop(tx);
            writer.abort();
            if reconnects == 0 || !core.on_model_lost(Instant::now()) {
                core.end(EndReason::ModelLost);
                return (drain_end(core), None);
            }
            reconnects -= 1;
            telemetry::model_reconnect();
            warn!("model socket lost mid-call; opening a new session");
            // Its API down for good, the other one carries the conversation on.
            match self.connect_model(core, carrier, violation).await {
                Ok(new) => (ws, opening) = (new, Opening::Resumed),
                Err(reason) => return (reason, None),
            }
        }
    }

    /// One model session: runs until the call ends or the model socket is lost.
    async fn model_session<S: CarrierSession>(
        &mut self,
        core: &mut CallCore<S>,
        carrier: &mut SplitStream<WebSocket>,
        ws: ModelSocket,
        violation: &mut Option<Violation>,
        opening: Opening,
    ) -> (Session, ModelWriter) {
        let (model_sink, mut model_stream) = ws.split();
        let (model_tx, model_rx) = mpsc::channel(MODEL_QUEUE);
        let writer = tokio::spawn(write_frames(
            model_sink,
            model_rx,
            MODEL_FRAMES,
            Some(self.metrics.appends_to_model.clone()),
            self.metrics.latency_to_model.clone(),
        ));
        match opening {
            Opening::Fresh => core.on_model_connected(),
            Opening::Resumed => core.on_model_reconnected(),
            Opening::Rotated => core.on_model_rotated_in(),
            Opening::Prewarmed(frames) => {
                core.on_model_prewarmed();
                let now = Instant::now();
                for frame in &frames {
                    core.on_model_text(frame, now);
                }
            }
        }
        let mut shutdown = self.bridge.shutdown.subscribe();
        // The drain deadline may have passed while this session was connecting.
        if *shutdown.borrow_and_update() {
            core.end(EndReason::Shutdown);
        }
        // The idle watchdogs, one timer for both: the model may say nothing for long (a quiet
        // caller), so it is pinged, and a socket that answers nothing, not even the pongs, is
        // lost; a carrier stream sends audio every 20 ms, so one that sends nothing is broken.
        let idle = self.bridge.endpoint.idle_timeout.max(Duration::from_millis(30));
        let carrier_idle = self.bridge.carrier_idle_timeout.max(Duration::from_millis(30));
        let mut watchdog = tokio::time::interval(idle.min(carrier_idle) / 3);
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let session = 'call: loop {
            while let Some(out) = core.poll_output() {
                match self.act(core, out) {
                    Some(ModelOrEnd::Model(text)) => {
                        let sent = model_tx.send(Outgoing::Frame(text, None)).await;
                        if sent.is_err() {
                            break 'call Session::Lost;
                        }
                    }
                    Some(ModelOrEnd::End(reason)) => break 'call Session::Ended(reason),
                    Some(ModelOrEnd::Lost) => break 'call Session::Lost,
                    Some(ModelOrEnd::Rotate) => break 'call Session::Rotated,
                    None => {}
                }
            }
            let deadline = core.next_deadline(Instant::now());
            tokio::select! {
                biased;
                _ = shutdown.changed() => core.end(EndReason::Shutdown),
                Some(cmd) = self.mailbox.recv() => match cmd {
                    CallCommand::LeaveVoicemail(message) => core.leave_voicemail(&message, Instant::now()),
                    CallCommand::AwaitBeep(message) => core.await_beep(&message, Instant::now()),
                    CallCommand::HangUp => core.hang_up(EndReason::Canceled),
                    CallCommand::ToolOutput { call_id, output } => core.on_tool_output(&call_id, &output, Instant::now()),
                },
                msg = carrier.next() => self.on_carrier(msg, core, violation),
                msg = model_stream.next() => {
                    heard = Instant::now();
                    match msg {
                        Some(Ok(WsMessage::Text(text))) => {
                            core.on_model_text(&text, heard);
                            self.metrics.processing_from_model.record(heard.elapsed().as_secs_f64());
                        }
                        Some(Ok(WsMessage::Close(frame))) => {
                            warn!(close = ?frame, "model closed the session");
                            break 'call Session::Lost;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            warn!(error = %e, "model socket failed");
                            break 'call Session::Lost;
                        }
                        None => break 'call Session::Lost,
                    }
                }
                permit = model_tx.reserve(), if core.has_model_audio() => match permit {
                    Ok(permit) => {
                        if let Some((json, since)) = core.pull_model_audio(Instant::now()) {
                            permit.send(Outgoing::Frame(json, Some(since)));
                        }
                    }
                    Err(_) => break 'call Session::Lost,
                },
                _ = sleep_until(deadline), if deadline.is_some() => core.on_tick(Instant::now()),
                _ = watchdog.tick() => {
                    if heard.elapsed() >= idle {
                        warn!(silent_ms = heard.elapsed().as_millis() as u64, "model socket silent, even to pings");
                        break 'call Session::Lost;
                    }
                    if self.carrier_heard.elapsed() >= carrier_idle {
                        warn!(silent_ms = self.carrier_heard.elapsed().as_millis() as u64, "the carrier stopped sending");
                        core.end(EndReason::CarrierIdle);
                    }
                    let _ = model_tx.try_send(Outgoing::Ping);
                }
            }
        };
        if matches!(session, Session::Ended(_)) {
            close_session(core, &model_tx, &mut model_stream).await;
        }
        (session, (model_tx, writer))
    }
}

/// Ends the model session the protocol's way, where it has one (GPT-Live bills the last
/// seconds in `session.closed`), waiting at most [`CLOSE_WAIT`] for the answer.
async fn close_session<S: CarrierSession>(
    core: &mut CallCore<S>,
    model_tx: &mpsc::Sender<Outgoing>,
    model_stream: &mut futures_util::stream::SplitStream<ModelSocket>,
) {
    let frames = core.close_model();
    if frames.is_empty() {
        return;
    }
    for frame in frames {
        if model_tx.send(Outgoing::Frame(frame, None)).await.is_err() {
            return;
        }
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while !core.model().is_closed() {
            match model_stream.next().await {
                Some(Ok(WsMessage::Text(text))) => core.on_model_closing(&text),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    })
    .await;
}
