//! The store's health: whether the database writes (kept by the storage watchdog, read by
//! `/healthz` and the composition root, which reopens a database that latched a failed
//! write), and the write barrier that lets a snapshot see every transaction whole.

use super::{Result, Store, Tree, trees};

/// Whether the database can write, as the storage watchdog last found it (shared with
/// `/healthz` and the composition root).
#[derive(Debug, Default)]
pub struct Health {
    failing: std::sync::atomic::AtomicBool,
    reopen: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Health {
    /// Writes fail now.
    pub fn failing(&self) -> bool {
        self.failing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Record whether writes fail; returns the previous state.
    pub fn set_failing(&self, failing: bool) -> bool {
        self.failing
            .swap(failing, std::sync::atomic::Ordering::AcqRel)
    }

    /// Ask for the database to be reopened (it latched a failed write and the disk takes
    /// writes again).
    pub fn request_reopen(&self) {
        self.reopen
            .store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    pub fn reopen_requested(&self) -> bool {
        self.reopen.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once a reopen is requested.
    pub async fn reopen_wanted(&self) {
        while !self.reopen_requested() {
            self.wake.notified().await;
        }
    }
}

/// Writes take it shared, a snapshot exclusively (so a snapshot never sees half of a
/// transaction). Uncontended, a shared take costs a few atomic operations.
#[derive(Clone, Default)]
pub(super) struct Barrier(std::sync::Arc<std::sync::RwLock<()>>);

impl Barrier {
    pub(super) fn write_guard(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn snapshot_guard(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// Write and flush a marker: `Err` while the database cannot write (sled keeps failing
    /// after one failed write, e.g. a full disk, until it is reopened).
    pub fn probe(&self) -> Result<()> {
        let meta: Tree<String, u64> = self.tree(&trees::META)?;
        meta.insert(&"probe".to_owned(), &(crate::util::unix_millis() as u64))?;
        self.flush_blocking()
    }

    /// Whether the data directory's disk takes writes again (a 1 MiB file written, fsynced and
    /// removed): after a failure, the sign that reopening the database will work.
    pub fn disk_takes_writes(&self) -> bool {
        use std::io::Write;
        let path = self.dir.join(".write-probe");
        let written = std::fs::File::create(&path).and_then(|mut f| {
            f.write_all(&vec![0u8; 1 << 20])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&path);
        written.is_ok()
    }
}
