//! omnistream jobs: the runtime that moves events from the log into the lake, starting with the
//! lake-sink job (every topic into its raw table, exactly once).

pub mod dedup;
pub mod error;
pub mod lake_sink;

pub use error::{JobError, Result};
pub use lake_sink::{LAKE_SINK, LakeSink, LakeSinkOptions, RoundReport, SinkTotals};
