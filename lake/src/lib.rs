//! omnistream lake: Parquet tables under one directory, changed only by commits of a transaction
//! log that also records the source offsets each commit covers (exactly-once sinks), compaction,
//! and the DataFusion session that queries every table by name.

pub mod compact;
pub mod error;
pub mod lake;
pub mod session;
pub mod summary;
pub mod table;
pub mod txlog;

pub use error::{LakeError, Result};
pub use lake::{DATE_COLUMN, Lake, LakeWriter, StagedFile, date_of, filter_rows, split_by_date};
pub use session::{
    query, query_stream, query_with, raw_table_def, read_only, session, session_with,
};
pub use txlog::{Action, DataFile, Snapshot, TableDef};

#[cfg(test)]
mod tests;
