//! Admission: the live-call cap and drain flag, and a separate, smaller allowance (in total and
//! per peer address) for sockets that have not yet proven their call (with a stream token,
//! `call::stream_token`), so strangers can never hold a live-call slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::telemetry;

/// Counts live calls against a cap; refuses new ones while draining. Sockets still waiting to
/// prove their call (Twilio's token comes in `start`) are counted apart, against their own caps.
#[derive(Debug)]
pub struct Admission {
    live: AtomicUsize,
    max: usize,
    draining: AtomicBool,
    pending: Mutex<Pending>,
    pending_caps: PendingCaps,
}

/// How many unproven sockets may wait at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCaps {
    pub total: usize,
    pub per_peer: usize,
}

impl Default for PendingCaps {
    fn default() -> PendingCaps {
        PendingCaps { total: 256, per_peer: 32 }
    }
}

#[derive(Debug, Default)]
struct Pending {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// How a stream came to this machine, which decides whether a drain refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Wherever the carrier's socket landed: refused while draining (another machine takes it).
    New,
    /// Steered here, to the call this machine dialled and pre-warmed (`control::steer`): kept
    /// while draining, like the calls it already serves — elsewhere it would find no session
    /// and, having been steered once, would not be steered on.
    Own,
}

/// An unproven socket's place; released on drop.
#[derive(Debug)]
pub struct PendingSlot {
    admission: Arc<Admission>,
    peer: IpAddr,
    arrival: Arrival,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut p = self.admission.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.total -= 1;
        if let Some(n) = p.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                p.by_peer.remove(&self.peer);
            }
        }
    }
}

/// What a media socket holds.
#[derive(Debug)]
pub enum Gate {
    /// Its call was proven at the upgrade (Telnyx: the token is in the URL): a live slot.
    Live(Slot),
    /// Its call is proven only by `start` (Twilio): a pending place, traded for a live slot
    /// once the token checks out.
    Pending(PendingSlot),
}

impl Gate {
    /// The live slot, taking one now if the call was only just proven.
    pub fn into_live(self) -> Result<Slot, Refusal> {
        match self {
            Gate::Live(slot) => Ok(slot),
            Gate::Pending(pending) => pending.admission.try_admit_as(pending.arrival),
        }
    }
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
    /// Too many sockets are waiting to prove their call (in total).
    PendingFull,
    /// Too many sockets from this peer are waiting to prove their call.
    PendingPerPeer,
}

impl Admission {
    pub fn new(max: usize) -> Admission {
        Admission::with_pending_caps(max, PendingCaps::default())
    }

    pub fn with_pending_caps(max: usize, pending_caps: PendingCaps) -> Admission {
        Admission {
            live: AtomicUsize::new(0),
            max,
            draining: AtomicBool::new(false),
            pending: Mutex::default(),
            pending_caps,
        }
    }

    /// A place for a socket from `peer` that has not proven its call yet. It takes no live
    /// slot; a server already full or draining refuses it outright.
    pub fn try_pending(self: &Arc<Self>, peer: IpAddr) -> Result<PendingSlot, Refusal> {
        self.try_pending_as(peer, Arrival::New)
    }

    /// [`try_pending`](Self::try_pending) for a stream that arrived as `arrival`.
    pub fn try_pending_as(self: &Arc<Self>, peer: IpAddr, arrival: Arrival) -> Result<PendingSlot, Refusal> {
        self.refuse_if_draining(arrival)?;
        if self.live() >= self.max {
            return Err(Refusal::Full);
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.total >= self.pending_caps.total {
            return Err(Refusal::PendingFull);
        }
        let from_peer = p.by_peer.entry(peer).or_insert(0);
        if *from_peer >= self.pending_caps.per_peer {
            return Err(Refusal::PendingPerPeer);
        }
        *from_peer += 1;
        p.total += 1;
        Ok(PendingSlot { admission: Arc::clone(self), peer, arrival })
    }

    /// Sockets waiting to prove their call.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    pub fn try_admit(self: &Arc<Self>) -> Result<Slot, Refusal> {
        self.try_admit_as(Arrival::New)
    }

    /// [`try_admit`](Self::try_admit) for a stream that arrived as `arrival`.
    pub fn try_admit_as(self: &Arc<Self>, arrival: Arrival) -> Result<Slot, Refusal> {
        self.refuse_if_draining(arrival)?;
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

    fn refuse_if_draining(&self, arrival: Arrival) -> Result<(), Refusal> {
        match arrival {
            Arrival::New if self.draining.load(Ordering::Acquire) => Err(Refusal::Draining),
            _ => Ok(()),
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
    fn a_draining_machine_keeps_streams_steered_to_it_within_the_cap() {
        let a = Arc::new(Admission::new(2));
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        a.start_draining();
        assert_eq!(a.try_pending(ip).unwrap_err(), Refusal::Draining);
        assert_eq!(a.try_admit().unwrap_err(), Refusal::Draining);
        let own = a.try_pending_as(ip, Arrival::Own).unwrap();
        let _s1 = Gate::Pending(own).into_live().expect("its own call, proven after the drain began");
        let _s2 = a.try_admit_as(Arrival::Own).unwrap();
        assert_eq!(a.try_admit_as(Arrival::Own).unwrap_err(), Refusal::Full, "the cap still holds");
    }

    #[test]
    fn unproven_sockets_are_capped_apart_from_live_calls() {
        let a = Arc::new(Admission::with_pending_caps(1, PendingCaps { total: 3, per_peer: 2 }));
        let (x, y): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        let p1 = a.try_pending(x).unwrap();
        let p2 = a.try_pending(x).unwrap();
        assert_eq!(a.try_pending(x).unwrap_err(), Refusal::PendingPerPeer);
        let p3 = a.try_pending(y).unwrap();
        assert_eq!(a.try_pending(y).unwrap_err(), Refusal::PendingFull, "the total cap");
        assert_eq!((a.live(), a.pending()), (0, 3), "waiting sockets hold no live slot");
        drop(p1);
        let p4 = a.try_pending(x).expect("a place frees on drop");
        // Proven: a pending place becomes the one live slot; the next proven one finds none.
        let live = Gate::Pending(p2).into_live().unwrap();
        assert_eq!(Gate::Pending(p3).into_live().unwrap_err(), Refusal::Full);
        assert_eq!(a.try_pending(y).unwrap_err(), Refusal::Full, "a full server turns strangers away first");
        drop((live, p4));
        assert_eq!((a.live(), a.pending()), (0, 0));
        a.start_draining();
        assert_eq!(a.try_pending(x).unwrap_err(), Refusal::Draining);
    }
}
