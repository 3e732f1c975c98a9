//! A bounded single-producer/single-consumer ring of samples with an explicit overflow policy
//! chosen at each push: drop the oldest (toward the model) or refuse the excess (toward the
//! caller). It is owned by one call task, so it needs no atomics or locks; see ADR 0002.
//!
//! Its storage grows on demand (doubling, up to the bound) instead of being allocated whole up
//! front: a call's 20 s playout bound is 160 KB of μ-law, but at real-time pace a call holds a
//! few hundred ms, and a ring walking over the whole bound would make every page resident.

/// Storage a ring starts with (elements), unless its bound is smaller.
const INITIAL: usize = 2048;

/// A FIFO of at most `capacity` elements of `T`.
#[derive(Debug)]
pub struct Ring<T> {
    buf: Vec<T>,
    /// The bound: never more than this many elements.
    max: usize,
    head: usize,
    len: usize,
    /// Samples are dropped and refused in whole units of this many elements (2 for PCM16
    /// held as bytes), so a drop never splits a sample.
    align: usize,
}

impl<T: Copy + Default> Ring<T> {
    /// A ring holding at most `capacity` elements (rounded down to `align`).
    pub fn new(capacity: usize, align: usize) -> Ring<T> {
        Ring::with_storage(capacity, align, INITIAL)
    }

    /// [`new`](Self::new) starting with `initial` elements of storage.
    fn with_storage(capacity: usize, align: usize, initial: usize) -> Ring<T> {
        let align = align.max(1);
        let capacity = (capacity / align * align).max(align);
        let initial = capacity.min(initial.next_multiple_of(align)).max(1);
        Ring { buf: vec![T::default(); initial], max: capacity, head: 0, len: 0, align }
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Storage allocated now (grows with use, never past [`capacity`](Self::capacity)).
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free(&self) -> usize {
        self.max - self.len
    }

    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Overflow policy "drop oldest": writes all of `input`, discarding the oldest stored
    /// elements (and, if `input` alone exceeds the capacity, the start of `input`) to make room.
    /// Returns how many elements were discarded.
    pub fn push_overwrite(&mut self, input: &[T]) -> usize {
        let cap = self.max;
        let mut dropped = 0;
        let mut input = input;
        if input.len() > cap {
            let skip = input.len() - cap;
            dropped += skip + self.len;
            self.clear();
            input = &input[skip..];
        } else if input.len() > self.free() {
            let need = input.len() - self.free();
            let need = need.div_ceil(self.align) * self.align;
            let d = need.min(self.len);
            self.discard(d);
            dropped += d;
        }
        self.write(input);
        dropped
    }

    /// Overflow policy "bounded": writes what fits (whole units only) and refuses the rest.
    /// Returns how many elements were written.
    pub fn push_bounded(&mut self, input: &[T]) -> usize {
        let n = input.len().min(self.free()) / self.align * self.align;
        self.write(&input[..n]);
        n
    }

    /// Moves up to `out.len()` of the oldest elements into `out`; returns how many.
    pub fn pop_into(&mut self, out: &mut [T]) -> usize {
        let n = out.len().min(self.len);
        let first = n.min(self.buf.len() - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        self.discard(n);
        n
    }

    /// Room for `needed` elements: doubles the storage (at least to `needed`, at most to the
    /// bound) and lays the contents out from the start.
    fn grow(&mut self, needed: usize) {
        let size = needed.max(self.buf.len() * 2).min(self.max);
        let mut next = vec![T::default(); size];
        let first = self.len.min(self.buf.len() - self.head);
        next[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        next[first..self.len].copy_from_slice(&self.buf[..self.len - first]);
        self.buf = next;
        self.head = 0;
    }

    fn discard(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.head = (self.head + n) % self.buf.len();
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    fn write(&mut self, input: &[T]) {
        debug_assert!(input.len() <= self.free());
        if self.len + input.len() > self.buf.len() {
            self.grow(self.len + input.len());
        }
        let cap = self.buf.len();
        let tail = (self.head + self.len) % cap;
        let first = input.len().min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&input[..first]);
        self.buf[..input.len() - first].copy_from_slice(&input[first..]);
        self.len += input.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        Overwrite(Vec<u8>),
        Bounded(Vec<u8>),
        Pop(usize),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Overwrite),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Bounded),
            (0usize..40).prop_map(Op::Pop),
            Just(Op::Clear),
        ]
    }

    proptest! {
        /// The ring behaves like an unbounded FIFO model with the stated overflow policies:
        /// overwrite keeps the newest `capacity` elements, bounded keeps the oldest.
        #[test]
        fn ring_matches_fifo_model(cap in 1usize..32, align in 1usize..3, initial in 1usize..32, ops in prop::collection::vec(op(), 0..60)) {
            // Storage starting smaller than the bound grows as the ring fills.
            let mut ring: Ring<u8> = Ring::with_storage(cap, align, initial);
            let cap = ring.capacity();
            let mut model: VecDeque<u8> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Overwrite(mut v) => {
                        v.truncate(v.len() / align * align);
                        let dropped = ring.push_overwrite(&v);
                        model.extend(v.iter().copied());
                        let mut expect_drop = 0;
                        while model.len() > cap { model.pop_front(); expect_drop += 1; }
                        // Drops happen in whole units, so a few more than strictly needed may go.
                        prop_assert!(dropped >= expect_drop && dropped < expect_drop + align.max(1) * 2);
                        while model.len() > ring.len() { model.pop_front(); }
                    }
                    Op::Bounded(v) => {
                        let n = ring.push_bounded(&v);
                        prop_assert_eq!(n % align, 0);
                        prop_assert!(n <= v.len());
                        model.extend(v[..n].iter().copied());
                    }
                    Op::Pop(k) => {
                        let mut out = vec![0u8; k];
                        let n = ring.pop_into(&mut out);
                        let expect: Vec<u8> = (0..n).map(|_| model.pop_front().unwrap()).collect();
                        prop_assert_eq!(&out[..n], &expect[..]);
                        prop_assert_eq!(n, k.min(n + model.len()));
                    }
                    Op::Clear => { ring.clear(); model.clear(); }
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert!(ring.len() <= cap);
            }
        }
    }

    #[test]
    fn overwrite_keeps_newest_and_counts_drops() {
        let mut r: Ring<i16> = Ring::new(4, 1);
        assert_eq!(r.push_overwrite(&[1, 2, 3]), 0);
        assert_eq!(r.push_overwrite(&[4, 5, 6]), 2);
        let mut out = [0; 4];
        assert_eq!(r.pop_into(&mut out), 4);
        assert_eq!(out, [3, 4, 5, 6]);
        assert_eq!(r.push_overwrite(&[1, 2, 3, 4, 5, 6, 7]), 3);
        assert_eq!(r.pop_into(&mut out), 4);
        assert_eq!(out, [4, 5, 6, 7]);
    }

    #[test]
    fn storage_grows_with_use_not_up_front() {
        // A 20 s μ-law playout bound.
        let mut r: Ring<u8> = Ring::new(160_000, 160);
        assert_eq!((r.capacity(), r.allocated()), (160_000, 2080));
        // Real-time pace: a few frames in, a few out, for a minute: storage stays small.
        let mut out = [0u8; 800];
        for _ in 0..600 {
            assert_eq!(r.push_bounded(&[7u8; 800]), 800);
            assert_eq!(r.pop_into(&mut out), 800);
        }
        assert_eq!(r.allocated(), 2080);
        // A long answer queued at once grows it, in order, up to the bound and no further.
        let answer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(r.push_bounded(&answer), 160_000);
        assert_eq!(r.allocated(), 160_000);
        let mut all = vec![0u8; 160_000];
        assert_eq!(r.pop_into(&mut all), 160_000);
        assert_eq!(all, answer[..160_000]);
    }

    #[test]
    fn bounded_refuses_excess_in_whole_units() {
        let mut r: Ring<u8> = Ring::new(5, 2);
        assert_eq!(r.capacity(), 4);
        assert_eq!(r.push_bounded(&[1, 2, 3]), 2);
        assert_eq!(r.push_bounded(&[4, 5, 6]), 2);
        assert_eq!(r.push_bounded(&[7, 8]), 0);
    }
}
