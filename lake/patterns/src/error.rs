//! Errors of the pattern store, by what failed; each wraps its cause.

pub type Result<T, E = PatternsError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum PatternsError {
    /// LanceDB (or Lance beneath it) failed.
    #[error("lancedb: {0}")]
    Lance(#[from] lancedb::Error),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// The event log failed.
    #[error(transparent)]
    Log(#[from] omnistream_streams::StreamsError),

    /// The lake failed (the re-scoring runs' `pattern_scores`).
    #[error(transparent)]
    Lake(Box<omnistream_lake::LakeError>),

    /// The table was written with another embedder: its vectors cannot be compared with this one's.
    #[error(
        "the pattern table at {path} was embedded with '{stored}' ({stored_dim} dimensions), not \
         the configured '{configured}' ({configured_dim}); run `omnistream patterns reembed` to \
         re-embed it, or configure '{stored}' again"
    )]
    EmbedderMismatch {
        path: String,
        stored: String,
        stored_dim: usize,
        configured: String,
        configured_dim: usize,
    },

    /// An embedder failed or answered with vectors of the wrong shape.
    #[error("embedder '{embedder}': {detail}")]
    Embed { embedder: String, detail: String },

    /// A pattern, query or filter a user gave that cannot be used (names the field).
    #[error("{0}")]
    Invalid(String),

    /// No pattern has this id.
    #[error("no pattern has the id '{0}'")]
    NotFound(String),

    /// Another process runs the pattern indexer.
    #[error("another process runs the pattern indexer (lock {})", .0.display())]
    Busy(std::path::PathBuf),

    #[error(transparent)]
    Io(#[from] omnistream_streams::io::IoError),

    /// What was being done when the cause failed.
    #[error("{0}")]
    Context(String, #[source] Box<PatternsError>),

    /// A broken invariant: a bug, please report it.
    #[error("internal error (a bug, please report): {0}")]
    Internal(String),
}

impl PatternsError {
    /// This error with what was being done when it happened.
    pub fn context(self, what: impl Into<String>) -> PatternsError {
        PatternsError::Context(what.into(), Box::new(self))
    }
}

impl From<omnistream_lake::LakeError> for PatternsError {
    fn from(e: omnistream_lake::LakeError) -> Self {
        PatternsError::Lake(Box::new(e))
    }
}

impl From<PatternsError> for omnistream_jobs::JobError {
    fn from(e: PatternsError) -> Self {
        omnistream_jobs::JobError::External(Box::new(e))
    }
}
