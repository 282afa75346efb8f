//! The pending messages by the hash of their dedupe key ([`Keys`]).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// How many hash maps the keys are spread over, by the hash's top bits: a map grows by
/// rehashing all its entries at once, under the inbox's lock, so each must stay small (with
/// a backlog of a million messages, a map holds about 16,000).
const SHARDS: usize = 64;

/// `hash → seq` for the pending messages, `hash` being the [`Shared::hasher`] hash of the
/// message's dedupe key. A key is confirmed by comparing the message's own key: two keys
/// can share a hash. The first message of a hash is in a map (one probe, as nearly every
/// look finds none); any other of the same hash in `more`.
///
/// (A `BTreeSet<(hash, seq)>` did the same with a descent of five or six nodes a look, each
/// a cache miss with a large backlog: 2% of the callback path's CPU.)
///
/// [`Shared::hasher`]: super::Shared
#[derive(Debug)]
pub(super) struct Keys {
    first: Box<[HashMap<u64, u64, BuildHasherDefault<Spread>>]>,
    more: BTreeSet<(u64, u64)>,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            first: (0..SHARDS).map(|_| HashMap::default()).collect(),
            more: BTreeSet::new(),
        }
    }
}

impl Keys {
    /// The map of `hash`.
    fn shard(hash: u64) -> usize {
        (hash >> (64 - SHARDS.trailing_zeros())) as usize
    }

    pub(super) fn insert(&mut self, hash: u64, seq: u64) {
        match self.first[Self::shard(hash)].entry(hash) {
            Entry::Vacant(v) => {
                v.insert(seq);
            }
            Entry::Occupied(_) => {
                self.more.insert((hash, seq));
            }
        }
    }

    /// The messages listed under `hash`, oldest first.
    pub(super) fn seqs(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        let more = (!self.more.is_empty()).then(|| {
            self.more
                .range((hash, 0)..)
                .take_while(move |&&(h, _)| h == hash)
                .map(|&(_, seq)| seq)
        });
        self.first[Self::shard(hash)]
            .get(&hash)
            .copied()
            .into_iter()
            .chain(more.into_iter().flatten())
    }

    pub(super) fn remove(&mut self, hash: u64, seq: u64) {
        let Entry::Occupied(mut listed) = self.first[Self::shard(hash)].entry(hash) else {
            return;
        };
        if *listed.get() != seq {
            self.more.remove(&(hash, seq));
            return;
        }
        match self.more.range((hash, 0)..).next().copied() {
            Some((h, next)) if h == hash => {
                self.more.remove(&(hash, next));
                listed.insert(next);
            }
            _ => {
                listed.remove();
            }
        }
    }
}

/// The map's own hash of a key that is a hash already: a multiplication, so that the bits
/// the map looks at (the top ones for its tags, the low ones for its buckets) vary within a
/// shard, whose keys share their top bits.
#[derive(Debug, Default)]
pub(super) struct Spread(u64);

/// 2^64 divided by the golden ratio, odd: multiplying by it spreads every bit upwards.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(SPREAD);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(SPREAD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_sharing_a_hash_are_all_listed_until_removed() {
        let mut keys = Keys::default();
        let (a, b) = (0xdead_beef_u64 << 32, 7_u64);
        keys.insert(a, 1);
        keys.insert(b, 2);
        keys.insert(a, 3);
        keys.insert(a, 4);
        assert_eq!(keys.seqs(a).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(keys.seqs(b).collect::<Vec<_>>(), [2]);
        assert_eq!(keys.seqs(a + 1).count(), 0);
        // The map's entry goes: the next of its hash takes its place.
        keys.remove(a, 1);
        assert_eq!(keys.seqs(a).collect::<Vec<_>>(), [3, 4]);
        keys.remove(a, 4);
        assert_eq!(keys.seqs(a).collect::<Vec<_>>(), [3]);
        keys.remove(a, 3);
        keys.remove(b, 2);
        assert_eq!(keys.seqs(a).count() + keys.seqs(b).count(), 0);
        assert!(keys.more.is_empty());
        assert!(keys.first.iter().all(HashMap::is_empty));
    }
}
