//! Telnyx `media_format`s: which codecs and rates are carried, how each travels (samples, or
//! Opus packets decoded at the edge) and the format the bridge sees. Pure.

use crate::media::{Codec, SampleRate, StreamFormat};

/// How a `media_format` travels: raw samples, or Opus packets (decoded here to 16-bit PCM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Samples(StreamFormat),
    Opus(SampleRate),
}

impl Wire {
    /// The format the bridge sees: Opus is decoded at the carrier edge to little-endian PCM.
    pub fn bridge_format(self) -> StreamFormat {
        match self {
            Wire::Samples(f) => f,
            Wire::Opus(rate) => StreamFormat { codec: Codec::PcmLe, rate },
        }
    }
}

/// The wire format for a `media_format`; `None` for codecs not carried (G.722, AMR-WB).
pub fn wire_format(encoding: &str, sample_rate: Option<u32>) -> Option<Wire> {
    let rate = |default: SampleRate| sample_rate.and_then(SampleRate::new).unwrap_or(default);
    let narrow_or_wide = |r: SampleRate| r == SampleRate::HZ_8000 || r == SampleRate::HZ_16000;
    match encoding.to_ascii_uppercase().as_str() {
        "PCMU" | "AUDIO/X-MULAW" => Some(Wire::Samples(StreamFormat::PCMU_8K)),
        "PCMA" | "AUDIO/X-ALAW" => Some(Wire::Samples(StreamFormat::PCMA_8K)),
        "L16" => {
            let r = rate(SampleRate::HZ_16000);
            narrow_or_wide(r).then_some(Wire::Samples(StreamFormat { codec: Codec::L16, rate: r }))
        }
        "OPUS" => {
            let r = rate(SampleRate::HZ_16000);
            narrow_or_wide(r).then_some(Wire::Opus(r))
        }
        _ => None,
    }
}

/// The format the bridge sees for a `media_format`.
pub fn stream_format(encoding: &str, sample_rate: Option<u32>) -> Option<StreamFormat> {
    wire_format(encoding, sample_rate).map(Wire::bridge_format)
}
