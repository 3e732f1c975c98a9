//! The call task: reads the carrier and model sockets, feeds the sans-IO core, and sends what
//! it returns. Each socket gets a writer task behind a bounded queue, so a slow peer never
//! stalls the other direction: a slow model loses the oldest caller audio (the core's ring),
//! a carrier that stops reading ends the call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::sync::mpsc;
use tracing::{Instrument, info, warn};

use super::admission::{Gate, Slot};
pub use super::bridge::{Bridge, CallCommand};
use super::core::{CallCore, CarrierInput, CoreConfig, EndReason, Output};
use super::end_reason::{MAX_PRESTART_BYTES, Violation};
use super::writer::{CARRIER_FRAMES, Outgoing, close_writer, violation_of, write_frames};
use crate::fixture::{FixtureWriter, Header};
use crate::lifecycle::status::CallStatus;
use crate::model::ModelConfig;
use crate::providers::carrier::Provider;
use crate::providers::{CarrierEvent, CarrierSession, Ignored, StreamStart};
use crate::telemetry::{self, CallMetrics};

/// Frames queued for the carrier before it counts as not reading (about 10 s of audio + marks).
const CARRIER_QUEUE: usize = 1024;
/// Events queued for the model writer; caller audio waits in the core's ring beyond this.
const MODEL_QUEUE: usize = 8;

/// How a carrier's media socket was opened.
pub struct Opening<S> {
    pub provider: Provider,
    pub session: S,
    /// The call id a token in the upgrade URL already proved (Telnyx); `None` when the token
    /// comes in the `start` message (Twilio).
    pub authorized_call_id: Option<String>,
    /// A caller back from a transfer nobody answered (why, and the target), when the upgrade URL
    /// says so (Telnyx); Twilio says it in the `start` message's parameters.
    pub resume: Option<(String, String)>,
}

/// Runs one carrier media stream to its end.
pub async fn run<S: CarrierSession + 'static>(bridge: Arc<Bridge>, socket: WebSocket, gate: Gate, opening: Opening<S>) {
    let Opening { provider, mut session, authorized_call_id, resume } = opening;
    let opened = Instant::now();
    let metrics = CallMetrics::new();
    let (sink, mut stream) = socket.split();
    let (carrier_tx, carrier_rx) = mpsc::channel(CARRIER_QUEUE);
    let carrier_writer =
        tokio::spawn(write_frames(sink, carrier_rx, CARRIER_FRAMES, None, metrics.latency_to_caller.clone()));
    let mut early = Early::default();

    // A socket still proving its call may lose its place to a newer one (`Admission`): closed.
    let waited = tokio::select! {
        waited = tokio::time::timeout(bridge.start_timeout, wait_for_start(&mut stream, &mut session, &mut early)) => waited,
        () = gate.shed() => Ok(Err((EndReason::NoCapacity, None))),
    };
    let started = match waited {
        Ok(Ok(start)) => match admit(&bridge, provider, &start, authorized_call_id.clone()).await {
            Ok((call_id, settings)) => match gate.into_live() {
                Ok(slot) => Ok((start, call_id, settings, slot)),
                Err(refusal) => {
                    warn!(provider = provider.as_str(), ?refusal, "no live-call slot for a proven stream");
                    telemetry::call_refused("full");
                    Err((EndReason::NoCapacity, None))
                }
            },
            Err(why) => {
                warn!(provider = provider.as_str(), why, "refusing the stream");
                telemetry::call_refused("stream_identity");
                Err((EndReason::Unauthorized, None))
            }
        },
        Ok(Err(early_end)) => Err(early_end),
        Err(_) => Err((EndReason::NoStart, None)),
    };
    let (start, call_id, settings, slot) = match started {
        Ok(started) => started,
        Err((reason, violation)) => {
            // A Telnyx call stays up after its stream closes: end the call the token named, with
            // the reason on record first (a stream that never started fails the attempt).
            if let Some(call_id) = authorized_call_id.as_deref() {
                bridge.note_stream_end(call_id, &reason).await;
                if !provider.stream_close_ends_call() {
                    bridge.hang_up_call(provider, call_id).await;
                }
            }
            return finish_early(carrier_tx, carrier_writer, reason, violation).await;
        }
    };
    let span = tracing::info_span!("call", call_id = %call_id, provider = provider.as_str());
    // Reachable by commands (cancel, voicemail) from the moment it holds a live slot.
    let (command_tx, mailbox) = mpsc::channel(4);
    bridge.live_calls.lock().unwrap_or_else(|e| e.into_inner()).insert(call_id.clone(), command_tx);
    let mut model = settings.model.clone();
    model.audio = model.audio.for_carrier(start.format);
    let call = Call {
        bridge,
        provider,
        metrics,
        start,
        call_id,
        opened,
        carrier_tx,
        recorder: None,
        spool: None,
        model,
        settings,
        answered: None,
        outcome_saved: None,
        transfer: None,
        mailbox,
        hung_up: false,
        carrier_heard: Instant::now(),
        resume,
    };
    call.run(session, stream, early.messages, carrier_writer, slot).instrument(span).await;
}

/// Proves the stream's call (its token) and reads the call's settings; a `start` naming another
/// carrier call than the one on record is refused before it holds a live slot.
async fn admit(
    bridge: &Bridge,
    provider: Provider,
    start: &StreamStart,
    authorized: Option<String>,
) -> Result<(String, super::bridge::CallSettings), &'static str> {
    let call_id = bridge.stream_call_id(start, authorized).await?;
    let mut settings = bridge.call_settings(&call_id, provider).await;
    let on_record = settings.carrier_call_id.take();
    settings.carrier_call_id =
        super::bridge::carrier_call_id(bridge.store.is_some(), on_record.as_deref(), &start.carrier_call_id)?;
    if settings.carrier_call_id.is_none() {
        warn!(call_id, "no carrier call id on record: this call cannot be hung up or transferred by command");
    }
    Ok((call_id, settings))
}

/// What a stream sent before `start` (kept for the recording), bounded by [`MAX_PRESTART_BYTES`].
#[derive(Default)]
struct Early {
    messages: Vec<(Instant, String)>,
    bytes: usize,
}

/// Why a stream ended before its call started, and the frame violation that decides the close.
type EarlyEnd = (EndReason, Option<Violation>);

/// Reads until `start`. A socket that has not proven its call may not make the server hold
/// more than [`MAX_PRESTART_BYTES`] (closed 1008 beyond that).
async fn wait_for_start<S: CarrierSession>(
    stream: &mut SplitStream<WebSocket>,
    session: &mut S,
    early: &mut Early,
) -> Result<StreamStart, EarlyEnd> {
    while let Some(msg) = stream.next().await {
        let size = match &msg {
            Ok(Message::Text(t)) => t.len(),
            Ok(Message::Binary(b)) => b.len(),
            _ => 0,
        };
        early.bytes += size;
        if early.bytes > MAX_PRESTART_BYTES {
            warn!(bytes = early.bytes, "stream sent too much before start; closing with 1008");
            return Err((EndReason::PrestartFlood, None));
        }
        match msg {
            Ok(Message::Text(text)) => {
                early.messages.push((Instant::now(), text.to_string()));
                match session.receive(&text) {
                    CarrierEvent::Start(start) => return Ok(start),
                    CarrierEvent::Ignored(reason) => telemetry::ignored_frame(reason.as_str()),
                    _ => {}
                }
            }
            Ok(Message::Binary(_)) => telemetry::ignored_frame(Ignored::BinaryFrame.as_str()),
            Ok(Message::Close(_)) => return Err((EndReason::CarrierLost, None)),
            Err(e) => return Err((EndReason::CarrierLost, violation_of(&e))),
            Ok(_) => {}
        }
    }
    Err((EndReason::CarrierLost, None))
}

async fn finish_early(
    carrier_tx: mpsc::Sender<Outgoing>,
    writer: tokio::task::JoinHandle<()>,
    reason: EndReason,
    violation: Option<Violation>,
) {
    let (code, why) = reason.carrier_close(violation);
    if let Some(code) = code {
        let _ = carrier_tx.send(Outgoing::Close(code, why)).await;
    }
    drop(carrier_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    telemetry::call_ended(reason.as_str());
    info!(reason = reason.as_str(), "stream ended before the call started");
}

struct Call {
    bridge: Arc<Bridge>,
    provider: Provider,
    metrics: CallMetrics,
    start: StreamStart,
    call_id: String,
    opened: Instant,
    carrier_tx: mpsc::Sender<Outgoing>,
    recorder: Option<FixtureWriter>,
    /// The call's recording being written (`record` on the call, recordings on).
    spool: Option<crate::recording::spool::Spool>,
    /// This call's model settings (an originated call's record overrides the defaults); the
    /// core's protocol holds the ones in use (after a failover, the other API's).
    model: ModelConfig,
    /// Its caps, from its record.
    settings: super::bridge::CallSettings,
    /// The `in_progress` status being recorded (in the background, awaited at the end).
    answered: Option<tokio::task::JoinHandle<()>>,
    /// The outcome the AI reported being saved (likewise; a later report waits for it).
    outcome_saved: Option<tokio::task::JoinHandle<()>>,
    /// The carrier being asked to hand the caller over: whether it took the call.
    transfer: Option<tokio::task::JoinHandle<bool>>,
    /// Commands from the rest of the server (`Bridge::command`).
    mailbox: mpsc::Receiver<CallCommand>,
    /// A hang-up command was sent to the carrier.
    hung_up: bool,
    /// When the carrier last sent anything (the stream's idle watchdog).
    carrier_heard: Instant,
    /// Back from a transfer nobody answered (from the upgrade URL; Twilio: `start`'s parameters).
    resume: Option<(String, String)>,
}

impl Call {
    async fn run<S: CarrierSession>(
        mut self,
        session: S,
        mut carrier: SplitStream<WebSocket>,
        early: Vec<(Instant, String)>,
        carrier_writer: tokio::task::JoinHandle<()>,
        slot: Slot,
    ) {
        info!(carrier_call = %self.start.carrier_call_id, "stream started");
        let ccid = self.settings.carrier_call_id.clone().unwrap_or_default();
        // Recorded in the background: the caller's first words must not wait for the database.
        // Boxed: the task's cell lives until the call ends, the store's future only until done.
        let (bridge, provider, call_id) = (Arc::clone(&self.bridge), self.provider, self.call_id.clone());
        self.answered = Some(tokio::spawn(Box::pin(async move {
            bridge.stream_status(provider, &call_id, &ccid, CallStatus::InProgress).await
        })));
        self.open_recorder(&early);
        let core_config = CoreConfig {
            max_duration: Some(self.settings.max_duration),
            cost_cap: self.settings.cost_cap.clone(),
            carrier_format: self.start.format,
            model_format: self.model.audio.format(),
            playout_lead: self.bridge.playout_lead,
            response_timeout: self.bridge.response_timeout,
            session_max: self.bridge.session_max,
            greeting: self.model.greeting.clone(),
        };
        let protocol = crate::model::open(self.model.clone());
        // On the heap, as is what the phone rang into below: a call's task stays small.
        let mut core = match CallCore::new(session, core_config, protocol, Instant::now()) {
            Ok(core) => Box::new(core),
            Err(e) => {
                warn!(error = %e, "cannot build the audio path");
                if !self.provider.stream_close_ends_call() {
                    self.hang_up();
                }
                return Box::pin(finish_early(
                    self.carrier_tx,
                    carrier_writer,
                    EndReason::ModelConnectFailed(e.to_string()),
                    None,
                ))
                .await;
            }
        };
        // Back from a transfer nobody answered: the conversation so far, and why, for the AI.
        let hint = self.resume.take().or_else(|| {
            let p = &self.start.params;
            p.get("resume").map(|w| (w.clone(), p.get("transfer_to").cloned().unwrap_or_default()))
        });
        let resume = hint.and_then(|(why, to)| crate::lifecycle::transfer::Unanswered::parse(&why).map(|w| (w, to)));
        if let Some((why, to)) = resume {
            info!(to, why = why.as_str(), "the caller is back from a transfer nobody answered");
            let (earlier, offset) = self.bridge.earlier_conversation(&self.call_id).await;
            core.resume(earlier, offset, why.tell_model(&to));
        } else {
            // (A call back from a transfer keeps the recording of its first part: not recorded again.)
            self.start_recording(&mut core);
        }
        let mut violation = None;

        // A session opened while the phone rang (with these very settings) is taken over.
        let prewarmed = match self.bridge.prewarms.take(&self.call_id).await {
            Some(p) if p.config == self.model => Some(Box::new(p)),
            Some(_) => {
                info!("the pre-warmed session's settings are not the call's; connecting afresh");
                None
            }
            None => {
                // Dialled by another instance, whose session (if any) this stream will not use.
                if self.settings.outbound {
                    self.bridge.release_prewarm(&self.call_id);
                }
                None
            }
        };
        // The sub-futures are boxed: each exists only while it runs, instead of every call's
        // task being as large as the largest of them for its whole life (the teardown's store
        // writes alone are ~14 KB; measured with `-Zprint-type-sizes`).
        let (reason, model_writer) = match prewarmed {
            Some(p) => {
                let opening = model_session::Opening::Prewarmed(p.frames);
                Box::pin(self.bridge_audio(&mut core, &mut carrier, p.socket, &mut violation, opening)).await
            }
            None => match Box::pin(self.connect_model(&mut core, &mut carrier, &mut violation)).await {
                Ok(ws) => {
                    let opening = model_session::Opening::Fresh;
                    Box::pin(self.bridge_audio(&mut core, &mut carrier, ws, &mut violation, opening)).await
                }
                Err(reason) => (reason, None),
            },
        };
        Box::pin(self.teardown(*core, reason, violation, carrier_writer, model_writer)).await;
        drop(slot);
    }

    /// Asks the carrier, in the background, to hand the caller over to `to` (awaited before the
    /// stream closes, in the teardown).
    fn transfer(&mut self, to: String) {
        info!(to = %to, "transferring the caller");
        let (bridge, provider, call_id) = (Arc::clone(&self.bridge), self.provider, self.call_id.clone());
        let Some(ccid) = self.settings.carrier_call_id.clone() else {
            warn!("no carrier call id on record: the transfer cannot be asked for");
            self.transfer = Some(tokio::spawn(async { false }));
            return;
        };
        let target = self.settings.transfer_to.iter().find(|t| t.to == to).cloned();
        let target = target.unwrap_or_else(|| crate::model::TransferTarget::new(&to, ""));
        self.transfer = Some(tokio::spawn(async move { bridge.transfer(provider, &ccid, &call_id, &target).await }));
    }

    /// Has the carrier press `digits` on the call, in the background (a failure is logged and
    /// noted in the call's history; the call goes on).
    fn send_dtmf(&mut self, digits: String) {
        info!(digits = %digits, "pressing keys");
        let (bridge, provider, call_id) = (Arc::clone(&self.bridge), self.provider, self.call_id.clone());
        let Some(ccid) = self.settings.carrier_call_id.clone() else {
            warn!("no carrier call id on record: the keys cannot be pressed");
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = bridge.carriers.send_dtmf(provider, &ccid, &digits).await {
                warn!(error = %e, call_id, "the carrier refused to press the keys");
                bridge.note_history(&call_id, &format!("press_digits {digits} failed: {e}")).await;
            }
        });
    }

    /// Calls the call's own tool in the background; its answer comes back through the mailbox
    /// (`CallCommand::ToolOutput`), so a slow tool never holds the call's loop.
    fn call_user_tool(&mut self, tool_call: String, name: String, arguments: String, url: String, timeout: Duration) {
        info!(tool = %name, "tool called");
        let (bridge, call_id, metadata) =
            (Arc::clone(&self.bridge), self.call_id.clone(), self.settings.metadata.clone());
        tokio::spawn(async move {
            let output = bridge.call_user_tool(&call_id, &metadata, &name, &arguments, &url, timeout).await;
            bridge.command_surely(&call_id, CallCommand::ToolOutput { call_id: tool_call, output }).await;
        });
    }

    /// Saves the outcome the AI reported, in the background, after any earlier one (the last
    /// report wins).
    fn save_outcome(&mut self, outcome: serde_json::Value) {
        info!(%outcome, "outcome reported");
        let (bridge, call_id, earlier) = (Arc::clone(&self.bridge), self.call_id.clone(), self.outcome_saved.take());
        self.outcome_saved = Some(tokio::spawn(async move {
            if let Some(earlier) = earlier {
                let _ = earlier.await;
            }
            bridge.save_outcome(&call_id, &outcome).await;
        }));
    }

    fn on_carrier<S: CarrierSession>(
        &mut self,
        msg: Option<Result<Message, axum::Error>>,
        core: &mut CallCore<S>,
        violation: &mut Option<Violation>,
    ) {
        let now = Instant::now();
        self.carrier_heard = now;
        match msg {
            Some(Ok(Message::Text(text))) => {
                if let Some(rec) = self.recorder.as_mut()
                    && rec.record(now, &text).is_err()
                {
                    self.recorder = None;
                }
                match core.on_carrier_text(&text, now) {
                    CarrierInput::Media(frames) => {
                        self.metrics.frames_from_caller.increment(frames);
                        self.metrics.processing_from_caller.record(now.elapsed().as_secs_f64());
                    }
                    CarrierInput::Ignored(reason) => telemetry::ignored_frame(reason.as_str()),
                    CarrierInput::Control => {}
                }
            }
            Some(Ok(Message::Binary(_))) => telemetry::ignored_frame(Ignored::BinaryFrame.as_str()),
            Some(Ok(Message::Close(_))) | None => core.end(EndReason::CarrierLost),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                *violation = violation_of(&e);
                if let Some(v) = violation {
                    warn!(violation = ?v, "carrier frame refused; closing the stream");
                }
                core.end(EndReason::CarrierLost);
            }
        }
    }

    fn hang_up(&mut self) {
        self.hung_up = true;
        if let Some(ccid) = self.settings.carrier_call_id.as_deref()
            && self.bridge.carriers.is_configured(self.provider)
        {
            self.bridge.carriers.hang_up_soon(self.provider, ccid);
        } else {
            info!("no carrier credentials: ending the call by closing the stream");
        }
    }

    fn open_recorder(&mut self, early: &[(Instant, String)]) {
        let Some(dir) = &self.bridge.record_dir else {
            return;
        };
        let header = Header {
            fixture: 1,
            provider: self.provider.as_str().into(),
            description: format!("recorded call {}", self.call_id),
        };
        let path = dir.join(format!("{}.jsonl", self.call_id));
        match FixtureWriter::create(&path, &header, self.opened) {
            Ok(mut w) => {
                for (at, text) in early {
                    let _ = w.record(*at, text);
                }
                self.recorder = Some(w);
            }
            Err(e) => warn!(error = %e, path = %path.display(), "cannot record this call"),
        }
    }

    /// Records the call from now on when it asks to be and recordings are on.
    fn start_recording<S: CarrierSession>(&mut self, core: &mut CallCore<S>) {
        let Some(recorder) = self.bridge.recordings.as_ref().filter(|_| self.settings.record) else { return };
        match core.record(Instant::now()) {
            Ok(()) => {
                self.spool = Some(crate::recording::spool::Spool::open(recorder.storage.spool_dir(), &self.call_id))
            }
            Err(e) => warn!(error = %e, "cannot record this call's audio format"),
        }
    }

    async fn teardown<S: CarrierSession>(
        mut self,
        mut core: CallCore<S>,
        reason: EndReason,
        violation: Option<Violation>,
        carrier_writer: tokio::task::JoinHandle<()>,
        model: Option<model_session::ModelWriter>,
    ) {
        // The recording ends where the call did (what was still queued was never heard).
        let last_piece = core.finish_recording(Instant::now());
        // A transfer is asked for before the stream closes (a closed Twilio stream would go on to
        // the apology and hang up); refused, the call ended for that reason instead.
        let transferred = match self.transfer.take() {
            Some(transfer) => transfer.await.unwrap_or(false),
            None => true,
        };
        let reason = if transferred { reason } else { EndReason::TransferFailed };
        self.bridge.live_calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.call_id);
        // Recorded before anything tells the carrier to end the call, so its final status is
        // judged with it (an AI failure is not `completed`). A transfer the carrier took is not
        // one yet: until it says the human answered (`control::transfer`), it stands as failed.
        let noted = if reason.hands_over() { EndReason::TransferFailed } else { reason.clone() };
        self.bridge.note_stream_end(&self.call_id, &noted).await;
        // The model socket goes first: it bills by the second.
        if let Some((tx, writer)) = model {
            let _ = tx.try_send(Outgoing::Close(1000, "call ended"));
            drop(tx);
            close_writer(writer).await;
        }
        let (code, why) = reason.carrier_close(violation);
        if let Some(code) = code {
            let _ = self.carrier_tx.try_send(Outgoing::Close(code, why));
        }
        drop(self.carrier_tx);
        close_writer(carrier_writer).await;
        // Where closing the stream leaves the call up (Telnyx), the call is ended by command —
        // after the apology when the AI failed the caller (Twilio's TwiML says it by itself).
        if !self.provider.stream_close_ends_call()
            && !self.hung_up
            && !reason.hands_over()
            && self.bridge.carriers.is_configured(self.provider)
            && let Some(ccid) = self.settings.carrier_call_id.as_deref()
        {
            let carriers = &self.bridge.carriers;
            let ended = if reason.apologizes() {
                carriers.apologize_and_hang_up(self.provider, ccid, &self.call_id).await
            } else {
                carriers.hang_up(self.provider, ccid).await
            };
            if let Err(e) = ended {
                warn!(error = %e, "hang-up failed at the end of the call");
            }
        }

        let stats = core.stats();
        self.bridge.save_usage(&self.call_id, &core.model().config().model, &stats.usage).await;
        self.metrics.dropped_to_model_bytes.increment(stats.bytes_dropped_to_model);
        self.metrics.refused_to_caller_bytes.increment(stats.bytes_refused_to_caller);
        self.metrics.frames_to_caller.increment(stats.frames_to_caller);
        self.metrics.barge_ins.increment(stats.barge_ins);
        self.metrics.caller_messages_missing.increment(stats.caller_messages_missing);
        telemetry::call_ended(reason.as_str());
        if let Some(rec) = self.recorder.take() {
            let _ = rec.finish();
        }
        self.bridge.save_transcript(&self.call_id, core.transcript()).await;
        let ccid = self.settings.carrier_call_id.as_deref().unwrap_or_default();
        // The answer is on record before the end (a short call under load: in that order).
        if let Some(answered) = self.answered.take() {
            let _ = answered.await;
        }
        // The outcome is on record before the end's event is written; so is the recording.
        if let Some(saved) = self.outcome_saved.take() {
            let _ = saved.await;
        }
        if let Some(spool) = self.spool.take() {
            let lost = spool.lost();
            if lost > 0 {
                warn!(pieces = lost, "the disk fell behind: parts of the recording are silence");
            }
            let written = spool.finish(last_piece).await;
            self.bridge.recording_written(&self.call_id, written).await;
        }
        // A call handed to a human goes on at the carrier: its end comes with the transfer's
        // outcome (or a call back to the AI), not with this stream's.
        if !reason.hands_over() {
            self.bridge.stream_status(self.provider, &self.call_id, ccid, CallStatus::Completed).await;
        }
        let detail = match &reason {
            EndReason::ModelFatal(d) | EndReason::ModelConnectFailed(d) => d.as_str(),
            _ => "",
        };
        info!(
            reason = reason.as_str(),
            detail,
            seconds = self.opened.elapsed().as_secs_f64(),
            frames_in = stats.frames_from_caller,
            frames_out = stats.frames_to_caller,
            barge_ins = stats.barge_ins,
            missing_in = stats.caller_messages_missing,
            "call ended"
        );
    }
}

fn drain_end<S: CarrierSession>(core: &mut CallCore<S>) -> EndReason {
    while let Some(out) = core.poll_output() {
        if let Output::End(r) = out {
            return r;
        }
    }
    EndReason::CarrierLost
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

mod model_session;
