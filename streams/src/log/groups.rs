//! Consumer-group offsets of the embedded log: one small JSON file per group and topic, replaced
//! atomically (write, sync, rename, sync directory) so a crash leaves the old or the new value.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, StreamsError};
use crate::io::{IoContext, IoError};
use crate::log::{GroupOffsets, validate_name};
use crate::registry::Topic;

pub(crate) struct GroupStore {
    dir: PathBuf,
}

impl GroupStore {
    pub(crate) fn new(log_dir: &Path) -> Self {
        GroupStore {
            dir: log_dir.join("_groups"),
        }
    }

    fn path(&self, group: &str, topic: Topic) -> Result<PathBuf> {
        validate_name(group)?;
        Ok(self.dir.join(group).join(format!("{}.json", topic.name())))
    }

    pub(crate) fn committed(&self, group: &str, topic: Topic) -> Result<GroupOffsets> {
        let path = self.path(group, topic)?;
        match fs::read(&path) {
            Ok(bytes) => {
                let map: BTreeMap<String, u64> =
                    serde_json::from_slice(&bytes).map_err(|e| StreamsError::Metadata {
                        topic: topic.name().to_string(),
                        detail: format!("unreadable offsets file {}: {e}", path.display()),
                    })?;
                map.into_iter()
                    .map(|(p, o)| {
                        p.parse::<u32>()
                            .map(|p| (p, o))
                            .map_err(|_| StreamsError::Metadata {
                                topic: topic.name().to_string(),
                                detail: format!("bad partition '{p}' in {}", path.display()),
                            })
                    })
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GroupOffsets::new()),
            Err(e) => Err(IoError::new(format!("reading {}", path.display()), e).into()),
        }
    }

    pub(crate) fn commit(&self, group: &str, topic: Topic, offsets: &GroupOffsets) -> Result<()> {
        let path = self.path(group, topic)?;
        let mut merged = self.committed(group, topic)?;
        merged.extend(offsets.iter().map(|(p, o)| (*p, *o)));
        let as_json: BTreeMap<String, u64> = merged
            .into_iter()
            .map(|(p, o)| (p.to_string(), o))
            .collect();
        let bytes = serde_json::to_vec(&as_json).expect("offsets serialise");
        write_atomically(&path, &bytes)
    }

    /// A group that committed `partition` of `topic` past `offset`, with its offset: the data
    /// before it was acknowledged and consumed.
    pub(crate) fn committed_past(
        &self,
        topic: Topic,
        partition: u32,
        offset: u64,
    ) -> Result<Option<(String, u64)>> {
        for group in self.groups()? {
            if let Some(&committed) = self.committed(&group, topic)?.get(&partition)
                && committed > offset
            {
                return Ok(Some((group, committed)));
            }
        }
        Ok(None)
    }

    pub(crate) fn groups(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(IoError::new(format!("listing {}", self.dir.display()), e).into()),
        };
        let mut groups = Vec::new();
        for entry in entries {
            let entry = entry.io_context(|| format!("listing {}", self.dir.display()))?;
            if let Some(name) = entry.file_name().to_str()
                && validate_name(name).is_ok()
            {
                groups.push(name.to_string());
            }
        }
        groups.sort();
        Ok(groups)
    }
}

/// Replace `path` with `bytes` so that a crash leaves either the old or the new content.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .expect("an offsets file has a parent directory");
    fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let mut file = fs::File::create(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .io_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all()
        .io_context(|| format!("syncing {}", tmp.display()))?;
    fs::rename(&tmp, path).io_context(|| format!("renaming {} into place", tmp.display()))?;
    sync_dir(dir)
}

/// fsync a directory so that a rename or a new file in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    Ok(fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context(|| format!("syncing directory {}", dir.display()))?)
}
