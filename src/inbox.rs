//! The durable inbox: every verified inbound message, stored before WeCom gets its 200.
//!
//! Trees (declared here only):
//! - `inbox`: `String dedupe key` → [`Entry`]. One key per message: storing a message is a
//!   single atomic compare-and-swap from "absent", and a key that is already present *is*
//!   the duplicate — a retried callback is recognised by the same write that would store
//!   it. The entry holds the message until it is processed; the conversation worker then
//!   marks it done (dropping the payload) in the same transaction as the effects of
//!   processing it, so a crash keeps either the pending message or its effects, never half
//!   of each. Done entries stay as dedupe keys until swept after `storage.dedupe_ttl`.
//! - `inbox_dead`: `u64 seq` → [`InboxItem`]: messages that failed processing repeatedly,
//!   kept for an operator instead of blocking the queue.
//!
//! The arrival order (a `seq` from the database's id generator) is kept in memory and rebuilt
//! from the tree at start, so the worker resumes exactly the unprocessed messages.
//!
//! [`Inbox::accept`] is the whole callback-side cost. It hands the message to the inbox's
//! writer thread and waits: the writer takes every message waiting at that moment, stores
//! each with its compare-and-swap, runs **one** flush (fsync) for all of them and answers
//! them all. No transaction, and so no process-wide sled transaction lock, is taken on the
//! callback path; async workers never block in sled there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::{self, Record, Store, Tree, Tx, TxFail};
use crate::wecom::Inbound;

/// A message waiting to be processed.
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

/// The record under a dedupe key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Arrival order.
    pub seq: u64,
    /// Unix ms when first stored.
    pub received_at: i64,
    /// The message while unprocessed; `None` once done.
    #[serde(default)]
    pub item: Option<InboxItem>,
    /// Unix ms when processed (or dead-lettered).
    #[serde(default)]
    pub done_at: Option<i64>,
}

impl Record for Entry {}

/// Outcome of [`Inbox::accept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored under this sequence number.
    New(u64),
    /// Seen before; nothing stored.
    Duplicate,
}

/// Messages the writer takes per flush at most.
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

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
    /// Time spent storing messages (compare-and-swap per message).
    pub commit_nanos: u64,
    /// Time spent in the shared flush.
    pub flush_nanos: u64,
}

/// Unprocessed messages in arrival order: `seq` → dedupe key.
type Queue = Mutex<BTreeMap<u64, String>>;

#[derive(Clone)]
pub struct Inbox {
    store: Store,
    entries: Tree<String, Entry>,
    dead: Tree<u64, InboxItem>,
    queue: Arc<Queue>,
    notify: Arc<Notify>,
    writer: Arc<Writer>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

impl Inbox {
    /// Open the inbox and rebuild the queue of unprocessed messages.
    pub fn open(store: &Store) -> store::Result<Inbox> {
        let entries: Tree<String, Entry> = store.tree("inbox")?;
        let mut pending = BTreeMap::new();
        for entry in entries.iter() {
            let (key, e) = entry?;
            if e.item.is_some() {
                pending.insert(e.seq, key);
            }
        }
        if !pending.is_empty() {
            tracing::info!(
                pending = pending.len(),
                "resuming unprocessed inbox messages"
            );
        }
        let queue = Arc::new(Mutex::new(pending));
        let notify = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel::<Request>(4 * MAX_BATCH);
        let stats = Arc::new(WriterCounters::default());
        let thread = {
            let (store, entries, queue, notify, stats) = (
                store.clone(),
                entries.clone(),
                queue.clone(),
                notify.clone(),
                stats.clone(),
            );
            std::thread::Builder::new()
                .name("inbox-writer".into())
                .spawn(move || write_loop(rx, &store, &entries, &queue, &notify, &stats))?
        };
        Ok(Inbox {
            store: store.clone(),
            entries,
            dead: store.tree("inbox_dead")?,
            queue,
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
    /// A duplicate is answered after a flush too: the first delivery may have been stored by
    /// a batch whose flush is still running, and WeCom must not see a 200 for anything that
    /// could still be lost.
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

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, String>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The oldest unprocessed messages, in arrival order.
    pub fn pending(&self, limit: usize) -> store::Result<Vec<(u64, InboxItem)>> {
        let heads: Vec<(u64, String)> = self
            .lock_queue()
            .iter()
            .take(limit)
            .map(|(s, k)| (*s, k.clone()))
            .collect();
        let mut out = Vec::with_capacity(heads.len());
        for (seq, key) in heads {
            match self.entries.get(&key)?.and_then(|e| e.item) {
                Some(item) => out.push((seq, item)),
                // Processed meanwhile (or swept): drop it from the queue.
                None => {
                    self.lock_queue().remove(&seq);
                }
            }
        }
        Ok(out)
    }

    pub fn pending_count(&self) -> usize {
        self.lock_queue().len()
    }

    /// The tree a processing transaction must include to call [`Inbox::complete`].
    pub fn tree(&self) -> &Tree<String, Entry> {
        &self.entries
    }

    /// Mark `item` processed, inside the transaction that applies its effects. Call
    /// [`Inbox::processed`] once that transaction committed.
    pub fn complete(
        &self,
        tx: &Tx<'_>,
        seq: u64,
        item: &InboxItem,
        now: i64,
    ) -> Result<(), TxFail> {
        tx.insert(
            &self.entries,
            &item.inbound.dedupe_key(),
            &Entry {
                seq,
                received_at: item.received_at,
                item: None,
                done_at: Some(now),
            },
        )
    }

    /// Drop committed messages from the in-memory queue.
    pub fn processed(&self, seqs: &[u64]) {
        let mut q = self.lock_queue();
        for s in seqs {
            q.remove(s);
        }
    }

    /// Record a failed processing attempt; after `max_failures` the message moves to the dead
    /// letters (its key stays, so a late retry is still recognised). Returns true when moved.
    pub fn record_failure(&self, seq: u64, max_failures: u32) -> store::Result<bool> {
        let Some(key) = self.lock_queue().get(&seq).cloned() else {
            return Ok(false);
        };
        let Some(mut entry) = self.entries.get(&key)? else {
            return Ok(false);
        };
        let Some(mut item) = entry.item.take() else {
            return Ok(false);
        };
        item.failures += 1;
        if item.failures >= max_failures {
            self.dead.insert(&seq, &item)?;
            entry.done_at = Some(crate::util::unix_millis());
            self.entries.insert(&key, &entry)?;
            self.lock_queue().remove(&seq);
            Ok(true)
        } else {
            entry.item = Some(item);
            self.entries.insert(&key, &entry)?;
            Ok(false)
        }
    }

    /// Messages that failed processing too often.
    pub fn dead_letters(&self) -> store::Result<Vec<(u64, InboxItem)>> {
        self.dead.iter().collect()
    }

    /// Drop done entries older than `ttl` (their dedupe keys expire). Returns how many.
    pub fn sweep_dedupe(&self, ttl: Duration) -> store::Result<usize> {
        let cutoff = crate::util::unix_millis() - ttl.as_millis() as i64;
        let mut removed = 0;
        for entry in self.entries.iter() {
            let (key, e) = entry?;
            if e.item.is_none() && e.received_at < cutoff {
                self.entries.remove(&key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Flush whatever this inbox wrote (shutdown).
    pub fn flush(&self) -> store::Result<()> {
        self.store.flush_blocking()
    }
}

/// The writer thread: batch, one compare-and-swap each, one flush, answer everyone.
fn write_loop(
    mut rx: mpsc::Receiver<Request>,
    store: &Store,
    entries: &Tree<String, Entry>,
    queue: &Queue,
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
        match store_batch(store, entries, &batch, stats) {
            Ok(outcomes) => {
                let mut new = false;
                {
                    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                    for (r, o) in batch.iter().zip(&outcomes) {
                        if let Accepted::New(seq) = o {
                            q.insert(*seq, r.key.clone());
                            new = true;
                        }
                    }
                }
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

fn store_batch(
    store: &Store,
    entries: &Tree<String, Entry>,
    batch: &[Request],
    stats: &WriterCounters,
) -> store::Result<Vec<Accepted>> {
    let started = std::time::Instant::now();
    let mut out = Vec::with_capacity(batch.len());
    for r in batch {
        let seq = store.generate_id()?;
        let entry = Entry {
            seq,
            received_at: r.item.received_at,
            item: Some(r.item.clone()),
            done_at: None,
        };
        out.push(if entries.insert_new(&r.key, &entry)? {
            Accepted::New(seq)
        } else {
            Accepted::Duplicate
        });
    }
    let stored = std::time::Instant::now();
    store.flush_blocking()?;
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .messages
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats
        .commit_nanos
        .fetch_add((stored - started).as_nanos() as u64, Ordering::Relaxed);
    stats
        .flush_nanos
        .fetch_add(stored.elapsed().as_nanos() as u64, Ordering::Relaxed);
    Ok(out)
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
        let pending = inbox.pending(10).expect("pending");
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

    #[tokio::test]
    async fn the_queue_is_rebuilt_on_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), 8 << 20).expect("open");
            let inbox = Inbox::open(&store).expect("inbox");
            for id in ["a", "b", "c"] {
                inbox.accept(msg(id)).await.expect("accept");
            }
            let (seq, item) = inbox.pending(1).expect("pending").remove(0);
            store
                .transaction::<_, std::convert::Infallible>(&[inbox.tree()], |tx| {
                    inbox.complete(tx, seq, &item, 1)?;
                    Ok(())
                })
                .expect("complete");
            inbox.processed(&[seq]);
        }
        let store = Store::open(dir.path(), 8 << 20).expect("reopen");
        let inbox = Inbox::open(&store).expect("inbox");
        let ids: Vec<String> = inbox
            .pending(10)
            .expect("pending")
            .into_iter()
            .map(|(_, i)| i.inbound.msg_id)
            .collect();
        assert_eq!(ids, ["b", "c"], "the processed one is gone, the order kept");
        assert_eq!(
            inbox.accept(msg("a")).await.expect("retry"),
            Accepted::Duplicate
        );
    }
}
