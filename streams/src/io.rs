//! File-system helpers every crate of the workspace shares: an I/O error that says what was being
//! done, and the lock files that keep one process per role (the log's writer, a lake writer, the
//! codegen job).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// An I/O error and what was being done when it happened (`writing /data/x: No space left on
/// device`). Each crate's error enum wraps it as its `Io` variant.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct IoError {
    pub context: String,
    pub source: std::io::Error,
}

impl IoError {
    pub fn new(context: impl Into<String>, source: std::io::Error) -> IoError {
        IoError {
            context: context.into(),
            source,
        }
    }
}

/// Attach what was being done to an I/O error.
pub trait IoContext<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T, IoError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T, IoError> {
        self.map_err(|source| IoError {
            context: context(),
            source,
        })
    }
}

/// Open the lock file at `path`, creating it and its directory. The file's content is never
/// used: only its advisory lock, which the kernel drops when the holder dies (even by `kill -9`).
pub fn open_lock_file(path: &Path) -> Result<File, IoError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .io_context(|| format!("opening {}", path.display()))
}

/// Take the exclusive lock of `file` (opened from `path`) unless another process holds it.
pub fn try_lock(file: &File, path: &Path) -> Result<bool, IoError> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(IoError::new(format!("locking {}", path.display()), e)),
    }
}

/// Open the lock file at `path` and take its lock: the file, holding the lock until dropped, or
/// `None` when another process holds it.
pub fn lock_exclusively(path: &Path) -> Result<Option<File>, IoError> {
    let file = open_lock_file(path)?;
    Ok(try_lock(&file, path)?.then_some(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_until_its_file_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/role.lock");
        let held = lock_exclusively(&path).unwrap().expect("free");
        // Another open file description of the same file cannot take it meanwhile.
        assert!(lock_exclusively(&path).unwrap().is_none());
        drop(held);
        assert!(lock_exclusively(&path).unwrap().is_some());
    }

    #[test]
    fn an_io_error_says_what_was_being_done() {
        let e = std::fs::read("/nonexistent/x")
            .io_context(|| "reading /nonexistent/x".into())
            .unwrap_err();
        assert_eq!(e.context, "reading /nonexistent/x");
        assert!(e.to_string().starts_with("reading /nonexistent/x: "), "{e}");
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        // Its message carries its cause: the cause is not said twice.
        let causes = crate::error::distinct_causes(&e);
        assert_eq!(causes, [e.to_string()]);
        let wrapped = crate::StreamsError::from(e);
        assert_eq!(crate::error::distinct_causes(&wrapped), causes);
    }
}
