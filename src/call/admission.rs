//! Admission: the live-call cap and drain flag, and a separate, smaller allowance (in total and
//! per peer address) for sockets that have not yet proven their call (with a stream token,
//! `call::stream_token`), so strangers can never hold a live-call slot.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
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

/// The sockets waiting to prove their call, oldest first (by the order they came in).
#[derive(Debug, Default)]
struct Pending {
    waiting: BTreeMap<u64, Waiting>,
    next: u64,
    unsigned: usize,
    by_peer: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Waiting {
    peer: IpAddr,
    proof: Proof,
    shed: Arc<tokio::sync::Notify>,
}

impl Pending {
    /// Forgets socket `seq` (gone, or shed); its waiter if it was still here.
    fn remove(&mut self, seq: u64) -> Option<Waiting> {
        let w = self.waiting.remove(&seq)?;
        if w.proof == Proof::Unsigned {
            self.unsigned -= 1;
        }
        if let Some(n) = self.by_peer.get_mut(&w.peer) {
            *n -= 1;
            if *n == 0 {
                self.by_peer.remove(&w.peer);
            }
        }
        Some(w)
    }

    /// Sheds the oldest waiting socket (an unsigned one if `unsigned_only`): told to close, its
    /// place freed at once.
    fn shed_oldest(&mut self, unsigned_only: bool) -> bool {
        let oldest = self.waiting.iter().find(|(_, w)| !unsigned_only || w.proof == Proof::Unsigned).map(|(s, _)| *s);
        match oldest.and_then(|seq| self.remove(seq)) {
            Some(w) => {
                w.shed.notify_one();
                telemetry::call_refused("pending_shed");
                true
            }
            None => false,
        }
    }
}

/// Whether an upgrade came with the carrier's signature (a stranger cannot make one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Signed,
    Unsigned,
}

/// The address the per-peer cap counts: an IPv6 peer by its /64 (one subscriber's prefix: a
/// host has a whole /64 to pick addresses from), an IPv4-mapped one as the IPv4 address.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
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

/// An unproven socket's place; released on drop, or taken away (shed) for a newer socket when
/// the caps are full: [`shed`](Self::shed) then completes and the socket should close.
#[derive(Debug)]
pub struct PendingSlot {
    admission: Arc<Admission>,
    seq: u64,
    arrival: Arrival,
    shed: Arc<tokio::sync::Notify>,
}

impl PendingSlot {
    /// Completes when this socket's place was given to a newer one.
    pub async fn shed(&self) {
        self.shed.notified().await
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.admission.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(self.seq);
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
    /// Completes when a pending socket's place was shed (never for a live one).
    pub async fn shed(&self) {
        match self {
            Gate::Pending(p) => p.shed().await,
            Gate::Live(_) => std::future::pending().await,
        }
    }

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
        self.try_pending_as(peer, Arrival::New, Proof::Unsigned)
    }

    /// [`try_pending`](Self::try_pending) for a stream that arrived as `arrival`, with `proof`.
    /// The per-peer cap counts IPv6 peers by /64 and refuses; unsigned sockets may fill only
    /// three quarters of the total (the rest kept for signed ones); at the total cap the oldest
    /// waiting socket (unsigned first) is shed rather than a newcomer refused — an idle
    /// stranger is always older than a caller whose `start` is on its way.
    pub fn try_pending_as(
        self: &Arc<Self>,
        peer: IpAddr,
        arrival: Arrival,
        proof: Proof,
    ) -> Result<PendingSlot, Refusal> {
        self.refuse_if_draining(arrival)?;
        if self.live() >= self.max {
            return Err(Refusal::Full);
        }
        let peer = peer_key(peer);
        let caps = self.pending_caps;
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.by_peer.get(&peer).copied().unwrap_or(0) >= caps.per_peer {
            return Err(Refusal::PendingPerPeer);
        }
        let unsigned_cap = caps.total - caps.total / 4;
        if proof == Proof::Unsigned && p.unsigned >= unsigned_cap.max(1) && !p.shed_oldest(true) {
            return Err(Refusal::PendingFull);
        }
        if p.waiting.len() >= caps.total && !p.shed_oldest(true) && !p.shed_oldest(false) {
            return Err(Refusal::PendingFull);
        }
        let seq = p.next;
        p.next += 1;
        let shed = Arc::new(tokio::sync::Notify::new());
        p.waiting.insert(seq, Waiting { peer, proof, shed: Arc::clone(&shed) });
        *p.by_peer.entry(peer).or_insert(0) += 1;
        if proof == Proof::Unsigned {
            p.unsigned += 1;
        }
        Ok(PendingSlot { admission: Arc::clone(self), seq, arrival, shed })
    }

    /// Sockets waiting to prove their call.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).waiting.len()
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
        let own = a.try_pending_as(ip, Arrival::Own, Proof::Signed).unwrap();
        let _s1 = Gate::Pending(own).into_live().expect("its own call, proven after the drain began");
        let _s2 = a.try_admit_as(Arrival::Own).unwrap();
        assert_eq!(a.try_admit_as(Arrival::Own).unwrap_err(), Refusal::Full, "the cap still holds");
    }

    #[test]
    fn unproven_sockets_are_capped_apart_from_live_calls() {
        let a = Arc::new(Admission::with_pending_caps(1, PendingCaps { total: 3, per_peer: 2 }));
        let (x, y): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        let signed = |ip| a.try_pending_as(ip, Arrival::New, Proof::Signed);
        let p1 = signed(x).unwrap();
        let p2 = signed(x).unwrap();
        assert_eq!(signed(x).unwrap_err(), Refusal::PendingPerPeer);
        let p3 = signed(y).unwrap();
        assert_eq!((a.live(), a.pending()), (0, 3), "waiting sockets hold no live slot");
        drop(p1);
        let p4 = signed(x).expect("a place frees on drop");
        // Proven: a pending place becomes the one live slot; the next proven one finds none.
        let live = Gate::Pending(p2).into_live().unwrap();
        assert_eq!(Gate::Pending(p3).into_live().unwrap_err(), Refusal::Full);
        assert_eq!(a.try_pending(y).unwrap_err(), Refusal::Full, "a full server turns strangers away first");
        drop((live, p4));
        assert_eq!((a.live(), a.pending()), (0, 0));
        a.start_draining();
        assert_eq!(a.try_pending(x).unwrap_err(), Refusal::Draining);
    }

    fn is_shed(slot: &PendingSlot) -> bool {
        let fut = slot.shed();
        let mut fut = std::pin::pin!(fut);
        let waker = std::task::Waker::noop();
        fut.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready()
    }

    #[test]
    fn a_full_pending_cap_sheds_its_oldest_unsigned_socket_and_keeps_a_share_for_signed_ones() {
        let a = Arc::new(Admission::with_pending_caps(100, PendingCaps { total: 8, per_peer: 2 }));
        // Strangers from many addresses fill the unsigned share (6 of 8).
        let strangers: Vec<PendingSlot> =
            (1..=6).map(|i| a.try_pending(format!("198.51.100.{i}").parse().unwrap()).unwrap()).collect();
        assert_eq!(a.pending(), 6);
        // Another stranger sheds the oldest stranger instead of being refused.
        let late = a.try_pending("198.51.100.7".parse().unwrap()).unwrap();
        assert!(is_shed(&strangers[0]) && !is_shed(&strangers[1]), "the oldest goes");
        assert_eq!(a.pending(), 6);
        // Signed upgrades find the reserved share, then shed unsigned sockets, oldest first.
        let ip = |i: u8| -> IpAddr { format!("203.0.113.{i}").parse().unwrap() };
        let s1 = a.try_pending_as(ip(1), Arrival::New, Proof::Signed).unwrap();
        let s2 = a.try_pending_as(ip(2), Arrival::New, Proof::Signed).unwrap();
        assert!(!is_shed(&strangers[1]), "the reserve first");
        let s3 = a.try_pending_as(ip(3), Arrival::New, Proof::Signed).unwrap();
        assert!(is_shed(&strangers[1]), "then the oldest stranger");
        assert_eq!(a.pending(), 8);
        assert!(![&s1, &s2, &s3, &late].iter().any(|s| is_shed(s)));
        drop(strangers);
        assert_eq!(a.pending(), 4, "a shed socket's drop frees nothing twice");
    }

    #[test]
    fn ipv6_peers_are_counted_by_their_64() {
        let a = Arc::new(Admission::with_pending_caps(100, PendingCaps { total: 100, per_peer: 2 }));
        let _p1 = a.try_pending("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _p2 = a.try_pending("2001:db8:1:2:ffff::9".parse().unwrap()).unwrap();
        assert_eq!(a.try_pending("2001:db8:1:2::abcd".parse().unwrap()).unwrap_err(), Refusal::PendingPerPeer);
        assert!(a.try_pending("2001:db8:1:3::1".parse().unwrap()).is_ok(), "another /64");
        assert_eq!(peer_key("::ffff:198.51.100.1".parse().unwrap()), "198.51.100.1".parse::<IpAddr>().unwrap());
    }
}
