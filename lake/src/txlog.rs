//! The lake's transaction log: the single source of truth for which files make up each table and
//! which source offsets they cover (decision 4).
//!
//! Commit `n` is the file `_omnistream/commits/<n>.json`, published with a hard link so that two
//! writers cannot both publish `n` (the loser re-reads and retries). A commit is durable once its
//! file and directory are synced: that is the commit point. Every 50 commits a checkpoint of the
//! whole [`Snapshot`] is written so that opening the lake does not replay history.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::datatypes::Schema;
use serde::{Deserialize, Serialize};

use crate::error::{LakeError, Result};
use omnistream_streams::io::{IoContext, IoError};

/// Commits between checkpoints.
pub const CHECKPOINT_INTERVAL: u64 = 50;
/// Commit files older than the newest checkpoint by more than this many commits are deleted.
const COMMITS_KEPT_BEHIND_CHECKPOINT: u64 = 200;

/// A data file of a table, as recorded in the log. Paths are relative to the lake root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    pub table: String,
    pub path: String,
    /// Value of the partition column (`date=YYYY-MM-DD`), when the table is partitioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    /// Smallest and largest value of the table's time column in this file (microseconds, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_time_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time_us: Option<i64>,
    /// Where the file was written before the commit; renamed to `path` after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
}

/// The definition of a table: its file schema and how it is laid out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    /// Schema of the Parquet files (without the partition column).
    pub schema: Schema,
    /// Hive partitioning by `date=YYYY-MM-DD` of the time column.
    pub partitioned_by_date: bool,
    /// Column whose min/max are tracked per file (event time), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
}

/// One change made by a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create a table, or replace its definition.
    DefineTable(TableDef),
    Add(DataFile),
    Remove {
        table: String,
        path: String,
    },
    /// The offsets of a source (a job reading the event log) that this commit covers:
    /// topic name -> partition -> next offset to read.
    SourceOffsets {
        source: String,
        topic: String,
        offsets: BTreeMap<u32, u64>,
    },
}

/// A commit record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Commit {
    pub seq: u64,
    pub writer: String,
    pub committed_at: String,
    pub actions: Vec<Action>,
}

/// The state of the lake after some commit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last commit applied (0: nothing committed yet).
    pub seq: u64,
    pub tables: BTreeMap<String, TableState>,
    /// source -> topic -> partition -> next offset.
    pub sources: BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>,
    /// writer -> its last commit, whose follow-up work (renames, deletions) may be unfinished.
    pub last_commit_by_writer: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableState {
    pub def: TableDef,
    /// path -> file.
    pub files: BTreeMap<String, DataFile>,
}

impl Snapshot {
    /// Apply a commit. Returns an error when it contradicts the state (a conflict).
    pub fn apply(&mut self, commit: &Commit) -> Result<()> {
        self.check(&commit.actions)?;
        for action in &commit.actions {
            match action {
                Action::DefineTable(def) => {
                    let state = self
                        .tables
                        .entry(def.name.clone())
                        .or_insert_with(|| TableState {
                            def: def.clone(),
                            files: BTreeMap::new(),
                        });
                    state.def = def.clone();
                }
                Action::Add(file) => {
                    let table = self.tables.get_mut(&file.table).expect("checked");
                    let mut file = file.clone();
                    file.staged = None;
                    table.files.insert(file.path.clone(), file);
                }
                Action::Remove { table, path } => {
                    self.tables
                        .get_mut(table)
                        .expect("checked")
                        .files
                        .remove(path);
                }
                Action::SourceOffsets {
                    source,
                    topic,
                    offsets,
                } => {
                    let topics = self.sources.entry(source.clone()).or_default();
                    topics
                        .entry(topic.clone())
                        .or_default()
                        .extend(offsets.iter().map(|(p, o)| (*p, *o)));
                }
            }
        }
        self.seq = commit.seq;
        self.last_commit_by_writer
            .insert(commit.writer.clone(), commit.seq);
        Ok(())
    }

    /// Whether `actions` can be applied to this state.
    pub fn check(&self, actions: &[Action]) -> Result<()> {
        let mut defined: Vec<&str> = vec![];
        for action in actions {
            match action {
                Action::DefineTable(def) => defined.push(&def.name),
                Action::Add(file) => {
                    let table = self.tables.get(&file.table);
                    if table.is_none() && !defined.contains(&file.table.as_str()) {
                        return Err(LakeError::Conflict(format!(
                            "table '{}' is not defined",
                            file.table
                        )));
                    }
                    if table.is_some_and(|t| t.files.contains_key(&file.path)) {
                        return Err(LakeError::Conflict(format!(
                            "file {} is already in the lake",
                            file.path
                        )));
                    }
                }
                Action::Remove { table, path } => {
                    if !self
                        .tables
                        .get(table)
                        .is_some_and(|t| t.files.contains_key(path))
                    {
                        return Err(LakeError::Conflict(format!(
                            "file {path} of table '{table}' is no longer in the lake (compacted by another writer?)"
                        )));
                    }
                }
                Action::SourceOffsets { .. } => {}
            }
        }
        Ok(())
    }

    /// Committed offsets of a source on a topic.
    pub fn source_offsets(&self, source: &str, topic: &str) -> BTreeMap<u32, u64> {
        self.sources
            .get(source)
            .and_then(|t| t.get(topic))
            .cloned()
            .unwrap_or_default()
    }

    pub fn table(&self, name: &str) -> Option<&TableState> {
        self.tables.get(name)
    }
}

/// Reads and appends the commit log of one lake.
#[derive(Debug, Clone)]
pub struct TxLog {
    root: PathBuf,
}

impl TxLog {
    pub fn new(lake_root: &Path) -> Self {
        TxLog {
            root: lake_root.join("_omnistream"),
        }
    }

    fn commits_dir(&self) -> PathBuf {
        self.root.join("commits")
    }

    fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    pub fn commit_path(&self, seq: u64) -> PathBuf {
        self.commits_dir().join(format!("{seq:020}.json"))
    }

    pub fn ensure_dirs(&self) -> Result<()> {
        for dir in [self.commits_dir(), self.checkpoints_dir()] {
            fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(())
    }

    /// Read commit `seq`, or `None` when it does not exist (yet).
    pub fn read_commit(&self, seq: u64) -> Result<Option<Commit>> {
        let path = self.commit_path(seq);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| LakeError::Metadata {
                        path,
                        detail: format!("unreadable commit: {e}"),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IoError::new(format!("reading {}", path.display()), e).into()),
        }
    }

    /// The newest checkpoint's sequence number (0 when there is none).
    fn latest_checkpoint(&self) -> Result<u64> {
        let dir = self.checkpoints_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(IoError::new(format!("listing {}", dir.display()), e).into()),
        };
        let mut latest = 0;
        for entry in entries {
            let entry = entry.io_context(|| format!("listing {}", dir.display()))?;
            if let Some(seq) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                latest = latest.max(seq);
            }
        }
        Ok(latest)
    }

    /// Bring `snapshot` up to the newest commit.
    pub fn catch_up(&self, snapshot: &mut Snapshot) -> Result<()> {
        // A checkpoint ahead of us holds the state at its sequence number: start from it rather
        // than replaying (the commits before it may have been pruned).
        loop {
            let checkpoint = self.latest_checkpoint()?;
            if checkpoint <= snapshot.seq {
                break;
            }
            let path = self
                .checkpoints_dir()
                .join(format!("{checkpoint:020}.json"));
            match fs::read(&path) {
                Ok(bytes) => {
                    *snapshot =
                        serde_json::from_slice(&bytes).map_err(|e| LakeError::Metadata {
                            path,
                            detail: format!("unreadable checkpoint: {e}"),
                        })?;
                    break;
                }
                // Replaced by a newer checkpoint while we looked: look again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(IoError::new(format!("reading {}", path.display()), e).into()),
            }
        }
        while let Some(commit) = self.read_commit(snapshot.seq + 1)? {
            snapshot.apply(&commit).map_err(|e| LakeError::Metadata {
                path: self.commit_path(commit.seq),
                detail: format!("commit does not apply: {e}"),
            })?;
        }
        Ok(())
    }

    /// Publish `actions` as the commit after `snapshot.seq`. Returns `Ok(None)` when another writer
    /// published that sequence number first: catch up and try again.
    pub fn try_publish(
        &self,
        snapshot: &Snapshot,
        writer: &str,
        actions: Vec<Action>,
    ) -> Result<Option<Commit>> {
        snapshot.check(&actions)?;
        let commit = Commit {
            seq: snapshot.seq + 1,
            writer: writer.to_string(),
            committed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actions,
        };
        let dir = self.commits_dir();
        let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7()));
        let bytes = serde_json::to_vec(&commit).expect("commits serialise");
        write_synced(&tmp, &bytes)?;
        let linked = fs::hard_link(&tmp, self.commit_path(commit.seq));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&dir)?;
                Ok(Some(commit))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(IoError::new(format!("publishing commit {}", commit.seq), e).into()),
        }
    }

    /// Write a checkpoint of `snapshot` and prune commit files far behind it. Best effort: a
    /// failure here loses nothing, it only makes the next open slower.
    pub fn checkpoint(&self, snapshot: &Snapshot) -> Result<()> {
        let dir = self.checkpoints_dir();
        let path = dir.join(format!("{:020}.json", snapshot.seq));
        let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7()));
        write_synced(
            &tmp,
            &serde_json::to_vec(snapshot).expect("snapshots serialise"),
        )?;
        fs::rename(&tmp, &path).io_context(|| format!("publishing {}", path.display()))?;
        sync_dir(&dir)?;
        let keep_from = snapshot.seq.saturating_sub(COMMITS_KEPT_BEHIND_CHECKPOINT);
        for entry in
            fs::read_dir(self.commits_dir()).io_context(|| "listing commits".to_string())?
        {
            let entry = entry.io_context(|| "listing commits".to_string())?;
            let seq = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json")?.parse::<u64>().ok());
            if seq.is_some_and(|s| s < keep_from) {
                let _ = fs::remove_file(entry.path());
            }
        }
        for entry in fs::read_dir(&dir).io_context(|| "listing checkpoints".to_string())? {
            let entry = entry.io_context(|| "listing checkpoints".to_string())?;
            let seq = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json")?.parse::<u64>().ok());
            if seq.is_some_and(|s| s < snapshot.seq) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Write a file and sync it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).io_context(|| format!("creating {}", path.display()))?;
    Ok(f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .io_context(|| format!("writing {}", path.display()))?)
}

/// Sync a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    Ok(File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context(|| format!("syncing directory {}", dir.display()))?)
}
