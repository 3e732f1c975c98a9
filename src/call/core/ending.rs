//! How a call ends on its own: the model's `end_call` tool (goodbye, then hang-up), a voicemail
//! message left on a machine, and the wait for a machine's beep before leaving it.

use std::time::{Duration, Instant};

use super::{CallCore, EndReason, Output};
use crate::model::{ModelCommand, ToolCall, ToolKind};
use crate::providers::CarrierSession;

/// Longest wait for a voicemail message to be spoken before hanging up regardless.
const VOICEMAIL_GRACE: Duration = Duration::from_secs(60);
/// Longest wait for a goodbye to play after `end_call` before hanging up regardless.
const END_CALL_GRACE: Duration = Duration::from_secs(15);
/// A goodbye asked for that has not begun this long after the last audio heard is not coming:
/// the call is hung up rather than held open in silence.
const GOODBYE_START_WAIT: Duration = Duration::from_millis(2_500);
/// AI audio heard this recently before `end_call` was its goodbye: no second one is asked for.
const JUST_SPOKE: Duration = Duration::from_secs(3);
/// Longest wait for a machine's beep: carriers report the greeting's end (or that they gave up)
/// well within this, so reaching it means that event was lost; the message is left anyway.
pub(super) const BEEP_WAIT: Duration = Duration::from_secs(30);

/// How long before the duration cap the model is told to wrap up.
pub(super) const WRAP_UP_BEFORE: Duration = Duration::from_secs(20);

/// The share of `max_cost_usd` at which the model is told to wrap up.
const WRAP_UP_AT_COST: f64 = 0.85;

/// A call's spending cap and what it has spent so far.
#[derive(Debug, Clone, PartialEq)]
pub struct CostCap {
    pub max_usd: f64,
    pub meter: crate::pricing::Meter,
}

/// What the model is asked to say before a transfer it asked for (when it said nothing yet).
const TRANSFER_LINE: &str = "Tell the caller, in one short sentence, that you are transferring them now.";

#[derive(Debug)]
pub(super) struct Ending {
    pub(super) deadline: Instant,
    /// A goodbye response was requested and has not finished yet.
    pub(super) awaiting_goodbye: bool,
    /// Why the call ends once the goodbye has played.
    pub(super) reason: EndReason,
    /// Then the carrier hands the caller over to this target instead of hanging up.
    pub(super) transfer_to: Option<String>,
    /// While a goodbye is awaited and none of it has come: when to stop waiting for it.
    pub(super) silent_until: Option<Instant>,
}

/// A machine answered and its greeting is still playing.
#[derive(Debug)]
pub(super) struct BeepWait {
    message: String,
    pub(super) deadline: Instant,
}

impl<C: CarrierSession> CallCore<C> {
    /// A machine answered and the message must wait for its beep: stop talking now (what plays
    /// and what the model says next would land on the greeting), and leave `message` at the
    /// beep — or at [`BEEP_WAIT`] if the beep is never reported.
    pub fn await_beep(&mut self, message: &str, now: Instant) {
        self.carrier.at(now);
        if self.ended || self.ending.is_some() || self.beep_wait.is_some() {
            return;
        }
        if let Some(active) = self.model.active_response().map(str::to_string) {
            self.tell_model(ModelCommand::Cancel);
            self.discarded.push(active);
        }
        self.cut_playback(now);
        self.beep_wait = Some(BeepWait { message: message.to_string(), deadline: now + BEEP_WAIT });
    }

    /// A machine answered: stop what is playing, speak `message`, hang up once it has played.
    /// A response in progress is cancelled first; the message is requested after its `done`.
    pub fn leave_voicemail(&mut self, message: &str, now: Instant) {
        self.carrier.at(now);
        self.beep_wait = None;
        let instructions = format!(
            "You have reached an answering machine. Leave exactly this voicemail message, then stop talking: \"{message}\""
        );
        self.last_words(instructions, VOICEMAIL_GRACE, EndReason::EndCallTool, now);
    }

    /// Stops what is playing, has the model say `instructions` as the last thing, and hangs up
    /// for `reason` once that has played (or at `grace`).
    fn last_words(&mut self, instructions: String, grace: Duration, reason: EndReason, now: Instant) {
        if self.ended || self.ending.is_some() {
            return;
        }
        let active = self.model.active_response().is_some();
        self.cut_playback(now);
        if active {
            self.tell_model(ModelCommand::Cancel);
            self.voicemail_pending = Some(instructions);
        } else {
            self.tell_model(ModelCommand::Respond(Some(&instructions)));
        }
        self.ending = Some(Ending {
            deadline: now + grace,
            awaiting_goodbye: true,
            reason,
            transfer_to: None,
            silent_until: None,
        });
    }

    /// The duration cap: a note to wrap up [`WRAP_UP_BEFORE`] it, then a goodbye at it.
    pub(super) fn check_cap(&mut self, now: Instant) {
        let Some(cap) = self.cap_at else { return };
        if !self.wrapped_up && now + WRAP_UP_BEFORE >= cap {
            self.wrapped_up = true;
            let note = "This call must end in about 20 seconds: bring the conversation to a close now.";
            self.tell_model(ModelCommand::Note(note));
        }
        if now >= cap {
            self.cap_at = None;
            let goodbye = "The time for this call is up. Say a brief, polite goodbye now, and nothing else.";
            self.last_words(goodbye.to_string(), END_CALL_GRACE, EndReason::MaxDuration, now);
        }
    }

    /// The spending cap: a note to wrap up at [`WRAP_UP_AT_COST`] of it, then a goodbye once
    /// the model's tokens so far and the carrier's started minutes reach it. (The goodbye's own
    /// tokens come on top: a few cents at most.)
    pub(super) fn check_cost(&mut self, now: Instant) {
        let Some(cap) = &self.config.cost_cap else { return };
        if self.cost_capped {
            return;
        }
        let spent = cap.meter.usd(&self.stats.usage, now.saturating_duration_since(self.started));
        let max = cap.max_usd;
        if !self.cost_wrapped && spent >= max * WRAP_UP_AT_COST {
            self.cost_wrapped = true;
            let note = "This call is close to its budget: bring the conversation to a close now.";
            self.tell_model(ModelCommand::Note(note));
        }
        if spent >= max {
            self.cost_capped = true;
            let goodbye = "This call has reached its budget. Say a brief, polite goodbye now, and nothing else.";
            self.last_words(goodbye.to_string(), END_CALL_GRACE, EndReason::MaxCost, now);
        }
    }

    /// When the carrier's next started minute is charged (the cost cap is checked then).
    pub(super) fn next_cost_check(&self, now: Instant) -> Option<Instant> {
        if self.config.cost_cap.as_ref().and_then(|c| c.meter.carrier_per_minute).is_none() || self.cost_capped {
            return None;
        }
        let minutes = now.saturating_duration_since(self.started).as_secs() / 60 + 1;
        Some(self.started + Duration::from_secs(minutes * 60) + Duration::from_millis(1))
    }

    pub(super) fn on_tool_calls(&mut self, calls: Vec<ToolCall>, had_audio: bool, now: Instant) {
        let mut needs_response = false;
        for call in calls {
            match self.model.config().tools.kind(&call.name) {
                Some(ToolKind::EndCall) => {
                    self.tell_model(ModelCommand::ToolResult { call_id: &call.call_id, output: r#"{"ok":true}"# });
                    // A goodbye just spoken (in this response, or — GPT-Live, whose tool calls
                    // come apart from its speech — just before) is not asked for twice.
                    let awaiting_goodbye = !self.just_spoke(had_audio, now);
                    if awaiting_goodbye {
                        self.tell_model(ModelCommand::Respond(Some("Say a brief, polite goodbye.")));
                    }
                    self.ending = Some(Ending {
                        deadline: now + END_CALL_GRACE,
                        awaiting_goodbye,
                        reason: EndReason::EndCallTool,
                        transfer_to: None,
                        silent_until: awaiting_goodbye.then(|| now + GOODBYE_START_WAIT),
                    });
                }
                Some(ToolKind::ReportOutcome) => {
                    // The model goes on (says goodbye, or corrects the outcome) once answered.
                    // (The registry has the tool only with a schema.)
                    let checked = self.model.config().tools.outcome().map(|o| o.check(&call.arguments));
                    match checked.unwrap_or_else(|| Err("this call has no outcome_schema".into())) {
                        Ok(outcome) => {
                            self.outputs.push_back(Output::Outcome(outcome));
                            self.tell_model(ModelCommand::ToolResult {
                                call_id: &call.call_id,
                                output: r#"{"ok":true}"#,
                            });
                        }
                        Err(fault) => {
                            let out = serde_json::json!({ "error": fault }).to_string();
                            self.tell_model(ModelCommand::ToolResult { call_id: &call.call_id, output: &out });
                        }
                    }
                    needs_response = true;
                }
                Some(ToolKind::Transfer) => match self.model.config().tools.transfer_target(&call.arguments) {
                    Some(to) => {
                        self.tell_model(ModelCommand::ToolResult { call_id: &call.call_id, output: r#"{"ok":true}"# });
                        // The caller is told (unless the model already said it), then handed over.
                        let awaiting_goodbye = !self.just_spoke(had_audio, now);
                        if awaiting_goodbye {
                            self.tell_model(ModelCommand::Respond(Some(TRANSFER_LINE)));
                        }
                        self.ending = Some(Ending {
                            deadline: now + END_CALL_GRACE,
                            awaiting_goodbye,
                            reason: EndReason::Transferred,
                            transfer_to: Some(to),
                            silent_until: awaiting_goodbye.then(|| now + GOODBYE_START_WAIT),
                        });
                    }
                    None => {
                        let out = r#"{"error":"to must be one of the numbers transfer_call lists"}"#;
                        self.tell_model(ModelCommand::ToolResult { call_id: &call.call_id, output: out });
                        needs_response = true;
                    }
                },
                Some(ToolKind::PressDigits) => {
                    let digits = serde_json::from_str::<serde_json::Value>(&call.arguments)
                        .ok()
                        .and_then(|a| a["digits"].as_str().map(str::to_string))
                        .filter(|d| crate::media::dtmf::valid(d));
                    let out = match digits {
                        Some(d) => {
                            self.press_digits(&d, now);
                            r#"{"ok":true}"#
                        }
                        None => r#"{"error":"digits must be 1 to 32 of 0-9, *, #, A-D, w (a pause)"}"#,
                    };
                    self.tell_model(ModelCommand::ToolResult { call_id: &call.call_id, output: out });
                    needs_response = true;
                }
                Some(ToolKind::User) => {
                    // Answered when its POST is (`on_tool_output`); the model waits for it.
                    let url = self.model.config().tools.url(&call.name).unwrap_or_default().to_string();
                    let timeout = self.model.config().tools.timeout(&call.name);
                    self.tools_awaited += 1;
                    if self.filler.is_none() {
                        self.filler = Some(crate::call::filler::Filler::new(now, self.config.carrier_format));
                    }
                    let ToolCall { call_id, name, arguments } = call;
                    self.outputs.push_back(Output::UserTool { call_id, name, arguments, url, timeout });
                }
                None => {
                    let out = format!(r#"{{"error":"unknown tool {:?}"}}"#, call.name);
                    self.tell_model(ModelCommand::ToolResult { call_id: &call.call_id, output: &out });
                    needs_response = true;
                }
            }
        }
        if needs_response && self.ending.is_none() && self.tools_awaited == 0 {
            self.tell_model(ModelCommand::Respond(None));
        }
    }

    /// The answer to the call's own tool call `call_id` (its JSON, or `{"error": …}`): the model
    /// gets it, and goes on once every tool it called has answered.
    pub fn on_tool_output(&mut self, call_id: &str, output: &str, now: Instant) {
        self.carrier.at(now);
        if self.ended {
            return;
        }
        self.tell_model(ModelCommand::ToolResult { call_id, output });
        self.tools_awaited = self.tools_awaited.saturating_sub(1);
        if self.tools_awaited == 0 {
            self.stop_filler();
        }
        if self.tools_awaited == 0 && self.ending.is_none() {
            self.tell_model(ModelCommand::Respond(None));
        }
    }

    /// Whether the AI had the last word: in the response that called the tool, still playing,
    /// or within [`JUST_SPOKE`] with the caller silent since.
    fn just_spoke(&self, had_audio: bool, now: Instant) -> bool {
        let last_word = self.last_ai_audio.filter(|ai| self.uplink.last_spoke.is_none_or(|caller| caller < *ai));
        had_audio
            || !self.downlink.is_idle()
            || last_word.is_some_and(|t| now.saturating_duration_since(t) < JUST_SPOKE)
    }

    pub(super) fn check_ending(&mut self, now: Instant) {
        let Some(e) = &self.ending else { return };
        let drained = !e.awaiting_goodbye && self.downlink.is_idle();
        // A goodbye asked for that never began: no silence held open for it.
        let never_came = e.silent_until.is_some_and(|t| now >= t) && self.downlink.is_idle();
        if drained || never_came || now >= e.deadline {
            let reason = e.reason.clone();
            let transfer_to = e.transfer_to.clone();
            self.ending = None;
            self.outputs.push_back(match transfer_to {
                Some(to) => Output::Transfer(to),
                None => Output::HangUp,
            });
            self.end(reason);
        }
    }

    /// The beep was never reported: leave the message now.
    pub(super) fn check_beep_wait(&mut self, now: Instant) {
        if self.beep_wait.as_ref().is_some_and(|b| now >= b.deadline)
            && let Some(wait) = self.beep_wait.take()
        {
            self.leave_voicemail(&wait.message, now);
        }
    }
}
