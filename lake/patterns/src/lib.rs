//! The pattern store: good generations kept as patterns in one LanceDB table, deduplicated by
//! normalised code, versioned by similarity, promoted and deprecated by the outcomes of the
//! generations that applied them, and retrieved by hybrid search (vector and BM25) for the next
//! similar request. The only crate that links LanceDB.

pub mod columns;
pub mod embed;
pub mod error;
mod facts;
pub mod fusion;
pub mod indexer;
pub mod lifecycle;
pub mod normalise;
pub mod record;
pub mod reembed;
pub mod rescore;
pub mod rows;
pub mod source;
pub mod store;
pub mod uses;

pub use embed::{Embedder, HashingEmbedder};
pub use error::{PatternsError, Result};
pub use indexer::{IndexReport, Indexer, IndexerOptions, PATTERNS};
pub use lancedb;
pub use lifecycle::Lifecycle;
pub use record::Pattern;
pub use source::{PatternsConfig, PatternsFactory, StoreSource};
pub use store::{Hit, IdHit, OptimizeReport, PatternStore, Search, StoreOptions, VectorIndex};

#[cfg(test)]
mod tests;
