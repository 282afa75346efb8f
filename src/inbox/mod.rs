//! The durable inbox: every verified inbound message, stored before WeCom gets its 200.
//!
//! A message is stored by appending it to the inbox's own write-ahead log (`log.rs`) and
//! answered once an `fdatasync` covers it. The log is written by one thread, the *syncer*:
//! callbacks append their records to a shared buffer under a short lock and wait on one
//! watch for the durable sequence number; the syncer takes the whole buffer, writes it with
//! one `write` and one `fdatasync`, and publishes the last sequence number in it. So every
//! callback that arrives during a sync rides the next one (group commit), no callback waits
//! on a channel of its own, and the syncer is woken only when it sleeps.
//!
//! Unprocessed messages are listed in memory in arrival order, with their dedupe key and
//! where their record is in the log; the conversation worker reads the records back from
//! there ([`Inbox::pending`]: recently written, they are still in the page cache). So a
//! backlog costs memory by the message count, not by the size of the messages. (Messages
//! replayed at start are kept encoded in memory.)
//!
//! Trees (declared here only):
//! - `inbox`: `String dedupe key` → [`Entry`]: processed messages. The conversation worker
//!   writes the entry (without the payload) in the same transaction as the effects of
//!   processing the message, so a crash keeps either the pending message (in the log) or its
//!   effects, never half of each. The entries stay as dedupe keys until swept after
//!   `storage.dedupe_ttl`. (Stores from before the log kept pending messages here too, with
//!   their payload; they are still read at start.)
//! - `inbox_dead`: `u64 seq` → [`InboxItem`]: messages that failed processing repeatedly,
//!   kept for an operator instead of blocking the queue.
//!
//! A message's dedupe key is looked up in memory (stored, not processed yet), then in Bloom
//! filters of the processed keys, and only when they cannot rule it out in `inbox`
//! (processed) — that look outside the lock, which no store call is ever made under (sled's
//! reads can wait behind its transactions). An epoch of processing makes the look repeat if
//! a message was processed meanwhile, so a retried callback is never stored twice
//! ([`Inbox::accept`]). A log segment is deleted only after every message in it is processed
//! and the store flushed ([`Inbox::drop_processed`]). At start the log is replayed:
//! every record whose key is not in `inbox` is pending again, in its old order.
//!
//! If the log cannot be written, the inbox stops accepting (503 for every callback, so WeCom
//! retries) rather than guess what reached the disk: [`Inbox::check`] says so to the storage
//! watchdog, which opens the inbox again once the disk takes writes, and the replay finds
//! what did (a retry of a message that did is then a duplicate).

mod keys;
mod log;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use fastbloom::BloomFilter;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::store::trees;
use crate::store::{self, Record, Store, Tree, Tx, TxFail};
use crate::wecom::Inbound;

/// A message waiting to be processed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InboxItem {
    pub inbound: Inbound,
    /// Unix milliseconds when we stored it.
    pub received_at: i64,
    /// Processing attempts that failed so far (counted in memory since the last start).
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
    /// The message while unprocessed (stores from before the log only); `None` once done.
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

/// One batch's outcome, `None` until its `fdatasync` returned (`Some(false)`: it failed).
/// Each callback waits on its own batch's, so a sync wakes exactly the callbacks it covers.
type BatchDone = Arc<watch::Sender<Option<bool>>>;

fn new_batch() -> BatchDone {
    Arc::new(watch::Sender::new(None))
}

/// A batch at least this large means callbacks are arriving faster than syncs take...
const BUSY_BATCH: u64 = 4;
/// ...and the syncer then lets the next batch gather, for at most this long (with many
/// connections callbacks never stop arriving: a shorter cap made batches smaller and the
/// CPU a callback larger, 120 µs: 16 instead of 25 at 256 connections)...
const GATHER: Duration = Duration::from_micros(200);
/// ...looking this often whether callbacks are still arriving: once they stop (every open
/// request is waiting for the disk), waiting longer would only leave the CPU idle.
const GATHER_STEP: Duration = Duration::from_micros(25);

/// What the callbacks, the syncer and the worker share, under one lock.
#[derive(Debug)]
struct State {
    /// Encoded records not yet handed to the syncer.
    buffer: Vec<u8>,
    /// The first and the last sequence number in `buffer`.
    buffered_from: u64,
    buffered_to: u64,
    /// How many records `buffer` holds.
    buffered: u64,
    /// The outcome of the records in `buffer`.
    batch: BatchDone,
    /// The batch being written and synced: its last sequence number and outcome.
    syncing: Option<(u64, BatchDone)>,
    /// The syncer is asleep and must be woken for new records.
    syncer_asleep: bool,
    /// The last handle is gone: the syncer writes what is left and stops.
    closing: bool,
    /// Why the log stopped, once it did.
    failed: Option<String>,
    /// Stored, unprocessed messages in arrival order.
    pending: BTreeMap<u64, Pending>,
    /// Where the batches that hold pending messages were written, by their first sequence
    /// number (see [`Stored::Logged`]).
    written: BTreeMap<u64, Written>,
    /// The messages of `pending` by the hash of their dedupe key. (Hashes, not the keys: a
    /// look compares numbers, not strings with a long common prefix.)
    keys: keys::Keys,
    /// Log segments no longer appended to.
    closed: log::ClosedSegments,
    /// The next message's sequence number (see [`Inbox::open`]).
    next_seq: u64,
    /// The dedupe keys of processed messages, approximately (see [`Inbox::accept`]).
    seen: Seen,
    /// Bumped whenever messages leave `pending` as processed (see [`Inbox::accept`]).
    processed_epoch: u64,
}

/// The dedupe keys of processed messages as Bloom filters: a "no" is certain, so a new
/// message (nearly always a "no") is stored without a look into the `inbox` tree. When one
/// filter holds as many keys as it was made for, another twice its size is added.
///
/// Every filter hashes with the same [`Shared::hasher`], so a key is hashed once for all of
/// them (and for [`State::keys`]).
#[derive(Debug)]
struct Seen {
    hasher: RandomState,
    filters: Vec<BloomFilter<RandomState>>,
    /// Keys in the newest filter, and how many it was made for.
    count: usize,
    capacity: usize,
}

impl Seen {
    /// Each filter's false positive rate: a false positive costs one look into the tree.
    const FALSE_POSITIVES: f64 = 0.001;

    fn new(hasher: RandomState) -> Seen {
        let capacity = 1 << 16;
        Seen {
            filters: vec![Self::filter(&hasher, capacity)],
            hasher,
            count: 0,
            capacity,
        }
    }

    fn filter(hasher: &RandomState, capacity: usize) -> BloomFilter<RandomState> {
        BloomFilter::with_false_pos(Self::FALSE_POSITIVES)
            .hasher(hasher.clone())
            .expected_items(capacity)
    }

    /// Add the key of hash `hash`.
    fn insert(&mut self, hash: u64) {
        if self.count == self.capacity {
            self.capacity *= 2;
            self.count = 0;
            self.filters.push(Self::filter(&self.hasher, self.capacity));
        }
        if let Some(f) = self.filters.last_mut() {
            f.insert_hash(hash);
        }
        self.count += 1;
    }

    fn may_contain(&self, hash: u64) -> bool {
        self.filters.iter().any(|f| f.contains_hash(hash))
    }
}

/// An unprocessed message. Its record is read back from the log when the worker wants it,
/// so a backlog (when processing falls behind during a burst) costs a few dozen bytes a
/// message in memory, not its record.
#[derive(Debug)]
struct Pending {
    key: Box<str>,
    /// The key's [`Shared::hasher`] hash, under which [`State::keys`] lists the message.
    hash: u64,
    record: Stored,
    failures: u32,
}

/// Where a pending message's record is.
#[derive(Debug)]
enum Stored {
    /// `len` bytes (framed) at `at` in the batch that starts with message `batch`, written
    /// where [`State::written`] says.
    Logged { batch: u64, at: u64, len: u32 },
    /// A [`log::Logged`] in the record encoding: a message replayed at start.
    Memory(Box<[u8]>),
}

/// Where a batch was written, and how many of its messages are still pending (it is
/// forgotten at none).
#[derive(Debug)]
struct Written {
    at: log::Position,
    pending: u64,
}

/// Pending messages' records, located under the lock and read after it
/// ([`State::locate`], [`Located::read`]).
enum Located {
    /// Consecutive records in a segment, `lens` bytes each (framed), from `offset` to `end`.
    Log {
        file: Arc<std::fs::File>,
        offset: u64,
        end: u64,
        lens: Vec<u32>,
    },
    Memory(Box<[u8]>),
}

impl Located {
    /// Take `next` into these records if it is the one right after them in their segment
    /// (the records of a batch are), so that they are read with one read.
    fn extend(&mut self, next: &Located) -> bool {
        match (self, next) {
            (
                Located::Log {
                    file, end, lens, ..
                },
                Located::Log {
                    file: next_file,
                    offset,
                    end: next_end,
                    lens: next_lens,
                },
            ) if Arc::ptr_eq(file, next_file) && *end == *offset => {
                *end = *next_end;
                lens.extend_from_slice(next_lens);
                true
            }
            _ => false,
        }
    }

    /// The records, in order.
    fn read(self) -> store::Result<Vec<log::Logged>> {
        match self {
            Located::Log {
                file, offset, lens, ..
            } => log::read(&file, offset, &lens),
            Located::Memory(record) => Ok(vec![log::decode(&record)?]),
        }
    }
}

/// The message in `logged`, with its failure count.
fn item(logged: log::Logged, failures: u32) -> InboxItem {
    InboxItem {
        failures,
        ..logged.item
    }
}

impl State {
    fn locate(&self, p: &Pending) -> store::Result<Located> {
        match &p.record {
            Stored::Memory(record) => Ok(Located::Memory(record.clone())),
            Stored::Logged { batch, at, len } => {
                let w = self.written.get(batch).ok_or_else(|| {
                    store::Error::Damaged(format!("inbox batch {batch} has no place in the log"))
                })?;
                let offset = w.at.offset + at;
                Ok(Located::Log {
                    file: w.at.file.clone(),
                    offset,
                    end: offset + u64::from(*len),
                    lens: vec![*len],
                })
            }
        }
    }

    /// Make a message replayed at start pending again (kept encoded in memory).
    fn resume(&mut self, hasher: &RandomState, record: &log::Logged) {
        let hash = hasher.hash_one(&record.key);
        self.keys.insert(hash, record.seq);
        let pending = Pending {
            key: record.key.as_str().into(),
            hash,
            record: Stored::Memory(record.to_bytes().into()),
            failures: record.item.failures,
        };
        self.pending.insert(record.seq, pending);
    }

    /// The pending message with dedupe key `key` of hash `hash`.
    fn pending_with(&self, key: &str, hash: u64) -> Option<u64> {
        self.keys
            .seqs(hash)
            .find(|seq| self.pending.get(seq).is_some_and(|p| &*p.key == key))
    }

    /// Take message `seq` out of the pending ones.
    fn remove_pending(&mut self, seq: u64) -> Option<Pending> {
        let p = self.pending.remove(&seq)?;
        self.keys.remove(p.hash, seq);
        if let Stored::Logged { batch, .. } = p.record
            && let Some(w) = self.written.get_mut(&batch)
        {
            w.pending -= 1;
            if w.pending == 0 {
                self.written.remove(&batch);
            }
        }
        Some(p)
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Hashes dedupe keys ([`State::keys`], [`Seen`]); outside the lock, so that a
    /// callback hashes its key before it takes the lock.
    hasher: RandomState,
    wake_syncer: Condvar,
    /// Every message up to this sequence number is on disk.
    durable: AtomicU64,
    /// New durable messages for the worker.
    notify: Notify,
    /// Callbacks between arrival and their answer ([`Inbox::busy`]).
    in_flight: AtomicUsize,
    /// Messages appended since the start (the syncer's gather watches it).
    appended: AtomicU64,
    syncs: AtomicU64,
    synced: AtomicU64,
}

/// What the syncer has done since the start (benchmarks, metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// `fdatasync`s of the log, one per batch.
    pub syncs: u64,
    /// Messages they made durable.
    pub messages: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Stops the syncer when the last [`Inbox`] handle is dropped, after it wrote what it had,
/// and then the thread preparing its segments.
#[derive(Debug)]
struct Syncer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    spare: Arc<log::Spare>,
    prealloc: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake_syncer.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.spare.close();
        if let Some(t) = self.prealloc.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub struct Inbox {
    shared: Arc<Shared>,
    entries: Tree<String, Entry>,
    dead: Tree<u64, InboxItem>,
    store: Store,
    _syncer: Arc<Syncer>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
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

impl Inbox {
    /// Open the inbox: replay its log and start the syncer.
    pub fn open(store: &Store) -> store::Result<Inbox> {
        let entries: Tree<String, Entry> = store.tree(&trees::INBOX)?;
        let hasher = RandomState::new();
        let (segments, closed, records) = log::Segments::open(&store.log_dir("inbox"))?;
        let mut st = State {
            buffer: Vec::new(),
            buffered_from: 0,
            buffered_to: 0,
            buffered: 0,
            batch: new_batch(),
            syncing: None,
            syncer_asleep: false,
            closing: false,
            failed: None,
            pending: BTreeMap::new(),
            written: BTreeMap::new(),
            keys: keys::Keys::default(),
            closed,
            next_seq: 0,
            seen: Seen::new(hasher.clone()),
            processed_epoch: 0,
        };
        // Sequence numbers come from the inbox's own counter, not the store's: the store's
        // generator can wait behind a transaction, under the lock every callback takes. They
        // continue above every number still stored (and above the store's generator, which
        // gave them before).
        let dead: Tree<u64, InboxItem> = store.tree(&trees::INBOX_DEAD)?;
        let mut max_seq = store
            .generate_id()?
            .max(dead.last()?.map_or(0, |(seq, _)| seq));
        // Pending messages of stores from before the log.
        for entry in entries.iter() {
            let (key, e) = entry?;
            max_seq = max_seq.max(e.seq);
            match e.item {
                Some(item) => st.resume(
                    &hasher,
                    &log::Logged {
                        seq: e.seq,
                        key,
                        item,
                    },
                ),
                None => st.seen.insert(hasher.hash_one(&key)),
            }
        }
        let mut durable = 0;
        for r in records {
            durable = durable.max(r.seq);
            max_seq = max_seq.max(r.seq);
            if !entries.contains(&r.key)? {
                st.resume(&hasher, &r);
            }
        }
        st.next_seq = max_seq + 1;
        if !st.pending.is_empty() {
            tracing::info!(
                pending = st.pending.len(),
                "resuming unprocessed inbox messages"
            );
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            hasher,
            wake_syncer: Condvar::new(),
            durable: AtomicU64::new(durable),
            notify: Notify::new(),
            in_flight: AtomicUsize::new(0),
            appended: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        });
        let spare = segments.spare();
        let prealloc = {
            let (spare, dir) = (spare.clone(), store.log_dir("inbox"));
            std::thread::Builder::new()
                .name("inbox-prealloc".into())
                .spawn(move || spare.run(&dir))?
        };
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("inbox-syncer".into())
                .spawn(move || sync_loop(&shared, segments))?
        };
        Ok(Inbox {
            _syncer: Arc::new(Syncer {
                shared: shared.clone(),
                thread: Some(thread),
                spare,
                prealloc: Some(prealloc),
            }),
            shared,
            entries,
            dead,
            store: store.clone(),
        })
    }

    /// Store `inbound` unless its dedupe key was seen, and return once it is on disk.
    ///
    /// A duplicate of a message still on its way to disk is answered once it is there:
    /// WeCom must not see a 200 for anything that could still be lost.
    pub async fn accept(&self, inbound: Inbound) -> store::Result<Accepted> {
        let _counted = InFlight::enter(&self.shared.in_flight);
        let key = inbound.dedupe_key();
        let hash = self.shared.hasher.hash_one(&key);
        let mut inbound = Some(inbound);
        // Whether an already processed message had this key: the Bloom filters answer most
        // of the time. When they cannot rule it out, it takes a look into the `inbox` tree,
        // which can wait behind a store transaction for milliseconds: that look happens
        // outside the lock, so that it holds up no other callback. A message processed
        // meanwhile (its key leaves `keys` after its entry is in the tree) bumps the epoch,
        // and the look is taken again.
        let mut looked: Option<u64> = None;
        let (mut done, outcome) = loop {
            let epoch = {
                let mut st = self.shared.lock();
                if let Some(why) = &st.failed {
                    return Err(store::Error::Flush(why.clone()));
                }
                if let Some(seq) = st.pending_with(&key, hash) {
                    // Stored, not processed yet: answered once its batch is on disk.
                    if seq <= self.shared.durable.load(Ordering::Acquire) {
                        return Ok(Accepted::Duplicate);
                    }
                    let batch = match &st.syncing {
                        Some((to, b)) if seq <= *to => b,
                        _ => &st.batch,
                    };
                    break (batch.subscribe(), Accepted::Duplicate);
                }
                let unseen = looked == Some(st.processed_epoch) || !st.seen.may_contain(hash);
                if unseen && let Some(inbound) = inbound.take() {
                    let seq = st.next_seq;
                    st.next_seq += 1;
                    let item = InboxItem {
                        inbound,
                        received_at: crate::util::unix_millis(),
                        failures: 0,
                    };
                    let record = log::Logged { seq, key, item };
                    let at = log::encode(&mut st.buffer, &record);
                    if st.buffered == 0 {
                        st.buffered_from = seq;
                    }
                    let pending = Pending {
                        record: Stored::Logged {
                            batch: st.buffered_from,
                            at: at as u64,
                            len: (st.buffer.len() - at) as u32,
                        },
                        key: record.key.into(),
                        hash,
                        failures: 0,
                    };
                    st.buffered_to = seq;
                    st.buffered += 1;
                    self.shared.appended.fetch_add(1, Ordering::Relaxed);
                    st.keys.insert(hash, seq);
                    st.pending.insert(seq, pending);
                    if st.syncer_asleep {
                        st.syncer_asleep = false;
                        self.shared.wake_syncer.notify_one();
                    }
                    break (st.batch.subscribe(), Accepted::New(seq));
                }
                st.processed_epoch
            };
            if self.entries.contains(&key)? {
                return Ok(Accepted::Duplicate);
            }
            looked = Some(epoch);
        };
        match done.wait_for(Option::is_some).await.map(|r| *r) {
            Ok(Some(true)) => Ok(outcome),
            _ => Err(store::Error::Flush(
                "the inbox log could not be written".into(),
            )),
        }
    }

    /// `Err` once the log could not be written (callbacks are refused until the inbox is
    /// opened again; the storage watchdog does that once the disk takes writes).
    pub fn check(&self) -> store::Result<()> {
        match &self.shared.lock().failed {
            Some(why) => Err(store::Error::Flush(why.clone())),
            None => Ok(()),
        }
    }

    /// Whether callbacks are waiting to be stored right now: the processing workers use it
    /// to leave the CPU to the acknowledgement path under load.
    pub fn busy(&self) -> bool {
        self.shared.in_flight.load(Ordering::Relaxed) > 0
    }

    pub fn log_stats(&self) -> LogStats {
        LogStats {
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            messages: self.shared.synced.load(Ordering::Relaxed),
        }
    }

    /// Wait until a new item may be available.
    pub async fn wait(&self) {
        self.shared.notify.notified().await;
    }

    /// The oldest unprocessed messages on disk, in arrival order.
    pub fn pending(&self, limit: usize) -> store::Result<Vec<(u64, InboxItem)>> {
        let durable = self.shared.durable.load(Ordering::Acquire);
        // Located under the lock, read after it (the callbacks wait on this lock), each run of
        // consecutive records with one read.
        let mut runs: Vec<(Located, Vec<(u64, u32)>)> = Vec::new();
        {
            let st = self.shared.lock();
            for (&seq, p) in st.pending.range(..=durable).take(limit) {
                let found = st.locate(p)?;
                if let Some((run, messages)) = runs.last_mut()
                    && run.extend(&found)
                {
                    messages.push((seq, p.failures));
                } else {
                    runs.push((found, vec![(seq, p.failures)]));
                }
            }
        }
        let mut items = Vec::new();
        for (run, messages) in runs {
            for (logged, (seq, failures)) in run.read()?.into_iter().zip(messages) {
                items.push((seq, item(logged, failures)));
            }
        }
        Ok(items)
    }

    pub fn pending_count(&self) -> usize {
        self.shared.lock().pending.len()
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

    /// Drop committed messages from the pending ones (their entries are in `inbox` now).
    pub fn processed(&self, seqs: &[u64]) {
        let mut st = self.shared.lock();
        for &s in seqs {
            if let Some(p) = st.remove_pending(s) {
                st.seen.insert(p.hash);
            }
        }
        st.processed_epoch += 1;
    }

    /// Record a failed processing attempt; after `max_failures` the message moves to the dead
    /// letters (its key stays, so a late retry is still recognised). Returns true when moved.
    pub fn record_failure(&self, seq: u64, max_failures: u32) -> store::Result<bool> {
        let (key, record, failures) = {
            let mut st = self.shared.lock();
            let Some(p) = st.pending.get_mut(&seq) else {
                return Ok(false);
            };
            p.failures += 1;
            if p.failures < max_failures {
                return Ok(false);
            }
            let p = &st.pending[&seq];
            (p.key.to_string(), st.locate(p)?, p.failures)
        };
        let Some(logged) = record.read()?.pop() else {
            return Ok(false);
        };
        let item = item(logged, failures);
        self.store
            .transaction::<_, std::convert::Infallible>(&[&self.dead, &self.entries], |tx| {
                tx.insert(&self.dead, &seq, &item)?;
                tx.insert(
                    &self.entries,
                    &key,
                    &Entry {
                        seq,
                        received_at: item.received_at,
                        item: None,
                        done_at: Some(crate::util::unix_millis()),
                    },
                )?;
                Ok(())
            })
            .map_err(|e| e.into_store())?;
        self.processed(&[seq]);
        Ok(true)
    }

    /// Delete the log segments whose messages are all processed, after a flush of the store
    /// makes the effects of processing them durable. The worker calls it between batches
    /// (not the syncer: a flush there would hold up acknowledgements).
    pub async fn drop_processed(&self) -> store::Result<()> {
        let n = {
            let st = self.shared.lock();
            st.closed.processed(st.pending.keys().next().copied())
        };
        if n == 0 {
            return Ok(());
        }
        self.store.durable().await?;
        let done = self.shared.lock().closed.take(n);
        tokio::task::block_in_place(|| log::delete(&done))?;
        tracing::debug!(
            segments = done.len(),
            "processed inbox log segments deleted"
        );
        Ok(())
    }

    pub fn dead_count(&self) -> usize {
        self.dead.len()
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

/// The syncer: write whatever the callbacks buffered, make it durable, tell them.
fn sync_loop(shared: &Shared, mut segments: log::Segments) {
    let mut spare = Vec::new();
    loop {
        let (bytes, last_seq, count, batch) = {
            let mut st = shared.lock();
            while st.buffer.is_empty() && !st.closing {
                st.syncer_asleep = true;
                st = shared
                    .wake_syncer
                    .wait(st)
                    .unwrap_or_else(|p| p.into_inner());
            }
            st.syncer_asleep = false;
            if st.buffer.is_empty() {
                return; // closing, and everything is written
            }
            let bytes = std::mem::replace(&mut st.buffer, std::mem::take(&mut spare));
            let written = Written {
                at: segments.position(),
                pending: st.buffered,
            };
            let first = st.buffered_from;
            st.written.insert(first, written);
            let batch = std::mem::replace(&mut st.batch, new_batch());
            st.syncing = Some((st.buffered_to, batch.clone()));
            (
                bytes,
                st.buffered_to,
                std::mem::take(&mut st.buffered),
                batch,
            )
        };
        match segments.append(&bytes, last_seq) {
            Ok(None) => {}
            Ok(Some(closed)) => shared.lock().closed.push(closed),
            Err(e) => {
                fail(shared, &e.to_string());
                return;
            }
        }
        shared.durable.store(last_seq, Ordering::Release);
        batch.send_replace(Some(true));
        shared.syncs.fetch_add(1, Ordering::Relaxed);
        shared.synced.fetch_add(count, Ordering::Relaxed);
        shared.notify.notify_one();
        spare = bytes;
        spare.clear();
        if count >= BUSY_BATCH {
            // Under load: let the next batch gather while callbacks keep coming (fewer,
            // larger syncs, which are costly system calls here); a quiet desk never waits.
            let until = std::time::Instant::now() + GATHER;
            let mut seen = shared.appended.load(Ordering::Relaxed);
            loop {
                std::thread::sleep(GATHER_STEP);
                let now = shared.appended.load(Ordering::Relaxed);
                if now == seen || std::time::Instant::now() >= until {
                    break;
                }
                seen = now;
            }
        }
    }
}

/// The log could not be written: refuse every callback from now on (WeCom retries them),
/// and forget the messages that were not acknowledged.
fn fail(shared: &Shared, why: &str) {
    tracing::error!(error = %why, "the inbox log could not be written; callbacks are refused until it is reopened");
    let durable = shared.durable.load(Ordering::Acquire);
    let mut st = shared.lock();
    st.failed = Some(format!("the inbox log could not be written: {why}"));
    let lost: Vec<u64> = st.pending.range(durable + 1..).map(|(s, _)| *s).collect();
    for s in lost {
        st.remove_pending(s);
    }
    st.buffer.clear();
    st.buffered = 0;
    if let Some((_, b)) = st.syncing.take() {
        b.send_replace(Some(false));
    }
    st.batch.send_replace(Some(false));
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

    /// Mark `items` processed, as the worker does: in a transaction, then in memory.
    /// The MsgIds of the pending messages, in order.
    fn pending_ids(inbox: &Inbox) -> Vec<String> {
        inbox
            .pending(10)
            .expect("pending")
            .into_iter()
            .map(|(_, i)| i.inbound.msg_id)
            .collect()
    }

    fn process(store: &Store, inbox: &Inbox, items: &[(u64, InboxItem)]) {
        store
            .transaction::<_, std::convert::Infallible>(&[inbox.tree()], |tx| {
                for (seq, item) in items {
                    inbox.complete(tx, *seq, item, 1)?;
                }
                Ok(())
            })
            .expect("complete");
        let seqs: Vec<u64> = items.iter().map(|(s, _)| *s).collect();
        inbox.processed(&seqs);
    }

    /// Pending messages are found by the hash of their key, and the key decides: a message
    /// whose key shares its hash with a pending one is new.
    #[tokio::test]
    async fn a_shared_hash_is_not_a_duplicate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("open");
        let inbox = Inbox::open(&store).expect("inbox");
        let Accepted::New(first) = inbox.accept(msg("m1")).await.expect("m1") else {
            panic!("a new message");
        };
        // Make m2's hash lead to m1, as a collision would.
        let hash = inbox.shared.hasher.hash_one(msg("m2").dedupe_key());
        inbox.shared.lock().keys.insert(hash, first);
        assert!(matches!(
            inbox.accept(msg("m2")).await.expect("m2"),
            Accepted::New(_)
        ));
        assert_eq!(
            inbox.accept(msg("m2")).await.expect("m2 again"),
            Accepted::Duplicate
        );
        assert_eq!(pending_ids(&inbox), ["m1", "m2"]);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_filters_rule_out_new_keys_and_the_tree_decides_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("open");
        let inbox = Inbox::open(&store).expect("inbox");
        inbox.accept(msg("m1")).await.expect("accept");
        process(&store, &inbox, &inbox.pending(10).expect("pending"));
        let hash = inbox.shared.hasher.hash_one(msg("m1").dedupe_key());
        assert!(inbox.shared.lock().seen.may_contain(hash));
        assert_eq!(
            inbox.accept(msg("m1")).await.expect("retry"),
            Accepted::Duplicate,
            "processed: the filter may hold it, and the tree does"
        );
        // Gone from the tree (its dedupe time is over): the filter still says "maybe", the
        // tree decides, and the message is new again.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(inbox.sweep_dedupe(Duration::ZERO).expect("sweep"), 1);
        assert!(matches!(
            inbox.accept(msg("m1")).await.expect("after the sweep"),
            Accepted::New(_)
        ));

        // The filters grow past their first size and forget nothing.
        let hasher = RandomState::new();
        let mut seen = Seen::new(hasher.clone());
        let keys: Vec<u64> = (0..200_000)
            .map(|i| hasher.hash_one(format!("app:k{i}")))
            .collect();
        for &k in &keys {
            seen.insert(k);
        }
        assert!(seen.filters.len() > 1, "a larger filter was added");
        assert!(
            keys.iter().all(|&k| seen.may_contain(k)),
            "no false negatives"
        );
        let false_positives = (0..100_000)
            .filter(|i| seen.may_contain(hasher.hash_one(format!("app:other{i}"))))
            .count();
        assert!(false_positives < 1_000, "{false_positives} false positives");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processed_log_segments_are_deleted_and_their_keys_still_dedupe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_files = |store: &Store| {
            std::fs::read_dir(store.log_dir("inbox"))
                .expect("log dir")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
                })
                .count()
        };
        let ids: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
        let mut last_seq = 0;
        {
            let store = Store::open(dir.path(), 8 << 20).expect("open");
            let inbox = Inbox::open(&store).expect("inbox");
            for id in &ids {
                let mut m = msg(id);
                m.content = Content::Text {
                    text: "一个很长的故障描述".repeat(20),
                };
                let Accepted::New(seq) = inbox.accept(m).await.expect("accept") else {
                    panic!("a new message");
                };
                assert!(seq > last_seq, "sequence numbers rise");
                last_seq = seq;
            }
            assert!(
                log_files(&store) > 2,
                "the log rolled over into several segments"
            );
            inbox.drop_processed().await.expect("nothing processed yet");
            assert!(log_files(&store) > 2, "unprocessed segments stay");
            let pending = inbox.pending(1000).expect("pending");
            assert_eq!(pending.len(), ids.len());
            process(&store, &inbox, &pending);
            inbox.drop_processed().await.expect("drop");
            assert_eq!(log_files(&store), 1, "only the open segment is left");
        }
        let store = Store::open(dir.path(), 8 << 20).expect("reopen");
        let inbox = Inbox::open(&store).expect("inbox");
        assert_eq!(inbox.pending_count(), 0, "nothing comes back");
        assert_eq!(
            inbox.accept(msg("m7")).await.expect("late retry"),
            Accepted::Duplicate
        );
        let Accepted::New(seq) = inbox.accept(msg("new")).await.expect("new") else {
            panic!("a new message");
        };
        assert!(
            seq > last_seq,
            "numbering continues above the processed messages, with their log gone"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pending_messages_are_read_back_from_the_log_and_their_batches_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("open");
        let inbox = Inbox::open(&store).expect("inbox");
        let text = |i: usize| format!("第{i}条：{}", "银行卡余额和账户对不上".repeat(i % 7 + 1));
        // Concurrent callbacks, so that batches hold several messages, across segments.
        let accepts = (0..400).map(|i| {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                let mut m = msg(&format!("m{i}"));
                m.content = Content::Text { text: text(i) };
                inbox.accept(m).await.expect("accept")
            })
        });
        for a in accepts.collect::<Vec<_>>() {
            assert!(matches!(a.await.expect("task"), Accepted::New(_)));
        }
        let batches = inbox.shared.lock().written.len();
        assert!(batches > 1, "written in several batches");
        let stats = inbox.log_stats();
        assert!(
            stats.messages > stats.syncs,
            "some batches hold several messages"
        );

        let pending = inbox.pending(1000).expect("pending");
        assert_eq!(pending.len(), 400);
        for (_, item) in &pending {
            let i: usize = item.inbound.msg_id[1..].parse().expect("id");
            assert_eq!(item.inbound.content, Content::Text { text: text(i) });
        }
        let (first, rest) = pending.split_at(150);
        process(&store, &inbox, first);
        let left = inbox.shared.lock().written.len();
        assert!(
            (1..=batches).contains(&left),
            "batches with pending messages are kept"
        );
        // A dead letter's record comes from the log too.
        let (seq, item) = &rest[0];
        assert!(inbox.record_failure(*seq, 1).expect("dead-lettered"));
        let dead = InboxItem {
            failures: 1,
            ..item.clone()
        };
        assert_eq!(inbox.dead_letters().expect("dead"), vec![(*seq, dead)]);
        inbox.drop_processed().await.expect("drop");
        let pending = inbox.pending(1000).expect("pending after the drop");
        assert_eq!(pending.as_slice(), &rest[1..]);
        process(&store, &inbox, &pending);
        assert!(
            inbox.shared.lock().written.is_empty(),
            "no batch is remembered once all its messages are processed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_keeps_the_messages_not_yet_processed() {
        let (data, backups) = (
            tempfile::tempdir().expect("data"),
            tempfile::tempdir().expect("backups"),
        );
        let snapshot = backups.path().join("snap");
        {
            let store = Store::open(data.path(), 8 << 20).expect("open");
            let inbox = Inbox::open(&store).expect("inbox");
            for id in ["a", "b", "c"] {
                inbox.accept(msg(id)).await.expect("accept");
            }
            process(&store, &inbox, &inbox.pending(1).expect("pending"));
            store.snapshot(&snapshot).expect("snapshot");
        }
        let restored = tempfile::tempdir().expect("restored");
        Store::restore(&snapshot, restored.path(), 8 << 20).expect("restore");
        let store = Store::open(restored.path(), 8 << 20).expect("open restored");
        let inbox = Inbox::open(&store).expect("inbox");
        let ids = pending_ids(&inbox);
        assert_eq!(
            ids,
            ["b", "c"],
            "pending ones restored, the processed one not"
        );
        assert_eq!(
            inbox.accept(msg("a")).await.expect("retry"),
            Accepted::Duplicate
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
            process(&store, &inbox, &inbox.pending(1).expect("pending"));
        }
        let store = Store::open(dir.path(), 8 << 20).expect("reopen");
        let inbox = Inbox::open(&store).expect("inbox");
        let ids = pending_ids(&inbox);
        assert_eq!(ids, ["b", "c"], "the processed one is gone, the order kept");
        assert_eq!(
            inbox.accept(msg("a")).await.expect("retry"),
            Accepted::Duplicate
        );
    }
}
