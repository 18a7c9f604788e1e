//! The set of event ids already in the lake, per table and date partition, so that a producer's
//! retry (the same event_id twice) lands once.
//!
//! A retried event carries the same `emitted_at`, so it falls in the same date partition: the index
//! only has to know the partitions that a batch touches. Each is loaded from the committed files
//! (the `event_id` column only) on first use and kept, least recently used first out.

use std::collections::{HashMap, HashSet};

use omnistream_lake::{Lake, Snapshot};

use crate::error::Result;

/// Event ids per (table, date), bounded by the number of partitions kept.
pub struct DedupIndex {
    partitions: HashMap<(String, String), Partition>,
    max_partitions: usize,
    clock: u64,
}

struct Partition {
    ids: HashSet<u128>,
    last_used: u64,
}

/// The key of an event id: its UUID as a number (ids are validated UUIDs on ingest).
pub fn id_key(event_id: &str) -> u128 {
    match uuid::Uuid::parse_str(event_id) {
        Ok(u) => u.as_u128(),
        // Not a UUID (written by something other than ingest): hash it so it still dedups.
        Err(_) => {
            let h1 = crc32fast::hash(event_id.as_bytes()) as u128;
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(event_id, &mut hasher);
            (std::hash::Hasher::finish(&hasher) as u128) << 32 | h1
        }
    }
}

impl DedupIndex {
    pub fn new(max_partitions: usize) -> Self {
        DedupIndex {
            partitions: HashMap::new(),
            max_partitions: max_partitions.max(1),
            clock: 0,
        }
    }

    /// The ids of a partition, loaded from the lake when not in memory.
    pub fn partition(
        &mut self,
        lake: &Lake,
        snapshot: &Snapshot,
        table: &str,
        date: &str,
    ) -> Result<&mut HashSet<u128>> {
        self.clock += 1;
        let key = (table.to_string(), date.to_string());
        if !self.partitions.contains_key(&key) {
            if self.partitions.len() >= self.max_partitions
                && let Some(oldest) = self
                    .partitions
                    .iter()
                    .min_by_key(|(_, p)| p.last_used)
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
            let ids: HashSet<u128> = ids.iter().map(|s| id_key(s)).collect();
            self.partitions
                .insert(key.clone(), Partition { ids, last_used: 0 });
        }
        let partition = self.partitions.get_mut(&key).unwrap();
        partition.last_used = self.clock;
        Ok(&mut partition.ids)
    }

    /// Forget everything (after a failed commit, the in-memory sets may hold ids that never landed).
    pub fn clear(&mut self) {
        self.partitions.clear();
    }
}
