//! The sans-IO call core: carrier and model text frames in (with the time), frames to send out.
//! It owns the audio paths, the playback accounting, barge-in, DTMF, the tools and the
//! transcript. It speaks to the model through the model seam ([`ModelProtocol`]: neutral
//! commands and events), as to the carrier through the carrier seam. No sockets, clocks or
//! tasks: the driver passes `now` and sends outputs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use self::ending::CostCap;
use super::downlink::Downlink;
pub use super::end_reason::EndReason;
use super::playback::MarkEcho;
use super::transcript::{Speaker, Transcript};
use crate::media::ring::Ring;
use crate::media::transcode::{StreamFormat, Transcoder};
use crate::media::vad::Vad;
use crate::model::{ModelCommand, ModelEvent, ModelProtocol, ToolCall, Usage};
use crate::providers::{CarrierCommand, CarrierEvent, CarrierSession, Ignored};
use crate::recording::tapped::{Piece, Tapped};

/// Caller audio held for the model while it is slow or still connecting; overflow drops the
/// oldest audio (stale speech is useless to a live conversation).
pub const TO_MODEL_BUFFER: Duration = Duration::from_secs(1);
/// Largest append sent to the model at once.
const MAX_APPEND: Duration = Duration::from_millis(100);
/// A full-duplex model that went quiet after the caller began talking, and stays quiet this
/// long, has yielded: the caller stops hearing what is still queued at the carrier. (Shorter
/// gaps are pauses between words: a model talking over a backchannel keeps its turn.)
pub const YIELD_QUIET_MS: u32 = 80;
/// The playout lead of a full-duplex call, at most: a model that yields is heard stopping at once.
pub const FULL_DUPLEX_LEAD: Duration = Duration::from_millis(200);

/// An old session waiting for a quiet moment to be replaced looks again this often.
const ROTATE_RETRY: Duration = Duration::from_millis(250);
/// A moment is quiet when the caller has not spoken for this long (and nothing plays or is due).
const QUIET_FOR: Duration = Duration::from_secs(1);

/// The response and item the bridge's in-band DTMF tones are played as (never the model's).
const DTMF_ITEM: &str = "vb_dtmf";

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
    /// A committed caller turn with no response this long means the model is lost (reliability
    /// row 7): a new session is tried, as when its socket drops.
    pub response_timeout: Duration,
    /// A session this old is replaced at the next quiet moment, the conversation carried over,
    /// before the model's own session limit (60 minutes) would end it (reliability row 6).
    pub session_max: Duration,
}

/// Something for the driver to do.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// A frame for the carrier; with the time the model audio in it arrived, for latency.
    Carrier(String, Option<Instant>),
    /// A control event for the model (never dropped); it waits while the session is not ready.
    Model(String),
    /// What opens the model session (it goes before anything else for the model).
    ModelStart(String),
    /// Hang the call up through the carrier's API.
    HangUp,
    /// The AI reported the call's outcome (valid against its `outcome_schema`): to be saved.
    Outcome(serde_json::Value),
    /// Hand the caller over to this target through the carrier (instead of hanging up).
    Transfer(String),
    /// Press these keys through the carrier's API (`press_digits` on a carrier that can).
    SendDtmf(String),
    /// The model answered nothing to a committed turn in time: treat its session as lost.
    ModelStalled,
    /// The session is old and the line is quiet: close it and open a new one with the
    /// conversation so far ([`CallCore::on_model_rotated`]).
    RotateSession,
    /// The model called one of the call's own tools: POST it to `url`, hand the answer back
    /// ([`CallCore::on_tool_output`]).
    UserTool {
        call_id: String,
        name: String,
        arguments: String,
        url: String,
        /// The tool's `timeout_ms`: no answer by then is `{"error": …}` to the model.
        timeout: Duration,
    },
    /// A settled piece of the call's recording (interleaved 8 kHz samples from this index).
    Recording {
        at: u64,
        pcm: Vec<u8>,
    },
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
    /// What the model billed over the call (every session's responses and seconds).
    pub usage: Usage,
}

/// One call's decisions.
pub struct CallCore<C: CarrierSession> {
    /// The carrier's session, with the recording tap on it (idle unless the call is recorded).
    carrier: Tapped<C>,
    model: Box<dyn ModelProtocol>,
    config: CoreConfig,
    started: Instant,
    /// A model socket is open (its session may still be starting: [`ModelProtocol::ready`]).
    model_connected: bool,
    // caller → model
    uplink: Uplink,
    append_buf: Vec<u8>,
    max_append: usize,
    // model → caller
    downlink: Downlink,
    /// A mark echo's name, copied out of the carrier session's buffer before acting on it.
    mark_echo: String,
    discarded: Vec<String>,
    responses_with_audio: Vec<String>,
    // the rest
    outputs: VecDeque<Output>,
    ending: Option<ending::Ending>,
    /// Calls of the call's own tools whose answers the model is waiting for.
    tools_awaited: usize,
    /// When the AI's audio last arrived (an `end_call` right after it needs no second goodbye).
    last_ai_audio: Option<Instant>,
    /// While a tool is awaited and nothing plays: what the caller hears instead of dead air.
    filler: Option<super::filler::Filler>,
    /// Since when a committed caller turn waits for the model's response (the watchdog).
    awaiting_response: Option<Instant>,
    /// When the session is to be replaced (at a quiet moment from then on); set by the
    /// session's first event (`session_fresh`).
    rotate_at: Option<Instant>,
    session_fresh: bool,
    /// The caller is mid-turn (the model heard speech start, the turn is not committed yet).
    caller_mid_turn: bool,
    /// A call back from a transfer nobody answered: what the new session is told first (instead
    /// of the greeting), and where this stream's transcript times start.
    resume: Option<String>,
    transcript_offset: Duration,
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
    /// A call on `carrier`, to be served by `model` (the protocol of the API it connects to;
    /// [`switch_model`](Self::switch_model) changes it before connecting).
    pub fn new(
        carrier: C,
        config: CoreConfig,
        model: Box<dyn ModelProtocol>,
        now: Instant,
    ) -> Result<CallCore<C>, crate::media::resample::ResampleSetupError> {
        let inbound = Transcoder::new(config.carrier_format, config.model_format)?;
        let batch = carrier.max_frames_per_message();
        let downlink = Downlink::new(config.carrier_format, config.model_format, config.playout_lead, batch)?;
        let mf = config.model_format;
        Ok(CallCore {
            carrier: Tapped::new(carrier, now),
            model,
            started: now,
            model_connected: false,
            uplink: Uplink {
                inbound,
                scratch: Vec::new(),
                ring: Ring::new(mf.bytes_for_ms(TO_MODEL_BUFFER.as_millis() as u64), mf.codec.bytes_per_sample()),
                since: None,
                voice: None,
                samples: Vec::new(),
                model_sounding: false,
                talked_over: false,
                last_spoke: None,
            },
            // Grows to the largest append this call makes (20 ms unless it catches up).
            append_buf: Vec::new(),
            max_append: mf.bytes_for_ms(MAX_APPEND.as_millis() as u64),
            downlink,
            mark_echo: String::with_capacity(24),
            discarded: Vec::new(),
            responses_with_audio: Vec::new(),
            outputs: VecDeque::new(),
            ending: None,
            tools_awaited: 0,
            filler: None,
            last_ai_audio: None,
            voicemail_pending: None,
            resume: None,
            awaiting_response: None,
            rotate_at: None,
            session_fresh: false,
            caller_mid_turn: false,
            transcript_offset: Duration::ZERO,
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

    /// Next output to act on (what is for the model waits until its session is ready).
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.model.ready() {
            return self.outputs.pop_front();
        }
        let i = self.outputs.iter().position(|o| !matches!(o, Output::Model(_)))?;
        self.outputs.remove(i)
    }

    /// Next output that is not for the model (while no model session is open: those wait).
    pub fn poll_output_without_model(&mut self) -> Option<Output> {
        let i = self.outputs.iter().position(|o| !matches!(o, Output::Model(_) | Output::ModelStart(_)))?;
        self.outputs.remove(i)
    }

    /// The model protocol serving the call.
    pub fn model(&self) -> &dyn ModelProtocol {
        self.model.as_ref()
    }

    /// The call is to be served by another protocol (failover before a session opened): what
    /// was encoded for the old one is dropped.
    pub fn switch_model(&mut self, model: Box<dyn ModelProtocol>) {
        self.outputs.retain(|o| !matches!(o, Output::Model(_) | Output::ModelStart(_)));
        self.model = model;
    }

    /// Encodes a command for the model into the outputs.
    fn tell_model(&mut self, cmd: ModelCommand<'_>) {
        let outputs = &mut self.outputs;
        self.model.encode(cmd, &mut |frame| outputs.push_back(Output::Model(frame)));
    }

    /// Opens the session: its start frames go before everything else queued for the model,
    /// `first` (greeting or resumption) right after them.
    fn start_model(&mut self, history: &[crate::model::HistoryLine<'_>], first: Option<ModelCommand<'_>>) {
        self.model_opened();
        let mut front = Vec::new();
        self.model.encode(ModelCommand::Start { history }, &mut |f| front.push(Output::ModelStart(f)));
        if let Some(cmd) = first {
            self.model.encode(cmd, &mut |f| front.push(Output::Model(f)));
        }
        for out in front.into_iter().rev() {
            self.outputs.push_front(out);
        }
    }

    /// A session is open: caller audio may flow once it is ready; a full-duplex one keeps the
    /// playout lead small and the caller's voice watched.
    fn model_opened(&mut self) {
        self.model_connected = true;
        self.session_fresh = true;
        let full_duplex = self.model.full_duplex();
        self.uplink.voice = full_duplex.then(|| Vad::new(self.config.model_format.rate.hz(), 300, 200, 0));
        let lead = if full_duplex { self.config.playout_lead.min(FULL_DUPLEX_LEAD) } else { self.config.playout_lead };
        self.downlink.set_lead(lead);
    }

    /// The session was opened, started and asked for the greeting while the phone rang; what
    /// the model sent meanwhile follows through [`on_model_text`](Self::on_model_text).
    pub fn on_model_prewarmed(&mut self) {
        self.model_opened();
    }

    /// When `on_tick` must run next, if at all.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let watchdog = self.awaiting_response.map(|since| since + self.config.response_timeout);
        let watchdog = [watchdog, self.rotate_at].into_iter().flatten().min();
        let release = self.downlink.next_deadline(now);
        let ending = self.ending.as_ref().map(|e| e.silent_until.map_or(e.deadline, |s| s.min(e.deadline)));
        let beep = self.beep_wait.as_ref().map(|b| b.deadline);
        let cap =
            self.cap_at.map(|c| if self.wrapped_up { c } else { c.checked_sub(ending::WRAP_UP_BEFORE).unwrap_or(c) });
        let filler = self.filler.as_ref().map(super::filler::Filler::deadline);
        [release, ending, beep, cap, filler, watchdog, self.next_cost_check(now)].into_iter().flatten().min()
    }

    /// The model socket is open: configure the session and, with a greeting, speak first.
    /// Anything queued while connecting (DTMF) goes after the session is configured.
    pub fn on_model_connected(&mut self) {
        if let Some(say) = self.resume.take() {
            let transcript = std::mem::take(&mut self.transcript);
            let history: Vec<crate::model::HistoryLine<'_>> = transcript
                .entries
                .iter()
                .map(|e| crate::model::HistoryLine { from_caller: e.speaker == Speaker::Caller, text: &e.text })
                .collect();
            self.start_model(&history, Some(ModelCommand::Respond(Some(&say))));
            drop(history);
            self.transcript = transcript;
            return;
        }
        let greeting = self.config.greeting.take();
        self.start_model(&[], greeting.as_deref().map(ModelCommand::Greet));
        self.config.greeting = greeting;
    }

    /// This stream continues a call whose caller came back (a transfer nobody answered): the
    /// conversation so far (`earlier`, which this stream's lines follow `offset` after its
    /// start) goes to the new session, which says `say` first instead of the greeting.
    pub fn resume(&mut self, earlier: Transcript, offset: Duration, say: String) {
        self.transcript = earlier;
        self.transcript_offset = offset;
        self.resume = Some(say);
    }

    /// A transcript line's time: since the call's first stream started.
    fn transcript_at(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started) + self.transcript_offset
    }

    /// True when caller audio is waiting for the model.
    pub fn has_model_audio(&self) -> bool {
        self.model_connected && self.model.ready() && !self.uplink.ring.is_empty() && !self.ended
    }

    /// The next audio append for the model, with when its oldest audio arrived.
    pub fn pull_model_audio(&mut self, now: Instant) -> Option<(String, Instant)> {
        if !self.has_model_audio() {
            return None;
        }
        let want = self.uplink.ring.len().min(self.max_append);
        if self.append_buf.len() < want {
            self.append_buf.resize(want, 0);
        }
        let n = self.uplink.ring.pop_into(&mut self.append_buf[..want]);
        let since = self.uplink.since.unwrap_or(now);
        self.uplink.since = if self.uplink.ring.is_empty() { None } else { Some(now) };
        let mut frame = None;
        self.model.encode(ModelCommand::Audio(&self.append_buf[..n]), &mut |f| frame = Some(f));
        frame.map(|f| (f, since))
    }

    /// One text frame from the carrier.
    pub fn on_carrier_text(&mut self, text: &str, now: Instant) -> CarrierInput {
        if self.ended {
            return CarrierInput::Control;
        }
        self.carrier.at(now);
        match self.carrier.receive(text) {
            CarrierEvent::Media { payload } => {
                let frames = self.uplink.push(payload, &mut self.stats, now);
                self.collect_recording(now);
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
                self.rearm_filler(now);
                self.check_ending(now);
                CarrierInput::Control
            }
            CarrierEvent::Dtmf { digit } => {
                self.transcript.push(Speaker::Caller, &format!("[DTMF {digit}]"), self.transcript_at(now), None);
                self.tell_model(ModelCommand::Dtmf(digit));
                CarrierInput::Control
            }
            CarrierEvent::Stop => {
                // The caller's last words still reach the model (and so the transcript): frames
                // held for reordering first, then what waits in the ring.
                let held = self.carrier.flush_held();
                if !held.is_empty() {
                    self.uplink.push(held, &mut self.stats, now);
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
        self.carrier.at(now);
        if std::mem::take(&mut self.session_fresh) {
            self.rotate_at = Some(now + self.config.session_max);
        }
        if self.ended {
            return;
        }
        let at = self.transcript_at(now);
        match self.model.receive(text) {
            ModelEvent::AudioDelta { response_id, item_id, audio, quiet_ms } => {
                self.awaiting_response = None;
                if self.discarded.iter().any(|r| r == response_id) {
                    self.stats.deltas_discarded += 1;
                    return;
                }
                if self.beep_wait.is_some() {
                    // Nobody should hear an answer to a machine's greeting.
                    self.discarded.push(response_id.to_string());
                    self.stats.deltas_discarded += 1;
                    self.tell_model(ModelCommand::Cancel);
                    return;
                }
                if !self.responses_with_audio.iter().any(|r| r == response_id) {
                    self.responses_with_audio.push(response_id.to_string());
                }
                // The AI speaks (while its tool runs, or after): the filler gives way at once.
                stop_filler(&mut self.filler, &mut self.carrier, &mut self.outputs);
                self.last_ai_audio = Some(now);
                // A goodbye asked for has begun: it is waited for (up to the grace).
                if let Some(e) = self.ending.as_mut() {
                    e.silent_until = None;
                }
                {
                    let mut send = sender(&mut self.carrier, &mut self.outputs);
                    self.downlink.audio(response_id, item_id, audio, now, &mut send);
                }
                // A full-duplex model yields by going quiet while the caller talks: what is
                // still queued at the carrier goes too.
                let talked_over = self.uplink.talked_over;
                self.uplink.model_sounding = quiet_ms < YIELD_QUIET_MS;
                if quiet_ms >= YIELD_QUIET_MS && talked_over {
                    self.barge_in(now);
                }
            }
            ModelEvent::AudioDone { response_id } => {
                if self.discarded.iter().any(|r| r == response_id) {
                    return;
                }
                let mut send = sender(&mut self.carrier, &mut self.outputs);
                self.downlink.audio_done(now, &mut send);
            }
            ModelEvent::SpeechStarted => {
                self.uplink.last_spoke = Some(now);
                self.caller_mid_turn = true;
                self.barge_in(now);
            }
            ModelEvent::TurnEnded => {
                self.caller_mid_turn = false;
                self.awaiting_response.get_or_insert(now);
            }
            ModelEvent::ResponseDone { response_id, tool_calls, usage, .. } => {
                let response_id = response_id.to_string();
                self.response_done(response_id, tool_calls, usage, now);
            }
            ModelEvent::AssistantTranscript { item_id, text } => {
                self.transcript.push_assistant(item_id, text, at);
            }
            ModelEvent::CallerTranscript { text } => {
                self.transcript.push(Speaker::Caller, text, at, None);
            }
            ModelEvent::TranscriptDelta { from_caller, text } => {
                let speaker = if from_caller { Speaker::Caller } else { Speaker::Assistant };
                self.transcript.push_delta(speaker, text, at);
            }
            ModelEvent::Usage(usage) => {
                self.stats.usage.add(usage);
                self.check_cost(now);
            }
            ModelEvent::Error(e) => {
                self.stats.model_errors += 1;
                if e.fatal {
                    self.end(EndReason::ModelFatal(format!("{}: {}", e.code, e.message)));
                }
            }
            ModelEvent::ResponseCreated { .. } => self.awaiting_response = None,
            ModelEvent::Started | ModelEvent::Other | ModelEvent::Malformed => {}
        }
    }

    /// The call ended: what the session still needs to hear to close (and bill) cleanly.
    pub fn close_model(&mut self) -> Vec<String> {
        let mut frames = Vec::new();
        self.model.encode(ModelCommand::Close, &mut |f| frames.push(f));
        frames
    }

    /// A model frame after the call ended: only its bill counts now.
    pub fn on_model_closing(&mut self, text: &str) {
        if let Some(usage) = self.model.receive(text).billed() {
            self.stats.usage.add(usage);
        }
    }

    /// A response (a turn of speech, or the tool calls it made) is over.
    fn response_done(&mut self, response_id: String, tool_calls: Vec<ToolCall>, usage: Usage, now: Instant) {
        self.stats.usage.add(usage);
        if self.responses_with_audio.contains(&response_id) {
            self.uplink.model_sounding = false;
        }
        self.discarded.retain(|r| *r != response_id);
        let had_audio = self.responses_with_audio.contains(&response_id);
        self.responses_with_audio.retain(|r| *r != response_id);
        // A response finishing after `end_call` was handled is the goodbye — unless it
        // was the answer cancelled to make room for a voicemail message.
        if let Some(instructions) = self.voicemail_pending.take() {
            self.tell_model(ModelCommand::Respond(Some(&instructions)));
        } else if let Some(e) = self.ending.as_mut() {
            e.awaiting_goodbye = false;
        }
        self.on_tool_calls(tool_calls, had_audio, now);
        self.check_cost(now);
        self.check_ending(now);
    }

    /// Timers: held audio release and the end-call grace period.
    pub fn on_tick(&mut self, now: Instant) {
        self.carrier.at(now);
        if self.awaiting_response.is_some_and(|since| now >= since + self.config.response_timeout) && !self.ended {
            self.awaiting_response = None;
            self.outputs.push_back(Output::ModelStalled);
        }
        if self.rotate_at.is_some_and(|at| now >= at) && !self.ended {
            if self.is_quiet(now) {
                self.rotate_at = None;
                self.outputs.push_back(Output::RotateSession);
            } else {
                self.rotate_at = Some(now + ROTATE_RETRY);
            }
        }
        {
            let mut send = sender(&mut self.carrier, &mut self.outputs);
            self.downlink.tick(now, &mut send);
        }
        self.rearm_filler(now);
        self.play_filler(now);
        self.check_beep_wait(now);
        self.check_cap(now);
        self.check_cost(now);
        self.check_ending(now);
        self.collect_recording(now);
    }

    /// Records the call from `now` (both sides, as the caller hears them): its pieces come out
    /// as [`Output::Recording`], the rest from [`finish_recording`](Self::finish_recording).
    pub fn record(&mut self, now: Instant) -> Result<(), crate::media::resample::ResampleSetupError> {
        self.carrier.record(self.config.carrier_format, now)
    }

    /// What is left of the recording when the call ends at `now` (`None`: not recorded).
    pub fn finish_recording(&mut self, now: Instant) -> Option<Piece> {
        self.carrier.finish(now)
    }

    fn collect_recording(&mut self, now: Instant) {
        if let Some((at, pcm)) = self.carrier.take(now) {
            self.outputs.push_back(Output::Recording { at, pcm });
        }
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

    /// The filler due now, while a tool is awaited and nothing else plays.
    fn play_filler(&mut self, now: Instant) {
        let Some(filler) = self.filler.as_mut() else { return };
        if !self.downlink.is_idle() {
            return;
        }
        if let Some(audio) = filler.due(now)
            && let Some(text) = self.carrier.encode(CarrierCommand::Media(audio))
        {
            self.outputs.push_back(Output::Carrier(text, None));
        }
    }

    /// `press_digits`: through the carrier's API where it has one, else as tones played like
    /// the AI's audio (after what it is saying, before what it says next: its audio is held
    /// behind them).
    fn press_digits(&mut self, digits: &str, now: Instant) {
        self.transcript.push(Speaker::Assistant, &format!("[pressed {digits}]"), self.transcript_at(now), None);
        if self.carrier.sends_dtmf() {
            self.outputs.push_back(Output::SendDtmf(digits.to_string()));
            return;
        }
        let format = self.config.model_format;
        let samples = crate::media::dtmf::tones(digits, format.rate.hz());
        let mut audio = Vec::new();
        crate::media::transcode::encode_samples(format.codec, &samples, &mut audio);
        let mut send = sender(&mut self.carrier, &mut self.outputs);
        self.downlink.audio(DTMF_ITEM, DTMF_ITEM, &audio, now, &mut send);
        self.downlink.audio_done(now, &mut send);
    }

    /// A tool is still awaited and what the AI said meanwhile has played: silence again, so
    /// the filler comes back after [`FILLER_AFTER`](super::filler::FILLER_AFTER).
    fn rearm_filler(&mut self, now: Instant) {
        if self.filler.is_none() && self.tools_awaited > 0 && self.downlink.is_idle() && !self.ended {
            self.filler = Some(super::filler::Filler::new(now, self.config.carrier_format));
        }
    }

    /// The wait is over (see [`stop_filler`]).
    fn stop_filler(&mut self) {
        stop_filler(&mut self.filler, &mut self.carrier, &mut self.outputs);
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
        // Keys pressed in band are the bridge's own audio: nothing of the model's to truncate.
        for t in cut.truncations.into_iter().filter(|t| !t.item_id.starts_with(DTMF_ITEM)) {
            self.transcript.note_heard(&t.item_id, t.audio_end_ms);
            self.tell_model(ModelCommand::TruncateAtHeard { item_id: &t.item_id, heard_ms: t.audio_end_ms });
        }
        true
    }
}

/// Caller audio on its way to the model: transcoded into a ring that holds it while the model
/// is slow or connecting, and, for a full-duplex model, whether the caller is talking.
struct Uplink {
    inbound: Transcoder,
    scratch: Vec<u8>,
    ring: Ring<u8>,
    /// When the oldest audio in the ring arrived.
    since: Option<Instant>,
    voice: Option<Vad>,
    samples: Vec<i16>,
    /// The model's output was sounding at the last delta.
    model_sounding: bool,
    /// The caller began talking while the model was, and still talks: if the model now goes
    /// quiet, it yielded.
    talked_over: bool,
    /// When the caller was last heard speaking (the full-duplex watch; Realtime's own VAD is
    /// noted by the core at `speech_started`).
    last_spoke: Option<Instant>,
}

impl Uplink {
    /// Caller audio into the ring (the oldest dropped and counted when full). Returns the
    /// 20 ms frames it held.
    fn push(&mut self, payload: &[u8], stats: &mut CallStats, now: Instant) -> u64 {
        let frames = (payload.len() / self.inbound.from().frame_bytes_20ms().max(1)).max(1) as u64;
        stats.frames_from_caller += frames;
        self.scratch.clear();
        self.inbound.process(payload, &mut self.scratch);
        if let Some(vad) = self.voice.as_mut() {
            crate::media::transcode::decode_samples(self.inbound.to().codec, &self.scratch, &mut self.samples);
            let was_speaking = vad.is_speaking();
            vad.push(&self.samples, |_| {});
            if vad.is_speaking() {
                self.last_spoke = Some(now);
            }
            match (was_speaking, vad.is_speaking()) {
                (false, true) => self.talked_over = self.model_sounding,
                (_, false) => self.talked_over = false,
                (true, true) => {}
            }
        }
        if self.ring.is_empty() {
            self.since = Some(now);
        }
        stats.bytes_dropped_to_model += self.ring.push_overwrite(&self.scratch) as u64;
        frames
    }
}

/// The wait is over: the filler stops, and what of it is still queued at the carrier is dropped
/// (the answer plays at once, not after it).
fn stop_filler<C: CarrierSession>(
    filler: &mut Option<super::filler::Filler>,
    carrier: &mut C,
    outputs: &mut VecDeque<Output>,
) {
    if let Some(f) = filler.take()
        && f.started()
        && let Some(clear) = carrier.encode(CarrierCommand::Clear)
    {
        outputs.push_back(Output::Carrier(clear, None));
    }
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
