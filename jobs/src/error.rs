//! Errors of the jobs crate.

pub type Result<T, E = JobError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The event log failed.
    #[error(transparent)]
    Log(#[from] omnistream_streams::StreamsError),

    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] omnistream_lake::LakeError),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// A job file that cannot be used: names the file and the field.
    #[error("{origin}: {detail}")]
    Spec { origin: String, detail: String },

    /// A job name nobody declared.
    #[error("unknown job '{name}' (jobs: {known})")]
    UnknownJob { name: String, known: String },

    /// A reducer's SQL failed to plan or run.
    #[error("{job}: {detail}")]
    Reducer { job: String, detail: String },

    /// The lake changed while a batch read it (another writer compacted files away): nothing was
    /// committed, and the batch can simply be run again on the new state.
    #[error("the lake changed under the batch ({0}); run it again")]
    Stale(String),

    /// The codegen job could not do its work (not a failed generation: those are events).
    #[error("codegen: {0}")]
    Codegen(String),

    /// Another process holds the job.
    #[error("{0}")]
    Busy(String),

    /// A broken invariant: a bug, please report it.
    #[error("internal error (a bug, please report): {0}")]
    Internal(String),
}
