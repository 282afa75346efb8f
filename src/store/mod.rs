//! The only user of sled: typed trees, transactions, durability, schema version, media files.
//!
//! - [`Tree<K, V>`] wraps a `sled::Tree` with a [`Key`] codec and a [`Record`] codec, so call
//!   sites never build byte keys by hand and a corrupt record surfaces as an error.
//! - [`Store::transaction`] runs a closure atomically over a chosen set of trees. The closure
//!   is pure (no `.await`, no I/O): sled may run it again on conflict.
//! - [`durable`] is the database's durability primitive, group commit: a [`GroupFlush`]
//!   flushes once for every caller waiting and then answers them all, behind
//!   [`Store::durable`] ("everything written before this call is fsynced"). sled's own
//!   background flush (500 ms) covers the rest; nothing we acknowledge relies on it (sled's
//!   flush is the only fsync it promises). Callbacks are not stored in the database but in
//!   the inbox's own log ([`Store::log_dir`]; see `crate::inbox`), which snapshots copy.
//! - The schema version lives in the `meta` tree; a database written by a newer binary is
//!   refused at open.
//! - [`media`] stores screenshots content-addressed (sha256) under the data directory.
//!
//! Domain modules declare their own trees with [`Store::tree`] (name and key layout once,
//! in their module docs); sled types never leave this module.

pub mod backup;
pub mod codec;
pub mod durable;
mod health;
pub mod media;
pub mod trees;

use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};

use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

pub use codec::{CodecError, Key, KeyPart, Record, prefix_of};
pub use durable::GroupFlush;
use health::Barrier;
pub use health::Health;

/// Version of the on-disk layout this binary writes.
pub const SCHEMA_VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in tree `{tree}`: {source}")]
    Codec {
        tree: &'static str,
        source: CodecError,
    },
    #[error(
        "the database at {path} has schema version {found}; this binary knows up to {known}. \
         Use a newer wecom-helpdesk or restore a backup"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        known: u64,
    },
    #[error(
        "cannot open the database at {path}: {message}. Restore the data directory from a backup"
    )]
    Open { path: PathBuf, message: String },
    #[error(
        "the database at {0} is in use by a running gateway: stop it first (the console's \
         admin pages show the same information while it runs)"
    )]
    InUse(PathBuf),
    #[error("the durability flusher stopped: {0}")]
    Flush(String),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}: restore the data directory from a backup")]
    Damaged(String),
    #[error("tree `{0}` used in a transaction it was not part of")]
    NotInTransaction(&'static str),
}

/// The folder of [`Store::log_dir`]s under the data directory.
const LOGS: &str = "logs";

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The database. Cheap to clone (all fields are shared handles).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Every write holds it shared; a snapshot holds it exclusively, so it sees every
    /// transaction whole (see [`backup`]).
    barrier: Barrier,
    flusher: GroupFlush,
    media: media::MediaStore,
    /// Shared, so a clone (every request's state holds one) allocates nothing.
    dir: std::sync::Arc<Path>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Open (or create) the database under `dir`, check the schema and run migrations.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        let db_path = dir.join("db");
        let open = || {
            sled::Config::new()
                .path(&db_path)
                .cache_capacity(cache_capacity_bytes)
                .flush_every_ms(Some(500))
                .open()
                .map_err(|e| match e {
                    // sled takes an exclusive file lock: someone has the database open.
                    sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                        Error::InUse(db_path.clone())
                    }
                    e => Error::Open {
                        path: db_path.clone(),
                        message: e.to_string(),
                    },
                })
        };
        // A store just closed in this process releases its lock when sled's background
        // flusher has stopped, a moment later: wait for that, briefly, before saying "in use".
        let mut attempt = 0;
        let db = loop {
            match open() {
                Err(Error::InUse(_)) if attempt < 40 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        let store = Store {
            barrier: Barrier::default(),
            flusher: GroupFlush::start("sled-group-commit", flusher(&db))?,
            media: media::MediaStore::new(dir.join("media")),
            db,
            dir: dir.into(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The folder for the append-only log called `name` (kept beside the database, and
    /// copied by snapshots): `{data}/logs/{name}`.
    pub fn log_dir(&self, name: &str) -> PathBuf {
        self.dir.join(LOGS).join(name)
    }

    /// The data directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn media(&self) -> &media::MediaStore {
        &self.media
    }

    fn migrate(&self) -> Result<()> {
        let meta: Tree<String, u64> = self.tree(&trees::META)?;
        let key = "schema_version".to_owned();
        let found = meta.get(&key)?;
        match found {
            Some(v) if v > SCHEMA_VERSION => Err(Error::NewerSchema {
                path: self.dir.to_path_buf(),
                found: v,
                known: SCHEMA_VERSION,
            }),
            Some(v) => {
                // Ordered steps `migrate_to_vN`, each one transaction with its version bump.
                for target in v + 1..=SCHEMA_VERSION {
                    self.migrate_to(target, &meta)?;
                }
                Ok(())
            }
            None => {
                meta.insert(&key, &SCHEMA_VERSION)?;
                Ok(())
            }
        }
    }

    fn migrate_to(&self, target: u64, meta: &Tree<String, u64>) -> Result<()> {
        // Version 1 is the first layout; later versions add their step here.
        tracing::info!(target, "schema migration");
        meta.insert(&"schema_version".to_owned(), &target)
    }

    /// Open the typed tree `def` (declared in [`trees`]).
    pub fn tree<K: Key, V: Record>(&self, def: &'static trees::TreeDef) -> Result<Tree<K, V>> {
        self.open_tree(def.name)
    }

    fn open_tree<K: Key, V: Record>(&self, name: &'static str) -> Result<Tree<K, V>> {
        Ok(Tree {
            inner: RawTree(self.db.open_tree(name)?),
            barrier: self.barrier.clone(),
            name,
            _types: PhantomData,
        })
    }

    /// A fresh, monotonically increasing id (survives restarts; may skip numbers).
    pub fn generate_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    /// Wait until every write made before this call is on disk (fsynced). Concurrent callers
    /// share one flush.
    pub async fn durable(&self) -> Result<()> {
        self.flusher.flush().await
    }

    /// Flush synchronously (shutdown, CLI tools).
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Run `f` atomically over `trees`. `f` may run more than once; keep it pure and short.
    ///
    /// sled holds its process-wide transaction lock while `f` runs: `f` must touch the store
    /// only through its [`Tx`] (any other sled call from inside deadlocks), and every other
    /// writer waits for it.
    pub fn transaction<R, E>(
        &self,
        trees: &[&dyn AnyTree],
        f: impl Fn(&Tx<'_>) -> Result<R, Abort<E>>,
    ) -> Result<R, TxError<E>> {
        let raw: Vec<&sled::Tree> = trees.iter().map(|t| &t.raw().0).collect();
        let names: Vec<&'static str> = trees.iter().map(|t| t.name()).collect();
        let _write = self.barrier.write_guard();
        let result = raw
            .as_slice()
            .transaction(|views: &Vec<TransactionalTree>| {
                let tx = Tx {
                    views,
                    names: &names,
                };
                match f(&tx) {
                    Ok(r) => Ok(r),
                    Err(Abort::User(e)) => Err(ConflictableTransactionError::Abort(Inner::User(e))),
                    Err(Abort::Fail(TxFail(Fail::Sled(u)))) => Err(u.into()),
                    Err(Abort::Fail(TxFail(Fail::Store(e)))) => {
                        Err(ConflictableTransactionError::Abort(Inner::Store(e)))
                    }
                }
            });
        match result {
            Ok(r) => Ok(r),
            Err(TransactionError::Abort(Inner::User(e))) => Err(TxError::Abort(e)),
            Err(TransactionError::Abort(Inner::Store(e))) => Err(TxError::Store(e)),
            Err(TransactionError::Storage(e)) => Err(TxError::Store(Error::Sled(e))),
        }
    }
}

/// A flush of `db` for a durable writer's thread. It holds the database, not the [`Store`]: a
/// writer owned by the store must not keep the store alive.
fn flusher(db: &sled::Db) -> impl Fn() -> Result<()> + Send + 'static {
    let db = db.clone();
    move || {
        db.flush()?;
        Ok(())
    }
}

enum Inner<E> {
    User(E),
    Store(Error),
}

/// Why a transaction closure stopped: the caller's own reason, or a storage failure.
pub enum Abort<E> {
    User(E),
    Fail(TxFail),
}

/// A storage failure inside a transaction (propagate it with `?`). Opaque: what failed is
/// sled's business, and sled retries or reports it when the closure returns.
pub struct TxFail(Fail);

enum Fail {
    Sled(UnabortableTransactionError),
    Store(Error),
}

impl<E> From<TxFail> for Abort<E> {
    fn from(f: TxFail) -> Self {
        Abort::Fail(f)
    }
}

/// Abort a transaction with the caller's error.
pub fn abort<E>(e: E) -> Abort<E> {
    Abort::User(e)
}

/// The outcome of a failed transaction.
#[derive(Debug, thiserror::Error)]
pub enum TxError<E> {
    #[error("transaction aborted")]
    Abort(E),
    #[error(transparent)]
    Store(Error),
}

impl<E> TxError<E> {
    /// Map a storage failure into the caller's error type.
    pub fn into_inner(self) -> E
    where
        E: From<Error>,
    {
        match self {
            TxError::Abort(e) => e,
            TxError::Store(e) => E::from(e),
        }
    }
}

impl TxError<std::convert::Infallible> {
    /// For transactions that never abort on their own: the storage error.
    pub fn into_store(self) -> Error {
        match self {
            TxError::Store(e) => e,
            TxError::Abort(never) => match never {},
        }
    }
}

/// Object-safe view of a typed tree, for naming the trees of a transaction.
pub trait AnyTree {
    fn raw(&self) -> &RawTree;
    fn name(&self) -> &'static str;
}

/// The untyped tree behind a [`Tree`]; only this module can look inside.
#[derive(Clone)]
pub struct RawTree(sled::Tree);

/// A typed sled tree: keys `K`, values `V`.
pub struct Tree<K, V> {
    inner: RawTree,
    barrier: Barrier,
    name: &'static str,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Tree<K, V> {
    fn clone(&self) -> Self {
        Tree {
            inner: self.inner.clone(),
            barrier: self.barrier.clone(),
            name: self.name,
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for Tree<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree({})", self.name)
    }
}

impl<K, V> AnyTree for Tree<K, V> {
    fn raw(&self) -> &RawTree {
        &self.inner
    }
    fn name(&self) -> &'static str {
        self.name
    }
}

impl<K: Key, V: Record> Tree<K, V> {
    fn value(&self, bytes: &[u8]) -> Result<V> {
        V::from_bytes(bytes).map_err(|source| Error::Codec {
            tree: self.name,
            source,
        })
    }

    fn key(&self, bytes: &[u8]) -> Result<K> {
        K::decode(bytes).map_err(|source| Error::Codec {
            tree: self.name,
            source,
        })
    }

    pub fn get(&self, key: &K) -> Result<Option<V>> {
        self.inner
            .0
            .get(key.encode())?
            .map(|b| self.value(&b))
            .transpose()
    }

    pub fn contains(&self, key: &K) -> Result<bool> {
        Ok(self.inner.0.contains_key(key.encode())?)
    }

    pub fn insert(&self, key: &K, value: &V) -> Result<()> {
        let _write = self.barrier.write_guard();
        self.inner.0.insert(key.encode(), value.to_bytes())?;
        Ok(())
    }

    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        let _write = self.barrier.write_guard();
        self.inner
            .0
            .remove(key.encode())?
            .map(|b| self.value(&b))
            .transpose()
    }

    pub fn len(&self) -> usize {
        self.inner.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.0.is_empty()
    }

    fn decode_pair(&self, item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(K, V)> {
        let (k, v) = item?;
        Ok((self.key(&k)?, self.value(&v)?))
    }

    /// Every entry in key order. A corrupt entry is an `Err` item, never skipped.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Result<(K, V)>> + '_ {
        self.inner.0.iter().map(move |i| self.decode_pair(i))
    }

    /// Entries whose key lies in `range`.
    pub fn range<R: RangeBounds<K>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = Result<(K, V)>> + '_ {
        use std::ops::Bound;
        let enc = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.encode()),
            Bound::Excluded(k) => Bound::Excluded(k.encode()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let r = (enc(range.start_bound()), enc(range.end_bound()));
        self.inner.0.range(r).map(move |i| self.decode_pair(i))
    }

    /// Entries whose key starts with the part `prefix` (followed by the 0xFF separator).
    pub fn scan_part<P: KeyPart>(
        &self,
        prefix: &P,
    ) -> impl DoubleEndedIterator<Item = Result<(K, V)>> + '_ {
        self.inner
            .0
            .scan_prefix(prefix_of(prefix))
            .map(move |i| self.decode_pair(i))
    }

    pub fn first(&self) -> Result<Option<(K, V)>> {
        self.inner
            .0
            .first()?
            .map(|p| self.decode_pair(Ok(p)))
            .transpose()
    }

    pub fn last(&self) -> Result<Option<(K, V)>> {
        self.inner
            .0
            .last()?
            .map(|p| self.decode_pair(Ok(p)))
            .transpose()
    }

    /// Atomically insert `value` unless `key` exists; returns whether it was inserted.
    pub fn insert_new(&self, key: &K, value: &V) -> Result<bool> {
        let _write = self.barrier.write_guard();
        let r =
            self.inner
                .0
                .compare_and_swap(key.encode(), None::<&[u8]>, Some(value.to_bytes()))?;
        Ok(r.is_ok())
    }
}

/// The trees of one running transaction.
pub struct Tx<'a> {
    views: &'a [TransactionalTree],
    names: &'a [&'static str],
}

impl Tx<'_> {
    fn view<K, V>(&self, tree: &Tree<K, V>) -> Result<&TransactionalTree, TxFail> {
        self.names
            .iter()
            .position(|n| *n == tree.name)
            .map(|i| &self.views[i])
            .ok_or(TxFail(Fail::Store(Error::NotInTransaction(tree.name))))
    }

    pub fn get<K: Key, V: Record>(&self, tree: &Tree<K, V>, key: &K) -> Result<Option<V>, TxFail> {
        let raw = self
            .view(tree)?
            .get(key.encode())
            .map_err(|e| TxFail(Fail::Sled(e)))?;
        raw.map(|b| {
            V::from_bytes(&b).map_err(|source| {
                TxFail(Fail::Store(Error::Codec {
                    tree: tree.name,
                    source,
                }))
            })
        })
        .transpose()
    }

    pub fn insert<K: Key, V: Record>(
        &self,
        tree: &Tree<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), TxFail> {
        self.view(tree)?
            .insert(key.encode(), value.to_bytes())
            .map_err(|e| TxFail(Fail::Sled(e)))?;
        Ok(())
    }

    pub fn remove<K: Key, V: Record>(&self, tree: &Tree<K, V>, key: &K) -> Result<(), TxFail> {
        self.view(tree)?
            .remove(key.encode())
            .map_err(|e| TxFail(Fail::Sled(e)))?;
        Ok(())
    }

    /// A fresh id from the database's generator (not rolled back with the transaction; a
    /// retried closure just takes another one).
    pub fn generate_id(&self) -> Result<u64, TxFail> {
        let first = self
            .views
            .first()
            .ok_or(TxFail(Fail::Store(Error::NotInTransaction("(none)"))))?;
        first
            .generate_id()
            .map_err(|e| TxFail(Fail::Store(Error::Sled(e))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("open");
        (dir, store)
    }

    #[test]
    fn typed_tree_round_trip_and_order() {
        let (_d, s) = temp();
        let t: Tree<(String, u64), String> = s.open_tree("t").expect("tree");
        for (u, i) in [("b", 2), ("a", 10), ("a", 2), ("ab", 1)] {
            t.insert(&(u.to_owned(), i), &format!("{u}{i}"))
                .expect("insert");
        }
        let a: Vec<_> = t
            .scan_part(&"a".to_owned())
            .map(|r| r.expect("ok").1)
            .collect();
        assert_eq!(a, ["a2", "a10"]);
        assert_eq!(t.len(), 4);
        assert!(t.insert_new(&("z".into(), 1), &"z".into()).expect("new"));
        assert!(!t.insert_new(&("z".into(), 1), &"y".into()).expect("exists"));
        assert_eq!(t.get(&("z".into(), 1)).expect("get").as_deref(), Some("z"));
    }

    #[test]
    fn corrupt_records_surface_as_errors() {
        let (_d, s) = temp();
        let t: Tree<u64, u64> = s.open_tree("nums").expect("tree");
        t.insert(&1, &5).expect("insert");
        s.db.open_tree("nums")
            .expect("raw")
            .insert(2u64.to_be_bytes(), b"\x01not json".to_vec())
            .expect("raw insert");
        let items: Vec<_> = t.iter().collect();
        assert!(items[0].is_ok());
        assert!(matches!(items[1], Err(Error::Codec { tree: "nums", .. })));
    }

    #[test]
    fn transactions_are_atomic_and_abort_cleanly() {
        let (_d, s) = temp();
        let a: Tree<u64, String> = s.open_tree("a").expect("a");
        let b: Tree<u64, String> = s.open_tree("b").expect("b");
        let r: Result<(), TxError<&str>> = s.transaction(&[&a, &b], |tx| {
            tx.insert(&a, &1, &"one".to_owned())?;
            tx.insert(&b, &1, &"uno".to_owned())?;
            Ok(())
        });
        assert!(r.is_ok());
        let r: Result<(), TxError<&str>> = s.transaction(&[&a, &b], |tx| {
            tx.insert(&a, &2, &"two".to_owned())?;
            Err(abort("no"))
        });
        assert!(matches!(r, Err(TxError::Abort("no"))));
        assert_eq!(a.get(&2).expect("get"), None);
        assert_eq!(b.get(&1).expect("get").as_deref(), Some("uno"));
        let c: Tree<u64, String> = s.open_tree("c").expect("c");
        let r: Result<(), TxError<()>> = s.transaction(&[&a], |tx| {
            tx.insert(&c, &1, &"x".to_owned())?;
            Ok(())
        });
        assert!(matches!(
            r,
            Err(TxError::Store(Error::NotInTransaction("c")))
        ));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = Store::open(dir.path(), 8 << 20).expect("open");
            let meta: Tree<String, u64> = s.open_tree("meta").expect("meta");
            meta.insert(&"schema_version".to_owned(), &99)
                .expect("bump");
            s.flush_blocking().expect("flush");
        }
        let err = Store::open(dir.path(), 8 << 20).expect_err("newer");
        assert!(matches!(err, Error::NewerSchema { found: 99, .. }), "{err}");
    }

    #[tokio::test]
    async fn concurrent_durable_calls_share_flushes() {
        let (_d, s) = temp();
        let t: Tree<u64, u64> = s.open_tree("t").expect("t");
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let s = s.clone();
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                t.insert(&i, &i).expect("insert");
                s.durable().await.expect("durable");
            }));
        }
        for task in tasks {
            task.await.expect("join");
        }
        let flushes = s.flusher.flushes();
        assert!((1..64).contains(&flushes), "flushes: {flushes}");
    }
}
