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

    /// A broken invariant: a bug, please report it.
    #[error("internal error (a bug, please report): {0}")]
    Internal(String),
}
