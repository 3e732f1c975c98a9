//! A small reorder window for Telnyx media, whose frames are not guaranteed to arrive in order:
//! frames come out by sequence number; duplicates and frames older than what was already played
//! are dropped; a gap the window cannot wait for is skipped. Pure; slots preallocated.

/// What the window did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Accepted; frames may be ready.
    Accepted,
    /// Same sequence number as one already held or played.
    Duplicate,
    /// Older than what was already played.
    Late,
}

/// Where ready frames go, one frame at a time (packet codecs decode each on its own).
pub trait Emit {
    fn emit(&mut self, frame: &[u8]);
}

/// Raw sample codecs: frames simply follow each other.
impl Emit for Vec<u8> {
    fn emit(&mut self, frame: &[u8]) {
        self.extend_from_slice(frame);
    }
}

#[derive(Debug)]
pub struct Reorder {
    slots: Vec<Option<(u64, Vec<u8>)>>,
    /// Next sequence number to emit (`None` until the first frame).
    next: Option<u64>,
    pub duplicates: u64,
    pub late: u64,
    /// Sequence numbers skipped because the window filled before they came.
    pub lost: u64,
}

impl Reorder {
    /// A window holding up to `window` frames ahead of the next expected one; the first frame
    /// seen is taken as the first of the stream.
    pub fn new(window: usize) -> Reorder {
        Reorder { slots: (0..window.max(1)).map(|_| None).collect(), next: None, duplicates: 0, late: 0, lost: 0 }
    }

    /// A window whose stream is numbered from `first` (Telnyx media chunks count from 1), so
    /// the first frame may itself arrive late.
    pub fn expecting(window: usize, first: u64) -> Reorder {
        Reorder { next: Some(first), ..Reorder::new(window) }
    }

    fn slot(&self, seq: u64) -> usize {
        (seq % self.slots.len() as u64) as usize
    }

    /// Offers frame `seq`; ready frames go to `out` in order.
    pub fn push(&mut self, seq: u64, payload: &[u8], out: &mut impl Emit) -> Pushed {
        let next = *self.next.get_or_insert(seq);
        if seq < next {
            self.late += 1;
            return Pushed::Late;
        }
        // Too far ahead: play what we have and skip the gap until `seq` fits.
        while seq >= self.next.unwrap_or(next) + self.slots.len() as u64 {
            self.advance(out);
        }
        let i = self.slot(seq);
        match &mut self.slots[i] {
            Some((held, _)) if *held == seq => {
                self.duplicates += 1;
                return Pushed::Duplicate;
            }
            slot => {
                let buf = match slot.take() {
                    Some((_, mut b)) => {
                        b.clear();
                        b
                    }
                    None => Vec::with_capacity(payload.len()),
                };
                let mut buf = buf;
                buf.extend_from_slice(payload);
                *slot = Some((seq, buf));
            }
        }
        self.drain(out);
        Pushed::Accepted
    }

    /// Emits the contiguous run starting at the next expected frame.
    fn drain(&mut self, out: &mut impl Emit) {
        while let Some(next) = self.next {
            let i = self.slot(next);
            match &self.slots[i] {
                Some((s, _)) if *s == next => {
                    if let Some((_, b)) = &self.slots[i] {
                        out.emit(b);
                    }
                    self.slots[i] = None;
                    self.next = Some(next + 1);
                }
                _ => return,
            }
        }
    }

    /// The stream ended: emits every frame still held, in order, giving up on the gaps.
    pub fn flush(&mut self, out: &mut impl Emit) {
        while self.slots.iter().any(Option::is_some) {
            self.advance(out);
        }
    }

    /// Gives up on the next expected frame (counted lost) and emits what follows it.
    fn advance(&mut self, out: &mut impl Emit) {
        if let Some(next) = self.next {
            let i = self.slot(next);
            if !matches!(&self.slots[i], Some((s, _)) if *s == next) {
                self.lost += 1;
                self.next = Some(next + 1);
            }
            self.drain(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any permutation confined to the window, with duplicates, comes out complete and in order.
        #[test]
        fn permutations_within_the_window_come_out_in_order(n in 1u64..60, w in 2usize..6, seed in any::<u64>(), dups in 0usize..10) {
            // Shuffle within blocks of `w` (a bounded displacement), then insert duplicates.
            let mut order: Vec<u64> = (1..=n).collect();
            let mut s = seed;
            for block in order.chunks_mut(w) {
                for i in (1..block.len()).rev() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    block.swap(i, (s >> 33) as usize % (i + 1));
                }
            }
            for d in 0..dups {
                let at = (seed as usize + d * 7) % order.len();
                let v = order[at];
                order.insert(at + 1, v);
            }
            // Frames are numbered 1..=n and the window knows it: frame 1 may come late too.
            let mut r = Reorder::expecting(2 * w, 1);
            let mut out = Vec::new();
            for seq in &order {
                r.push(*seq, &[*seq as u8], &mut out);
            }
            let expect: Vec<u8> = (1..=n).map(|x| x as u8).collect();
            prop_assert_eq!(out, expect);
            prop_assert_eq!(r.lost, 0);
            prop_assert_eq!(r.duplicates + r.late, order.len() as u64 - n, "every extra copy dropped");
        }
    }

    #[test]
    fn late_and_duplicate_frames_are_dropped_and_gaps_skipped() {
        let mut r = Reorder::new(3);
        let mut out = Vec::new();
        assert_eq!(r.push(10, b"a", &mut out), Pushed::Accepted);
        assert_eq!(r.push(12, b"c", &mut out), Pushed::Accepted);
        assert_eq!(out, b"a", "12 waits for 11");
        assert_eq!(r.push(12, b"c", &mut out), Pushed::Duplicate);
        assert_eq!(r.push(11, b"b", &mut out), Pushed::Accepted);
        assert_eq!(out, b"abc");
        assert_eq!(r.push(11, b"b", &mut out), Pushed::Late);
        // 13 never comes: 17 does not fit the window, so 13 is given up.
        r.push(14, b"e", &mut out);
        r.push(17, b"h", &mut out);
        assert_eq!(out, b"abce");
        assert_eq!(r.lost, 1, "13 was given up; 15 still fits the window");
        assert_eq!((r.duplicates, r.late), (1, 1));
    }
}
