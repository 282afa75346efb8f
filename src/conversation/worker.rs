//! The conversation worker: drains the inbox in arrival order through the [`Engine`], a batch
//! per transaction.
//!
//! A batch that fails to commit is retried one message at a time, so one bad message cannot
//! hold back the others; a message that keeps failing (in `prepare` or in its transaction) is
//! dead-lettered after [`MAX_FAILURES`] attempts and stays in `inbox_dead` for an operator.
//!
//! The commit runs in `block_in_place` (the worker needs the multi-threaded runtime): sled's
//! transaction is blocking work, and this keeps the batch borrowed instead of copied.

use std::sync::Arc;
use std::time::Duration;

use super::{Applied, Engine, Prepared};
use crate::inbox::{Inbox, InboxItem};
use crate::shutdown::{Shutdown, WorkerError};
use crate::store;

/// Processing attempts before an inbox item is dead-lettered.
pub const MAX_FAILURES: u32 = 5;
/// Inbox items applied in one transaction at most.
const BATCH: usize = 32;
/// Under callback load the worker pauses this many times as long as its last batch took
/// (so it keeps about 1/25 of a thread while callbacks wait; the backlog stays on disk),
/// between [`MIN_PAUSE`] and [`MAX_PAUSE`].
const YIELD_FACTOR: u32 = 24;
const MIN_PAUSE: Duration = Duration::from_millis(1);
/// A batch slowed by FAQ searches must not hold the replies back for seconds.
const MAX_PAUSE: Duration = Duration::from_millis(100);
/// Pause after a failed message before the queue is read again.
const FAILURE_PAUSE: Duration = Duration::from_secs(1);

type Batch = Vec<(u64, InboxItem, Prepared)>;

/// Drains the inbox through the [`Engine`].
pub struct Worker {
    inbox: Inbox,
    engine: Arc<Engine>,
}

impl Worker {
    pub fn new(inbox: Inbox, engine: Arc<Engine>) -> Worker {
        Worker { inbox, engine }
    }

    /// Prepare and commit the next batch. Returns `None` when the inbox was empty, otherwise
    /// whether every message went through.
    pub(super) async fn step(&self) -> store::Result<Option<bool>> {
        if let Err(e) = self.inbox.drop_processed().await {
            tracing::warn!(error = %e, "processed inbox log segments not deleted; retried later");
        }
        let pending = self.inbox.pending(BATCH)?;
        if pending.is_empty() {
            return Ok(None);
        }
        let mut batch = Vec::with_capacity(pending.len());
        let mut all_ok = true;
        for (seq, item) in pending {
            match self.engine.prepare(&item).await {
                Ok(prep) => batch.push((seq, item, prep)),
                Err(e) => {
                    all_ok = false;
                    self.failed(seq, &item, &e)?;
                }
            }
        }
        Ok(Some(self.commit_or_isolate(batch)? && all_ok))
    }

    /// Commit `batch` in one transaction; if that fails, commit each message alone so only
    /// the failing ones are retried. Returns whether every message went through.
    fn commit_or_isolate(&self, batch: Batch) -> store::Result<bool> {
        if batch.is_empty() {
            return Ok(true);
        }
        let now = crate::util::unix_millis();
        let error = match self.commit(&batch, now) {
            Ok(()) => return Ok(true),
            Err(e) => e,
        };
        tracing::error!(error = %error, size = batch.len(), "batch failed; retrying items one by one");
        for one in batch {
            let one = [one];
            if let Err(e) = self.commit(&one, now) {
                let [(seq, item, _)] = one;
                self.failed(seq, &item, &e)?;
            }
        }
        Ok(false)
    }

    fn commit(&self, batch: &[(u64, InboxItem, Prepared)], now: i64) -> store::Result<()> {
        let applied: Vec<Applied> = tokio::task::block_in_place(|| self.engine.commit(batch, now))?;
        let seqs: Vec<u64> = batch.iter().map(|(s, _, _)| *s).collect();
        self.inbox.processed(&seqs);
        self.engine.after_commit(&applied);
        Ok(())
    }

    /// Count a failure of message `seq`; dead-letter it after [`MAX_FAILURES`].
    fn failed(&self, seq: u64, item: &InboxItem, error: &store::Error) -> store::Result<()> {
        let msg_id = &item.inbound.msg_id;
        tracing::error!(seq, %msg_id, error = %error, "processing failed");
        if self.inbox.record_failure(seq, MAX_FAILURES)? {
            tracing::error!(seq, %msg_id, "inbox item dead-lettered after repeated failures");
        }
        Ok(())
    }
}

impl crate::shutdown::Worker for Worker {
    fn name(&self) -> &'static str {
        "conversation"
    }

    async fn run(self: Arc<Self>, mut shutdown: Shutdown) -> Result<(), WorkerError> {
        loop {
            if shutdown.is_triggered() {
                return Ok(());
            }
            let started = std::time::Instant::now();
            match self.step().await? {
                Some(true) => {
                    if self.inbox.busy() {
                        // Callbacks are waiting for their acknowledgement: leave them the CPU
                        // for a while (the backlog is on disk and keeps its order).
                        let pause = (started.elapsed() * YIELD_FACTOR).clamp(MIN_PAUSE, MAX_PAUSE);
                        tokio::time::sleep(pause).await;
                    }
                }
                Some(false) => {
                    tokio::select! {
                        () = shutdown.wait() => return Ok(()),
                        () = tokio::time::sleep(FAILURE_PAUSE) => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = shutdown.wait() => return Ok(()),
                        () = self.inbox.wait() => {}
                        () = tokio::time::sleep(Duration::from_secs(30)) => {}
                    }
                }
            }
        }
    }
}
