//! omnistream jobs: job specifications and the runtime that keeps the lake current: the lake-sink
//! (every topic into its raw table, exactly once) and the SQL reducers (derived tables kept
//! current window by window), and the codegen job (generation requests into validated nodes).

pub mod codegen;
pub mod dedup;
pub mod error;
pub mod lake_sink;
pub mod reducer;
pub mod runner;
pub mod spec;
pub mod status;
pub mod views;

pub use error::{JobError, Result};
pub use lake_sink::{LAKE_SINK, LakeSink, LakeSinkOptions, RoundReport, SinkTotals};
pub use reducer::{BatchReport, Reducer, ReducerOptions};
pub use spec::{JobKind, JobSpec};
