//! The model → caller direction of one call, sans-IO: model audio transcoded to the carrier
//! format, cut into 20 ms frames, held in a bounded playout ring and released within the playout
//! lead as `media` + `mark` batches (ADR 0001); a barge-in cuts it. The core owns one.

use std::time::{Duration, Instant};

use super::playback::{Cut, MarkEcho, Playback};
use crate::media::reframe::Reframer;
use crate::media::resample::ResampleSetupError;
use crate::media::ring::Ring;
use crate::media::transcode::{StreamFormat, Transcoder};
use crate::providers::CarrierCommand;

/// Model audio held for the caller beyond the playout lead; overflow refuses the newest frames.
pub const PLAYOUT_BUFFER: Duration = Duration::from_secs(20);
/// Once frames are held, release them in steps of this much (fewer timer wake-ups).
const RELEASE_HYSTERESIS: Duration = Duration::from_millis(200);
/// Frames sent as one `media` message with one mark (fewer messages and syscalls; marks every
/// 100 ms, with the clock interpolating between them).
pub const MAX_BATCH_FRAMES: usize = 5;

/// Where a carrier command goes; returns `false` when nothing may be sent yet (no stream).
pub trait SendCommand: FnMut(CarrierCommand<'_>, Option<Instant>) -> bool {}
impl<F: FnMut(CarrierCommand<'_>, Option<Instant>) -> bool> SendCommand for F {}

#[derive(Debug)]
pub struct Downlink {
    carrier: StreamFormat,
    model: StreamFormat,
    lead: Duration,
    transcoder: Transcoder,
    scratch: Vec<u8>,
    reframer: Reframer,
    playout: Ring<u8>,
    frame_buf: Vec<u8>,
    mark_name: String,
    playback: Playback,
    holding: bool,
    frames_sent: u64,
    refused_bytes: u64,
    /// Frames per `media` message (the carrier may allow fewer than [`MAX_BATCH_FRAMES`]).
    batch_frames: usize,
}

impl Downlink {
    pub fn new(
        carrier: StreamFormat,
        model: StreamFormat,
        lead: Duration,
        max_frames_per_message: usize,
    ) -> Result<Downlink, ResampleSetupError> {
        let batch_frames = max_frames_per_message.clamp(1, MAX_BATCH_FRAMES);
        let transcoder = Transcoder::new(model, carrier)?;
        let frame = carrier.frame_bytes_20ms();
        Ok(Downlink {
            playback: Playback::new(carrier.rate, model.rate, transcoder.delay()),
            // Grows to the largest delta once (nothing held for a call that never needs it).
            scratch: Vec::new(),
            transcoder,
            reframer: Reframer::new(frame),
            playout: Ring::new(carrier.bytes_for_ms(PLAYOUT_BUFFER.as_millis() as u64), frame),
            frame_buf: vec![0; frame * batch_frames],
            batch_frames,
            mark_name: String::with_capacity(24),
            holding: false,
            frames_sent: 0,
            refused_bytes: 0,
            carrier,
            model,
            lead,
        })
    }

    /// Signal delay of the model → caller path (resampler).
    pub fn delay(&self) -> Duration {
        self.transcoder.delay()
    }

    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// Audio refused because the playout ring was full.
    pub fn refused_bytes(&self) -> u64 {
        self.refused_bytes
    }

    /// Nothing queued, nothing unconfirmed at the carrier.
    pub fn is_idle(&self) -> bool {
        !self.playback.is_playing() && self.playout.is_empty() && self.reframer.pending() == 0
    }

    /// When held audio must be released next.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.holding.then(|| {
            let target = self.low_water();
            now + self.playback.ahead(now).saturating_sub(target).max(Duration::from_millis(5))
        })
    }

    /// Where held audio starts flowing again: the lead less the hysteresis (at most half the
    /// lead, so a small lead still releases).
    fn low_water(&self) -> Duration {
        self.lead.saturating_sub(RELEASE_HYSTERESIS.min(self.lead / 2))
    }

    /// Changes the playout lead (a full-duplex model keeps it small: what is queued at the
    /// carrier keeps playing until the bridge hears the model yielded).
    pub fn set_lead(&mut self, lead: Duration) {
        self.lead = lead;
    }

    /// A delta of model audio for an item; sent at once as far as the lead allows.
    pub fn audio(&mut self, response_id: &str, item_id: &str, audio: &[u8], now: Instant, send: &mut impl SendCommand) {
        self.playback.on_model_audio(response_id, item_id, self.model.samples_in_bytes(audio.len()));
        self.scratch.clear();
        self.transcoder.process(audio, &mut self.scratch);
        self.queue(false);
        self.release(now, Some(now), send);
    }

    /// The item's audio is complete: push the resampler's tail out and pad the last frame.
    pub fn audio_done(&mut self, now: Instant, send: &mut impl SendCommand) {
        self.scratch.clear();
        self.transcoder.flush(&mut self.scratch);
        self.queue(true);
        self.release(now, Some(now), send);
    }

    pub fn on_mark(&mut self, name: &str, now: Instant, send: &mut impl SendCommand) -> MarkEcho {
        let echo = self.playback.on_mark(name, now);
        self.release(now, None, send);
        echo
    }

    pub fn tick(&mut self, now: Instant, send: &mut impl SendCommand) {
        self.release(now, None, send);
    }

    /// Barge-in: what was heard of each item; everything queued is forgotten (the caller's
    /// `clear` drops what the carrier holds). The resampler's tail of the cancelled answer is
    /// pushed out and dropped, its state kept.
    pub fn cut(&mut self, now: Instant) -> Cut {
        let cut = self.playback.barge_in(now);
        self.playout.clear();
        self.reframer.reset();
        self.holding = false;
        self.scratch.clear();
        self.transcoder.flush(&mut self.scratch);
        cut
    }

    /// Reframes `scratch` into the playout ring, refusing whole frames when it is full; the
    /// playback accounting learns how much of the current item entered and how much was refused.
    fn queue(&mut self, end_of_item: bool) {
        let Self { reframer, playout, scratch, refused_bytes, carrier, playback, .. } = self;
        let pending = reframer.pending();
        let pad = if end_of_item && pending > 0 { reframer.frame_len() - pending } else { 0 };
        playback.on_carrier_queued(carrier.samples_in_bytes(scratch.len() + pad));
        let mut refused = 0usize;
        let mut push = |f: &[u8]| {
            let pushed = playout.push_bounded(f);
            refused += f.len() - pushed;
        };
        reframer.push(scratch, &mut push);
        if end_of_item {
            reframer.flush_padded(carrier.codec.silence_byte(), &mut push);
        }
        *refused_bytes += refused as u64;
        playback.on_carrier_refused(carrier.samples_in_bytes(refused));
    }

    /// Sends held frames while the caller is less than the lead behind.
    fn release(&mut self, now: Instant, origin: Option<Instant>, send: &mut impl SendCommand) {
        let frame = self.carrier.frame_bytes_20ms();
        let low_water = if self.holding { self.low_water() } else { self.lead };
        if self.playback.ahead(now) >= low_water && !self.playout.is_empty() {
            self.holding = true;
            return;
        }
        while self.playout.len() >= frame {
            // Whole 20 ms frames, up to a batch, as far as the lead allows.
            let room = self.lead.saturating_sub(self.playback.ahead(now));
            let room_frames = self.carrier.bytes_for_ms(room.as_millis() as u64) / frame;
            let frames = (self.playout.len() / frame).min(self.batch_frames).min(room_frames);
            if frames == 0 {
                break;
            }
            let n = self.playout.pop_into(&mut self.frame_buf[..frames * frame]);
            if !send(CarrierCommand::Media(&self.frame_buf[..n]), origin) {
                break;
            }
            self.playback.on_frame_sent(self.carrier.samples_in_bytes(n), now, &mut self.mark_name);
            send(CarrierCommand::Mark(&self.mark_name), None);
            self.frames_sent += frames as u64;
        }
        self.holding = !self.playout.is_empty();
    }
}
