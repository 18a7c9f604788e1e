//! The LanceDB pattern store.
pub use lancedb;
