//! The durable inbox: every verified inbound message, stored before WeCom gets its 200.
//!
//! Trees (declared here only):
//! - `inbox`: `u64 seq` → [`InboxItem`]. Holds exactly the messages not yet processed; the
//!   conversation worker removes an item in the same transaction as the effects of
//!   processing it, so a crash either keeps the item (it is processed again after restart)
//!   or keeps its effects, never half of each.
//! - `inbox_dedupe`: `String dedupe key` → `i64` unix seconds first seen. A retried callback
//!   finds its key and is acknowledged without being stored again. Swept after
//!   `storage.dedupe_ttl` (WeCom retries within ~15 s; the default keeps keys for days).
//! - `inbox_dead`: `u64 seq` → [`InboxItem`]: items that failed processing repeatedly, kept
//!   for an operator instead of blocking the queue.
//!
//! [`Inbox::accept`] is the whole callback-side cost. It hands the message to the inbox's
//! single writer thread and waits: the writer drains every message waiting at that moment,
//! checks and inserts them all in **one** transaction, runs **one** flush (fsync) and answers
//! them all. Async workers never block in sled on the callback path, and the cost of an fsync
//! is shared by every callback that arrived while the previous one ran (group commit).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::{self, Record, Store, Tree, Tx, TxError, TxFail};
use crate::wecom::Inbound;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InboxItem {
    pub inbound: Inbound,
    /// Unix milliseconds when we stored it.
    pub received_at: i64,
    /// Processing attempts that failed so far.
    #[serde(default)]
    pub failures: u32,
}

impl Record for InboxItem {}

/// Outcome of [`Inbox::accept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored under this sequence number.
    New(u64),
    /// Seen before; nothing stored.
    Duplicate,
}

/// Messages the writer takes per transaction at most.
const MAX_BATCH: usize = 1024;

struct Request {
    key: String,
    item: InboxItem,
    reply: oneshot::Sender<Result<Accepted, String>>,
}

/// The writer thread's handle; the last [`Inbox`] clone closes the channel and joins it, so the
/// store is fully released when the inbox is.
struct Writer {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<WriterCounters>,
}

#[derive(Debug, Default)]
struct WriterCounters {
    batches: AtomicU64,
    messages: AtomicU64,
    commit_nanos: AtomicU64,
    flush_nanos: AtomicU64,
}

/// What the inbox writer has done so far (benchmarks, metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub batches: u64,
    pub messages: u64,
    pub commit_nanos: u64,
    pub flush_nanos: u64,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub struct Inbox {
    store: Store,
    items: Tree<u64, InboxItem>,
    dedupe: Tree<String, i64>,
    dead: Tree<u64, InboxItem>,
    notify: Arc<Notify>,
    writer: Arc<Writer>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

impl Inbox {
    pub fn open(store: &Store) -> store::Result<Inbox> {
        let items: Tree<u64, InboxItem> = store.tree("inbox")?;
        let dedupe: Tree<String, i64> = store.tree("inbox_dedupe")?;
        let notify = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel::<Request>(4 * MAX_BATCH);
        let stats = Arc::new(WriterCounters::default());
        let thread = {
            let (store, items, dedupe, notify, stats) = (
                store.clone(),
                items.clone(),
                dedupe.clone(),
                notify.clone(),
                stats.clone(),
            );
            std::thread::Builder::new()
                .name("inbox-writer".into())
                .spawn(move || write_loop(rx, &store, &items, &dedupe, &notify, &stats))?
        };
        Ok(Inbox {
            store: store.clone(),
            items,
            dedupe,
            dead: store.tree("inbox_dead")?,
            notify,
            writer: Arc::new(Writer {
                tx: Some(tx),
                thread: Some(thread),
                stats,
            }),
        })
    }

    /// Store `inbound` unless its dedupe key was seen, and return once it is on disk.
    ///
    /// A duplicate is answered after the same flush: the first delivery may have been in the
    /// very batch being written, and WeCom must not see a 200 for anything that could still
    /// be lost.
    pub async fn accept(&self, inbound: Inbound) -> store::Result<Accepted> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            key: inbound.dedupe_key(),
            item: InboxItem {
                inbound,
                received_at: crate::util::unix_millis(),
                failures: 0,
            },
            reply,
        };
        let closed = || store::Error::Flush("the inbox writer stopped".into());
        self.writer
            .tx
            .as_ref()
            .ok_or_else(closed)?
            .send(request)
            .await
            .map_err(|_| closed())?;
        answer
            .await
            .map_err(|_| closed())?
            .map_err(store::Error::Flush)
    }

    pub fn writer_stats(&self) -> WriterStats {
        let s = &self.writer.stats;
        WriterStats {
            batches: s.batches.load(Ordering::Relaxed),
            messages: s.messages.load(Ordering::Relaxed),
            commit_nanos: s.commit_nanos.load(Ordering::Relaxed),
            flush_nanos: s.flush_nanos.load(Ordering::Relaxed),
        }
    }

    /// Wait until a new item may be available.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Wake the worker (e.g. to retry after a failure).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Unprocessed items in arrival order, starting after `after` (exclusive).
    pub fn pending_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> store::Result<Vec<(u64, InboxItem)>> {
        let iter: Box<dyn Iterator<Item = store::Result<(u64, InboxItem)>>> = match after {
            Some(a) => Box::new(
                self.items
                    .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            ),
            None => Box::new(self.items.iter()),
        };
        iter.take(limit).collect()
    }

    pub fn pending_count(&self) -> usize {
        self.items.len()
    }

    /// The trees a processing transaction must include to call [`Inbox::complete`].
    pub fn tree(&self) -> &Tree<u64, InboxItem> {
        &self.items
    }

    /// Mark `seq` processed, inside the transaction that applies its effects.
    pub fn complete(&self, tx: &Tx<'_>, seq: u64) -> Result<(), TxFail> {
        tx.remove(&self.items, &seq)
    }

    /// Record a failed processing attempt; after `max_failures` the item moves to the dead
    /// letters. Returns true when it was moved.
    pub fn record_failure(&self, seq: u64, max_failures: u32) -> store::Result<bool> {
        let Some(mut item) = self.items.get(&seq)? else {
            return Ok(false);
        };
        item.failures += 1;
        if item.failures >= max_failures {
            self.store
                .transaction::<_, Infallible>(&[&self.items, &self.dead], |tx| {
                    tx.remove(&self.items, &seq)?;
                    tx.insert(&self.dead, &seq, &item)?;
                    Ok(())
                })
                .map_err(TxError::into_store)?;
            Ok(true)
        } else {
            self.items.insert(&seq, &item)?;
            Ok(false)
        }
    }

    /// Items that failed processing too often.
    pub fn dead_letters(&self) -> store::Result<Vec<(u64, InboxItem)>> {
        self.dead.iter().collect()
    }

    /// Drop dedupe keys older than `ttl`. Returns how many were removed.
    pub fn sweep_dedupe(&self, ttl: Duration) -> store::Result<usize> {
        let cutoff = crate::util::unix_now() - ttl.as_secs() as i64;
        let mut removed = 0;
        for entry in self.dedupe.iter() {
            let (key, seen) = entry?;
            if seen < cutoff {
                self.dedupe.remove(&key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The writer thread: batch, one transaction, one flush, answer everyone.
fn write_loop(
    mut rx: mpsc::Receiver<Request>,
    store: &Store,
    items: &Tree<u64, InboxItem>,
    dedupe: &Tree<String, i64>,
    notify: &Notify,
    stats: &WriterCounters,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let result = commit_batch(store, items, dedupe, &batch, stats);
        match result {
            Ok(outcomes) => {
                let new = outcomes.iter().any(|o| matches!(o, Accepted::New(_)));
                for (r, o) in batch.into_iter().zip(outcomes) {
                    let _ = r.reply.send(Ok(o));
                }
                if new {
                    notify.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, count = batch.len(), "inbox batch failed");
                for r in batch {
                    let _ = r.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn commit_batch(
    store: &Store,
    items: &Tree<u64, InboxItem>,
    dedupe: &Tree<String, i64>,
    batch: &[Request],
    stats: &WriterCounters,
) -> store::Result<Vec<Accepted>> {
    let started = std::time::Instant::now();
    let seqs = batch
        .iter()
        .map(|_| store.generate_id())
        .collect::<store::Result<Vec<u64>>>()?;
    let now = crate::util::unix_now();
    let outcomes = store
        .transaction::<_, Infallible>(&[items, dedupe], |tx| {
            let mut in_batch = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(batch.len());
            for (r, &seq) in batch.iter().zip(&seqs) {
                if !in_batch.insert(r.key.as_str()) || tx.get(dedupe, &r.key)?.is_some() {
                    out.push(Accepted::Duplicate);
                    continue;
                }
                tx.insert(dedupe, &r.key, &now)?;
                tx.insert(items, &seq, &r.item)?;
                out.push(Accepted::New(seq));
            }
            Ok(out)
        })
        .map_err(TxError::into_store)?;
    let committed = std::time::Instant::now();
    store.flush_blocking()?;
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .messages
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats
        .commit_nanos
        .fetch_add((committed - started).as_nanos() as u64, Ordering::Relaxed);
    stats
        .flush_nanos
        .fetch_add(committed.elapsed().as_nanos() as u64, Ordering::Relaxed);
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wecom::{Channel, ChatType, Content};

    fn msg(id: &str) -> Inbound {
        Inbound {
            channel: Channel::App,
            chat_type: ChatType::Single,
            chat_id: "u".into(),
            sender: "u".into(),
            msg_id: id.into(),
            create_time: 0,
            content: Content::Text { text: "hi".into() },
            quote: None,
            response_url: None,
        }
    }

    #[tokio::test]
    async fn duplicates_are_stored_once_and_dead_letters_move() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("open");
        let inbox = Inbox::open(&store).expect("inbox");
        let first = inbox.accept(msg("m1")).await.expect("accept");
        assert!(matches!(first, Accepted::New(_)));
        assert_eq!(
            inbox.accept(msg("m1")).await.expect("again"),
            Accepted::Duplicate
        );
        assert!(matches!(
            inbox.accept(msg("m2")).await.expect("m2"),
            Accepted::New(_)
        ));
        let pending = inbox.pending_after(None, 10).expect("pending");
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].1.inbound.msg_id, "m1");
        let Accepted::New(seq) = first else {
            unreachable!()
        };
        assert!(!inbox.record_failure(seq, 2).expect("fail once"));
        assert!(inbox.record_failure(seq, 2).expect("fail twice"));
        assert_eq!(inbox.pending_count(), 1);
        assert_eq!(inbox.dead_letters().expect("dead").len(), 1);
        // The dedupe key outlives processing: a late retry is still recognised.
        assert_eq!(
            inbox.accept(msg("m1")).await.expect("late"),
            Accepted::Duplicate
        );
        assert_eq!(
            inbox
                .sweep_dedupe(Duration::from_secs(3600))
                .expect("sweep"),
            0
        );
    }
}
