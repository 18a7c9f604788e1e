//! Errors of the CLI: one line per cause, never a backtrace (decision 11).

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The configuration (file or environment) is invalid.
    #[error("configuration: {0}")]
    Config(String),

    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),

    #[error(transparent)]
    Streams(#[from] omnistream_streams::StreamsError),

    #[error(transparent)]
    Connectors(#[from] omnistream_connectors::ConnectorError),

    #[error(transparent)]
    Lake(#[from] omnistream_lake::LakeError),

    #[error(transparent)]
    Jobs(#[from] omnistream_jobs::JobError),

    #[error(transparent)]
    Codegen(#[from] omnistream_codegen::CodegenError),

    #[error(transparent)]
    Patterns(#[from] omnistream_patterns::PatternsError),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error(transparent)]
    Io(#[from] omnistream_streams::io::IoError),

    /// A generation ended in generation-failed (its report has been printed).
    #[error("{0}")]
    Generation(String),

    /// Work that stopped part way, saying what was done and how to resume.
    #[error("{summary}")]
    Interrupted {
        summary: String,
        #[source]
        source: Box<CliError>,
    },

    /// A panic or a broken invariant: a bug, not the user's doing.
    #[error("internal error (a bug, please report): {0}")]
    Internal(String),

    /// The command finished, but not everything succeeded (for example, ingest rejected lines).
    /// Its report has already been printed.
    #[error("{0}")]
    Partial(String),
}

impl CliError {
    /// Exit codes: 1 for an error, 2 for a command that completed with rejected input.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Partial(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// The error and its causes, one per line after the first, as `error: ...` / `  caused by: ...`.
pub(crate) fn render(error: &CliError) -> String {
    let causes = omnistream_streams::error::distinct_causes(error);
    format!("error: {}", causes.join("\n  caused by: "))
}
