//! omnistream streams: the topic registry, the Arrow schema of every topic, the event envelope,
//! and the event log (the [`log::EventLog`] trait and its embedded, file-backed implementation).

pub mod docs;
pub mod error;
pub mod event;
pub mod io;
pub mod log;
pub mod registry;
pub mod schema;

pub use error::{Result, StreamsError};
pub use event::Event;
pub use log::{
    AppendAck, EmbeddedLog, EmbeddedLogConfig, EventLog, GroupOffsets, LogBatch, PartitionOffsets,
};
pub use registry::{Topic, TopicKind, TopicSpec, envelope};
pub use schema::{FieldSpec, FieldType};
