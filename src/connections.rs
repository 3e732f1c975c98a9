//! The HTTP server's accept loop. `axum::serve` offers no header-read timeout, no connection cap
//! and no control over accept errors, so idle sockets stayed open forever and a flood of them ran
//! the process out of file descriptors (`/healthz` with it). Here, on hyper's HTTP/1 server:
//! - a connection that has not sent a complete request head within the header-read timeout is
//!   closed — a new one, a slow one, and a keep-alive one waiting for its next request alike;
//! - at most `max_connections` HTTP connections are open: at the cap, the longest-idle one (no
//!   request in flight) is shed to make room, so a flood of idle sockets cannot keep `/healthz`
//!   or a carrier out; when every connection is busy, the new one is closed at once;
//! - accept errors (out of descriptors) back off instead of spinning, and are logged once per
//!   streak.
//!
//! A WebSocket leaves this count once upgraded: media sockets are bounded by admission (pending
//! and live caps) instead.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;
use tracing::{info, warn};

/// How connections are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// HTTP connections open at once (WebSockets are counted by admission once upgraded).
    pub max_connections: usize,
    /// A request head must arrive this soon after the connection opens or goes idle.
    pub header_read_timeout: Duration,
}

/// A shed connection still reading a request head (a slow client) is dropped after this: a
/// graceful close would wait for the header timeout, and a flood of them would hold descriptors.
const SHED_GRACE: Duration = Duration::from_secs(1);

/// Longest pause after a failing `accept` (the pause doubles from 5 ms up to this).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// One open HTTP connection as the registry sees it.
struct Conn {
    /// Requests being handled now.
    in_flight: AtomicUsize,
    /// When it last went idle (or opened), in ms since the registry started.
    idle_since_ms: AtomicU64,
    /// Asks the connection to close once idle (immediately if it is idle now).
    close: Notify,
}

/// The open connections, for the cap and for shutdown.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
    /// Wakes `serve` when the last connection closes after shutdown.
    emptied: Notify,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    fn open(&self) -> usize {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.insert(id, Arc::clone(&conn));
        crate::telemetry::http_connections(conns.len());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.remove(&id);
        crate::telemetry::http_connections(conns.len());
        if conns.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Asks the longest-idle connection to close and takes it out of the count; `false` when
    /// every connection has a request in flight.
    fn shed_idle(&self) -> bool {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = conns
            .iter()
            .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, c)| c.idle_since_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| conns.remove(&id)) {
            Some(conn) => {
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        for conn in self.conns.lock().unwrap_or_else(|e| e.into_inner()).values() {
            conn.close.notify_one();
        }
    }
}

/// Marks a request in flight on its connection for as long as it lives.
struct InFlight(Arc<Conn>, Arc<Registry>);

impl InFlight {
    fn enter(conn: &Arc<Conn>, registry: &Arc<Registry>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(conn), Arc::clone(registry))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since_ms.store(self.1.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, asks every
/// connection to close once its request is answered, and returns when they have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stopping = stop_rx.clone();
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::ZERO;
                pair
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                if backoff.is_zero() {
                    warn!(error = %e, "accept failed (out of file descriptors?); backing off");
                }
                crate::telemetry::accept_error();
                backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if registry.open() >= limits.max_connections && !registry.shed_idle() {
            crate::telemetry::connection_refused();
            drop(tcp);
            continue;
        }
        no_delay(&tcp);
        let (id, conn) = registry.add();
        let service = {
            let (router, conn, registry) = (router.clone(), Arc::clone(&conn), Arc::clone(&registry));
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let in_flight = InFlight::enter(&conn, &registry);
                let router = router.clone();
                async move {
                    let response = router.oneshot(request).await;
                    drop(in_flight);
                    Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
                }
            })
        };
        let connection = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
        let (registry, mut stopping) = (Arc::clone(&registry), stop_rx.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut asked = false;
            let mut drop_at: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    _ = conn.close.notified(), if !asked => {
                        asked = true;
                        drop_at = Some(tokio::time::Instant::now() + SHED_GRACE);
                        connection.as_mut().graceful_shutdown();
                    }
                    _ = tokio::time::sleep_until(drop_at.unwrap_or_else(tokio::time::Instant::now)), if drop_at.is_some() => {
                        break; // shed and still not closed: drop it (no request is in flight)
                    }
                    _ = stopping.wait_for(|s| *s), if !asked => {
                        asked = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            registry.remove(id);
        });
    }
    drop(listener);
    let emptied = registry.emptied.notified();
    registry.close_all();
    if registry.open() > 0 {
        info!(open = registry.open(), "waiting for open HTTP connections to finish");
        emptied.await;
    }
    Ok(())
}

/// Errors about one incoming connection (it reset before we took it): nothing to back off from.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted)
}

/// Media frames are small and latency-bound: without TCP_NODELAY a mark written after a media
/// frame waits for the peer's delayed ACK (measured: p99 34 ms → see docs/performance.md).
pub fn no_delay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::warn!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// The caps that hold sockets open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub live_calls: usize,
    pub pending_streams: usize,
    pub connections: usize,
}

/// Descriptors kept for the database, outbound HTTP (carriers, webhooks, tools) and the process.
const RESERVE: u64 = 256;

impl Caps {
    /// Descriptors the caps can use at once: each live call holds two sockets (carrier and
    /// model), each waiting stream and HTTP connection one.
    fn descriptors(self) -> u64 {
        (2 * self.live_calls + self.pending_streams + self.connections) as u64
    }

    /// The caps scaled down, in proportion, to what an open-file `limit` leaves after the
    /// reserve: otherwise `accept` fails with EMFILE before any cap is reached, and a flood
    /// starves `/healthz` and callers alike instead of meeting the shedding at the caps.
    pub fn fit(self, limit: u64) -> Caps {
        let available = limit.saturating_sub(RESERVE).max(limit / 2);
        let needed = self.descriptors();
        if needed <= available {
            return self;
        }
        let scale = |cap: usize| ((cap as u128 * available as u128 / needed as u128) as usize).max(1);
        Caps {
            live_calls: scale(self.live_calls),
            pending_streams: scale(self.pending_streams),
            connections: scale(self.connections),
        }
    }
}

/// Raises the soft open-file limit to the hard one, and fits `wanted` to it ([`Caps::fit`]),
/// saying so when it had to lower them.
pub fn fit_file_limit(wanted: Caps) -> Caps {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            warn!(error = %e, "cannot read the open-file limit; the caps are taken as configured");
            return wanted;
        }
    };
    let fitted = wanted.fit(limit);
    if fitted != wanted {
        warn!(
            limit,
            needed = wanted.descriptors() + RESERVE,
            max_live_calls = fitted.live_calls,
            max_pending_streams = fitted.pending_streams,
            max_connections = fitted.connections,
            "the open-file limit is below what the configured caps can use \
             (2 × VOXBRIDGE_MAX_LIVE_CALLS + VOXBRIDGE_MAX_PENDING_STREAMS + VOXBRIDGE_MAX_CONNECTIONS + 256): \
             the caps are lowered to fit; raise the limit (ulimit -n / LimitNOFILE) to serve more"
        );
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_the_open_file_limit() {
        let wanted = Caps { live_calls: 1000, pending_streams: 256, connections: 1024 };
        assert_eq!(wanted.fit(1 << 20), wanted, "room for all: unchanged");
        let fitted = wanted.fit(1024);
        assert!(fitted.descriptors() + RESERVE <= 1024, "{fitted:?}");
        assert!(fitted.connections < 1024 && fitted.live_calls < 1000 && fitted.pending_streams < 256);
        assert!(fitted.connections > 200 && fitted.live_calls > 200, "in proportion: {fitted:?}");
        let tiny = wanted.fit(64);
        assert!(tiny.descriptors() <= 32 + 3 && tiny.live_calls >= 1 && tiny.connections >= 1, "{tiny:?}");
    }
}
