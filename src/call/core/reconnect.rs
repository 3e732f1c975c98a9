//! What a call does when the model socket drops mid-call (reliability.md row 4): the caller stops
//! hearing the lost answer, their audio is held (bounded), and a new session gets the
//! conversation so far as text and says it is back.

use std::time::Instant;

use super::{CallCore, EndReason, Output};
use crate::call::transcript::Speaker;
use crate::model::{HistoryLine, ModelCommand};
use crate::providers::CarrierSession;

/// What the new session is asked to say first, so the caller is not left in silence.
const RESUME: &str = "The line dropped for a moment. In a few words, tell the caller you are back, then continue \
     the conversation where it left off.";

impl<C: CarrierSession> CallCore<C> {
    /// The model socket is gone. `true` when a new session should be tried: playback is cut
    /// (what played counts as heard) and caller audio waits in the ring meanwhile. A call that
    /// was already ending (goodbye, voicemail) just ends.
    pub fn on_model_lost(&mut self, now: Instant) -> bool {
        if self.ended {
            return false;
        }
        if self.ending.is_some() {
            self.end(EndReason::ModelLost);
            return false;
        }
        // The same cut as a barge-in; its truncations (and anything else queued for the old
        // session) are dropped with the session.
        self.cut_playback(now);
        self.outputs.retain(|o| !matches!(o, Output::Model(_)));
        self.model = crate::model::open(self.model.config().clone());
        self.model_connected = false;
        self.discarded.clear();
        self.responses_with_audio.clear();
        self.voicemail_pending = None;
        self.awaiting_response = None;
        self.caller_mid_turn = false;
        self.rotate_at = None;
        true
    }

    /// A new session replaces the lost one: configured, told the conversation so far, and asked
    /// to say it is back. The held caller audio follows.
    pub fn on_model_reconnected(&mut self) {
        self.continue_conversation(Some(ModelCommand::Respond(Some(RESUME))));
    }

    /// The session is old (reliability row 6) and the line quiet: it is closed, nothing is cut.
    /// `false` when the call is over anyway.
    pub fn on_model_rotated(&mut self) -> bool {
        if self.ended {
            return false;
        }
        self.outputs.retain(|o| !matches!(o, Output::Model(_) | Output::ModelStart(_)));
        self.model = crate::model::open(self.model.config().clone());
        self.model_connected = false;
        self.discarded.clear();
        self.responses_with_audio.clear();
        self.awaiting_response = None;
        self.caller_mid_turn = false;
        true
    }

    /// The new session after a rotation: the conversation so far, and nothing said (the caller
    /// hears no seam).
    pub fn on_model_rotated_in(&mut self) {
        self.continue_conversation(None);
    }

    fn continue_conversation(&mut self, first: Option<ModelCommand<'_>>) {
        let transcript = std::mem::take(&mut self.transcript);
        let history: Vec<HistoryLine<'_>> = transcript
            .entries
            .iter()
            .map(|e| HistoryLine { from_caller: e.speaker == Speaker::Caller, text: &e.text })
            .collect();
        self.start_model(&history, first);
        drop(history);
        self.transcript = transcript;
    }

    /// Nothing plays or is due, no tool is awaited, the call is not ending, and the caller has
    /// been quiet for a moment: a session can be swapped without anyone hearing it.
    pub(super) fn is_quiet(&self, now: Instant) -> bool {
        self.downlink.is_idle()
            && self.model.active_response().is_none()
            && self.awaiting_response.is_none()
            && !self.caller_mid_turn
            && self.tools_awaited == 0
            && self.ending.is_none()
            && self.filler.is_none()
            && self.uplink.last_spoke.is_none_or(|t| now.saturating_duration_since(t) >= super::QUIET_FOR)
    }
}
