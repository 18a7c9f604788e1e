//! Errors of the jobs crate, by what failed; each wraps its cause.

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

    /// A reducer's (or a view's) SQL failed to plan or run.
    #[error("{job}: {file} failed")]
    Sql {
        job: String,
        file: String,
        #[source]
        source: Box<omnistream_lake::LakeError>,
    },

    /// A reducer's (or a view's) SQL uses a parameter that has no value.
    #[error("{job}: the SQL uses ${name}, which has no value (known: {known})")]
    UnknownParameter {
        job: String,
        name: String,
        known: String,
    },

    /// The SQL's result no longer has the derived table's columns: only a backfill may replace
    /// them, so a changed reducer never silently rewrites history.
    #[error(
        "{job}: the SQL's result no longer matches table '{table}' (its columns changed); rebuild it with `omnistream backfill {job}`"
    )]
    SchemaChanged { job: String, table: String },

    /// The lake changed while a batch read it (another writer compacted files away): nothing was
    /// committed, and the batch can simply be run again on the new state.
    #[error("the lake changed under the batch; run it again")]
    Stale(#[source] Box<JobError>),

    /// A job implemented in another crate (codegen) failed; its own error is the cause.
    #[error(transparent)]
    External(Box<dyn std::error::Error + Send + Sync>),

    /// What was being done when the cause failed (e.g. which job of `jobs run all`).
    #[error("{0}")]
    Context(String, #[source] Box<JobError>),

    /// A broken invariant or a panic: a bug, please report it.
    #[error("internal error (a bug, please report): {0}")]
    Internal(String),
}

impl JobError {
    /// This error with what was being done when it happened.
    pub fn context(self, what: impl Into<String>) -> JobError {
        JobError::Context(what.into(), Box::new(self))
    }
}
