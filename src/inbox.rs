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
//! [`Inbox::accept`] is the whole callback-side cost: one small transaction and a share of a
//! group flush.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

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

#[derive(Clone, Debug)]
pub struct Inbox {
    store: Store,
    items: Tree<u64, InboxItem>,
    dedupe: Tree<String, i64>,
    dead: Tree<u64, InboxItem>,
    notify: Arc<Notify>,
}

impl Inbox {
    pub fn open(store: &Store) -> store::Result<Inbox> {
        Ok(Inbox {
            store: store.clone(),
            items: store.tree("inbox")?,
            dedupe: store.tree("inbox_dedupe")?,
            dead: store.tree("inbox_dead")?,
            notify: Arc::new(Notify::new()),
        })
    }

    /// Store `inbound` unless its dedupe key was seen, and return once it is on disk.
    pub async fn accept(&self, inbound: Inbound) -> store::Result<Accepted> {
        let key = inbound.dedupe_key();
        let seq = self.store.generate_id()?;
        let item = InboxItem {
            inbound,
            received_at: crate::util::unix_millis(),
            failures: 0,
        };
        let now = crate::util::unix_now();
        let outcome = self
            .store
            .transaction::<_, Infallible>(&[&self.items, &self.dedupe], |tx| {
                if tx.get(&self.dedupe, &key)?.is_some() {
                    return Ok(Accepted::Duplicate);
                }
                tx.insert(&self.dedupe, &key, &now)?;
                tx.insert(&self.items, &seq, &item)?;
                Ok(Accepted::New(seq))
            })
            .map_err(TxError::into_store)?;
        // A duplicate waits too: the first delivery may not be flushed yet, and WeCom must
        // not see a 200 for anything that could still be lost.
        self.store.durable().await?;
        if let Accepted::New(_) = outcome {
            self.notify.notify_one();
        }
        Ok(outcome)
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
