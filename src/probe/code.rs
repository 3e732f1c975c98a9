//! Frame identities as tone sets: every probe frame sounds 13 of 26 tones, and which 13 is the
//! frame's identity (a constant-weight code: C(26, 13) = 10,400,600 words, 2^23 of them used).
//! A constant weight gives every frame the same loudness and lets the detector reject anything
//! that is not exactly 13 clear tones, so a mangled frame is never mistaken for another.

/// Tones in the alphabet.
pub const TONES: usize = 26;
/// Tones sounding in every frame.
pub const WEIGHT: usize = 13;
/// A frame names its stream (a replayed call, or a mock model connection) modulo this.
pub const STREAMS: u32 = 1 << 12;
/// And its index in that stream modulo this (2048 frames: 41 s; receivers unwrap it).
pub const INDEX_WRAP: u32 = 1 << 11;

/// Binomial coefficients C(n, k) for n ≤ 26, k ≤ 13.
const BINOMIAL: [[u32; WEIGHT + 1]; TONES + 1] = {
    let mut t = [[0u32; WEIGHT + 1]; TONES + 1];
    let mut n = 0;
    while n <= TONES {
        t[n][0] = 1;
        let mut k = 1;
        while k <= WEIGHT && k <= n {
            t[n][k] = t[n - 1][k - 1] + if k < n { t[n - 1][k] } else { 0 };
            k += 1;
        }
        n += 1;
    }
    t
};

/// What a probe frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameId {
    /// The stream, modulo [`STREAMS`].
    pub stream: u16,
    /// The frame's index in its stream, modulo [`INDEX_WRAP`].
    pub index: u16,
}

impl FrameId {
    pub fn new(stream: u32, index: u32) -> FrameId {
        FrameId { stream: (stream % STREAMS) as u16, index: (index % INDEX_WRAP) as u16 }
    }

    /// The tones that sound (bit i: tone i), exactly [`WEIGHT`] of them.
    pub fn tones(self) -> u32 {
        // The combinatorial number system: the largest C(i, r) that fits picks the next tone.
        let mut value = self.stream as u32 * INDEX_WRAP + self.index as u32;
        let mut mask = 0u32;
        let mut r = WEIGHT;
        for i in (0..TONES).rev() {
            if r == 0 {
                break;
            }
            let c = BINOMIAL[i][r];
            if value >= c {
                mask |= 1 << i;
                value -= c;
                r -= 1;
            }
        }
        mask
    }

    /// The identity a tone set names; `None` unless exactly [`WEIGHT`] tones sound and they
    /// name a used word.
    pub fn from_tones(mask: u32) -> Option<FrameId> {
        if mask.count_ones() as usize != WEIGHT || mask >> TONES != 0 {
            return None;
        }
        let mut value = 0u32;
        let mut r = 0;
        for (i, row) in BINOMIAL.iter().enumerate().take(TONES) {
            if mask & (1 << i) != 0 {
                r += 1;
                value += row[r];
            }
        }
        (value < STREAMS * INDEX_WRAP)
            .then_some(FrameId { stream: (value / INDEX_WRAP) as u16, index: (value % INDEX_WRAP) as u16 })
    }
}

/// The full index of a frame whose wrapped index is `raw`, given the last full index seen on
/// the same stream (frames only move forward, by less than [`INDEX_WRAP`] at a time).
pub fn unwrap_index(last: Option<u32>, raw: u16) -> u32 {
    match last {
        None => raw as u32,
        Some(last) => last + (raw as u32 + INDEX_WRAP - last % INDEX_WRAP) % INDEX_WRAP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_space_holds_every_stream_and_index() {
        assert_eq!(BINOMIAL[26][13], 10_400_600);
        assert!(STREAMS * INDEX_WRAP <= BINOMIAL[26][13]);
    }

    #[test]
    fn every_identity_round_trips_through_its_tones_and_no_two_share_them() {
        let mut seen = std::collections::HashSet::new();
        for stream in (0..STREAMS).step_by(37).chain([STREAMS - 1]) {
            for index in (0..INDEX_WRAP).step_by(13).chain([INDEX_WRAP - 1]) {
                let id = FrameId::new(stream, index);
                let tones = id.tones();
                assert_eq!(tones.count_ones(), 13, "{id:?}");
                assert_eq!(FrameId::from_tones(tones), Some(id));
                assert!(seen.insert(tones), "{id:?} shares its tones");
            }
        }
    }

    #[test]
    fn a_tone_too_many_or_too_few_is_no_identity() {
        let tones = FrameId::new(7, 9).tones();
        let missing = tones & (tones - 1);
        assert_eq!(FrameId::from_tones(missing), None);
        let extra = tones | 1 << (!tones).trailing_zeros();
        assert_eq!(FrameId::from_tones(extra), None);
        assert_eq!(FrameId::from_tones(0), None);
    }

    #[test]
    fn indexes_unwrap_forward() {
        assert_eq!(unwrap_index(None, 5), 5);
        assert_eq!(unwrap_index(Some(2046), 1), 2049);
        assert_eq!(unwrap_index(Some(4100), 4), 4100);
        assert_eq!(unwrap_index(Some(4100), 10), 4106);
    }
}
