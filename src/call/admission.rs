//! Admission and stream tokens: the live-call cap and drain flag (checked at the upgrade), and
//! one-time, short-lived tokens bound to a call id that a stream must present in `start`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::telemetry;

/// Counts live calls against a cap; refuses new ones while draining.
#[derive(Debug)]
pub struct Admission {
    live: AtomicUsize,
    max: usize,
    draining: AtomicBool,
}

/// A live call's slot; released on drop.
#[derive(Debug)]
pub struct Slot(Arc<Admission>);

impl Drop for Slot {
    fn drop(&mut self) {
        let n = self.0.live.fetch_sub(1, Ordering::AcqRel) - 1;
        telemetry::live_calls(n);
    }
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Full,
    Draining,
}

impl Admission {
    pub fn new(max: usize) -> Admission {
        Admission { live: AtomicUsize::new(0), max, draining: AtomicBool::new(false) }
    }

    pub fn try_admit(self: &Arc<Self>) -> Result<Slot, Refusal> {
        if self.draining.load(Ordering::Acquire) {
            return Err(Refusal::Draining);
        }
        let mut cur = self.live.load(Ordering::Acquire);
        loop {
            if cur >= self.max {
                return Err(Refusal::Full);
            }
            match self.live.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    telemetry::live_calls(cur + 1);
                    return Ok(Slot(Arc::clone(self)));
                }
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// One-time stream tokens.
#[derive(Debug, Default)]
pub struct StreamTokens {
    inner: Mutex<HashMap<String, (String, Instant)>>,
}

/// How long a token minted for TwiML stays valid (Twilio connects within seconds).
pub const TOKEN_TTL: Duration = Duration::from_secs(120);

impl StreamTokens {
    /// A fresh 128-bit token for `call_id`, valid for [`TOKEN_TTL`].
    pub fn mint(&self, call_id: &str, now: Instant) -> String {
        self.mint_for(call_id, now, TOKEN_TTL)
    }

    /// A fresh 128-bit token for `call_id`, valid for `ttl`.
    pub fn mint_for(&self, call_id: &str, now: Instant, ttl: Duration) -> String {
        let token = format!("{:032x}", rand::random::<u128>());
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, exp)| *exp > now);
        map.insert(token.clone(), (call_id.to_string(), now + ttl));
        token
    }

    /// Uses up `token` if it is valid for `call_id`; a token works once.
    pub fn consume(&self, token: &str, call_id: &str, now: Instant) -> bool {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match map.remove(token) {
            Some((id, exp)) if exp > now => constant_time_eq(id.as_bytes(), call_id.as_bytes()),
            _ => false,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_caps_and_drains() {
        let a = Arc::new(Admission::new(2));
        let s1 = a.try_admit().unwrap();
        let _s2 = a.try_admit().unwrap();
        assert_eq!(a.try_admit().unwrap_err(), Refusal::Full);
        drop(s1);
        let _s3 = a.try_admit().unwrap();
        a.start_draining();
        assert_eq!(a.try_admit().unwrap_err(), Refusal::Draining);
        assert_eq!(a.live(), 2);
    }

    #[test]
    fn tokens_work_once_for_their_call_and_expire() {
        let t = StreamTokens::default();
        let now = Instant::now();
        let tok = t.mint("c1", now);
        assert!(!t.consume(&tok, "c2", now), "bound to its call");
        let tok = t.mint("c1", now);
        assert!(t.consume(&tok, "c1", now));
        assert!(!t.consume(&tok, "c1", now), "single use");
        let tok = t.mint("c1", now);
        assert!(!t.consume(&tok, "c1", now + TOKEN_TTL + Duration::from_secs(1)), "expired");
    }
}
