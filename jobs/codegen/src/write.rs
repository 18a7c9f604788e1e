//! Stage 6, file writing with rollback: every file goes to a staging directory first; the node
//! directory appears (or is replaced) by one rename only after the compile check, so a reader never
//! sees half a node. A failed generation's files are kept under `.omnistream-failed/` for inspection.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use omnistream_streams::io::{IoContext, IoError};

use crate::render::GeneratedFile;

/// Why a node's files could not be written where the request asked.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("output_directory contains a NUL byte")]
    Nul,
    #[error("output_directory '{0}' must not contain '..'")]
    ParentDir(String),
    #[error(
        "output_directory '{requested}' is outside the directories the codegen job may write ({allowed}); add it to codegen.allowed_output_roots"
    )]
    Outside { requested: String, allowed: String },
    #[error("refusing to write outside the node: {0}")]
    Escape(String),
    #[error(
        "refusing to replace {}: omnistream did not create it (it has no {MARKER}); move it away or choose another output directory",
        .0.display()
    )]
    NotOurs(PathBuf),
    #[error(transparent)]
    Io(#[from] IoError),
}

const STAGING: &str = ".omnistream-staging";
const FAILED: &str = ".omnistream-failed";
/// Written into every node directory omnistream creates: only such a directory is ever replaced.
pub const MARKER: &str = ".omnistream-node";

/// `path` with the symlinks of its existing part resolved (the part that does not exist yet
/// appended as it is): where a write would really go.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            return path.to_path_buf();
        };
        rest.push(name);
        existing = parent;
    }
    let mut out = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    out.extend(rest.into_iter().rev());
    out
}

/// Where a request's node goes: the request's `output_directory` (relative to the configured root,
/// or absolute inside one of `allowed_roots`), never through `..`. Requests can come from anyone who
/// can publish to the log, so they do not get to choose an arbitrary directory.
pub fn resolve_output(
    root: &Path,
    allowed_roots: &[PathBuf],
    requested: Option<&str>,
) -> Result<PathBuf, WriteError> {
    let Some(requested) = requested.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(root.to_path_buf());
    };
    if requested.contains('\0') {
        return Err(WriteError::Nul);
    }
    let path = Path::new(requested);
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(WriteError::ParentDir(requested.to_string()));
    }
    // Checked where the writes would really go: a symlink on the way may lead anywhere.
    let target = resolved(&root.join(path));
    if std::iter::once(root)
        .chain(allowed_roots.iter().map(PathBuf::as_path))
        .any(|r| target.starts_with(resolved(r)))
    {
        return Ok(target);
    }
    Err(WriteError::Outside {
        requested: requested.to_string(),
        allowed: std::iter::once(root)
            .chain(allowed_roots.iter().map(PathBuf::as_path))
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// G6: the output directory can be created and written. A directory is probed once per process:
/// creating and deleting a probe file per generation leaves a trail of deleted inodes that makes
/// ext4 slow to allocate new ones.
pub fn check_output(dir: &Path) -> Result<(), WriteError> {
    static CHECKED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    if CHECKED.lock().unwrap().contains(dir) {
        return Ok(());
    }
    std::fs::create_dir_all(dir.join(STAGING))
        .io_context(|| format!("cannot create {}", dir.display()))?;
    let probe = dir
        .join(STAGING)
        .join(format!(".probe-{}", std::process::id()));
    std::fs::write(&probe, b"").io_context(|| format!("cannot write in {}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    CHECKED.lock().unwrap().insert(dir.to_path_buf());
    Ok(())
}

/// Files written to staging, not yet visible under their final name.
#[derive(Debug)]
pub struct Staged {
    pub staging: PathBuf,
    pub target: PathBuf,
    pub files: Vec<String>,
    tag: String,
}

/// Write `files` under a staging directory; on any error nothing stays behind.
pub fn stage(
    out_dir: &Path,
    dir_name: &str,
    files: &[GeneratedFile],
    correlation_id: &str,
) -> Result<Staged, WriteError> {
    let tag = format!(
        "{dir_name}-{}",
        correlation_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect::<String>()
    );
    let staging = out_dir.join(STAGING).join(&tag);
    let _ = std::fs::remove_dir_all(&staging);
    let result = (|| -> Result<(), WriteError> {
        // Each directory once: a create_dir_all per file is two syscalls per file for nothing.
        let mut created = std::collections::HashSet::new();
        for f in files {
            let rel = Path::new(&f.path);
            if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(WriteError::Escape(f.path.clone()));
            }
            let path = staging.join(rel);
            if let Some(parent) = path.parent()
                && created.insert(parent.to_path_buf())
            {
                std::fs::create_dir_all(parent)
                    .io_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, &f.content)
                .io_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    })();
    let result = result.and_then(|()| {
        std::fs::write(staging.join(MARKER), correlation_id)
            .io_context(|| format!("writing {}", staging.join(MARKER).display()))
            .map_err(WriteError::from)
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(Staged {
        staging,
        target: out_dir.join(dir_name),
        files: files.iter().map(|f| f.path.clone()).collect(),
        tag,
    })
}

impl Staged {
    /// Make the node visible under its name, replacing an earlier generation of it.
    pub fn publish(self) -> Result<PathBuf, WriteError> {
        let old = self.staging.with_file_name(format!("{}.old", self.tag));
        let _ = std::fs::remove_dir_all(&old);
        let had_old = self.target.exists();
        if had_old && !self.target.join(MARKER).is_file() {
            let _ = std::fs::remove_dir_all(&self.staging);
            return Err(WriteError::NotOurs(self.target));
        }
        if had_old {
            std::fs::rename(&self.target, &old)
                .io_context(|| format!("moving the previous {} aside", self.target.display()))?;
        }
        if let Err(e) = std::fs::rename(&self.staging, &self.target) {
            if had_old {
                let _ = std::fs::rename(&old, &self.target);
            }
            let _ = std::fs::remove_dir_all(&self.staging);
            let context = format!("publishing {}", self.target.display());
            return Err(IoError::new(context, e).into());
        }
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(self.target)
    }

    /// Roll back: nothing appears under the node's name; the files move to `.omnistream-failed/`.
    pub fn discard(self) -> Option<PathBuf> {
        let failed_root = self
            .staging
            .parent()
            .and_then(Path::parent)
            .map(|out| out.join(FAILED))?;
        let failed = failed_root.join(&self.tag);
        let _ = std::fs::remove_dir_all(&failed);
        if std::fs::create_dir_all(&failed_root).is_ok()
            && std::fs::rename(&self.staging, &failed).is_ok()
        {
            return Some(failed);
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str) -> GeneratedFile {
        GeneratedFile {
            path: path.into(),
            content: format!("# {path}\n"),
        }
    }

    #[test]
    fn publish_replaces_and_discard_leaves_nothing_under_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let staged = stage(dir.path(), "node_x", &[f("a.py"), f("pkg/b.py")], "c1").unwrap();
        assert!(!dir.path().join("node_x").exists());
        let target = staged.publish().unwrap();
        assert!(target.join("pkg/b.py").exists());
        let staged = stage(dir.path(), "node_x", &[f("c.py")], "c2").unwrap();
        staged.publish().unwrap();
        assert!(target.join("c.py").exists() && !target.join("a.py").exists());

        let staged = stage(dir.path(), "node_y", &[f("a.py")], "c3").unwrap();
        let failed = staged.discard().unwrap();
        assert!(failed.join("a.py").exists());
        assert!(!dir.path().join("node_y").exists());
    }

    #[test]
    fn paths_that_escape_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = stage(dir.path(), "node_z", &[f("ok.py"), f("../evil.py")], "c").unwrap_err();
        assert!(
            matches!(err, WriteError::Escape(ref p) if p == "../evil.py"),
            "{err}"
        );
        assert!(!dir.path().join("evil.py").exists());
        let root = dir.path();
        assert!(resolve_output(root, &[], Some("../x")).is_err());
        assert_eq!(
            resolve_output(root, &[], Some("sub")).unwrap(),
            root.join("sub")
        );
        assert_eq!(resolve_output(root, &[], None).unwrap(), root);
        let inside = root.join("a/b").display().to_string();
        assert_eq!(
            resolve_output(root, &[], Some(&inside)).unwrap(),
            root.join("a/b")
        );
        let err = resolve_output(root, &[], Some("/etc/cron.d")).unwrap_err();
        assert!(matches!(err, WriteError::Outside { .. }), "{err}");
        assert!(err.to_string().contains("allowed_output_roots"), "{err}");
        let allowed = [PathBuf::from("/srv/nodes")];
        assert!(resolve_output(root, &allowed, Some("/srv/nodes/x")).is_ok());
        assert!(resolve_output(root, &allowed, Some("/srv/nodesx")).is_err());
    }

    #[test]
    fn a_symlink_on_the_way_is_followed_before_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        let err = resolve_output(&root, &[], Some("link/nodes")).unwrap_err();
        assert!(matches!(err, WriteError::Outside { .. }), "{err}");
        let absolute = root.join("link/nodes").display().to_string();
        assert!(resolve_output(&root, &[], Some(&absolute)).is_err());
        // A symlink that stays inside is fine, and the real place is returned.
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        assert_eq!(
            resolve_output(&root, &[], Some("alias/n")).unwrap(),
            std::fs::canonicalize(root.join("real")).unwrap().join("n")
        );
    }

    #[test]
    fn a_directory_omnistream_did_not_create_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("node_x");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("precious.txt"), "mine").unwrap();
        let staged = stage(dir.path(), "node_x", &[f("a.py")], "c1").unwrap();
        let err = staged.publish().unwrap_err();
        assert!(matches!(err, WriteError::NotOurs(_)), "{err}");
        assert!(
            err.to_string().contains("omnistream did not create it"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(theirs.join("precious.txt")).unwrap(),
            "mine"
        );
        assert!(!theirs.join("a.py").exists());
        // Ours is replaced.
        let ours = stage(dir.path(), "node_y", &[f("a.py")], "c2")
            .unwrap()
            .publish()
            .unwrap();
        assert!(ours.join(MARKER).is_file());
        stage(dir.path(), "node_y", &[f("b.py")], "c3")
            .unwrap()
            .publish()
            .unwrap();
        assert!(ours.join("b.py").exists() && !ours.join("a.py").exists());
    }
}
