//! A carrier session with the recording tap on it: everything the call core receives from the
//! carrier and sends to it passes here, so the caller's audio, the audio sent to play (the AI,
//! the filler, in-band keys) and every `clear` reach the [`Tap`] whichever path sent them. The
//! core tells it the time at each of its entry points (sans-IO: no clock is read here).

use std::time::Instant;

use super::tap::Tap;
use crate::media::resample::ResampleSetupError;
use crate::media::transcode::StreamFormat;
use crate::providers::{CarrierCommand, CarrierEvent, CarrierSession};

/// Interleaved samples for the recording, starting at a sample index.
pub type Piece = (u64, Vec<u8>);

pub struct Tapped<C> {
    inner: C,
    tap: Option<Tap>,
    now: Instant,
}

impl<C: CarrierSession> Tapped<C> {
    pub fn new(inner: C, now: Instant) -> Tapped<C> {
        Tapped { inner, tap: None, now }
    }

    /// Starts recording at `now`.
    pub fn record(&mut self, format: StreamFormat, now: Instant) -> Result<(), ResampleSetupError> {
        self.tap = Some(Tap::new(format, now)?);
        Ok(())
    }

    /// The time of what the core is doing now.
    pub fn at(&mut self, now: Instant) {
        self.now = now;
    }

    /// Audio that became final, once there is enough of it.
    pub fn take(&mut self, now: Instant) -> Option<Piece> {
        let tap = self.tap.as_mut()?;
        let mut pcm = Vec::new();
        tap.take(now, &mut pcm).map(|at| (at, pcm))
    }

    /// The rest of the recording; the tap is done.
    pub fn finish(&mut self, now: Instant) -> Option<Piece> {
        let mut tap = self.tap.take()?;
        let mut pcm = Vec::new();
        let at = tap.finish(now, &mut pcm);
        Some((at, pcm))
    }
}

impl<C: CarrierSession> CarrierSession for Tapped<C> {
    fn receive<'s>(&'s mut self, text: &str) -> CarrierEvent<'s> {
        let event = self.inner.receive(text);
        if let (CarrierEvent::Media { payload }, Some(tap)) = (&event, self.tap.as_mut()) {
            tap.caller_audio(payload, self.now);
        }
        event
    }

    fn encode(&mut self, cmd: CarrierCommand<'_>) -> Option<String> {
        let observed = match cmd {
            CarrierCommand::Media(audio) => Some(Some(audio)),
            CarrierCommand::Clear => Some(None),
            CarrierCommand::Mark(_) => None,
        };
        let text = self.inner.encode(cmd)?;
        match (observed, self.tap.as_mut()) {
            (Some(Some(audio)), Some(tap)) => tap.ai_audio(audio, self.now),
            (Some(None), Some(tap)) => tap.cut(self.now),
            _ => {}
        }
        Some(text)
    }

    fn sends_dtmf(&self) -> bool {
        self.inner.sends_dtmf()
    }

    fn max_frames_per_message(&self) -> usize {
        self.inner.max_frames_per_message()
    }

    fn messages_missing(&self) -> u64 {
        self.inner.messages_missing()
    }

    fn flush_held(&mut self) -> &[u8] {
        let held = self.inner.flush_held();
        if let Some(tap) = self.tap.as_mut()
            && !held.is_empty()
        {
            tap.caller_audio(held, self.now);
        }
        held
    }
}
