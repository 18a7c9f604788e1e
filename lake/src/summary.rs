//! What `omnistream lake tables` shows: per table, rows, files, bytes and the event-time range,
//! all from the transaction log (no file is opened).

use crate::txlog::Snapshot;

#[derive(Debug, Clone, PartialEq)]
pub struct TableSummary {
    pub name: String,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    pub partitions: usize,
    pub first_event_us: Option<i64>,
    pub last_event_us: Option<i64>,
}

pub fn summarize(snapshot: &Snapshot) -> Vec<TableSummary> {
    snapshot
        .tables
        .iter()
        .map(|(name, table)| {
            let files = table.files.values();
            let mut dates: Vec<&str> = files.clone().filter_map(|f| f.date.as_deref()).collect();
            dates.sort_unstable();
            dates.dedup();
            TableSummary {
                name: name.clone(),
                rows: files.clone().map(|f| f.rows).sum(),
                files: table.files.len(),
                bytes: files.clone().map(|f| f.bytes).sum(),
                partitions: dates.len(),
                first_event_us: files.clone().filter_map(|f| f.min_time_us).min(),
                last_event_us: files.filter_map(|f| f.max_time_us).max(),
            }
        })
        .collect()
}
