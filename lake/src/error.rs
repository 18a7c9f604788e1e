//! Errors of the lake crate, named by the phase that failed.

use std::path::PathBuf;

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A query could not be planned: a syntax error, an unknown table or column, a type error, or a
    /// statement that the read-only SQL surface does not allow.
    #[error("{0}")]
    Plan(String),

    /// A query failed while running.
    #[error("query failed: {0}")]
    Execution(String),

    /// A table name that the lake does not have.
    #[error("unknown table '{name}' (tables: {known})")]
    UnknownTable { name: String, known: String },

    /// Another writer changed what this commit depends on (for example compacted the same files).
    #[error("commit conflict: {0}")]
    Conflict(String),

    /// Another process holds this writer's lock.
    #[error(
        "another process is already writing to the lake as '{writer}' (lock {path}); stop it first"
    )]
    WriterBusy { writer: String, path: PathBuf },

    /// The lake's own metadata (commit log, checkpoints) is unreadable.
    #[error("lake metadata {path}: {detail}")]
    Metadata { path: PathBuf, detail: String },

    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error(transparent)]
    Streams(#[from] omnistream_streams::StreamsError),

    #[error(transparent)]
    Io(#[from] omnistream_streams::io::IoError),

    /// A broken invariant: a bug, please report it.
    #[error("internal error (a bug, please report): {0}")]
    Internal(String),
}

impl From<datafusion::error::DataFusionError> for LakeError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as E;
        match e.find_root() {
            E::SQL(..) | E::Plan(..) | E::SchemaError(..) | E::NotImplemented(..) => {
                LakeError::Plan(describe_datafusion_error(&e))
            }
            _ => LakeError::Execution(describe_datafusion_error(&e)),
        }
    }
}

/// One line for a DataFusion error: its root cause without backtraces, with the default catalog
/// prefix removed from table names so they read as the user wrote them.
pub fn describe_datafusion_error(e: &datafusion::error::DataFusionError) -> String {
    let text = e.find_root().to_string();
    let text = text.split("\n\nbacktrace").next().unwrap_or(&text);
    text.replace("datafusion.public.", "")
        .replace('\n', " ")
        .trim()
        .to_string()
}
