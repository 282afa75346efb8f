//! Group commit: many callers waiting for durability share one `fsync`.
//!
//! A caller writes, then enqueues a waiter and awaits it. One flusher thread takes the first
//! waiter, drains every other waiter already queued, runs one `Db::flush` (which fsyncs) and
//! wakes them all. A waiter is only dequeued after its write happened, and the flush starts
//! after the dequeue, so the flush covers the write. Waiters that arrive during a flush ride
//! the next one.
//!
//! A plain thread (not a tokio task) keeps the blocking fsync off the async workers and
//! lets `Store` be opened outside a runtime. It ends when the last `Store` handle is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::Error;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub(super) struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping: closing the channel ends the thread.
    tx: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
    flushes: Arc<AtomicU64>,
}

impl Drop for Inner {
    /// The last handle joins the thread, so the database (which the thread holds) is closed
    /// when the store is, and can be opened again at once.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl GroupCommit {
    pub(super) fn start(db: sled::Db) -> GroupCommit {
        let (tx, rx) = mpsc::channel::<Waiter>();
        let flushes = Arc::new(AtomicU64::new(0));
        let counter = flushes.clone();
        let thread = std::thread::Builder::new()
            .name("sled-group-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(rx.try_iter());
                    let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                    counter.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = &result {
                        tracing::error!(error = %e, waiters = waiters.len(), "group flush failed");
                    }
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            })
            .expect("spawning the group-commit thread");
        GroupCommit {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Some(thread),
                flushes,
            }),
        }
    }

    pub(super) async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .as_ref()
            .ok_or_else(|| Error::Flush("store is closing".into()))?
            .send(tx)
            .map_err(|_| Error::Flush("flusher thread is gone".into()))?;
        rx.await
            .map_err(|_| Error::Flush("flusher dropped the request".into()))?
            .map_err(Error::Flush)
    }

    /// Number of flushes performed (for tests and metrics).
    pub(super) fn flush_count(&self) -> u64 {
        self.inner.flushes.load(Ordering::Relaxed)
    }
}
