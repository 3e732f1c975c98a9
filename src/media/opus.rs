//! Opus for carrier streams (Telnyx `OPUS` at 8 or 16 kHz): one packet ↔ 20 ms of 16-bit
//! little-endian PCM, stateful per call and direction. libopus through audiopus, built only
//! with the `opus` feature; without it every call is refused with [`OpusError::NotBuilt`].

use super::SampleRate;

/// Why Opus audio could not be coded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    #[error("this build has no Opus (rebuild with `--features opus`)")]
    NotBuilt,
    #[error("Opus does not run at {0} Hz here (8000 or 16000)")]
    Rate(u32),
    #[error("Opus: {0}")]
    Codec(String),
}

/// Largest packet we produce or accept (RFC 6716 caps a frame at 1275 bytes).
pub const MAX_PACKET: usize = 1500;

#[cfg(feature = "opus")]
mod imp {
    use audiopus::coder::{Decoder, Encoder};
    use audiopus::packet::Packet;
    use audiopus::{Application, Channels, MutSignals};

    use super::{MAX_PACKET, OpusError, SampleRate};

    /// One call's Opus decoder and encoder.
    pub struct OpusCodec {
        decoder: Decoder,
        encoder: Encoder,
        pcm: Vec<i16>,
        packet: Vec<u8>,
    }

    impl std::fmt::Debug for OpusCodec {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OpusCodec").finish_non_exhaustive()
        }
    }

    fn err(e: audiopus::Error) -> OpusError {
        OpusError::Codec(e.to_string())
    }

    impl OpusCodec {
        pub fn new(rate: SampleRate) -> Result<OpusCodec, OpusError> {
            let r = match rate.hz() {
                8000 => audiopus::SampleRate::Hz8000,
                16000 => audiopus::SampleRate::Hz16000,
                other => return Err(OpusError::Rate(other)),
            };
            Ok(OpusCodec {
                decoder: Decoder::new(r, Channels::Mono).map_err(err)?,
                encoder: Encoder::new(r, Channels::Mono, Application::Voip).map_err(err)?,
                // 120 ms is the longest packet Opus decodes.
                pcm: vec![0; rate.samples_in_ms(120) as usize],
                packet: vec![0; MAX_PACKET],
            })
        }

        /// Decodes one packet, appending little-endian PCM to `out`.
        pub fn decode(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), OpusError> {
            let input = Packet::try_from(packet).map_err(err)?;
            let output = MutSignals::try_from(&mut self.pcm[..]).map_err(err)?;
            let n = self.decoder.decode(Some(input), output, false).map_err(err)?;
            for s in &self.pcm[..n] {
                out.extend_from_slice(&s.to_le_bytes());
            }
            Ok(())
        }

        /// Encodes 20 ms of little-endian PCM into one packet.
        pub fn encode(&mut self, pcm_le: &[u8]) -> Result<&[u8], OpusError> {
            let samples = pcm_le.len() / 2;
            for (i, c) in pcm_le.chunks_exact(2).enumerate() {
                self.pcm[i] = i16::from_le_bytes([c[0], c[1]]);
            }
            let n = self.encoder.encode(&self.pcm[..samples], &mut self.packet).map_err(err)?;
            Ok(&self.packet[..n])
        }
    }
}

#[cfg(not(feature = "opus"))]
mod imp {
    use super::{OpusError, SampleRate};

    /// Opus is not built in: no call can get here.
    #[derive(Debug)]
    pub enum OpusCodec {}

    impl OpusCodec {
        pub fn new(_rate: SampleRate) -> Result<OpusCodec, OpusError> {
            Err(OpusError::NotBuilt)
        }

        pub fn decode(&mut self, _packet: &[u8], _out: &mut Vec<u8>) -> Result<(), OpusError> {
            match *self {}
        }

        pub fn encode(&mut self, _pcm_le: &[u8]) -> Result<&[u8], OpusError> {
            match *self {}
        }
    }
}

pub use imp::OpusCodec;

#[cfg(all(test, feature = "opus"))]
mod tests {
    use super::*;

    #[test]
    fn a_tone_survives_encode_and_decode() {
        let rate = SampleRate::HZ_16000;
        let mut tx = OpusCodec::new(rate).unwrap();
        let mut rx = OpusCodec::new(rate).unwrap();
        let mut sent = Vec::new();
        let mut got = Vec::new();
        for f in 0..50 {
            let frame: Vec<u8> = (0..320)
                .flat_map(|i| {
                    let t = (f * 320 + i) as f64 / 16000.0;
                    (((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16).to_le_bytes()
                })
                .collect();
            sent.extend_from_slice(&frame);
            let packet = tx.encode(&frame).unwrap().to_vec();
            assert!(packet.len() < 320, "compressed: {} bytes", packet.len());
            rx.decode(&packet, &mut got).unwrap();
        }
        assert_eq!(got.len(), sent.len(), "20 ms in, 20 ms out");
        let energy =
            |b: &[u8]| b.chunks_exact(2).map(|c| (i16::from_le_bytes([c[0], c[1]]) as f64).powi(2)).sum::<f64>();
        let ratio = energy(&got[16000..]) / energy(&sent[16000..]);
        assert!((0.5..2.0).contains(&ratio), "the tone comes back at about its level: {ratio}");
    }

    #[test]
    fn other_rates_are_refused() {
        assert_eq!(OpusCodec::new(SampleRate::HZ_24000).unwrap_err(), OpusError::Rate(24000));
    }
}
