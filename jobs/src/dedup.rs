//! The set of event ids already in the lake, per table and date partition, so that a producer's
//! retry (the same event_id twice) lands once.
//!
//! A retried event carries the same `emitted_at`, so it falls in the same date partition: the index
//! only has to know the partitions that a batch touches. Each is loaded from the committed files
//! (the `event_id` column only) on first use and kept, least recently used first out.
//!
//! The sink inserts a round's ids as it prepares the round, before they are committed: one probe
//! per event decides and records it (the ids of the round being written while the next is
//! prepared are in the set already). Whoever drops a prepared round without committing it must
//! [`clear`](DedupIndex::clear) the index, and a partition touched by the last two rounds is never
//! evicted, since the round before may still be landing.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use omnistream_lake::{Lake, Snapshot};

use crate::error::Result;

/// Hashes an id key. UUIDv7 and v4 ids carry random low bits, so folding the halves and one
/// multiply spreads them well, at a fraction of SipHash's cost.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64 ^ (n >> 64) as u64);
    }
}

/// A set of id keys.
pub type IdSet = HashSet<u128, BuildHasherDefault<IdHasher>>;

/// Event ids per (table, date), bounded by the number of partitions kept.
pub struct DedupIndex {
    partitions: HashMap<(String, String), Partition>,
    max_partitions: usize,
    /// The round being prepared ([`begin_round`](Self::begin_round) counts them).
    round: u64,
}

struct Partition {
    ids: IdSet,
    /// The last round that used it.
    round: u64,
}

/// The key of an event id: its UUID as a number (ids are validated UUIDs on ingest).
pub fn id_key(event_id: &str) -> u128 {
    if let Some(key) = omnistream_streams::envelope::canonical_uuid(event_id) {
        return key;
    }
    match uuid::Uuid::parse_str(event_id) {
        Ok(u) => u.as_u128(),
        // Not a UUID (written by something other than ingest): hash it so it still dedups.
        Err(_) => {
            let h1 = crc32fast::hash(event_id.as_bytes()) as u128;
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(event_id, &mut hasher);
            (Hasher::finish(&hasher) as u128) << 32 | h1
        }
    }
}

impl DedupIndex {
    pub fn new(max_partitions: usize) -> Self {
        DedupIndex {
            partitions: HashMap::new(),
            max_partitions: max_partitions.max(1),
            round: 0,
        }
    }

    /// A round starts being prepared: the partitions it uses and those of the round before (which
    /// may be being written meanwhile) are kept, whatever the bound.
    pub fn begin_round(&mut self) {
        self.round += 1;
    }

    /// The ids of a partition, loaded from the lake when not in memory.
    pub fn partition(
        &mut self,
        lake: &Lake,
        snapshot: &Snapshot,
        table: &str,
        date: &str,
    ) -> Result<&mut IdSet> {
        let key = (table.to_string(), date.to_string());
        if !self.partitions.contains_key(&key) {
            let round = self.round;
            if self.partitions.len() >= self.max_partitions
                && let Some(oldest) = self
                    .partitions
                    .iter()
                    .filter(|(_, p)| p.round + 1 < round)
                    .min_by_key(|(_, p)| p.round)
                    .map(|(k, _)| k.clone())
            {
                self.partitions.remove(&oldest);
            }
            let files: Vec<_> = snapshot
                .table(table)
                .map(|t| {
                    t.files
                        .values()
                        .filter(|f| f.date.as_deref() == Some(date))
                        .collect()
                })
                .unwrap_or_default();
            let ids = lake.read_string_column(&files, omnistream_streams::envelope::EVENT_ID)?;
            tracing::debug!(
                table,
                date,
                ids = ids.len(),
                files = files.len(),
                "loaded dedup partition"
            );
            let ids: IdSet = ids.iter().map(|s| id_key(s)).collect();
            self.partitions
                .insert(key.clone(), Partition { ids, round: 0 });
        }
        let partition = self.partitions.get_mut(&key).unwrap();
        partition.round = self.round;
        Ok(&mut partition.ids)
    }

    /// Forget everything: the sets hold ids of a round that will not land (it failed, or was
    /// prepared ahead and dropped). Each partition is read from the lake again when next used.
    pub fn clear(&mut self) {
        self.partitions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_key_like_their_uuid_whatever_the_spelling() {
        for text in [
            "01a19467-ee34-7d7b-a0ec-ba6f595c81d3",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ] {
            let uuid = uuid::Uuid::parse_str(text).unwrap().as_u128();
            // The canonical form (the fast path), other spellings (the general parser).
            assert_eq!(id_key(text), uuid);
            assert_eq!(id_key(&text.to_uppercase()), uuid);
            assert_eq!(id_key(&text.replace('-', "")), uuid);
        }
        // Ids that are not UUIDs still key consistently (and differently).
        assert_eq!(id_key("retry-1"), id_key("retry-1"));
        assert_ne!(id_key("retry-1"), id_key("retry-2"));
    }
}
