//! The database's durability primitive: group commit.
//!
//! A [`GroupFlush`] owns a thread. A caller of [`GroupFlush::flush`] hands it a reply slot
//! and waits; the thread takes every request waiting at that moment, runs **one** flush
//! (fsync) for all of them and answers them all. So an answer always means "everything
//! written before the call is on disk", and concurrent callers share the cost of an fsync.
//! Requests that arrive during a flush ride the next one.
//!
//! A plain thread (not a tokio task) keeps the blocking fsync off the async workers and lets
//! it start outside a runtime. It ends when the last handle is dropped (the handle joins
//! it, so the database is released with it).
//!
//! The caller is [`Store::durable`](super::Store::durable). The inbox, whose
//! acknowledgements are the hot path, has its own log with the same group commit
//! (`crate::inbox`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{Error, Result};

/// Callers that can wait for one flush without blocking their senders.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<std::result::Result<(), String>>;

/// A group-commit flusher; cheap to clone.
#[derive(Clone)]
pub struct GroupFlush {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping: closing the channel ends the thread.
    tx: Option<mpsc::Sender<Reply>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Flushes run so far.
    flushes: Arc<AtomicU64>,
}

impl Drop for Inner {
    /// The last handle joins the thread, so what it holds (the database) is released when
    /// the flusher is.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl GroupFlush {
    /// Start the thread `name`; `flush` makes everything written so far durable.
    pub(super) fn start(
        name: &str,
        flush: impl Fn() -> Result<()> + Send + 'static,
    ) -> Result<GroupFlush> {
        let (tx, mut rx) = mpsc::channel::<Reply>(QUEUE);
        let flushes = Arc::new(AtomicU64::new(0));
        let counted = flushes.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut waiting = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    waiting.push(first);
                    while let Ok(r) = rx.try_recv() {
                        waiting.push(r);
                    }
                    let outcome = flush().map_err(|e| e.to_string());
                    counted.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = &outcome {
                        tracing::error!(error = %e, count = waiting.len(), "durable flush failed");
                    }
                    for reply in waiting.drain(..) {
                        let _ = reply.send(outcome.clone());
                    }
                }
            })?;
        Ok(GroupFlush {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Some(thread),
                flushes,
            }),
        })
    }

    /// Flushes run so far (each served every caller waiting at its start).
    pub fn flushes(&self) -> u64 {
        self.inner.flushes.load(Ordering::Relaxed)
    }

    /// Return once everything written before this call is on disk.
    pub async fn flush(&self) -> Result<()> {
        let closed = || Error::Flush("the durable flusher stopped".into());
        let (reply, answer) = oneshot::channel();
        self.inner
            .tx
            .as_ref()
            .ok_or_else(closed)?
            .send(reply)
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?.map_err(Error::Flush)
    }
}
