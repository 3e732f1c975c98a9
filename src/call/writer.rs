//! The two socket writer tasks of a call: each drains a bounded queue, sends with one flush per
//! batch, and records the added latency of the frames that carry audio. One generic loop serves
//! the carrier (axum) and the model (tungstenite) sockets.

use std::time::{Duration, Instant};

use super::end_reason::Violation;
use axum::extract::ws::{CloseFrame, Message};
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long teardown waits for a writer to send its close frame.
const CLOSE_GRACE: Duration = Duration::from_millis(100);
/// A batch the peer does not take within this long (it stopped reading: its socket buffers are
/// full) ends the writer, and with it the call's use of that socket (reliability row 10). What a
/// slow carrier holds back is bounded by this, not by the queue.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a writer task sends: a text frame (with the time its audio arrived, for the latency
/// histogram) or a close.
pub(crate) enum Outgoing {
    Frame(String, Option<Instant>),
    /// A keepalive ping (the model socket's idle watchdog).
    Ping,
    Close(u16, &'static str),
}

/// How a writer task builds its socket's messages.
pub(crate) struct Frames<M> {
    pub text: fn(String) -> M,
    pub ping: fn() -> M,
    pub close: fn(u16, &'static str) -> M,
}

/// A writer task: sends everything queued with one flush (one syscall for a media + mark
/// pair), then records each frame's added latency (and counts them when asked to).
pub(crate) async fn write_frames<S, M>(
    mut sink: S,
    mut rx: mpsc::Receiver<Outgoing>,
    frames: Frames<M>,
    sent: Option<metrics::Counter>,
    latency: metrics::Histogram,
) where
    S: futures_util::Sink<M> + Unpin,
{
    let mut batch = Vec::with_capacity(16);
    let mut origins = Vec::with_capacity(16);
    while rx.recv_many(&mut batch, 16).await > 0 {
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            for out in batch.drain(..) {
                match out {
                    Outgoing::Frame(frame, origin) => {
                        if sink.feed((frames.text)(frame)).await.is_err() {
                            return false;
                        }
                        origins.extend(origin);
                    }
                    Outgoing::Ping => {
                        if sink.feed((frames.ping)()).await.is_err() {
                            return false;
                        }
                    }
                    Outgoing::Close(code, reason) => {
                        let _ = sink.send((frames.close)(code, reason)).await;
                        return false;
                    }
                }
            }
            sink.flush().await.is_ok()
        })
        .await;
        if written != Ok(true) {
            if written.is_err() {
                tracing::warn!(
                    timeout_ms = WRITE_TIMEOUT.as_millis() as u64,
                    "the peer stopped reading; giving up its socket"
                );
            }
            return;
        }
        if let Some(sent) = &sent {
            sent.increment(origins.len() as u64);
        }
        for origin in origins.drain(..) {
            latency.record(origin.elapsed().as_secs_f64());
        }
    }
    let _ = sink.close().await;
}

/// The carrier socket's messages (axum).
pub(crate) const CARRIER_FRAMES: Frames<Message> = Frames {
    text: |s| Message::Text(s.into()),
    ping: || Message::Ping(Default::default()),
    close: |code, reason| Message::Close(Some(CloseFrame { code, reason: reason.into() })),
};

/// The model socket's messages (tungstenite).
pub(crate) const MODEL_FRAMES: Frames<WsMessage> = Frames {
    text: |s| WsMessage::Text(s.into()),
    ping: || WsMessage::Ping(Default::default()),
    close: |code, reason| {
        WsMessage::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    },
};

/// Waits briefly for a writer to finish (its close frame), then aborts it.
pub(crate) async fn close_writer(writer: tokio::task::JoinHandle<()>) {
    let abort = writer.abort_handle();
    if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
        abort.abort();
    }
}

/// What the WebSocket layer refused in a carrier's frame, if that is why reading failed.
pub(crate) fn violation_of(e: &axum::Error) -> Option<Violation> {
    use tokio_tungstenite::tungstenite::Error;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        match s.downcast_ref::<Error>() {
            Some(Error::Capacity(_)) => return Some(Violation::TooLarge),
            Some(Error::Utf8(_)) => return Some(Violation::InvalidUtf8),
            _ => {}
        }
        if s.downcast_ref::<std::str::Utf8Error>().is_some() {
            return Some(Violation::InvalidUtf8);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that takes nothing (its socket buffers are full).
    struct Stuck;

    impl futures_util::Sink<String> for Stuck {
        type Error = ();
        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
        fn start_send(self: std::pin::Pin<&mut Self>, _: String) -> Result<(), ()> {
            Ok(())
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
    }

    const TEXT: Frames<String> = Frames { text: |s| s, ping: String::new, close: |_, r| r.to_string() };

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_ends_the_writer_within_the_write_timeout() {
        let (tx, rx) = mpsc::channel(8);
        let latency = metrics::Histogram::noop();
        let writer = tokio::spawn(write_frames(Stuck, rx, TEXT, None, latency));
        tx.send(Outgoing::Frame("media".into(), None)).await.unwrap();
        let started = tokio::time::Instant::now();
        writer.await.unwrap();
        assert_eq!(started.elapsed(), WRITE_TIMEOUT, "given up after the write timeout, not before");
        assert!(tx.send(Outgoing::Frame("more".into(), None)).await.is_err(), "the call finds its socket gone");
    }
}
