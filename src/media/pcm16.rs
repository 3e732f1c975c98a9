//! 16-bit linear PCM byte orders: little-endian for OpenAI `audio/pcm`, big-endian (network
//! order, RFC 3551) for L16 on the carrier side. Odd trailing bytes are ignored, never a panic.

/// Decode little-endian PCM16 bytes into `out`; returns samples written.
pub fn le_bytes_to_samples(input: &[u8], out: &mut [i16]) -> usize {
    let n = (input.len() / 2).min(out.len());
    for (o, c) in out[..n].iter_mut().zip(input.chunks_exact(2)) {
        *o = i16::from_le_bytes([c[0], c[1]]);
    }
    n
}

/// Decode big-endian (network order) PCM16 bytes into `out`; returns samples written.
pub fn be_bytes_to_samples(input: &[u8], out: &mut [i16]) -> usize {
    let n = (input.len() / 2).min(out.len());
    for (o, c) in out[..n].iter_mut().zip(input.chunks_exact(2)) {
        *o = i16::from_be_bytes([c[0], c[1]]);
    }
    n
}

/// Append samples as little-endian bytes.
pub fn samples_to_le_bytes(input: &[i16], out: &mut Vec<u8>) {
    for s in input {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// Append samples as big-endian bytes.
pub fn samples_to_be_bytes(input: &[i16], out: &mut Vec<u8>) {
    for s in input {
        out.extend_from_slice(&s.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_orders_round_trip_and_differ() {
        let samples = [0i16, 1, -1, i16::MAX, i16::MIN, 0x1234];
        let mut le = Vec::new();
        let mut be = Vec::new();
        samples_to_le_bytes(&samples, &mut le);
        samples_to_be_bytes(&samples, &mut be);
        assert_eq!(&le[10..12], &[0x34, 0x12]);
        assert_eq!(&be[10..12], &[0x12, 0x34]);
        let mut back = [0i16; 6];
        assert_eq!(le_bytes_to_samples(&le, &mut back), 6);
        assert_eq!(back, samples);
        assert_eq!(be_bytes_to_samples(&be, &mut back), 6);
        assert_eq!(back, samples);
    }

    #[test]
    fn odd_trailing_byte_is_ignored() {
        let mut out = [0i16; 4];
        assert_eq!(le_bytes_to_samples(&[1, 0, 7], &mut out), 1);
        assert_eq!(out[0], 1);
    }
}
