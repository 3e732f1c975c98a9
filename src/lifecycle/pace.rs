//! Dial pacing across every dialler of a store: a carrier refuses bursts above the account's
//! calls per second, whichever instance dials. GCRA (the generic cell rate algorithm, as
//! `governor` implements it per process) over one stored number per carrier account — its
//! theoretical arrival time (TAT) — so the decision is one conditional write every backend runs
//! the same way (`store::sql::TAKE_DIAL`). Here: the parameters and the wait, pure.

use super::Millis;

/// A pace of `rate` dials per second, in bursts of up to a second's worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Microseconds between dials at the steady rate.
    pub interval_us: i64,
    /// How far ahead of now the TAT may run: a burst of `rate` dials, less the one taking it.
    pub tolerance_us: i64,
}

impl Pace {
    pub fn per_second(rate: std::num::NonZeroU32) -> Pace {
        let interval_us = 1_000_000 / i64::from(rate.get());
        Pace { interval_us, tolerance_us: interval_us * (i64::from(rate.get()) - 1) }
    }

    /// After a refusal, when a dial is next allowed for a stored `tat` (µs), in ms.
    pub fn next_allowed(&self, tat_us: i64) -> Millis {
        (tat_us - self.tolerance_us).div_euclid(1_000) + 1
    }

    /// The decision the store's statement makes, in Rust (for its test and the reader): the new
    /// TAT if a dial at `now_us` is allowed.
    pub fn take(&self, tat_us: Option<i64>, now_us: i64) -> Option<i64> {
        let base = tat_us.unwrap_or(now_us).max(now_us);
        (base - now_us <= self.tolerance_us).then_some(base + self.interval_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_a_seconds_worth_then_the_steady_rate() {
        let p = Pace::per_second(std::num::NonZeroU32::new(2).unwrap());
        assert_eq!(p, Pace { interval_us: 500_000, tolerance_us: 500_000 });
        let t0 = 10_000_000;
        let a = p.take(None, t0).expect("first");
        let b = p.take(Some(a), t0).expect("second: the burst");
        assert_eq!(p.take(Some(b), t0), None, "a third in the same instant waits");
        assert_eq!(p.next_allowed(b), (t0 + 500_000) / 1_000 + 1);
        assert!(p.take(Some(b), t0 + 500_000).is_some(), "half a second later");
        let one = Pace::per_second(std::num::NonZeroU32::new(1).unwrap());
        let x = one.take(None, t0).unwrap();
        assert_eq!(one.take(Some(x), t0 + 999_999), None);
        assert!(one.take(Some(x), t0 + 1_000_000).is_some());
    }
}
