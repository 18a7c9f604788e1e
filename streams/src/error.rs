//! Errors of the streams crate, named by what failed.

use std::path::PathBuf;

/// Result alias for the streams crate.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;

/// Everything that can go wrong in the registry or the event log.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// A topic name (or table name) that the registry does not know.
    #[error("unknown topic '{name}'{nearest}; known topics: {known}")]
    UnknownTopic {
        name: String,
        /// ` (did you mean 'x'?)` when a known name is close, else empty.
        nearest: String,
        known: String,
    },

    /// A record batch whose schema is not the topic's registered schema.
    #[error("schema mismatch on topic '{topic}': {detail}")]
    SchemaMismatch { topic: String, detail: String },

    /// A partition that the topic does not have.
    #[error("topic '{topic}' has {partitions} partition(s); partition {partition} does not exist")]
    UnknownPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },

    /// A complete frame whose checksum does not match: the data is corrupt and is not served.
    #[error("corrupt frame in {path} at byte {position} (offset {base_offset}): {detail}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        base_offset: u64,
        detail: String,
    },

    /// A consumer's committed position is past the log's end: events it acknowledged are gone
    /// (a segment lost or cut), and reading on would silently skip new ones.
    #[error(
        "consumer group '{group}' committed offset {committed} of {topic} partition {partition}, but the log ends at {end}: acknowledged events are missing from the log"
    )]
    PositionBeyondEnd {
        group: String,
        topic: String,
        partition: u32,
        committed: u64,
        end: u64,
    },

    /// An event built with a field its topic does not have (a mistyped key).
    #[error("topic {topic} has no field '{field}'")]
    UnknownField { topic: String, field: String },

    /// An event's payload that is not a JSON object of fields.
    #[error("an event of topic {topic} needs an object of fields as its payload")]
    PayloadNotObject { topic: String },

    /// A consumer group or topic name that cannot become a file name.
    #[error("invalid name '{name}': {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// On-disk metadata that contradicts the registry (for example a changed schema without a version bump).
    #[error("log metadata conflict for topic '{topic}': {detail}")]
    Metadata { topic: String, detail: String },

    /// Arrow encoding or decoding failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// File system I/O failed.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),

    /// A broken invariant: a bug, please report it.
    #[error("internal error (a bug, please report): {0}")]
    Internal(String),
}

/// An error's message and then each of its causes', skipping a cause whose text the message
/// before it already carries (`{context}: {source}` and `transparent` repeat their cause).
pub fn distinct_causes(error: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.last().is_some_and(|last| last.contains(&text)) {
            out.push(text);
        }
        source = cause.source();
    }
    out
}
