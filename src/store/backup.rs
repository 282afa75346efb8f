//! Backups: a consistent snapshot of the database and the media files, taken while the
//! gateway runs, and the restore of one into an empty data directory.
//!
//! A snapshot directory holds `db.snapshot` and `media/`. The database file is written with
//! every store write paused (the store's barrier, held exclusively for as long as the trees
//! are read: milliseconds for a desk's data), so it never holds half of a transaction.
//! Media files are content-addressed and written before anything refers to them, so copying
//! them afterwards can only add files nothing refers to yet.
//!
//! `db.snapshot` is `MAGIC`, the schema version (u64, big-endian), then per tree a `TREE`
//! frame (name) followed by `ENTRY` frames (key, value: each a u32 length and the bytes),
//! and an `END` frame with the number of entries: a truncated file is refused.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::{Error, Result, SCHEMA_VERSION, Store, trees};

const MAGIC: &[u8; 8] = b"WHDSNAP1";
const TREE: u8 = 1;
const ENTRY: u8 = 2;
const END: u8 = 0;
/// The database file inside a snapshot directory.
pub const DB_FILE: &str = "db.snapshot";

/// What a snapshot or a restore held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub entries: u64,
    pub media_files: u64,
}

fn bad(message: impl Into<String>) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        message.into(),
    ))
}

fn write_bytes(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)
}

fn read_bytes(r: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Copy the files in the subfolders of `from` (media shards, logs) missing in `to`; returns
/// how many were copied. A file deleted meanwhile (a processed log segment) is skipped.
fn copy_files(from: &Path, to: &Path) -> Result<u64> {
    let mut copied = 0;
    let Ok(shards) = std::fs::read_dir(from) else {
        return Ok(0); // no media yet
    };
    for shard in shards {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        let name = shard.file_name().unwrap_or_default().to_owned();
        std::fs::create_dir_all(to.join(&name))?;
        for file in std::fs::read_dir(&shard)? {
            let file = file?.path();
            let file_name = file.file_name().unwrap_or_default();
            let target = to.join(&name).join(file_name);
            // Files being written are dot-named temporaries; only finished ones count.
            let finished = !file_name.to_string_lossy().starts_with('.');
            if file.is_file() && finished && !target.exists() {
                match std::fs::copy(&file, &target) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                std::fs::File::open(&target)?.sync_all()?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}

impl Store {
    /// A new snapshot folder's name: the local time it is taken (`20261130-0542-07`).
    pub fn snapshot_name() -> String {
        chrono::Local::now().format("%Y%m%d-%H%M-%S").to_string()
    }

    /// Write a snapshot into `dir` (created; it must not exist yet or be empty).
    pub fn snapshot(&self, dir: &Path) -> Result<Report> {
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(bad(format!("{} is not empty", dir.display())));
        }
        std::fs::create_dir_all(dir)?;
        // Messages stored but not yet processed live in the logs. Copied first, so that each
        // of them is either in the copy or, processed by the time the trees are read, in the
        // trees (a segment is deleted only after its messages are processed). A record being
        // appended meanwhile is a torn tail to replay, which cuts it.
        copy_files(&self.dir.join(super::LOGS), &dir.join(super::LOGS))?;
        let file = std::fs::File::create(dir.join(DB_FILE))?;
        let mut w = BufWriter::new(file);
        w.write_all(MAGIC)?;
        w.write_all(&SCHEMA_VERSION.to_be_bytes())?;
        let mut entries = 0u64;
        {
            let _paused = self.barrier.snapshot_guard();
            for def in trees::ALL {
                let tree = self.db.open_tree(def.name)?;
                w.write_all(&[TREE])?;
                write_bytes(&mut w, def.name.as_bytes())?;
                for kv in tree.iter() {
                    let (k, v) = kv?;
                    w.write_all(&[ENTRY])?;
                    write_bytes(&mut w, &k)?;
                    write_bytes(&mut w, &v)?;
                    entries += 1;
                }
            }
        }
        w.write_all(&[END])?;
        w.write_all(&entries.to_be_bytes())?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let media_files = copy_files(&self.dir.join("media"), &dir.join("media"))?;
        crate::util::sync_dir(dir)?;
        tracing::info!(dir = %dir.display(), entries, media_files, "snapshot written");
        Ok(Report {
            entries,
            media_files,
        })
    }

    /// Restore the snapshot in `from` into the data directory `to`, which must hold no
    /// database yet. Run with the gateway stopped; the restored store is returned flushed.
    pub fn restore(from: &Path, to: &Path, cache_capacity_bytes: u64) -> Result<Report> {
        if to.join("db").exists() {
            return Err(bad(format!(
                "{} already holds a database: move it away first",
                to.display()
            )));
        }
        let mut r = BufReader::new(std::fs::File::open(from.join(DB_FILE))?);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad(format!("{} is not a snapshot", from.display())));
        }
        let mut version = [0u8; 8];
        r.read_exact(&mut version)?;
        let version = u64::from_be_bytes(version);
        if version > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                path: from.to_owned(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        let store = Store::open(to, cache_capacity_bytes)?;
        let mut tree = None;
        let mut entries = 0u64;
        loop {
            let mut kind = [0u8; 1];
            r.read_exact(&mut kind)
                .map_err(|_| bad("the snapshot is truncated"))?;
            match kind[0] {
                TREE => {
                    let name = String::from_utf8(read_bytes(&mut r)?)
                        .map_err(|_| bad("a tree name is not UTF-8"))?;
                    tree = Some(store.db.open_tree(name)?);
                }
                ENTRY => {
                    let t = tree
                        .as_ref()
                        .ok_or_else(|| bad("an entry before its tree"))?;
                    let (k, v) = (read_bytes(&mut r)?, read_bytes(&mut r)?);
                    t.insert(k, v)?;
                    entries += 1;
                }
                END => {
                    let mut count = [0u8; 8];
                    r.read_exact(&mut count)?;
                    if u64::from_be_bytes(count) != entries {
                        return Err(bad("the snapshot's entry count does not match"));
                    }
                    break;
                }
                _ => return Err(bad("the snapshot is corrupt")),
            }
        }
        store.flush_blocking()?;
        let media_files = copy_files(&from.join("media"), &to.join("media"))?;
        copy_files(&from.join(super::LOGS), &to.join(super::LOGS))?;
        Ok(Report {
            entries,
            media_files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Tree;

    #[test]
    fn a_snapshot_restores_every_tree_and_refuses_damage() {
        let src = tempfile::tempdir().expect("tempdir");
        let store = Store::open(src.path(), 8 << 20).expect("open");
        let tickets: Tree<u64, String> = store.tree(&trees::TICKETS).expect("tree");
        let numbers: Tree<String, u64> = store.tree(&trees::TICKET_NUMBERS).expect("tree");
        for i in 0..50u64 {
            tickets.insert(&i, &format!("ticket {i}")).expect("insert");
            numbers.insert(&format!("IT-{i}"), &i).expect("insert");
        }
        let hash = store.media().put(b"\x89PNG fake").expect("media");
        let snap = tempfile::tempdir().expect("tempdir");
        let dir = snap.path().join("s1");
        let taken = store.snapshot(&dir).expect("snapshot");
        assert_eq!(taken.media_files, 1);
        assert!(store.snapshot(&dir).is_err(), "never over an old snapshot");

        let dst = tempfile::tempdir().expect("tempdir");
        let restored = Store::restore(&dir, dst.path(), 8 << 20).expect("restore");
        assert_eq!(restored.entries, taken.entries);
        let copy = Store::open(dst.path(), 8 << 20).expect("reopen");
        let t: Tree<u64, String> = copy.tree(&trees::TICKETS).expect("tree");
        assert_eq!(t.get(&49).expect("get").as_deref(), Some("ticket 49"));
        assert!(copy.media().get(&hash).expect("media").is_some());
        drop(copy);
        assert!(
            Store::restore(&dir, dst.path(), 8 << 20).is_err(),
            "never over a database"
        );

        // A truncated snapshot is refused.
        let data = std::fs::read(dir.join(DB_FILE)).expect("read");
        std::fs::write(dir.join(DB_FILE), &data[..data.len() - 20]).expect("truncate");
        let other = tempfile::tempdir().expect("tempdir");
        assert!(Store::restore(&dir, other.path(), 8 << 20).is_err());
    }
}
