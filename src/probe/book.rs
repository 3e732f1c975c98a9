//! The one clock and the shared record: a replay that also plays the model keeps here when each
//! probe frame left and when its content arrived, per call and per model connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::code::{FrameId, STREAMS, unwrap_index};

/// One replayed call's caller frames: when each was sent, when the model had it.
#[derive(Debug, Default)]
pub struct CallLine {
    pub sent: Vec<Instant>,
    pub arrived: Vec<Option<Instant>>,
    /// The model connections that heard this call (a reconnect adds one).
    pub models: Vec<u16>,
}

/// One model frame: when the model sent it (`None`: planned, never sent) and its response.
#[derive(Debug, Clone, Copy)]
pub struct ModelFrame {
    pub sent: Option<Instant>,
    pub response: u32,
}

/// One model connection's frames, and the responses the caller cut short.
#[derive(Debug, Default)]
pub struct ModelLine {
    pub frames: Vec<ModelFrame>,
    pub interrupted: Vec<u32>,
}

/// A model connection's record and whether it has closed.
#[derive(Debug)]
pub struct ModelSide {
    pub line: Mutex<ModelLine>,
    closed: tokio::sync::watch::Sender<bool>,
}

impl ModelSide {
    pub fn lock(&self) -> MutexGuard<'_, ModelLine> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Waits until the connection has closed.
    pub async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

#[derive(Debug, Default)]
struct Inner {
    calls: Mutex<HashMap<u16, Arc<Mutex<CallLine>>>>,
    models: Mutex<HashMap<u16, Arc<ModelSide>>>,
    next_model: AtomicU32,
}

/// The shared record (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Book(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Book {
    /// A replayed call begins: its caller frames will name stream `tag`.
    pub fn open_call(&self, tag: u16) -> Arc<Mutex<CallLine>> {
        let line = Arc::new(Mutex::new(CallLine::default()));
        lock(&self.0.calls).insert(tag, Arc::clone(&line));
        line
    }

    /// The call's record is read: forget it (its tag may be used again).
    pub fn close_call(&self, tag: u16) {
        lock(&self.0.calls).remove(&tag);
    }

    pub fn call(&self, tag: u16) -> Option<Arc<Mutex<CallLine>>> {
        lock(&self.0.calls).get(&tag).cloned()
    }

    /// A model connection opens: the stream its frames will name.
    pub fn open_model(&self) -> (u16, Arc<ModelSide>) {
        let id = (self.0.next_model.fetch_add(1, Ordering::Relaxed) % STREAMS) as u16;
        let (closed, _) = tokio::sync::watch::channel(false);
        let side = Arc::new(ModelSide { line: Mutex::new(ModelLine::default()), closed });
        lock(&self.0.models).insert(id, Arc::clone(&side));
        (id, side)
    }

    pub fn model(&self, id: u16) -> Option<Arc<ModelSide>> {
        lock(&self.0.models).get(&id).cloned()
    }

    pub fn forget_model(&self, id: u16) {
        lock(&self.0.models).remove(&id);
    }
}

/// The model's ear: caller frames recognised on one model connection, written to their call.
#[derive(Debug)]
pub struct ModelEar {
    book: Book,
    model: u16,
    call: Option<(u16, Arc<Mutex<CallLine>>)>,
    last: Option<u32>,
}

impl ModelEar {
    pub fn new(book: Book, model: u16) -> ModelEar {
        ModelEar { book, model, call: None, last: None }
    }

    /// Caller frame `id`'s content reached the model at `at`.
    pub fn heard(&mut self, id: FrameId, at: Instant) {
        if self.call.as_ref().is_none_or(|(tag, _)| *tag != id.stream) {
            let Some(line) = self.book.call(id.stream) else { return };
            lock(&line).models.push(self.model);
            self.call = Some((id.stream, line));
            self.last = None;
        }
        let Some((_, line)) = &self.call else { return };
        let index = unwrap_index(self.last, id.index);
        self.last = Some(index);
        let mut line = lock(line);
        let i = index as usize;
        if i < line.sent.len() {
            if line.arrived.len() <= i {
                line.arrived.resize(i + 1, None);
            }
            line.arrived[i].get_or_insert(at);
        }
    }
}
