//! omnistream jobs: the job interface, job specifications and the runtime that keeps the lake
//! current, with the built-in data jobs: the lake-sink (every topic into its raw table, exactly
//! once) and the SQL reducers (derived tables kept current window by window). Jobs with heavier
//! dependencies (codegen) implement [`Job`] in their own crates.

pub mod dedup;
pub mod error;
pub mod job;
pub mod lake_sink;
pub mod reducer;
pub mod runner;
pub mod spec;
pub mod stale;
pub mod status;
pub mod views;

pub use error::{JobError, Result};
pub use job::{Job, JobEnv, JobFactory, StepReport};
pub use lake_sink::{LAKE_SINK, LakeSink, LakeSinkOptions, RoundReport, SinkTotals};
pub use reducer::{BatchReport, Reducer, ReducerOptions};
pub use spec::{JobKind, JobSpec, ReducerSpec};
pub use stale::retry_stale;
