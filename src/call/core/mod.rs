//! The sans-IO call core: carrier and model text frames in (with the time), frames to send out.
//! It owns the audio paths, the playback accounting, barge-in, DTMF, the `end_call` tool and
//! the transcript. No sockets, clocks or tasks: the driver passes `now` and sends outputs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use self::ending::CostCap;
use super::downlink::Downlink;
pub use super::end_reason::EndReason;
use super::playback::MarkEcho;
use super::transcript::{Speaker, Transcript};
use crate::media::ring::Ring;
use crate::media::transcode::{StreamFormat, Transcoder};
use crate::providers::{CarrierCommand, CarrierEvent, CarrierSession, Ignored};
use crate::realtime::session::{ModelEvent, ModelSession};

/// Caller audio held for the model while it is slow or still connecting; overflow drops the
/// oldest audio (stale speech is useless to a live conversation).
pub const TO_MODEL_BUFFER: Duration = Duration::from_secs(1);
/// Largest append sent to the model at once.
const MAX_APPEND: Duration = Duration::from_millis(100);

/// Per-call settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub carrier_format: StreamFormat,
    pub model_format: StreamFormat,
    /// Audio sent to the carrier ahead of what has played (bounded playout).
    pub playout_lead: Duration,
    pub greeting: Option<String>,
    /// The call's duration cap: the AI wraps up, says goodbye and hangs up at it.
    pub max_duration: Option<Duration>,
    /// The call's spending cap (`max_cost_usd`), likewise.
    pub cost_cap: Option<CostCap>,
}

/// Something for the driver to do.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// A frame for the carrier; with the time the model audio in it arrived, for latency.
    Carrier(String, Option<Instant>),
    /// A control event for the model (never dropped).
    Model(String),
    /// Hang the call up through the carrier's API.
    HangUp,
    End(EndReason),
}

/// What a carrier frame turned out to be, for the driver's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierInput {
    /// Caller audio: this many 20 ms frames (a reordering carrier may release several at once).
    Media(u64),
    Control,
    Ignored(Ignored),
}

/// Counters the driver publishes as metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CallStats {
    pub frames_from_caller: u64,
    pub frames_to_caller: u64,
    pub bytes_dropped_to_model: u64,
    pub bytes_refused_to_caller: u64,
    pub deltas_discarded: u64,
    pub barge_ins: u64,
    pub model_errors: u64,
    pub marks_unknown: u64,
    /// Caller messages the carrier numbered but never delivered in time.
    pub caller_messages_missing: u64,
    /// Model tokens billed over the call (every session's `response.done`).
    pub usage: crate::realtime::wire::Usage,
}

/// One call's decisions.
pub struct CallCore<C: CarrierSession> {
    carrier: C,
    model: ModelSession,
    config: CoreConfig,
    started: Instant,
    model_ready: bool,
    // caller → model
    inbound: Transcoder,
    in_scratch: Vec<u8>,
    to_model: Ring<u8>,
    to_model_since: Option<Instant>,
    append_buf: Vec<u8>,
    // model → caller
    downlink: Downlink,
    /// A mark echo's name, copied out of the carrier session's buffer before acting on it.
    mark_echo: String,
    discarded: Vec<String>,
    responses_with_audio: Vec<String>,
    // the rest
    outputs: VecDeque<Output>,
    ending: Option<ending::Ending>,
    /// A voicemail request waiting for the cancelled answer's `response.done`.
    voicemail_pending: Option<String>,
    /// When the duration cap falls (`None`: no cap, or it has been acted on).
    cap_at: Option<Instant>,
    /// The model was told to wrap up before the cap.
    wrapped_up: bool,
    /// The model was told to wrap up before the cost cap; the cap was acted on.
    cost_wrapped: bool,
    cost_capped: bool,
    /// A machine is still greeting: the AI keeps quiet until the beep (or the deadline).
    beep_wait: Option<ending::BeepWait>,
    ended: bool,
    stats: CallStats,
    transcript: Transcript,
}

impl<C: CarrierSession> CallCore<C> {
    pub fn new(
        carrier: C,
        config: CoreConfig,
        now: Instant,
    ) -> Result<CallCore<C>, crate::media::resample::ResampleSetupError> {
        let inbound = Transcoder::new(config.carrier_format, config.model_format)?;
        let batch = carrier.max_frames_per_message();
        let downlink = Downlink::new(config.carrier_format, config.model_format, config.playout_lead, batch)?;
        let mf = config.model_format;
        Ok(CallCore {
            carrier,
            model: ModelSession::new(),
            started: now,
            model_ready: false,
            in_scratch: Vec::new(),
            to_model: Ring::new(mf.bytes_for_ms(TO_MODEL_BUFFER.as_millis() as u64), mf.codec.bytes_per_sample()),
            to_model_since: None,
            append_buf: vec![0; mf.bytes_for_ms(MAX_APPEND.as_millis() as u64)],
            inbound,
            downlink,
            mark_echo: String::with_capacity(24),
            discarded: Vec::new(),
            responses_with_audio: Vec::new(),
            outputs: VecDeque::with_capacity(64),
            ending: None,
            voicemail_pending: None,
            cap_at: config.max_duration.map(|d| now + d),
            wrapped_up: false,
            cost_wrapped: false,
            cost_capped: false,
            beep_wait: None,
            ended: false,
            stats: CallStats::default(),
            transcript: Transcript::default(),
            config,
        })
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The call's counters so far (a snapshot; the outbound ones come from the downlink).
    pub fn stats(&self) -> CallStats {
        CallStats {
            frames_to_caller: self.downlink.frames_sent(),
            bytes_refused_to_caller: self.downlink.refused_bytes(),
            caller_messages_missing: self.carrier.messages_missing(),
            ..self.stats.clone()
        }
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    pub fn outbound_delay(&self) -> Duration {
        self.downlink.delay()
    }

    /// Next output to act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Next output that is not for the model (while no model session is open: those wait).
    pub fn poll_output_without_model(&mut self) -> Option<Output> {
        let i = self.outputs.iter().position(|o| !matches!(o, Output::Model(_)))?;
        self.outputs.remove(i)
    }

    /// When `on_tick` must run next, if at all.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let release = self.downlink.next_deadline(now);
        let ending = self.ending.as_ref().map(|e| e.deadline);
        let beep = self.beep_wait.as_ref().map(|b| b.deadline);
        let cap =
            self.cap_at.map(|c| if self.wrapped_up { c } else { c.checked_sub(ending::WRAP_UP_BEFORE).unwrap_or(c) });
        [release, ending, beep, cap, self.next_cost_check(now)].into_iter().flatten().min()
    }

    /// The model socket is open: configure the session and, with a greeting, speak first.
    pub fn on_model_connected(&mut self, session_update: String) {
        self.model_ready = true;
        // Anything queued while connecting (DTMF) goes after the session is configured.
        if let Some(g) = &self.config.greeting {
            self.outputs.push_front(Output::Model(ModelSession::greeting(g)));
        }
        self.outputs.push_front(Output::Model(session_update));
    }

    /// True when caller audio is waiting for the model.
    pub fn has_model_audio(&self) -> bool {
        self.model_ready && !self.to_model.is_empty() && !self.ended
    }

    /// The next `input_audio_buffer.append`, with when its oldest audio arrived.
    pub fn pull_model_audio(&mut self, now: Instant) -> Option<(String, Instant)> {
        if !self.has_model_audio() {
            return None;
        }
        let n = self.to_model.pop_into(&mut self.append_buf);
        let since = self.to_model_since.unwrap_or(now);
        self.to_model_since = if self.to_model.is_empty() { None } else { Some(now) };
        Some((self.model.append(&self.append_buf[..n]), since))
    }

    /// One text frame from the carrier.
    pub fn on_carrier_text(&mut self, text: &str, now: Instant) -> CarrierInput {
        if self.ended {
            return CarrierInput::Control;
        }
        match self.carrier.receive(text) {
            CarrierEvent::Media { payload } => {
                let frames = uplink(
                    &mut self.inbound,
                    &mut self.in_scratch,
                    &mut self.to_model,
                    &mut self.to_model_since,
                    &mut self.stats,
                    payload,
                    now,
                );
                CarrierInput::Media(frames)
            }
            CarrierEvent::Mark { name } => {
                self.mark_echo.clear();
                self.mark_echo.push_str(name);
                let echo = {
                    let mut send = sender(&mut self.carrier, &mut self.outputs);
                    self.downlink.on_mark(&self.mark_echo, now, &mut send)
                };
                if echo == MarkEcho::Unknown {
                    self.stats.marks_unknown += 1;
                }
                self.check_ending(now);
                CarrierInput::Control
            }
            CarrierEvent::Dtmf { digit } => {
                self.transcript.push(Speaker::Caller, &format!("[DTMF {digit}]"), now - self.started, None);
                self.outputs.push_back(Output::Model(ModelSession::dtmf(digit)));
                CarrierInput::Control
            }
            CarrierEvent::Stop => {
                // The caller's last words still reach the model (and so the transcript): frames
                // held for reordering first, then what waits in the ring.
                let held = self.carrier.flush_held();
                if !held.is_empty() {
                    uplink(
                        &mut self.inbound,
                        &mut self.in_scratch,
                        &mut self.to_model,
                        &mut self.to_model_since,
                        &mut self.stats,
                        held,
                        now,
                    );
                }
                while let Some((append, _)) = self.pull_model_audio(now) {
                    self.outputs.push_back(Output::Model(append));
                }
                self.end(EndReason::CarrierStopped);
                CarrierInput::Control
            }
            CarrierEvent::Connected | CarrierEvent::Start(_) | CarrierEvent::Held => CarrierInput::Control,
            CarrierEvent::Ignored(reason) => CarrierInput::Ignored(reason),
        }
    }

    /// One text frame from the model.
    pub fn on_model_text(&mut self, text: &str, now: Instant) {
        if self.ended {
            return;
        }
        match self.model.receive(text) {
            ModelEvent::AudioDelta { response_id, item_id, content_index, audio } => {
                if self.beep_wait.is_some() && !self.discarded.iter().any(|r| r == response_id) {
                    // Nobody should hear an answer to a machine's greeting.
                    self.outputs.push_back(Output::Model(ModelSession::cancel()));
                    self.discarded.push(response_id.to_string());
                }
                if self.discarded.iter().any(|r| r == response_id) {
                    self.stats.deltas_discarded += 1;
                    return;
                }
                if !self.responses_with_audio.iter().any(|r| r == response_id) {
                    self.responses_with_audio.push(response_id.to_string());
                }
                let mut send = sender(&mut self.carrier, &mut self.outputs);
                self.downlink.audio(response_id, item_id, content_index, audio, now, &mut send);
            }
            ModelEvent::AudioDone { response_id, .. } => {
                if self.discarded.iter().any(|r| r == response_id) {
                    return;
                }
                let mut send = sender(&mut self.carrier, &mut self.outputs);
                self.downlink.audio_done(now, &mut send);
            }
            ModelEvent::SpeechStarted => self.barge_in(now),
            ModelEvent::ResponseDone { response_id, tool_calls, usage, .. } => {
                self.stats.usage.add(usage);
                let response_id = response_id.to_string();
                self.discarded.retain(|r| *r != response_id);
                let had_audio = self.responses_with_audio.contains(&response_id);
                self.responses_with_audio.retain(|r| *r != response_id);
                // A response finishing after `end_call` was handled is the goodbye — unless it
                // was the answer cancelled to make room for a voicemail message.
                if let Some(instructions) = self.voicemail_pending.take() {
                    self.outputs.push_back(Output::Model(ModelSession::response_create(Some(&instructions))));
                } else if let Some(e) = self.ending.as_mut() {
                    e.awaiting_goodbye = false;
                }
                self.on_tool_calls(tool_calls, had_audio, now);
                self.check_cost(now);
                self.check_ending(now);
            }
            ModelEvent::AssistantTranscript { item_id, text } => {
                self.transcript.push_assistant(item_id, text, now - self.started);
            }
            ModelEvent::UserTranscript { text, .. } => {
                self.transcript.push(Speaker::Caller, text, now - self.started, None);
            }
            ModelEvent::Error(e) => {
                self.stats.model_errors += 1;
                if e.fatal {
                    self.end(EndReason::ModelFatal(format!("{}: {}", e.code, e.message)));
                }
            }
            ModelEvent::Truncated { .. }
            | ModelEvent::SessionCreated
            | ModelEvent::SessionUpdated
            | ModelEvent::SpeechStopped
            | ModelEvent::ResponseCreated { .. }
            | ModelEvent::Other
            | ModelEvent::Malformed => {}
        }
    }

    /// Timers: held audio release and the end-call grace period.
    pub fn on_tick(&mut self, now: Instant) {
        {
            let mut send = sender(&mut self.carrier, &mut self.outputs);
            self.downlink.tick(now, &mut send);
        }
        self.check_beep_wait(now);
        self.check_cap(now);
        self.check_cost(now);
        self.check_ending(now);
    }

    /// Ends the call from outside (socket lost, shutdown).
    /// Hangs the call up through its carrier, then ends it for `reason`.
    pub fn hang_up(&mut self, reason: EndReason) {
        if !self.ended {
            self.outputs.push_back(Output::HangUp);
            self.end(reason);
        }
    }

    pub fn end(&mut self, reason: EndReason) {
        if !self.ended {
            self.ended = true;
            self.outputs.push_back(Output::End(reason));
        }
    }

    fn barge_in(&mut self, now: Instant) {
        if self.cut_playback(now) {
            self.stats.barge_ins += 1;
        }
    }

    /// Stops what the caller hears: `clear`, truncation of what was not heard, in-flight deltas
    /// of the cut responses dropped. `false` when nothing was playing or being generated.
    fn cut_playback(&mut self, now: Instant) -> bool {
        let active = self.model.active_response().map(str::to_string);
        if self.downlink.is_idle() && active.is_none() {
            return false;
        }
        let cut = self.downlink.cut(now);
        if let Some(clear) = self.carrier.encode(CarrierCommand::Clear) {
            self.outputs.push_back(Output::Carrier(clear, None));
        }
        for r in active.into_iter().chain(cut.responses) {
            if !self.discarded.contains(&r) {
                self.discarded.push(r);
            }
        }
        for t in cut.truncations {
            self.transcript.note_heard(&t.item_id, t.audio_end_ms);
            self.outputs.push_back(Output::Model(ModelSession::truncate(&t.item_id, t.content_index, t.audio_end_ms)));
        }
        true
    }
}

/// Caller audio into the ring for the model (transcoded; the oldest dropped and counted when
/// full). Returns the 20 ms frames it held.
fn uplink(
    inbound: &mut Transcoder,
    scratch: &mut Vec<u8>,
    ring: &mut Ring<u8>,
    since: &mut Option<Instant>,
    stats: &mut CallStats,
    payload: &[u8],
    now: Instant,
) -> u64 {
    let frames = (payload.len() / inbound.from().frame_bytes_20ms().max(1)).max(1) as u64;
    stats.frames_from_caller += frames;
    scratch.clear();
    inbound.process(payload, scratch);
    if ring.is_empty() {
        *since = Some(now);
    }
    stats.bytes_dropped_to_model += ring.push_overwrite(scratch) as u64;
    frames
}

/// Carrier commands from the downlink, encoded by the carrier session into outputs.
fn sender<'a, C: CarrierSession>(
    carrier: &'a mut C,
    outputs: &'a mut VecDeque<Output>,
) -> impl FnMut(CarrierCommand<'_>, Option<Instant>) -> bool + 'a {
    move |cmd: CarrierCommand<'_>, origin: Option<Instant>| match carrier.encode(cmd) {
        Some(text) => {
            outputs.push_back(Output::Carrier(text, origin));
            true
        }
        None => false,
    }
}

mod ending;
mod reconnect;

#[cfg(test)]
mod tests;
