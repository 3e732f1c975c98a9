//! The 44-byte header of a 16-bit PCM WAV file. Written by hand: the recordings are streamed by an
//! async task over many calls at once, and the crates that write WAV (hound) want a blocking
//! `Write + Seek` for the whole file; the header itself is fixed (RIFF, `fmt `, `data`), and
//! the test suite reads every recording back with hound.

/// Bytes before the samples.
pub const HEADER_LEN: u64 = 44;

/// The header of a file holding `data_len` bytes of 16-bit samples.
pub fn header(channels: u16, rate: u32, data_len: u64) -> [u8; 44] {
    // A WAV file's sizes are 32-bit: a recording longer than that (74 hours at 8 kHz stereo) is
    // marked as the largest size, which readers take as "to the end of the file".
    let data = u32::try_from(data_len).unwrap_or(u32::MAX - 36);
    let block = channels * 2;
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hound_reads_what_we_write() {
        let samples: Vec<i16> = (0..160).map(|i| (i * 100 - 8000) as i16).collect();
        let mut file = header(2, 8000, samples.len() as u64 * 2).to_vec();
        for s in &samples {
            file.extend_from_slice(&s.to_le_bytes());
        }
        let reader = hound::WavReader::new(std::io::Cursor::new(file)).unwrap();
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        let read: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(read, samples);
    }
}
