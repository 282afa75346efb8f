//! The one durability primitive: group commit.
//!
//! A [`DurableWriter`] owns a thread. A caller hands it a request and awaits the answer; the
//! thread takes every request waiting at that moment (up to [`MAX_BATCH`]), writes each with
//! [`Batch::write`] in arrival order, runs **one** flush (fsync) for all of them, tells the
//! batch ([`Batch::durable`]) and only then answers them all. So an answer always means "on
//! disk", and concurrent callers share the cost of an fsync. Requests that arrive during a
//! flush ride the next one.
//!
//! A plain thread (not a tokio task) keeps the blocking writes and fsync off the async
//! workers and lets a writer start outside a runtime. It ends when the last handle is
//! dropped (the handle joins it, so the database is released with it).
//!
//! One caller today: [`Store::durable`](super::Store::durable) (a flush-only batch:
//! "everything written before this call is on disk"). The inbox, whose acknowledgements are
//! the hot path, has its own log with the same group commit (`crate::inbox`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::{Error, Result};

/// Requests one flush covers at most.
pub const MAX_BATCH: usize = 1024;

/// What a [`DurableWriter`] does with each request, on its thread.
pub trait Batch: Send + 'static {
    type Request: Send + 'static;
    type Output: Send + 'static;

    /// Write one request (not durable yet). An error fails the whole batch: nobody is told
    /// "stored" unless all of it is on disk.
    fn write(&mut self, request: &Self::Request) -> Result<Self::Output>;

    /// The batch is on disk; called before anyone is answered.
    fn durable(&mut self, requests: &[Self::Request], outputs: &[Self::Output]) {
        let _ = (requests, outputs);
    }
}

/// What a writer has done so far (benchmarks, metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Flushes, one per batch.
    pub batches: u64,
    pub requests: u64,
    /// Time spent in [`Batch::write`].
    pub write_nanos: u64,
    /// Time spent in the shared flush.
    pub flush_nanos: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    write_nanos: AtomicU64,
    flush_nanos: AtomicU64,
}

type Reply<O> = oneshot::Sender<std::result::Result<O, String>>;
/// A request and where its answer goes.
type Queued<B> = (<B as Batch>::Request, Reply<<B as Batch>::Output>);

/// A group-commit writer; cheap to clone.
pub struct DurableWriter<B: Batch> {
    inner: Arc<Inner<B>>,
}

impl<B: Batch> Clone for DurableWriter<B> {
    fn clone(&self) -> Self {
        DurableWriter {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<B: Batch> {
    /// `None` only while dropping: closing the channel ends the thread.
    tx: Option<mpsc::Sender<Queued<B>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl<B: Batch> Drop for Inner<B> {
    /// The last handle joins the thread, so what it holds (the database) is released when
    /// the writer is.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<B: Batch> DurableWriter<B> {
    /// Start the thread `name`; `flush` makes everything written so far durable.
    pub(super) fn start(
        name: &str,
        mut batch: B,
        flush: impl Fn() -> Result<()> + Send + 'static,
    ) -> Result<DurableWriter<B>> {
        let (tx, mut rx) = mpsc::channel::<Queued<B>>(4 * MAX_BATCH);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut waiting = Vec::with_capacity(MAX_BATCH);
                while let Some(first) = rx.blocking_recv() {
                    waiting.push(first);
                    while waiting.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(r) => waiting.push(r),
                            Err(_) => break,
                        }
                    }
                    let (requests, replies): (Vec<_>, Vec<_>) = waiting.drain(..).unzip();
                    match run_batch(&mut batch, &requests, &flush, &c) {
                        Ok(outputs) => {
                            batch.durable(&requests, &outputs);
                            for (reply, out) in replies.into_iter().zip(outputs) {
                                let _ = reply.send(Ok(out));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, count = replies.len(), "durable write failed");
                            for reply in replies {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                }
            })?;
        Ok(DurableWriter {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Some(thread),
                counters,
            }),
        })
    }

    /// Write `request` and return once it is on disk.
    pub async fn write(&self, request: B::Request) -> Result<B::Output> {
        let closed = || Error::Flush("the durable writer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.inner
            .tx
            .as_ref()
            .ok_or_else(closed)?
            .send((request, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?.map_err(Error::Flush)
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        WriterStats {
            batches: c.batches.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            write_nanos: c.write_nanos.load(Ordering::Relaxed),
            flush_nanos: c.flush_nanos.load(Ordering::Relaxed),
        }
    }
}

fn run_batch<B: Batch>(
    batch: &mut B,
    requests: &[B::Request],
    flush: &impl Fn() -> Result<()>,
    counters: &Counters,
) -> Result<Vec<B::Output>> {
    let started = Instant::now();
    let outputs = requests
        .iter()
        .map(|r| batch.write(r))
        .collect::<Result<Vec<_>>>()?;
    let written = Instant::now();
    flush()?;
    let add = |a: &AtomicU64, n: u64| a.fetch_add(n, Ordering::Relaxed);
    add(&counters.batches, 1);
    add(&counters.requests, requests.len() as u64);
    add(&counters.write_nanos, (written - started).as_nanos() as u64);
    add(&counters.flush_nanos, written.elapsed().as_nanos() as u64);
    Ok(outputs)
}

/// The flush-only batch behind [`Store::durable`](super::Store::durable).
pub(super) struct FlushOnly;

impl Batch for FlushOnly {
    type Request = ();
    type Output = ();

    fn write(&mut self, (): &()) -> Result<()> {
        Ok(())
    }
}
