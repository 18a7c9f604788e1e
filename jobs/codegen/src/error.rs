//! Errors of the codegen crate. A failed generation is not an error: it is a generation-failed
//! event. These are what stops the job itself (the log refused its events, another process holds
//! it) and what the pipeline's parts report to the stage that turns them into a failure code.

use std::path::PathBuf;
use std::sync::Arc;

pub type Result<T, E = CodegenError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The event log failed.
    #[error(transparent)]
    Log(#[from] omnistream_streams::StreamsError),

    /// Events could not be made durable: the batch is not committed and runs again.
    #[error("recording a generation failed")]
    Emit(#[source] EmitError),

    /// A request that cannot be published (a field of the wrong shape).
    #[error("the request is not valid: {0}")]
    InvalidRequest(String),

    /// A request file with lines that are not requests: nothing of it was published.
    #[error("{}: {} (nothing was published)", .path.display(), .problems.join("; "))]
    RequestFile {
        path: PathBuf,
        problems: Vec<String>,
    },

    /// Another process runs the codegen job.
    #[error("another process runs the codegen job (lock {})", .0.display())]
    Busy(PathBuf),

    #[error(transparent)]
    Io(#[from] omnistream_streams::io::IoError),

    /// A template that does not render (a bug in a shipped template, or a user's).
    #[error("rendering {name}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },

    /// The long-lived Python worker (compile check, import check) failed.
    #[error(transparent)]
    Python(#[from] crate::python::PythonError),
}

/// An error and its causes on one line, for an event's message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    omnistream_streams::error::distinct_causes(e).join(": ")
}

/// Why events did not become durable. Shared by every generation whose events were in the
/// failed append, hence `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmitError {
    /// The pipeline built an event the topic's schema refuses.
    #[error(
        "internal error (a bug, please report): the codegen job built an invalid {table} event: {reason}"
    )]
    InvalidEvent { table: &'static str, reason: String },

    #[error("appending to {topic}")]
    Append {
        topic: &'static str,
        #[source]
        source: Arc<omnistream_streams::StreamsError>,
    },
}

impl From<EmitError> for CodegenError {
    fn from(e: EmitError) -> Self {
        CodegenError::Emit(e)
    }
}

impl From<CodegenError> for omnistream_jobs::JobError {
    fn from(e: CodegenError) -> Self {
        omnistream_jobs::JobError::External(Box::new(e))
    }
}
