//! When a failed attempt is tried again: exponential backoff with jitter, the jitter sample an
//! input so the result is reproducible. Which endings are retried is `outcome`. Pure.

use std::time::Duration;

/// Retry timing: `base`, doubling per failed attempt, never above `cap`, ± `jitter` (a fraction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 5, 10, 20 minutes (contract default), ±10 %.
    fn default() -> Self {
        RetryPolicy { base: Duration::from_secs(300), cap: Duration::from_secs(1200), jitter: 0.1 }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt after `failed_attempts` (≥ 1) failures; `sample` in [0, 1)
    /// picks the jitter (0.5 = none), so the result is reproducible and testable.
    pub fn backoff(&self, failed_attempts: u32, sample: f64) -> Duration {
        let exp = failed_attempts.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let factor = 1.0 + self.jitter * (2.0 * sample.clamp(0.0, 1.0) - 1.0);
        raw.mul_f64(factor.max(0.0))
    }
}

impl RetryPolicy {
    /// From `VOXBRIDGE_RETRY_BASE_MS` and `…_CAP_MS` (a cap below the base is the base), ±10 %.
    pub fn new(base_ms: u64, cap_ms: u64) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms.max(base_ms)),
            jitter: 0.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let p = RetryPolicy::default();
        let mins = |d: Duration| d.as_secs_f64() / 60.0;
        assert_eq!(mins(p.backoff(1, 0.5)), 5.0);
        assert_eq!(mins(p.backoff(2, 0.5)), 10.0);
        assert_eq!(mins(p.backoff(3, 0.5)), 20.0);
        assert_eq!(mins(p.backoff(9, 0.5)), 20.0, "capped");
        assert!((mins(p.backoff(1, 0.0)) - 4.5).abs() < 1e-9);
        assert!((mins(p.backoff(1, 1.0)) - 5.5).abs() < 1e-9);
        let custom = RetryPolicy { base: Duration::from_secs(60), cap: Duration::from_secs(3600), jitter: 0.0 };
        assert_eq!(custom.backoff(4, 0.9), Duration::from_secs(480));
    }
}
