//! The inbox log: the callbacks' write-ahead log, in segment files `000001.log`,
//! `000002.log`, … of the folder the store gives the inbox ([`Store::log_dir`]).
//!
//! A record is `len: u32 LE ‖ crc32(payload): u32 LE ‖ payload`, the payload a [`Logged`]
//! in the store's record encoding (version byte ‖ JSON). Appends go to the newest segment
//! with one `write` and one `fdatasync` per batch ([`Segments::append`]); a segment past
//! [`SEGMENT_BYTES`] is closed and a new one started. A closed segment is deleted once every
//! message in it is processed and the store has flushed those effects
//! ([`ClosedSegments::processed`], [`delete`]), so a message always lives on disk in the
//! log, or as its effects in the store, or both.
//!
//! The next segment is written with zeros ahead of time, by the `inbox-prealloc` thread
//! ([`Spare`]), once the active one is a quarter full. Appends to a prepared segment
//! overwrite blocks that are allocated and written, so their `fdatasync` writes the data
//! alone: no inode, no block map, no conversion of unwritten extents (on this workload that
//! was most of a sync's cost). A segment therefore ends in its records, then zeros.
//!
//! Replay ([`Segments::open`]) reads every segment in order, each up to its first zero
//! header. Only the newest segment can end in a torn record (a crash during an append, which
//! was never acknowledged): it is cut off there. Anything but zeros after the records of an
//! older segment is refused as damage: it could be an acknowledged message.
//!
//! [`Store::log_dir`]: crate::store::Store::log_dir

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::InboxItem;
use crate::store::{self, Record};
use crate::util::sync_dir;

/// A segment is closed once it is this long (tests roll segments sooner).
#[cfg(not(test))]
pub(super) const SEGMENT_BYTES: u64 = 32 << 20;
#[cfg(test)]
pub(super) const SEGMENT_BYTES: u64 = 64 << 10;
/// A prepared segment has this much room past [`SEGMENT_BYTES`], for the batch that fills it.
const HEADROOM: u64 = SEGMENT_BYTES / 16;
/// Zeros are written (and synced) this much at a time, so that the disk's queue never holds
/// more than this ahead of a log sync.
const ZERO_CHUNK: usize = 1 << 20;
/// The segment being prepared; dot-named, so snapshots skip it.
const SPARE_NAME: &str = ".next.spare";
/// A record longer than this is damage, not a message (WeCom bodies are a few KiB).
const MAX_RECORD: usize = 16 << 20;
const HEADER: usize = 8;

/// One stored callback.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct Logged {
    pub seq: u64,
    pub key: String,
    pub item: InboxItem,
}

impl Record for Logged {}

/// Append `record` to `out`, framed; returns where it starts in `out`.
pub(super) fn encode(out: &mut Vec<u8>, record: &Logged) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    record.write_to(out);
    let payload = &out[start + HEADER..];
    let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    start
}

/// The payload of the record at the start of `bytes` and the record's length, header
/// included; `None` if it is incomplete or damaged (or the zeros of a prepared segment).
fn frame(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let header = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(HEADER..HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, HEADER + len))
}

/// The records at the start of `bytes` and how many bytes they take; stops at the first
/// incomplete or damaged record.
fn decode_all(bytes: &[u8]) -> (Vec<Logged>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some((payload, len)) = frame(&bytes[at..]) {
        let Ok(record) = Logged::from_bytes(payload) else {
            break;
        };
        records.push(record);
        at += len;
    }
    (records, at)
}

/// Where a batch of records is written: the segment and the offset of the batch's first
/// byte in it ([`Segments::position`]).
#[derive(Debug, Clone)]
pub(super) struct Position {
    pub file: Arc<File>,
    pub offset: u64,
}

/// Read back consecutive records, `lens` bytes each (headers included), from `offset` in
/// `file`, as [`Segments::append`] wrote them, with one read: pending messages, which stay
/// in the log (and, recently written, in the page cache) instead of in memory.
pub(super) fn read(file: &File, offset: u64, lens: &[u32]) -> store::Result<Vec<Logged>> {
    let mut bytes = vec![0; lens.iter().map(|&l| l as usize).sum()];
    file.read_exact_at(&mut bytes, offset)?;
    let mut at = 0;
    lens.iter()
        .map(|&len| {
            let record = &bytes[at..at + len as usize];
            let damaged = || {
                store::Error::Damaged(format!(
                    "inbox log record at byte {} is damaged",
                    offset + at as u64
                ))
            };
            let (payload, _) = frame(record).ok_or_else(damaged)?;
            at += len as usize;
            decode(payload)
        })
        .collect()
}

/// The record in `payload` (a record's bytes after its header, or [`Record::to_bytes`]).
pub(super) fn decode(payload: &[u8]) -> store::Result<Logged> {
    Logged::from_bytes(payload).map_err(|source| store::Error::Codec {
        tree: "inbox log",
        source,
    })
}

/// A closed segment: its file and the last sequence number in it.
#[derive(Debug)]
pub(super) struct Closed {
    path: PathBuf,
    last_seq: u64,
}

/// The closed segments, oldest first.
#[derive(Debug, Default)]
pub(super) struct ClosedSegments(Vec<Closed>);

impl ClosedSegments {
    pub(super) fn push(&mut self, c: Closed) {
        self.0.push(c);
    }

    /// How many of the oldest segments hold only messages before `oldest_pending` (`None`:
    /// nothing is pending), so that they can go once the store is flushed.
    pub(super) fn processed(&self, oldest_pending: Option<u64>) -> usize {
        self.0
            .iter()
            .take_while(|c| oldest_pending.is_none_or(|p| c.last_seq < p))
            .count()
    }

    /// Take the `n` oldest out of the list, to delete them with [`delete`].
    pub(super) fn take(&mut self, n: usize) -> Vec<Closed> {
        self.0.drain(..n.min(self.0.len())).collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Delete processed segments (the store must be flushed first: see the module docs).
pub(super) fn delete(segments: &[Closed]) -> std::io::Result<()> {
    for c in segments {
        std::fs::remove_file(&c.path)?;
    }
    if let Some(dir) = segments.first().and_then(|c| c.path.parent()) {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The next segment, prepared by the `inbox-prealloc` thread ([`Spare::run`]) and taken by
/// the syncer when it rolls over.
#[derive(Debug, Default)]
pub(super) struct Spare {
    state: Mutex<SpareState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct SpareState {
    /// A prepared file at [`SPARE_NAME`], ready to be renamed into the next segment.
    ready: Option<File>,
    /// The active segment is filling up: prepare the next one.
    wanted: bool,
    closing: bool,
}

impl Spare {
    fn lock(&self) -> MutexGuard<'_, SpareState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask for the next segment (once per segment: see [`Segments::append`]).
    fn want(&self) {
        self.lock().wanted = true;
        self.wake.notify_one();
    }

    fn take(&self) -> Option<File> {
        self.lock().ready.take()
    }

    /// Stop [`Spare::run`].
    pub(super) fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
    }

    /// The `inbox-prealloc` thread: whenever the next segment is wanted and none is ready,
    /// write one with zeros. A failure only costs speed (the syncer then starts an empty
    /// file), so it is logged and the next request tries again.
    pub(super) fn run(&self, dir: &Path) {
        loop {
            {
                let mut st = self.lock();
                let work = |st: &SpareState| st.closing || (st.wanted && st.ready.is_none());
                while !work(&st) {
                    st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if st.closing {
                    return;
                }
                st.wanted = false;
            }
            let path = dir.join(SPARE_NAME);
            match self.prepare(&path, SEGMENT_BYTES + HEADROOM) {
                Ok(Some(file)) => self.lock().ready = Some(file),
                Ok(None) => return, // closing
                Err(e) => {
                    // Most likely a full disk: give its space back to the log itself.
                    let _ = std::fs::remove_file(&path);
                    tracing::warn!(error = %e, "could not prepare the next inbox log segment; it will grow as it is written");
                }
            }
        }
    }

    /// Write `len` zeros to a new file at `path`, a chunk at a time, each synced; `None` if
    /// the inbox closes meanwhile.
    fn prepare(&self, path: &Path, len: u64) -> std::io::Result<Option<File>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        let zeros = vec![0; ZERO_CHUNK];
        let mut at = 0;
        while at < len {
            if self.lock().closing {
                drop(file);
                let _ = std::fs::remove_file(path);
                return Ok(None);
            }
            let n = (len - at).min(ZERO_CHUNK as u64) as usize;
            file.write_all_at(&zeros[..n], at)?;
            file.sync_data()?;
            at += n as u64;
        }
        file.sync_all()?;
        Ok(Some(file))
    }
}

/// The segment appended to.
#[derive(Debug)]
pub(super) struct Segments {
    dir: PathBuf,
    active: Arc<File>,
    active_no: u64,
    /// Where the next record goes (a prepared file is longer: zeros follow).
    active_len: u64,
    /// The active segment was prepared (zeros lie ahead of `active_len`).
    prepared: bool,
    spare: Arc<Spare>,
    /// The next segment was asked for ([`Spare::want`]).
    spare_wanted: bool,
}

fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("{no:06}.log"))
}

/// Open segment `path` to write to and read back (positional writes and reads), creating it
/// empty if it is new.
fn open_segment(path: &Path) -> std::io::Result<Arc<File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    Ok(Arc::new(file))
}

impl Segments {
    /// Open the log in `dir`, returning its closed segments and every record in it in order.
    /// The caller runs [`Spare::run`] on [`Segments::spare`] in a thread of its own.
    pub(super) fn open(dir: &Path) -> store::Result<(Segments, ClosedSegments, Vec<Logged>)> {
        std::fs::create_dir_all(dir)?;
        // A segment being prepared when the process stopped may be incomplete.
        match std::fs::remove_file(dir.join(SPARE_NAME)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let mut records = Vec::new();
        let mut closed = Vec::new();
        let mut last_seq = 0;
        let (mut active_len, mut prepared) = (0, false);
        for (i, &no) in numbers.iter().enumerate() {
            let path = segment_path(dir, no);
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let (found, good) = decode_all(&bytes);
            let newest = i + 1 == numbers.len();
            if bytes[good..].iter().any(|&b| b != 0) {
                if !newest {
                    return Err(store::Error::Damaged(format!(
                        "inbox log {} is damaged at byte {good}",
                        path.display()
                    )));
                }
                tracing::warn!(
                    segment = %path.display(),
                    dropped_bytes = bytes.len() - good,
                    "inbox log ends in a torn record (a crash during an unacknowledged write); cut off"
                );
                let f = std::fs::OpenOptions::new().write(true).open(&path)?;
                f.set_len(good as u64)?;
                f.sync_all()?;
            }
            last_seq = found.last().map_or(last_seq, |r| r.seq);
            records.extend(found);
            if newest {
                active_len = good as u64;
                prepared = good + HEADER < bytes.len();
            } else {
                closed.push(Closed { path, last_seq });
            }
        }
        let active_no = numbers.last().copied().unwrap_or(1);
        let active = open_segment(&segment_path(dir, active_no))?;
        sync_dir(dir)?;
        Ok((
            Segments {
                dir: dir.to_owned(),
                active,
                active_no,
                active_len,
                prepared,
                spare: Arc::default(),
                spare_wanted: false,
            },
            ClosedSegments(closed),
            records,
        ))
    }

    /// Where the next [`Segments::append`] writes.
    pub(super) fn position(&self) -> Position {
        Position {
            file: self.active.clone(),
            offset: self.active_len,
        }
    }

    /// What the `inbox-prealloc` thread serves.
    pub(super) fn spare(&self) -> Arc<Spare> {
        self.spare.clone()
    }

    /// Write `bytes` (whole records, the last with sequence number `last_seq`) and make them
    /// durable; start the next segment when this one is full, returning the closed one.
    pub(super) fn append(
        &mut self,
        bytes: &[u8],
        last_seq: u64,
    ) -> std::io::Result<Option<Closed>> {
        self.active.write_all_at(bytes, self.active_len)?;
        self.active.sync_data()?;
        self.active_len += bytes.len() as u64;
        if !self.spare_wanted && self.active_len >= SEGMENT_BYTES / 4 {
            self.spare_wanted = true;
            self.spare.want();
        }
        let full = self.active_len >= SEGMENT_BYTES;
        if !full && self.prepared {
            return Ok(None);
        }
        // Full, or not prepared (the first segment, or one whose preparation came too late):
        // move on to a prepared segment as soon as there is one.
        let next = self.active_no + 1;
        let path = segment_path(&self.dir, next);
        let (file, prepared) = match self.spare.take() {
            Some(file) => {
                std::fs::rename(self.dir.join(SPARE_NAME), &path)?;
                (Arc::new(file), true)
            }
            None if !full => return Ok(None),
            // Not prepared in time (or it failed): an empty file, which grows as written.
            None => (open_segment(&path)?, false),
        };
        sync_dir(&self.dir)?;
        drop(std::mem::replace(&mut self.active, file));
        let closed = Closed {
            path: segment_path(&self.dir, self.active_no),
            last_seq,
        };
        self.active_no = next;
        self.active_len = 0;
        self.prepared = prepared;
        self.spare_wanted = false;
        Ok(Some(closed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wecom::{Channel, ChatType, Content, Inbound};
    use std::io::Write;

    fn logged(seq: u64) -> Logged {
        Logged {
            seq,
            key: format!("k{seq}"),
            item: InboxItem {
                inbound: Inbound {
                    channel: Channel::App,
                    chat_type: ChatType::Single,
                    chat_id: "u".into(),
                    sender: "u".into(),
                    msg_id: format!("m{seq}"),
                    create_time: 0,
                    content: Content::Text { text: "hi".into() },
                    quote: None,
                    response_url: None,
                },
                received_at: 0,
                failures: 0,
            },
        }
    }

    fn append(s: &mut Segments, seqs: std::ops::RangeInclusive<u64>) {
        let mut buf = Vec::new();
        for seq in seqs.clone() {
            encode(&mut buf, &logged(seq));
        }
        assert!(s.append(&buf, *seqs.end()).expect("append").is_none());
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_log_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut s, _, records) = Segments::open(dir.path()).expect("open");
            assert!(records.is_empty());
            append(&mut s, 1..=3);
        }
        // A crash in the middle of the next append: half a record on disk.
        let mut half = Vec::new();
        encode(&mut half, &logged(4));
        let path = segment_path(dir.path(), 1);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("segment");
        f.write_all(&half[..half.len() / 2]).expect("torn write");
        drop(f);

        let (mut s, _, records) = Segments::open(dir.path()).expect("reopen");
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3], "the torn record is gone, the others kept");
        assert_eq!(records[1], logged(2));
        append(&mut s, 4..=4);
        drop(s);
        let (_, _, records) = Segments::open(dir.path()).expect("again");
        assert_eq!(records.len(), 4, "appends after the cut read back");
    }

    #[test]
    fn damage_before_the_newest_segment_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut s, _, _) = Segments::open(dir.path()).expect("open");
            append(&mut s, 1..=2);
        }
        std::fs::write(segment_path(dir.path(), 2), b"").expect("a newer segment");
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x55;
        std::fs::write(&path, bytes).expect("damage");
        let err = Segments::open(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn processed_segments_are_the_closed_ones_before_the_oldest_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, mut closed, _) = Segments::open(dir.path()).expect("open");
        // Fill two segments and start a third.
        let big = "字".repeat(SEGMENT_BYTES as usize / 2);
        let mut seq = 0;
        while closed.len() < 2 {
            seq += 1;
            let mut r = logged(seq);
            r.item.inbound.content = Content::Text { text: big.clone() };
            let mut buf = Vec::new();
            encode(&mut buf, &r);
            if let Some(c) = s.append(&buf, seq).expect("append") {
                closed.push(c);
            }
        }
        let first_last = closed.0[0].last_seq;
        assert_eq!(closed.processed(Some(1)), 0);
        assert_eq!(
            closed.processed(Some(first_last)),
            0,
            "its last one is pending"
        );
        assert_eq!(closed.processed(Some(first_last + 1)), 1);
        assert_eq!(closed.processed(None), 2, "nothing pending");
        delete(&closed.take(1)).expect("delete");
        drop(s);
        let (_, closed, records) = Segments::open(dir.path()).expect("reopen");
        assert_eq!(closed.len(), 1, "one closed segment left");
        assert!(
            records.iter().all(|r| r.seq > first_last),
            "the deleted ones are gone"
        );
    }

    #[test]
    fn zeros_after_the_records_are_the_end_and_anything_else_in_an_older_segment_is_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A prepared segment: zeros, appended to in place.
        let path = segment_path(dir.path(), 1);
        std::fs::write(&path, vec![0; 8 << 10]).expect("zeros");
        {
            let (mut s, _, records) = Segments::open(dir.path()).expect("open");
            assert!(records.is_empty(), "zeros hold no records");
            append(&mut s, 1..=3);
        }
        let (_, _, records) = Segments::open(dir.path()).expect("reopen");
        assert_eq!(records.len(), 3);
        let len = std::fs::metadata(&path).expect("stat").len();
        assert_eq!(
            len,
            8 << 10,
            "the zeros stay: the next appends overwrite them"
        );

        // Garbage after the records of the newest segment: a torn append, cut off.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("segment");
        let good = {
            let bytes = std::fs::read(&path).expect("read");
            decode_all(&bytes).1 as u64
        };
        f.write_all_at(b"torn", good + 100).expect("garbage");
        drop(f);
        let (_, _, records) = Segments::open(dir.path()).expect("cut");
        assert_eq!(records.len(), 3);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), good);

        // The same in a segment that is no longer the newest: refused.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("segment")
            .write_all_at(b"damage", good + 100)
            .expect("garbage");
        std::fs::write(segment_path(dir.path(), 2), b"").expect("a newer segment");
        let err = Segments::open(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("damaged"), "{err}");
        // Zeros in its place are fine.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("segment")
            .write_all_at(&[0; 6], good + 100)
            .expect("zeros");
        let (_, closed, records) = Segments::open(dir.path()).expect("zeros are fine");
        assert_eq!((closed.len(), records.len()), (1, 3));
    }

    #[test]
    fn segments_are_prepared_with_zeros_and_taken_when_full_or_at_once_after_an_unprepared_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, _) = Segments::open(dir.path()).expect("open");
        let spare = s.spare();
        let prealloc = {
            let (spare, dir) = (spare.clone(), dir.path().to_owned());
            std::thread::spawn(move || spare.run(&dir))
        };
        let big = "字".repeat(SEGMENT_BYTES as usize / 40);
        let mut seq = 0;
        let mut add = |s: &mut Segments| {
            seq += 1;
            let mut r = logged(seq);
            r.item.inbound.content = Content::Text { text: big.clone() };
            let mut buf = Vec::new();
            encode(&mut buf, &r);
            s.append(&buf, seq).expect("append").is_some()
        };
        // Asked for once a quarter is written; wait for the preparer (no time limit: a hang
        // is the failure).
        let quarter_then_ready = |s: &mut Segments, add: &mut dyn FnMut(&mut Segments) -> bool| {
            while s.active_len < SEGMENT_BYTES / 4 {
                assert!(!add(s), "too early to roll over");
            }
            while spare.lock().ready.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let prepared = std::fs::metadata(dir.path().join(SPARE_NAME)).expect("spare");
            assert_eq!(prepared.len(), SEGMENT_BYTES + HEADROOM);
        };
        let file_len = |no| {
            std::fs::metadata(segment_path(dir.path(), no))
                .expect("segment")
                .len()
        };

        // The first segment was not prepared: the next append moves on to the prepared one.
        quarter_then_ready(&mut s, &mut add);
        assert!(add(&mut s), "rolled over to the prepared segment");
        assert!(!dir.path().join(SPARE_NAME).exists(), "renamed");
        assert_eq!(
            file_len(2),
            SEGMENT_BYTES + HEADROOM,
            "segment 2 is the zeros"
        );

        // A prepared segment is kept until it is full, then the next prepared one follows.
        quarter_then_ready(&mut s, &mut add);
        assert!(!add(&mut s), "prepared and not full: kept");
        while !add(&mut s) {}
        assert!(s.active_len == 0 && s.prepared);
        assert_eq!(file_len(3), SEGMENT_BYTES + HEADROOM);
        add(&mut s);
        add(&mut s);
        drop(s);
        spare.close();
        prealloc.join().expect("preparer");

        let (s, closed, records) = Segments::open(dir.path()).expect("reopen");
        assert_eq!(records.len() as u64, seq, "every record, none of the zeros");
        assert_eq!(closed.len(), 2);
        assert!(s.prepared);
        assert_eq!(
            s.active_len,
            std::fs::read(segment_path(dir.path(), 3))
                .map(|b| decode_all(&b).1)
                .expect("read") as u64
        );
        assert_eq!(file_len(3), SEGMENT_BYTES + HEADROOM, "nothing was cut");
    }
}
