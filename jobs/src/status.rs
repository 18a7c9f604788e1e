//! What a job last did, kept in `<data>/jobs/<name>.json` for `omnistream jobs status`.
//! Committed offsets and lag are not here: they come from the lake's commits and the log.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobStatus {
    pub name: String,
    /// running, stopped or failed.
    pub state: String,
    pub pid: u32,
    pub started_at: String,
    pub last_batch_at: Option<String>,
    pub batches: u64,
    pub events_in: u64,
    pub rows_out: u64,
    pub last_batch_ms: Option<f64>,
    pub last_error: Option<String>,
}

/// Reads and writes the status files of one data directory.
#[derive(Debug, Clone)]
pub struct StatusStore {
    dir: PathBuf,
}

impl StatusStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StatusStore { dir: dir.into() }
    }

    /// Where the status files (and job locks) live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn read(&self, name: &str) -> Option<JobStatus> {
        std::fs::read(self.path(name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Best effort: a status that cannot be written is logged, never fatal to the job.
    pub fn write(&self, status: &JobStatus) {
        if let Err(e) = write_atomically(
            &self.path(&status.name),
            &serde_json::to_vec_pretty(status).unwrap(),
        ) {
            tracing::warn!(job = %status.name, error = %e, "could not write the job status");
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("status files live in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
