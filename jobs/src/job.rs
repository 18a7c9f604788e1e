//! The job interface: what the runner drives. A job reads its inputs from the log under its own
//! consumer group, and each step takes what is waiting, does its work and commits it (output and
//! offsets) before it returns, so a crash between steps loses nothing and repeats nothing. The
//! built-in data jobs (lake-sink, reducers) live in this crate; jobs with heavier dependencies
//! (codegen, later the pattern indexer) live in their own crates and are built by a [`JobFactory`].

use omnistream_lake::Lake;
use omnistream_streams::EventLog;

use crate::error::Result;
use crate::spec::JobSpec;

/// What one step took in and put out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Events read from the job's inputs (zero: nothing was waiting).
    pub events: u64,
    /// Rows (or other outputs, such as generated nodes) committed.
    pub rows: u64,
}

/// A job the runner can step.
pub trait Job {
    /// Take what is waiting (up to the job's batch size), do the work, commit it. Returns zero
    /// events when nothing was waiting.
    fn step(&mut self) -> Result<StepReport>;
}

/// Where a job runs: the log it reads, the lake it writes, the async runtime for what it drives
/// asynchronously, and the directory for its state (locks).
#[derive(Clone, Copy)]
pub struct JobEnv<'a> {
    pub log: &'a dyn EventLog,
    pub lake: &'a Lake,
    pub runtime: &'a tokio::runtime::Handle,
    pub state_dir: &'a std::path::Path,
}

/// Builds the jobs of the kinds this crate does not implement itself.
pub trait JobFactory: Sync {
    /// The job that runs `spec`; an error when the factory does not build this kind.
    fn build<'a>(&self, spec: &JobSpec, env: JobEnv<'a>) -> Result<Box<dyn Job + 'a>>;
}
