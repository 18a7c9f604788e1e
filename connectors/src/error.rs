//! Errors of the connectors crate.

/// Result alias for the connectors crate.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Reading the input failed (not a bad line: the source itself).
    #[error("reading {source_name}: {source}")]
    Input {
        source_name: String,
        source: std::io::Error,
    },

    /// Ingest stopped part way: the lines up to `acked_lines` are durable (their `accepted`
    /// events and dead letters), the rest of the input was not taken.
    #[error("ingest stopped after line {acked_lines} ({accepted} events acknowledged)")]
    Interrupted {
        acked_lines: u64,
        accepted: u64,
        #[source]
        source: Box<ConnectorError>,
    },

    /// The event log refused or failed an operation.
    #[error(transparent)]
    Log(#[from] omnistream_streams::StreamsError),

    /// A broken invariant: a bug, please report it.
    #[error("internal error (a bug, please report): {0}")]
    Internal(String),
}
