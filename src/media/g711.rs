//! ITU-T G.711 μ-law and A-law, bit-exact, per sample and stateless.
//! Hand-written (about forty lines, no well-kept crate fits better); checked code point by code
//! point against an independent implementation in the tests.

/// μ-law byte for digital silence.
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law byte for digital silence (the positive zero segment, even bits inverted).
pub const ALAW_SILENCE: u8 = 0xD5;

const ULAW_BIAS: i32 = 0x84;
/// The same bias on the 14-bit scale the encoder works in.
const ULAW_BIAS_14: i32 = 33;

/// Decode one μ-law byte to a 16-bit linear sample.
#[inline]
pub const fn ulaw_decode(byte: u8) -> i16 {
    ULAW_TABLE[byte as usize]
}

/// Decode one A-law byte to a 16-bit linear sample.
#[inline]
pub const fn alaw_decode(byte: u8) -> i16 {
    ALAW_TABLE[byte as usize]
}

const fn ulaw_decode_calc(byte: u8) -> i16 {
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 { -magnitude as i16 } else { magnitude as i16 }
}

const fn alaw_decode_calc(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 { (mantissa << 4) + 8 } else { ((mantissa << 4) + 0x108) << (exponent - 1) };
    if a & 0x80 != 0 { magnitude as i16 } else { -magnitude as i16 }
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw { alaw_decode_calc(i as u8) } else { ulaw_decode_calc(i as u8) };
        i += 1;
    }
    t
}

const ULAW_TABLE: [i16; 256] = table(false);
const ALAW_TABLE: [i16; 256] = table(true);

/// Encode one 16-bit linear sample as μ-law, as the ITU-T G.191 reference does: 14-bit
/// magnitude (ones' complement for negatives), bias 33, clipped to the last segment.
#[inline]
pub const fn ulaw_encode(sample: i16) -> u8 {
    let lin = (sample >> 2) as i32;
    let (sign, magnitude) = if sample < 0 { (0x80, !lin) } else { (0x00, lin) };
    let mut biased = magnitude + ULAW_BIAS_14;
    if biased > 0x1FFF {
        biased = 0x1FFF;
    }
    // biased >= 33 has at least six significant bits; each further bit is one segment.
    let segment = (32 - (biased as u32).leading_zeros() - 6) as i32;
    let mantissa = (biased >> (segment + 1)) & 0x0F;
    ((sign | (segment << 4) | mantissa) ^ 0xFF) as u8
}

/// Encode one 16-bit linear sample as A-law (G.711, even bits inverted).
#[inline]
pub const fn alaw_encode(sample: i16) -> u8 {
    let (mut s, sign) = if sample >= 0 { (sample as i32, 0x80) } else { (-(sample as i32) - 1, 0x00) };
    if s > 0x7FFF {
        s = 0x7FFF;
    }
    let code = if s < 0x100 {
        s >> 4
    } else {
        let exponent = 31 - (s as u32).leading_zeros() as i32 - 7;
        (exponent << 4) | ((s >> (exponent + 3)) & 0x0F)
    };
    ((sign | code) ^ 0x55) as u8
}

/// Decode a μ-law buffer into `out` (same length); returns the samples written.
pub fn ulaw_decode_into(input: &[u8], out: &mut [i16]) -> usize {
    let n = input.len().min(out.len());
    for (o, &b) in out[..n].iter_mut().zip(input) {
        *o = ulaw_decode(b);
    }
    n
}

/// Decode an A-law buffer into `out`; returns the samples written.
pub fn alaw_decode_into(input: &[u8], out: &mut [i16]) -> usize {
    let n = input.len().min(out.len());
    for (o, &b) in out[..n].iter_mut().zip(input) {
        *o = alaw_decode(b);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use audio_codec_algorithms as oracle;

    #[test]
    fn ulaw_decode_matches_oracle_for_all_256_codes() {
        for b in 0..=255u8 {
            assert_eq!(ulaw_decode(b), oracle::decode_ulaw(b), "code {b:#04x}");
        }
    }

    #[test]
    fn alaw_decode_matches_oracle_for_all_256_codes() {
        for b in 0..=255u8 {
            assert_eq!(alaw_decode(b), oracle::decode_alaw(b), "code {b:#04x}");
        }
    }

    #[test]
    fn ulaw_encode_matches_oracle_for_every_i16() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), oracle::encode_ulaw(s), "sample {s}");
        }
    }

    #[test]
    fn alaw_encode_matches_oracle_for_every_i16() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(alaw_encode(s), oracle::encode_alaw(s), "sample {s}");
        }
    }

    #[test]
    fn silence_bytes_decode_to_zero_and_codes_round_trip() {
        assert_eq!(ulaw_decode(ULAW_SILENCE), 0);
        assert_eq!(alaw_decode(ALAW_SILENCE), 8);
        for b in 0..=255u8 {
            // 0x7F is μ-law negative zero: it decodes to 0, which encodes as positive zero.
            if b != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(b)), b);
            }
            assert_eq!(alaw_encode(alaw_decode(b)), b);
        }
    }
}
