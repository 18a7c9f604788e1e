//! A batch that ran while another writer changed the lake under it (compaction) is stale: it
//! committed nothing and can simply run again. Every job's step goes through these two.

use std::time::Duration;

use omnistream_lake::Lake;

use crate::error::{JobError, Result};

/// An error of a batch that read snapshot `seq`: when the lake has moved on since (files it
/// planned to read may have been compacted away), the batch is stale rather than failed.
pub(crate) fn stale_or(e: JobError, lake: &Lake, seq: u64) -> JobError {
    if matches!(e, JobError::Stale(_)) {
        return e;
    }
    match lake.snapshot() {
        Ok(now) if now.seq != seq => JobError::Stale(Box::new(e)),
        _ => e,
    }
}

/// Run a step again while it fails only because the lake changed under it. A stale step committed
/// nothing, so running it again is always safe; a manual `lake compact` commits once per partition
/// and can outpace a few quick retries, so they back off (up to 250 ms) for about ten seconds.
pub fn retry_stale<T>(mut step: impl FnMut() -> Result<T>) -> Result<T> {
    const ATTEMPTS: u64 = 50;
    let mut attempts = 0;
    loop {
        match step() {
            Err(JobError::Stale(why)) if attempts < ATTEMPTS => {
                attempts += 1;
                tracing::debug!(attempt = attempts, %why, "lake changed under the batch; running it again");
                std::thread::sleep(Duration::from_millis((10 * attempts).min(250)));
            }
            other => return other,
        }
    }
}
