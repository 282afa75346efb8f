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
//! [`DurableWriter`] (the store's group commit) and waits: the writer takes every message
//! waiting at that moment, stores each with its compare-and-swap, runs **one** flush (fsync)
//! for all of them and answers them all. No transaction, and so no process-wide sled transaction lock, is taken on the
//! callback path; async workers never block in sled there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::store::trees;
use crate::store::{self, Batch, DurableWriter, Record, Store, Tree, Tx, TxFail, WriterStats};
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

/// One callback on its way to disk: its dedupe key and the item.
struct Request {
    key: String,
    item: InboxItem,
}

/// How the inbox's [`DurableWriter`] stores callbacks: one compare-and-swap each (no
/// transaction, so no process-wide sled transaction lock on the callback path), then, once
/// the batch is on disk, the new ones join the queue and the worker is woken.
struct Writes {
    store: Store,
    entries: Tree<String, Entry>,
    queue: Arc<Queue>,
    notify: Arc<Notify>,
}

impl Batch for Writes {
    type Request = Request;
    type Output = Accepted;

    fn write(&mut self, r: &Request) -> store::Result<Accepted> {
        let seq = self.store.generate_id()?;
        let entry = Entry {
            seq,
            received_at: r.item.received_at,
            item: Some(r.item.clone()),
            done_at: None,
        };
        Ok(if self.entries.insert_new(&r.key, &entry)? {
            Accepted::New(seq)
        } else {
            Accepted::Duplicate
        })
    }

    fn durable(&mut self, requests: &[Request], outcomes: &[Accepted]) {
        let mut new = false;
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            for (r, o) in requests.iter().zip(outcomes) {
                if let Accepted::New(seq) = o {
                    q.insert(*seq, r.key.clone());
                    new = true;
                }
            }
        }
        if new {
            self.notify.notify_one();
        }
    }
}

/// One callback counted in [`Inbox::busy`] until dropped (also when its request is).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Unprocessed messages in arrival order: `seq` → dedupe key.
type Queue = Mutex<BTreeMap<u64, String>>;

#[derive(Clone)]
pub struct Inbox {
    entries: Tree<String, Entry>,
    dead: Tree<u64, InboxItem>,
    queue: Arc<Queue>,
    notify: Arc<Notify>,
    writer: DurableWriter<Writes>,
    /// Callbacks between arrival and their answer ([`Inbox::busy`]).
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

impl Inbox {
    /// Open the inbox and rebuild the queue of unprocessed messages.
    pub fn open(store: &Store) -> store::Result<Inbox> {
        let entries: Tree<String, Entry> = store.tree(&trees::INBOX)?;
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
        let writes = Writes {
            store: store.clone(),
            entries: entries.clone(),
            queue: queue.clone(),
            notify: notify.clone(),
        };
        Ok(Inbox {
            writer: store.durable_writer("inbox-writer", writes)?,
            entries,
            dead: store.tree(&trees::INBOX_DEAD)?,
            queue,
            notify,
            in_flight: Arc::default(),
        })
    }

    /// Store `inbound` unless its dedupe key was seen, and return once it is on disk.
    ///
    /// A duplicate is answered after a flush too: the first delivery may have been stored by
    /// a batch whose flush is still running, and WeCom must not see a 200 for anything that
    /// could still be lost.
    pub async fn accept(&self, inbound: Inbound) -> store::Result<Accepted> {
        let key = inbound.dedupe_key();
        let item = InboxItem {
            inbound,
            received_at: crate::util::unix_millis(),
            failures: 0,
        };
        let _counted = InFlight::enter(&self.in_flight);
        self.writer.write(Request { key, item }).await
    }

    /// Whether callbacks are waiting to be stored right now: the processing workers use it
    /// to leave the CPU to the acknowledgement path under load.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// What the inbox writer has done so far (benchmarks, metrics).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
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
