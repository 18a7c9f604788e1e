//! The event log: the one interface jobs see (decision 3).
//!
//! Topics have partitions; an append returns offsets once the records are durable; readers read
//! from any offset; consumer groups keep committed offsets. [`EmbeddedLog`] keeps segment files
//! under the data directory. A job never knows which implementation it runs on.

pub mod embedded;
pub mod frame;
mod groups;

use std::collections::BTreeMap;

use arrow::array::RecordBatch;

use crate::error::Result;
use crate::registry::Topic;

pub use embedded::{EmbeddedLog, EmbeddedLogConfig};

/// Records read from one partition: the rows of `batch` have offsets `base_offset..base_offset + rows`.
#[derive(Debug, Clone)]
pub struct LogBatch {
    pub topic: Topic,
    pub partition: u32,
    pub base_offset: u64,
    /// When the log appended the batch, microseconds since the epoch (UTC).
    pub appended_at_us: i64,
    pub batch: RecordBatch,
}

impl LogBatch {
    /// The offset after the last record of this batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.batch.num_rows() as u64
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    pub partition: u32,
    pub base_offset: u64,
    pub records: u64,
}

/// The readable range of a partition: `start` is the oldest offset still kept (retention may have
/// removed older ones), `end` the offset the next record will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionOffsets {
    pub start: u64,
    pub end: u64,
}

/// Committed offsets of one consumer group on one topic: partition -> next offset to read.
pub type GroupOffsets = BTreeMap<u32, u64>;

/// The event log interface. Methods block on I/O; call them from blocking contexts.
pub trait EventLog: Send + Sync {
    /// Number of partitions of a topic.
    fn partitions(&self, topic: Topic) -> Result<u32>;

    /// Append a batch with the topic's schema. Rows are spread over partitions by the topic's
    /// partition key. Returns once the records are durable (synced).
    fn append(&self, topic: Topic, batch: &RecordBatch) -> Result<Vec<AppendAck>>;

    /// Read up to about `max_records` records from `from` on (whole stored batches, the first one
    /// sliced to start at `from`). An empty result means `from` is at the end.
    fn read(
        &self,
        topic: Topic,
        partition: u32,
        from: u64,
        max_records: usize,
    ) -> Result<Vec<LogBatch>>;

    /// The readable offset range of a partition.
    fn offsets(&self, topic: Topic, partition: u32) -> Result<PartitionOffsets>;

    /// Committed offsets of a consumer group on a topic (empty when it never committed).
    fn committed(&self, group: &str, topic: Topic) -> Result<GroupOffsets>;

    /// Commit offsets of a consumer group on a topic (partitions not named keep theirs).
    fn commit(&self, group: &str, topic: Topic, offsets: &GroupOffsets) -> Result<()>;

    /// Names of every consumer group that has committed something.
    fn groups(&self) -> Result<Vec<String>>;
}

/// Validate a name that becomes a file or directory name (consumer groups, job names).
pub fn validate_name(name: &str) -> Result<()> {
    use crate::error::StreamsError::InvalidName;
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 128 {
        Some("must be at most 128 characters")
    } else if name.starts_with(['.', '_', '-']) {
        Some("must start with a letter or digit")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Some("may contain only ASCII letters, digits, '.', '_' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod name_tests {
    use super::validate_name;

    #[test]
    fn names_that_could_escape_the_data_directory_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "_x",
            "a b",
            "a\0b",
            &"x".repeat(129),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["lake-sink", "model_performance", "g1.v2"] {
            validate_name(good).unwrap();
        }
    }
}

#[cfg(test)]
mod tests;

/// A consumer's committed offset must not be past the log's end (see
/// [`StreamsError::PositionBeyondEnd`]).
pub fn check_position(
    group: &str,
    topic: Topic,
    partition: u32,
    committed: u64,
    end: u64,
) -> Result<()> {
    if committed > end {
        return Err(crate::error::StreamsError::PositionBeyondEnd {
            group: group.to_string(),
            topic: topic.name().to_string(),
            partition,
            committed,
            end,
        });
    }
    Ok(())
}
