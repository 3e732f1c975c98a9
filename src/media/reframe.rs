//! Fixed-size reframing: any byte stream in, whole frames out (20 ms for telephony), with the
//! partial remainder kept for the next push. One preallocated frame buffer; no allocation.

/// Cuts a byte stream into frames of exactly `frame_len` bytes.
#[derive(Debug)]
pub struct Reframer {
    frame: Box<[u8]>,
    filled: usize,
}

impl Reframer {
    pub fn new(frame_len: usize) -> Reframer {
        Reframer { frame: vec![0; frame_len.max(1)].into_boxed_slice(), filled: 0 }
    }

    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// Bytes waiting for a frame to fill.
    pub fn pending(&self) -> usize {
        self.filled
    }

    /// Feeds `input`; calls `emit` once per completed frame, in order.
    pub fn push(&mut self, mut input: &[u8], mut emit: impl FnMut(&[u8])) {
        let n = self.frame.len();
        if self.filled > 0 {
            let take = (n - self.filled).min(input.len());
            self.frame[self.filled..self.filled + take].copy_from_slice(&input[..take]);
            self.filled += take;
            input = &input[take..];
            if self.filled < n {
                return;
            }
            emit(&self.frame);
            self.filled = 0;
        }
        let mut chunks = input.chunks_exact(n);
        for c in &mut chunks {
            emit(c);
        }
        let rest = chunks.remainder();
        self.frame[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// Completes a partial frame with `pad` bytes and emits it (end of an answer).
    pub fn flush_padded(&mut self, pad: u8, mut emit: impl FnMut(&[u8])) {
        if self.filled > 0 {
            self.frame[self.filled..].fill(pad);
            emit(&self.frame);
            self.filled = 0;
        }
    }

    /// Drops a partial frame (barge-in).
    pub fn reset(&mut self) {
        self.filled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the split of the input, the frames are the input cut every `n` bytes,
        /// and the padded flush completes the tail.
        #[test]
        fn frames_are_the_concatenated_input(n in 1usize..200, parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..500), 0..10)) {
            let mut r = Reframer::new(n);
            let mut frames: Vec<Vec<u8>> = Vec::new();
            for p in &parts {
                r.push(p, |f| frames.push(f.to_vec()));
            }
            let all: Vec<u8> = parts.concat();
            prop_assert_eq!(frames.len(), all.len() / n);
            prop_assert_eq!(r.pending(), all.len() % n);
            for (i, f) in frames.iter().enumerate() {
                prop_assert_eq!(&f[..], &all[i * n..(i + 1) * n]);
            }
            r.flush_padded(0xFF, |f| frames.push(f.to_vec()));
            let flat: Vec<u8> = frames.concat();
            prop_assert_eq!(&flat[..all.len()], &all[..]);
            prop_assert!(flat[all.len()..].iter().all(|&b| b == 0xFF));
            prop_assert_eq!(flat.len() % n, 0);
        }
    }
}
