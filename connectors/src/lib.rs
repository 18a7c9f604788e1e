//! omnistream connectors: what crosses the process boundary. Newline-delimited JSON into the event
//! log ([`ingest`]), with a decoder that turns JSON events into Arrow rows of a topic ([`decode`])
//! and sends every line it cannot accept to the dead-letter topic; model providers over HTTP
//! ([`models`]).

pub mod decode;
pub mod error;
pub mod ingest;
pub mod lines;
pub mod models;

pub use decode::{EnvelopeDefaults, EventDecoder, RejectKind, Rejection};
pub use error::{ConnectorError, Result};
pub use ingest::{IngestOptions, IngestReport, Input, RejectedLine, ingest};
